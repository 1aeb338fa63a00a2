"""Progress a learner can watch: one bar per notebook cell, however many training runs it starts.

A cell that trains twenty models shows one bar that says which run it is on, not twenty bars;
updates are rate-limited (at most ``UPDATES_PER_SECOND``), so a long cell sends a few hundred
widget messages, not thousands.  Outside a Jupyter kernel, and with ``DL_PROGRESS=0``, nothing is
shown.  Explorers pass their own ``report(fraction)`` callables instead (see :func:`share`).
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from helpers.validation import check_float, check_int

Report = Callable[[float], None]
UPDATES_PER_SECOND = 4.0
_suppressed = 0


def enabled() -> bool:
    """Whether a cell bar may be shown: inside a Jupyter kernel, unless ``DL_PROGRESS=0``."""
    if _suppressed or os.environ.get("DL_PROGRESS", "1").strip() == "0":
        return False
    return "ipykernel" in sys.modules


@contextmanager
def silenced() -> Iterator[None]:
    """No cell bars inside the block (explorer callbacks report through their own widget)."""
    global _suppressed
    _suppressed += 1
    try:
        yield
    finally:
        _suppressed -= 1


def _cell_number() -> int | None:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the kernel
        return None
    shell = get_ipython()
    return None if shell is None else int(shell.execution_count)


class CellBar:
    """One ``FloatProgress`` and a line of text under the running cell."""

    def __init__(self) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="260px"))
        self.text = widgets.HTML()
        self.box = widgets.HBox([self.bar, self.text])
        self.runs, self.last_update = 0, 0.0
        display(self.box)

    def start_run(self, description: str) -> None:
        """A new training run in this cell: the bar restarts and the text counts runs."""
        self.runs += 1
        self.description = description
        self.update(0.0, "", force=True)

    def update(self, fraction: float, detail: str, force: bool = False) -> None:
        """Show ``fraction`` of the current run done, at most ``UPDATES_PER_SECOND`` times a second."""
        now = time.monotonic()
        if not force and now - self.last_update < 1.0 / UPDATES_PER_SECOND:
            return
        self.last_update = now
        self.bar.value = min(max(float(fraction), 0.0), 1.0)
        run = f"run {self.runs}: " if self.runs > 1 else ""
        self.text.value = f"<span style='font-family:monospace'>&nbsp;{run}{self.description} {detail}</span>"


_bar: CellBar | None = None
_bar_cell: int | None = None


def cell_bar() -> CellBar | None:
    """The bar of the cell now running (created on first use), or None where bars are off."""
    global _bar, _bar_cell
    if not enabled():
        return None
    cell = _cell_number()
    if _bar is None or cell != _bar_cell:
        _bar, _bar_cell = CellBar(), cell
    return _bar


def cell_report(description: str, report: Report | None = None) -> Report | None:
    """A report callable for one run of a hand-written training loop: ``report`` if given, else the cell's bar.

    With no ``report`` the run counts as one more run on the running cell's bar (as ``fit`` does), so
    a loop written outside ``fit`` shows the same progress; ``None`` where bars are off.
    """
    if report is not None:
        return report
    bar = cell_bar()
    if bar is None:
        return None
    bar.start_run(description)
    return lambda fraction: bar.update(fraction, f"{min(max(float(fraction), 0.0), 1.0):.0%}", force=fraction >= 1)


def share(report: Report | None, start: float, stop: float) -> Report | None:
    """A report callable for one part of a job: fractions in [0, 1] map onto [start, stop] of ``report``.

    ``share(progress, k / n, (k + 1) / n)`` lets the k-th of n training runs advance one explorer bar.
    """
    check_float("start", start, 0.0, 1.0)
    check_float("stop", stop, start, 1.0)
    if report is None:
        return None
    return lambda fraction: report(start + (stop - start) * min(max(float(fraction), 0.0), 1.0))


def steps(total: int, report: Report | None) -> Iterator[int]:
    """Yield ``0..total-1``, reporting the fraction done to ``report`` (if given) after each."""
    check_int("total", total, 1, 10_000_000)
    for index in range(total):
        yield index
        if report is not None:
            report((index + 1) / total)
