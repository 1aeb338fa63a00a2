"""Thin ipywidgets explorers over pure functions.

An explorer function takes keyword arguments and returns ``(figure, numbers)``, where
``numbers`` is a dict of the values worth reading; it is unit-tested without widgets.
:func:`explore` only binds bounded controls to it::

    explore(gradient_flow, depth=Slider(2, 50, 1, 20), activation=Choice(["relu", "tanh"]))

Fast functions update as a control moves; slow ones (``run_button=True``) wait for the
Run button and may accept a ``progress`` argument, a callable taking a fraction in [0, 1].
"""
from __future__ import annotations

import html
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from helpers.validation import check_int

ExplorerFn = Callable[..., tuple[Any, Mapping[str, Any]]]


@dataclass(frozen=True)
class Slider:
    """A numeric control on ``[lo, hi]``; ``log=True`` steps in powers of ten (lo, hi are exponents' values)."""

    lo: float
    hi: float
    step: float
    value: float
    label: str | None = None
    log: bool = False

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.lo, self.hi, self.step, self.value)):
            raise ValueError(f"Slider bounds must be finite, got lo={self.lo}, hi={self.hi}, step={self.step}")
        if not self.lo < self.hi:
            raise ValueError(f"Slider lo must be below hi, got lo={self.lo}, hi={self.hi}")
        if not 0 < self.step <= self.hi - self.lo:
            raise ValueError(f"Slider step must be in (0, {self.hi - self.lo}], got {self.step}")
        if not self.lo <= self.value <= self.hi:
            raise ValueError(f"Slider value must be in [{self.lo}, {self.hi}], got {self.value}")
        if self.log and self.lo <= 0:
            raise ValueError(f"Slider lo must be positive for a log slider, got {self.lo}")

    def build(self, name: str):
        import ipywidgets as w

        label = self.label or name
        style = {"description_width": "initial"}
        if self.log:
            return w.FloatLogSlider(value=self.value, base=10, min=math.log10(self.lo), max=math.log10(self.hi),
                                    step=self.step, description=label, continuous_update=False, style=style)
        integer = all(float(v).is_integer() for v in (self.lo, self.hi, self.step, self.value))
        cls = w.IntSlider if integer else w.FloatSlider
        cast = int if integer else float
        return cls(value=cast(self.value), min=cast(self.lo), max=cast(self.hi), step=cast(self.step),
                   description=label, continuous_update=False, style=style)


@dataclass(frozen=True)
class Choice:
    """A drop-down over a fixed list of options."""

    options: Sequence[Any]
    value: Any = None
    label: str | None = None

    def __post_init__(self) -> None:
        if len(self.options) == 0:
            raise ValueError("Choice options must be a non-empty list")
        if self.value is not None and self.value not in self.options:
            raise ValueError(f"Choice value must be one of {list(self.options)}, got {self.value!r}")

    def build(self, name: str):
        import ipywidgets as w

        return w.Dropdown(options=list(self.options), value=self.options[0] if self.value is None else self.value,
                          description=self.label or name, style={"description_width": "initial"})


@dataclass(frozen=True)
class Toggle:
    """An on/off checkbox."""

    value: bool = False
    label: str | None = None

    def build(self, name: str):
        import ipywidgets as w

        return w.Checkbox(value=bool(self.value), description=self.label or name, indent=False)


Control = Slider | Choice | Toggle


def numbers_html(numbers: Mapping[str, Any]) -> str:
    """A compact HTML table of an explorer's numbers."""
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    cells = "".join(f"<tr><td style='padding-right:1em'>{html.escape(str(k))}</td>"
                    f"<td class='dl-number'><b>{html.escape(fmt(v))}</b></td></tr>" for k, v in numbers.items())
    return f"<table class='dl-numbers'>{cells}</table>"


class Explorer:
    """Controls bound to a pure function; ``update()`` recomputes with the current values.

    The figure is rendered to PNG and shown in an ``Image`` widget, and the numbers in an
    ``HTML`` widget: plain widget state, no captured output, so nothing depends on how the
    front end replays display messages.
    """

    def __init__(self, fn: ExplorerFn, controls: Mapping[str, Control], run_button: bool = False,
                 run_on_start: bool | None = None) -> None:
        import ipywidgets as w

        if not controls:
            raise ValueError("controls must name at least one control")
        params = inspect.signature(fn).parameters
        unknown = [name for name in controls if name not in params]
        if unknown:
            raise ValueError(f"controls {unknown} are not parameters of {fn.__name__}; allowed: {list(params)}")
        self.fn, self.run_button = fn, run_button
        self.takes_progress = "progress" in params
        self.controls = {name: spec.build(name) for name, spec in controls.items()}
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.table = w.HTML()
        self.numbers: Mapping[str, Any] = {}
        self.progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, description="progress")
        rows: list = list(self.controls.values())
        if run_button:
            self.button = w.Button(description="Run", button_style="primary", icon="play")
            self.button.on_click(lambda _: self.update(raise_errors=False))
            rows += [w.HBox([self.button, self.progress])]
        else:
            for control in self.controls.values():
                control.observe(lambda _: self.update(raise_errors=False), names="value")
        self.widget = w.VBox([w.HBox(rows[i:i + 3]) for i in range(0, len(rows), 3)] + [self.image, self.table])
        if run_on_start if run_on_start is not None else not run_button:
            self.update()
        else:
            self.table.value = "<i>Set the controls and press Run.</i>"

    def values(self) -> dict[str, Any]:
        """The controls' current values by parameter name."""
        return {name: control.value for name, control in self.controls.items()}

    def _set_progress(self, fraction: float) -> None:
        self.progress.value = min(max(float(fraction), 0.0), 1.0)

    def update(self, raise_errors: bool = True) -> Mapping[str, Any]:
        """Call the function with the current values, show its figure and numbers, return the numbers.

        From a control's callback (``raise_errors=False``) an exception is shown under the controls
        instead of disappearing into the kernel's log.
        """
        import io

        import matplotlib.pyplot as plt

        kwargs = self.values()
        if self.takes_progress:
            kwargs["progress"] = self._set_progress
        if self.run_button:
            self.button.disabled = True
            self._set_progress(0.0)
        try:
            fig, numbers = self.fn(**kwargs)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            plt.close(fig)
        except Exception as error:  # noqa: BLE001 - shown to the learner, re-raised when asked
            if raise_errors:
                raise
            self.table.value = f"<pre style='color:#b00'>{html.escape(type(error).__name__ + ': ' + str(error))}</pre>"
            return self.numbers
        finally:
            if self.run_button:
                self.button.disabled = False
                self._set_progress(1.0)
        self.numbers = numbers
        self.image.value = buffer.getvalue()
        self.table.value = numbers_html(numbers)
        return numbers

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def explore(fn: ExplorerFn, run_button: bool = False, run_on_start: bool | None = None,
            **controls: Control) -> Explorer:
    """Bind ``controls`` (``Slider``, ``Choice``, ``Toggle``) to ``fn``'s parameters and show it."""
    return Explorer(fn, controls, run_button=run_button, run_on_start=run_on_start)


def progress_steps(total: int, progress: Callable[[float], None] | None):
    """Yield ``0..total-1`` and report the fraction done to ``progress`` (if given) after each."""
    check_int("total", total, 1, 10_000_000)
    for i in range(total):
        yield i
        if progress is not None:
            progress((i + 1) / total)
