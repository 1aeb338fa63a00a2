import math

import pytest

from helpers import plotting
from helpers.progress import steps
from helpers.widgets import Choice, Slider, Toggle, describe_problems, explore, format_number, numbers_html


def square(x: float = 1.0, kind: str = "a", flag: bool = False):
    fig, ax = plotting.figure("square", "x (units)", "x squared (units)")
    ax.plot([0, x], [0, x * x])
    return fig, {"x": x, "square": x * x, "kind": kind, "flag": flag}


def test_fast_explorer_renders_on_start_and_updates_on_change():
    ex = explore(square, x=Slider(0, 4, 0.5, 1.0), kind=Choice(["a", "b"]), flag=Toggle())
    assert ex.numbers["square"] == 1.0 and ex.seconds is not None
    ex.controls["x"].value = 3.0
    assert ex.numbers["square"] == 9.0
    ex.controls["kind"].value = "b"
    assert ex.numbers["kind"] == "b"
    assert "dl-seconds" in ex.table.value


def test_run_button_explorer_shows_a_placeholder_reports_progress_and_marks_stale_figures():
    seen = []

    def slow(n: int = 3, progress=None):
        for i in steps(n, progress):
            seen.append(i)
        return square(float(n))[0], {"n": n}

    ex = explore(slow, run_button=True, n=Slider(1, 10, 1, 3))
    assert seen == [] and ex.numbers == {}
    assert ex.image.layout.display == "none" and "press Run" in ex.status.value
    ex.button.click()
    assert seen == [0, 1, 2] and ex.numbers == {"n": 3} and ex.progress.value == 1.0
    assert ex.image.layout.display is None and ex.status.value == ""
    ex.controls["n"].value = 5
    assert "previous settings" in ex.status.value and ex.numbers == {"n": 3}
    ex.button.click()
    assert ex.numbers == {"n": 5} and ex.status.value == ""


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
        list(steps(0, None))


def test_log_slider_grid_passes_through_its_value_and_shows_three_digits():
    ex = explore(square, x=Slider(0.01, 10, 0.1, 1.0, log=True))
    assert ex.controls["x"].min == pytest.approx(-2) and ex.controls["x"].max == pytest.approx(1)
    slider = Slider(0.25, 8.0, 0.02, 1.0, log=True)
    low, high = slider.log_grid()
    assert math.log10(0.25) <= low < math.log10(0.25) + 0.02 and high <= math.log10(8.0)
    assert (0 - low) / 0.02 == pytest.approx(round((0 - low) / 0.02))
    built = explore(square, x=slider)
    assert built.controls["x"].readout_format == ".3g"


def test_float_readout_has_the_digits_of_its_step():
    ex = explore(square, x=Slider(0.9, 0.999, 0.001, 0.99))
    assert ex.controls["x"].readout_format == ".3f"


def test_numbers_never_show_a_bare_nan():
    assert format_number(float("nan")) == "undefined (not a number)"
    assert format_number(float("inf")) == "overflow (infinite)"
    assert "<b>0.5</b>" in numbers_html({"a": 0.5}) and "&lt;" in numbers_html({"<": 1})
    fig, _ = plotting.figure("empty", "x (units)", "y (units)")
    assert "Nothing to draw" in describe_problems(fig, {})
    assert "ratio" in describe_problems(fig, {"ratio": float("nan")})
    assert describe_problems(fig, {"note": "the network died"}) == "the network died"


def test_explorer_note_is_shown_and_labels_come_from_one_vocabulary():
    def broken(lr: float = 0.1):
        fig, ax = plotting.figure("broken", "x (units)", "y (units)")
        ax.plot([0, 1], [0, 1])
        return fig, {"loss": float("nan"), "note": "training diverged at step 3"}

    ex = explore(broken, lr=Slider(0.01, 1.0, 0.1, 0.1, log=True))
    assert "training diverged at step 3" in ex.status.value and "dl-note" in ex.status.value
    assert ex.controls["lr"].description == "learning rate"
    assert "undefined" in ex.table.value and "nan" not in ex.table.value.replace("not a number", "")


def test_controls_that_do_not_apply_are_disabled():
    def fn(kind: str = "a", x: float = 1.0):
        return square(x)

    ex = explore(fn, kind=Choice(["a", "b"]), x=Slider(0, 4, 0.5, 1.0, enabled_if=lambda v: v["kind"] == "a"))
    assert not ex.controls["x"].disabled
    ex.controls["kind"].value = "b"
    assert ex.controls["x"].disabled


def test_figure_is_shown_at_native_size_and_callback_errors_are_displayed():
    def picky(x: float = 1.0):
        if x > 2:
            raise ValueError("x must be a number in [0, 2]")
        return square(x)

    ex = explore(picky, x=Slider(0, 4, 0.5, 1.0))
    assert ex.image.value[:4] == b"\x89PNG"
    assert 300 < int(ex.image.width) < 700
    ex.controls["x"].value = 3.0
    assert "x must be a number in [0, 2]" in ex.status.value and "dl-error" in ex.status.value
    assert ex.numbers["x"] == 1.0


def test_choice_accepts_label_value_pairs():
    ex = explore(square, kind=Choice([("first", "a"), ("second", "b")], value="b"))
    assert ex.numbers["kind"] == "b"
