import pytest

from helpers import plotting
from helpers.widgets import Choice, Slider, Toggle, explore, numbers_html, progress_steps


def square(x: float = 1.0, kind: str = "a", flag: bool = False):
    fig, ax = plotting.figure("square", "x (units)", "x squared (units)")
    ax.plot([0, x], [0, x * x])
    return fig, {"x": x, "square": x * x, "kind": kind, "flag": flag}


def test_fast_explorer_renders_on_start_and_updates_on_change():
    ex = explore(square, x=Slider(0, 4, 0.5, 1.0), kind=Choice(["a", "b"]), flag=Toggle())
    assert ex.numbers["square"] == 1.0
    ex.controls["x"].value = 3.0
    assert ex.numbers["square"] == 9.0
    ex.controls["kind"].value = "b"
    assert ex.numbers["kind"] == "b"


def test_run_button_explorer_waits_and_reports_progress():
    seen = []

    def slow(n: int = 3, progress=None):
        for i in progress_steps(n, progress):
            seen.append(i)
        return square(float(n))[0], {"n": n}

    ex = explore(slow, run_button=True, n=Slider(1, 10, 1, 3))
    assert seen == [] and ex.numbers == {}
    ex.button.click()
    assert seen == [0, 1, 2] and ex.numbers == {"n": 3} and ex.progress.value == 1.0


def test_controls_are_bounded_and_checked():
    with pytest.raises(ValueError, match="Slider lo must be below hi"):
        Slider(2, 1, 0.1, 1.5)
    with pytest.raises(ValueError, match=r"Slider value must be in \[0, 1\]"):
        Slider(0, 1, 0.1, 3)
    with pytest.raises(ValueError, match="Slider lo must be positive for a log slider"):
        Slider(0, 1, 0.1, 0.5, log=True)
    with pytest.raises(ValueError, match="Choice value must be one of"):
        Choice(["a"], value="b")
    with pytest.raises(ValueError, match=r"controls \['y'\] are not parameters of square"):
        explore(square, y=Slider(0, 1, 0.1, 0.5))
    with pytest.raises(ValueError, match=r"total must be an integer in \[1, 10000000\]"):
        list(progress_steps(0, None))


def test_log_slider_and_numbers_table():
    ex = explore(square, x=Slider(0.01, 10, 0.1, 1.0, log=True))
    assert ex.controls["x"].min == -2 and ex.controls["x"].max == 1
    assert "<b>0.5</b>" in numbers_html({"a": 0.5}) and "&lt;" in numbers_html({"<": 1})


def test_figure_is_shown_as_png_and_callback_errors_are_displayed():
    def picky(x: float = 1.0):
        if x > 2:
            raise ValueError("x must be a number in [0, 2]")
        return square(x)

    ex = explore(picky, x=Slider(0, 4, 0.5, 1.0))
    assert ex.image.value[:4] == b"\x89PNG"
    ex.controls["x"].value = 3.0
    assert "x must be a number in [0, 2]" in ex.table.value
    assert ex.numbers["x"] == 1.0
