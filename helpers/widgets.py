"""Thin ipywidgets explorers over pure functions.

An explorer function takes keyword arguments and returns ``(figure, numbers)``: ``numbers`` is a dict
of the values worth reading, and its optional ``"note"`` entry is a sentence saying what happened when
a setting breaks something ("gradients overflowed float32 in 50 of 50 layers"). The function is
unit-tested without widgets; :func:`explore` only binds bounded controls to it::

    explore(gradient_flow, depth=Slider(2, 50, 1, 20), activation=Choice(["relu", "tanh"]))

Live explorers recompute when a control is released and must answer within a second. Slower ones
(``run_button=True``) wait for the Run button, may take a ``progress`` argument (a callable given the
fraction done), and mark their figure as stale when a control changes after a run.
"""
from __future__ import annotations

import html
import inspect
import io
import math
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from helpers import progress as cell_progress

ExplorerFn = Callable[..., tuple[Any, Mapping[str, Any]]]
Condition = Callable[[Mapping[str, Any]], bool]
NOTE = "note"
PROGRESS_UPDATES_PER_SECOND = 10.0

# One vocabulary for the controls of every notebook: a parameter with one of these names is labelled so
# unless its control names a label of its own.
LABELS = {
    "lr": "learning rate", "weight_decay": "weight decay", "momentum": "momentum (β₁ for Adam)",
    "beta2": "β₂ (squared-gradient decay)", "kappa": "condition number κ", "depth": "depth (layers)",
    "width": "width (units per layer)", "activation": "activation", "init": "initialisation",
    "norm": "normalization", "residual": "residual connections", "dropout": "dropout rate",
    "n_train": "training examples", "epochs": "epochs", "batch_size": "batch size", "n_bins": "bins",
    "scheme": "binning scheme", "temperature": "temperature T", "bits": "bits per weight",
    "granularity": "scale granularity", "rate_per_ms": "arrival rate (requests/ms)",
    "max_batch": "largest batch", "max_wait_ms": "longest wait (ms)", "length": "sequence length",
    "optimizer": "optimizer", "surface": "loss surface", "schedule": "schedule", "seed": "seed",
    "label_smoothing": "label smoothing", "precision": "precision", "log10_h": "log₁₀ step h",
    "bug": "planted bug", "leak_fraction": "share of validation leaked from training",
    "shift_size": "extra sensor noise in validation (SD)",
    "steps": "training steps", "log2_length": "log₂ sequence length", "layers": "layers", "heads": "attention heads",
    "bytes_per_value": "bytes per value", "pairs": "key-value pairs",
}


def _decimals(step: float) -> int:
    """Digits after the point needed to show every value on a grid of ``step``."""
    for digits in range(0, 8):
        if abs(round(step, digits) - step) < 1e-12 * max(1.0, abs(step)):
            return digits
    return 8


@dataclass(frozen=True)
class Slider:
    """A numeric control on ``[lo, hi]`` in steps of ``step``.

    ``log=True`` moves in powers of ten: ``step`` is then a step of the exponent, and the grid always
    passes through ``value``, so the starting value can be reached again. ``enabled_if(values)``
    disables the control when it does not apply to the other controls' current values.
    """

    lo: float
    hi: float
    step: float
    value: float
    label: str | None = None
    log: bool = False
    enabled_if: Condition | None = None

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.lo, self.hi, self.step, self.value)):
            raise ValueError(f"Slider bounds must be finite, got lo={self.lo}, hi={self.hi}, step={self.step}")
        if not self.lo < self.hi:
            raise ValueError(f"Slider lo must be below hi, got lo={self.lo}, hi={self.hi}")
        if self.log and self.lo <= 0:
            raise ValueError(f"Slider lo must be positive for a log slider, got {self.lo}")
        span = math.log10(self.hi) - math.log10(self.lo) if self.log else self.hi - self.lo
        if not 0 < self.step <= span:
            raise ValueError(f"Slider step must be in (0, {span:g}], got {self.step}")
        if not self.lo <= self.value <= self.hi:
            raise ValueError(f"Slider value must be in [{self.lo}, {self.hi}], got {self.value}")

    def log_grid(self) -> tuple[float, float]:
        """The exponents (min, max) of a log slider's grid, chosen so the grid passes through ``value``."""
        centre = math.log10(self.value)
        below = math.floor((centre - math.log10(self.lo)) / self.step + 1e-9)
        above = math.floor((math.log10(self.hi) - centre) / self.step + 1e-9)
        return centre - below * self.step, centre + above * self.step

    def build(self, label: str):
        import ipywidgets as widgets

        style = {"description_width": "initial"}
        if self.log:
            low, high = self.log_grid()
            return widgets.FloatLogSlider(value=self.value, base=10, min=low, max=high, step=self.step,
                                          description=label, continuous_update=False, style=style,
                                          readout_format=".3g")
        if all(float(v).is_integer() for v in (self.lo, self.hi, self.step, self.value)):
            return widgets.IntSlider(value=int(self.value), min=int(self.lo), max=int(self.hi), step=int(self.step),
                                     description=label, continuous_update=False, style=style)
        return widgets.FloatSlider(value=float(self.value), min=float(self.lo), max=float(self.hi),
                                   step=float(self.step), description=label, continuous_update=False, style=style,
                                   readout_format=f".{_decimals(self.step)}f")


@dataclass(frozen=True)
class Choice:
    """A drop-down over fixed options: plain values, or ``(label, value)`` pairs for friendlier names."""

    options: Sequence[Any]
    value: Any = None
    label: str | None = None
    enabled_if: Condition | None = None

    def __post_init__(self) -> None:
        if len(self.options) == 0:
            raise ValueError("Choice options must be a non-empty list")
        if self.value is not None and self.value not in self.values():
            raise ValueError(f"Choice value must be one of {self.values()}, got {self.value!r}")

    def values(self) -> list[Any]:
        """The values the options pass to the function."""
        return [o[1] if isinstance(o, tuple) else o for o in self.options]

    def build(self, label: str):
        import ipywidgets as widgets

        value = self.values()[0] if self.value is None else self.value
        return widgets.Dropdown(options=list(self.options), value=value, description=label,
                                style={"description_width": "initial"})


@dataclass(frozen=True)
class Toggle:
    """An on/off checkbox."""

    value: bool = False
    label: str | None = None
    enabled_if: Condition | None = None

    def build(self, label: str):
        import ipywidgets as widgets

        return widgets.Checkbox(value=bool(self.value), description=label, indent=False)


Control = Slider | Choice | Toggle


def format_number(value: Any) -> str:
    """Four significant digits for floats, and words instead of a bare nan or inf."""
    if isinstance(value, float):
        if math.isnan(value):
            return "undefined (not a number)"
        if math.isinf(value):
            return "overflow (infinite)"
        return f"{value:.4g}"
    return str(value)


def numbers_html(numbers: Mapping[str, Any], seconds: float | None = None) -> str:
    """A compact HTML table of an explorer's numbers (the note is shown apart)."""
    rows = "".join(f"<tr><td style='padding-right:1em'>{html.escape(str(k))}</td>"
                   f"<td class='dl-number'><b>{html.escape(format_number(v))}</b></td></tr>"
                   for k, v in numbers.items() if k != NOTE)
    timing = "" if seconds is None else (f"<div class='dl-seconds' data-seconds='{seconds:.3f}' "
                                         f"style='color:#777;font-size:85%'>computed in {seconds:.2f} s</div>")
    return f"<table class='dl-numbers'>{rows}</table>{timing}"


def banner(text: str, kind: str) -> str:
    """A one-line message above the figure: ``note`` (yellow), ``stale`` (grey), ``error`` (red), ``info``."""
    colours = {"note": ("#fff4ce", "#8a6d00"), "stale": ("#eeeeee", "#444444"), "error": ("#fde2e2", "#a00000"),
               "info": ("#e8f1fb", "#174a7c")}
    background, colour = colours[kind]
    return (f"<div class='dl-banner dl-{kind}' style='background:{background};color:{colour};padding:4px 8px;"
            f"border-radius:4px;margin:4px 0'>{html.escape(text)}</div>")


def figure_png(fig) -> tuple[bytes, int]:
    """The figure as PNG at its own dpi, cropped like inline figures, and its width in pixels."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, bbox_inches="tight")
    png = buffer.getvalue()
    width = struct.unpack(">I", png[16:20])[0]
    return png, width


def describe_problems(fig, numbers: Mapping[str, Any]) -> str | None:
    """A note for what the explorer function did not explain itself: non-finite numbers, an empty figure."""
    if numbers.get(NOTE):
        return str(numbers[NOTE])
    broken = [str(k) for k, v in numbers.items() if isinstance(v, float) and not math.isfinite(v)]
    if broken:
        return f"Not finite for these settings: {', '.join(broken)} (the computation overflowed or divided by zero)."
    if not any(ax.has_data() for ax in fig.axes):
        return "Nothing to draw for these settings."
    return None


class Explorer:
    """Controls bound to a pure function; ``update()`` recomputes with the current values.

    The figure is rendered to PNG at its native size and shown in an ``Image`` widget, the numbers in
    an ``HTML`` widget: plain widget state, no captured output.
    """

    def __init__(self, fn: ExplorerFn, controls: Mapping[str, Control], run_button: bool = False,
                 run_on_start: bool | None = None) -> None:
        import ipywidgets as widgets

        if not controls:
            raise ValueError("controls must name at least one control")
        params = inspect.signature(fn).parameters
        unknown = [name for name in controls if name not in params]
        if unknown:
            raise ValueError(f"controls {unknown} are not parameters of {getattr(fn, '__name__', 'the function')}; "
                             f"allowed: {list(params)}")
        self.fn, self.specs, self.run_button = fn, dict(controls), run_button
        self.takes_progress = "progress" in params
        self.controls = {name: spec.build(spec.label or LABELS.get(name, name.replace("_", " ")))
                         for name, spec in controls.items()}
        self.status = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        self.table = widgets.HTML()
        self.numbers: Mapping[str, Any] = {}
        self.seconds: float | None = None
        self.has_run, self._last_progress = False, 0.0
        rows: list = list(self.controls.values())
        if run_button:
            self.button = widgets.Button(description="Run", button_style="primary", icon="play")
            self.button.on_click(lambda _: self.update(raise_errors=False))
            self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, description="progress")
            self.progress_text = widgets.Label()
            rows += [widgets.HBox([self.button, self.progress, self.progress_text])]
        for control in self.controls.values():
            control.observe(self._changed, names="value")
        self._refresh_enabled()
        self.widget = widgets.VBox([widgets.HBox(rows[i:i + 3]) for i in range(0, len(rows), 3)]
                                   + [self.status, self.image, self.table])
        self.widget.add_class("dl-explorer")  # how the browser test finds every explorer
        if run_on_start if run_on_start is not None else not run_button:
            self.update()
        else:
            self.status.value = banner("Set the controls and press Run.", "info")

    def values(self) -> dict[str, Any]:
        """The controls' current values by parameter name."""
        return {name: control.value for name, control in self.controls.items()}

    def _refresh_enabled(self) -> None:
        values = self.values()
        for name, spec in self.specs.items():
            if spec.enabled_if is not None:
                self.controls[name].disabled = not spec.enabled_if(values)

    def _changed(self, _change) -> None:
        self._refresh_enabled()
        if not self.run_button:
            self.update(raise_errors=False)
        elif self.has_run:
            self.status.value = banner("The figure below is for the previous settings: press Run to update it.",
                                       "stale")

    def _set_progress(self, fraction: float, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < 1.0 / PROGRESS_UPDATES_PER_SECOND:
            return
        self._last_progress = now
        fraction = min(max(float(fraction), 0.0), 1.0)
        self.progress.value = fraction
        self.progress_text.value = f"{fraction:.0%} · {time.perf_counter() - self._started:.1f} s"

    def update(self, raise_errors: bool = True) -> Mapping[str, Any]:
        """Call the function with the current values, show its figure and numbers, return the numbers.

        From a control's callback (``raise_errors=False``) an exception is shown above the figure
        instead of disappearing into the kernel's log.
        """
        import matplotlib.pyplot as plt

        kwargs = self.values()
        self._started = time.perf_counter()
        if self.takes_progress:
            kwargs["progress"] = self._set_progress if self.run_button else None
        if self.run_button:
            self.button.disabled = True
            self.status.value = banner("Running…", "info")
            self._set_progress(0.0, force=True)
        try:
            with cell_progress.silenced():
                fig, numbers = self.fn(**kwargs)
            png, width = figure_png(fig)
            note = describe_problems(fig, numbers)
            plt.close(fig)
        except Exception as error:  # noqa: BLE001 - shown to the learner, re-raised when asked
            if raise_errors:
                raise
            self.status.value = banner(f"{type(error).__name__}: {error}", "error")
            return self.numbers
        finally:
            if self.run_button:
                self.button.disabled = False
                self._set_progress(1.0, force=True)
        self.seconds = time.perf_counter() - self._started
        self.numbers, self.has_run = numbers, True
        self.image.value, self.image.width = png, str(width)
        self.image.layout.display = None
        self.status.value = banner(note, "note") if note else ""
        self.table.value = numbers_html(numbers, self.seconds)
        return numbers

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def explore(fn: ExplorerFn, run_button: bool = False, run_on_start: bool | None = None,
            **controls: Control) -> Explorer:
    """Bind ``controls`` (``Slider``, ``Choice``, ``Toggle``) to ``fn``'s parameters and show it."""
    return Explorer(fn, controls, run_button=run_button, run_on_start=run_on_start)
