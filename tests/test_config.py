import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import config


def test_scale_defaults_to_full_and_reads_env(monkeypatch):
    monkeypatch.delenv("DL_SCALE", raising=False)
    assert config.scale() == "full"
    monkeypatch.setenv("DL_SCALE", "quick")
    assert config.scale() == "quick"
    assert config.pick(quick=1, full=2) == 1


def test_bad_scale_names_the_variable(monkeypatch):
    monkeypatch.setenv("DL_SCALE", "medium")
    with pytest.raises(ValueError, match="DL_SCALE must be one of"):
        config.scale()


def test_device_can_be_forced_to_cpu(monkeypatch):
    monkeypatch.setenv("DL_DEVICE", "cpu")
    assert config.device() == torch.device("cpu")
    monkeypatch.setenv("DL_DEVICE", "tpu")
    with pytest.raises(ValueError, match="DL_DEVICE must be one of"):
        config.device()


def test_seed_everything_makes_all_generators_repeat():
    config.seed_everything(3)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    config.seed_everything(3)
    assert first == (random.random(), np.random.rand(), torch.rand(1).item())
    with pytest.raises(ValueError, match="seed must be an integer"):
        config.seed_everything(-1)


def test_dl_seed_overrides_and_is_validated(monkeypatch):
    monkeypatch.setenv("DL_SEED", "7")
    assert config.resolve_seed(1) == 7
    monkeypatch.setenv("DL_SEED", "seven")
    with pytest.raises(ValueError, match="DL_SEED must be an integer"):
        config.resolve_seed(1)


def test_setup_prints_one_line_with_versions_device_scale_seed(monkeypatch, capsys):
    monkeypatch.delenv("DL_SEED", raising=False)
    cfg = config.setup("unit_test", seed=4)
    line = capsys.readouterr().out.strip()
    assert "\n" not in line
    for part in (torch.__version__, str(cfg.device), "scale quick", "seed 4"):
        assert part in line
    assert config.current() is cfg
    with pytest.raises(ValueError, match="notebook must be"):
        config.setup("../escape")


def test_build_dir_is_created_under_the_override(tmp_path, monkeypatch):
    monkeypatch.setenv("DL_BUILD_DIR", str(tmp_path / "b"))
    assert config.build_dir("claims") == tmp_path / "b" / "claims"
    assert (tmp_path / "b" / "claims").is_dir()


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    return subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, env=env,
                          timeout=60)


def test_helpers_sets_passive_wait_policy_before_torch():
    out = run_python("import helpers, os; from helpers import config; print(os.environ['OMP_WAIT_POLICY'])")
    assert out.stdout.strip() == "PASSIVE"
    assert "RuntimeWarning" not in out.stderr


def test_warns_when_torch_was_imported_first():
    out = run_python("import torch; import helpers.config")
    assert "torch was imported before helpers" in out.stderr


def test_threads_default_to_one_and_are_validated(monkeypatch):
    monkeypatch.delenv("DL_THREADS", raising=False)
    assert config.threads() == 1
    monkeypatch.setenv("DL_THREADS", "2")
    cfg = config.setup("unit_test", verbose=False)
    assert cfg.threads == torch.get_num_threads() == 2
    monkeypatch.setenv("DL_THREADS", "0")
    with pytest.raises(ValueError, match=r"DL_THREADS must be an integer in \[1, 256\]"):
        config.threads()
    torch.set_num_threads(1)


def test_one_thread_restores_the_previous_count():
    torch.set_num_threads(2)
    with config.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
