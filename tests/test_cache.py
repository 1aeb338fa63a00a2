import pytest

from helpers.cache import cached


def test_cached_computes_once_and_writes_only_under_build(tmp_path, monkeypatch):
    monkeypatch.setenv("DL_CACHE", "1")
    calls = []

    def compute():
        calls.append(1)
        return {"w": [1, 2, 3]}

    assert cached("demo", compute, seed=0) == {"w": [1, 2, 3]}
    assert cached("demo", compute, seed=0) == {"w": [1, 2, 3]}
    assert cached("demo", compute, seed=1) == {"w": [1, 2, 3]}
    assert len(calls) == 2
    files = list((tmp_path / "build" / "cache").iterdir())
    assert len(files) == 2 and all(f.suffix == ".pt" for f in files)


def test_cache_can_be_disabled_and_names_are_checked(monkeypatch):
    monkeypatch.setenv("DL_CACHE", "0")
    calls = []
    cached("demo", lambda: calls.append(1), a=1)
    cached("demo", lambda: calls.append(1), a=1)
    assert len(calls) == 2
    with pytest.raises(ValueError, match="name must be a non-empty name"):
        cached("../x", lambda: 1)
