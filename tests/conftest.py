"""Shared test set-up: quick scale, CPU, and a private build folder for each test session."""
from __future__ import annotations

import os

os.environ.setdefault("DL_SCALE", "quick")
os.environ.setdefault("DL_PROGRESS", "0")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_build_dir(tmp_path, monkeypatch):
    """Claims ledgers and caches written by unit tests go to a temporary folder."""
    monkeypatch.setenv("DL_BUILD_DIR", str(tmp_path / "build"))
    yield
    import matplotlib.pyplot as plt
    plt.close("all")
