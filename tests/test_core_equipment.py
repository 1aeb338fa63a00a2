"""Tests of the small core modules: progress, timing, tables and exercise feedback."""
import math
import time

import pytest
import torch

from helpers import exercises, progress, tables, timing


def test_share_maps_a_part_of_a_job_onto_its_slice():
    seen = []
    second_of_four = progress.share(seen.append, 0.25, 0.5)
    second_of_four(0.0)
    second_of_four(0.5)
    second_of_four(1.0)
    assert seen == [0.25, 0.375, 0.5]
    assert progress.share(None, 0.0, 1.0) is None
    with pytest.raises(ValueError, match=r"stop must be a number in \[0.5, 1.0\]"):
        progress.share(seen.append, 0.5, 0.2)


def test_no_cell_bar_outside_a_kernel_or_when_silenced(monkeypatch):
    monkeypatch.setenv("DL_PROGRESS", "1")
    with progress.silenced():
        assert not progress.enabled()
    monkeypatch.setenv("DL_PROGRESS", "0")
    assert progress.cell_bar() is None


def test_cell_report_passes_a_given_report_through_and_is_none_without_bars(monkeypatch):
    seen = []
    assert progress.cell_report("training", seen.append) == seen.append
    monkeypatch.setenv("DL_PROGRESS", "0")
    assert progress.cell_report("training") is None


def test_cell_report_drives_the_cell_bar_as_one_more_run(monkeypatch):
    class FakeBar:
        def __init__(self):
            self.calls = []

        def start_run(self, description):
            self.calls.append(("start", description))

        def update(self, fraction, detail, force=False):
            self.calls.append((fraction, detail, force))

    bar = FakeBar()
    monkeypatch.setattr(progress, "cell_bar", lambda: bar)
    report = progress.cell_report("CNN on 400 examples")
    report(0.5)
    report(1.0)
    assert bar.calls == [("start", "CNN on 400 examples"), (0.5, "50%", False), (1.0, "100%", True)]


def test_time_many_returns_the_fastest_round_for_each_function():
    times = timing.time_many({"small": lambda: torch.ones(10).sum(), "big": lambda: torch.ones(200_000).sum()},
                             rounds=2, min_run_time=0.01)
    assert set(times) == {"small", "big"} and 0 < times["small"] < times["big"]
    assert "vector extensions" in timing.machine_note("cpu")
    with pytest.raises(ValueError, match="fns must name at least one function"):
        timing.time_many({})


def test_table_cells_say_undefined_and_infinite_in_words():
    assert [tables.format_cell(v) for v in (math.nan, math.inf, -math.inf, 0.5)] == [
        "undefined", "infinite", "minus infinite", "0.5"]


def test_time_many_can_count_only_the_calling_threads_cpu_time():
    def sleep() -> None:
        time.sleep(0.004)

    wall = timing.time_many({"sleep": sleep}, rounds=1, min_run_time=0.02)["sleep"]
    cpu = timing.time_many({"sleep": sleep}, rounds=1, min_run_time=0.02, clock=time.thread_time)["sleep"]
    assert wall >= 0.004 and cpu < 0.002


def test_markdown_table_formats_and_checks_columns():
    text = tables.markdown_table([{"a": 0.123456, "b": "x"}, {"a": 2, "b": True}])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 0.123 | x |", "| 2 | True |"]
    with pytest.raises(ValueError, match="missing"):
        tables.markdown_table([{"a": 1}, {"b": 2}])
    with pytest.raises(ValueError, match="rows must hold at least one row"):
        tables.markdown_table([])


def test_exercise_feedback_never_raises(capsys):
    def stub():
        raise NotImplementedError

    def buggy():
        return 1 / 0

    assert exercises.attempt(stub, what="f") is exercises.NOT_ATTEMPTED
    assert exercises.attempt(None, what="f") is exercises.NOT_ATTEMPTED
    assert exercises.attempt(buggy, what="f") is exercises.NOT_ATTEMPTED
    assert exercises.attempt(lambda: None, what="f") is exercises.NOT_ATTEMPTED
    assert exercises.attempt(lambda x: x + 1, 1, what="f") == 2
    assert not exercises.wrong("off by one", "count from zero")
    assert exercises.correct("well done")
    out = capsys.readouterr().out
    assert "Not attempted yet: fill in f" in out and "ZeroDivisionError" in out
    assert "Hint: count from zero" in out and "Correct: well done" in out


def test_source_of_shows_whole_functions_and_refuses_builtins():
    from helpers import source

    assert source.source_of(tables.format_cell).startswith("def format_cell(")
    with pytest.raises(ValueError, match="obj must be a class, function or method"):
        source.source_of(len)
    with pytest.raises(ValueError, match="needs at least one"):
        source.show_source()


def test_time_fastest_calls_keeps_each_functions_fastest_call():
    import time

    costs = iter([0.03, 0.01, 0.002, 0.02, 0.04, 0.05, 0.006, 0.004])   # rounds of bursts: a a, b b, a a, b b
    calls = []

    def work(name):
        calls.append(name)
        seconds, start = next(costs), time.thread_time()
        while time.thread_time() - start < seconds:   # busy: CPU time, which a busy machine cannot inflate
            pass

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = timing.time_fastest_calls({"a": lambda: work("a"), "b": lambda: work("b")}, rounds=2, burst=2)
    finally:
        torch.set_num_threads(before)
    assert calls == ["a", "a", "b", "b", "a", "a", "b", "b"]
    assert 0.01 <= times["a"] < 0.015 and 0.002 <= times["b"] < 0.004
    with pytest.raises(ValueError, match="rounds"):
        timing.time_fastest_calls({"a": lambda: None}, rounds=0)
    with pytest.raises(ValueError, match="burst"):
        timing.time_fastest_calls({"a": lambda: None}, burst=0)
    with pytest.raises(ValueError, match="fns must name at least one function"):
        timing.time_fastest_calls({})


def test_thread_clock_is_cpu_time_on_one_cpu_thread_and_wall_time_elsewhere():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert timing.thread_clock("cpu") is time.thread_time
        assert timing.thread_clock("cuda") is None
        torch.set_num_threads(2)
        assert timing.thread_clock("cpu") is None
    finally:
        torch.set_num_threads(threads)
