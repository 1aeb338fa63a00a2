"""Claim checks: a sentence from the prose, the value measured for it, and a threshold
that can fail.  ``claim`` prints a one-line verdict, appends it to the ledger
``build/claims/<notebook>.json`` (written atomically) and raises ``AssertionError``
when the claim does not hold, so nbval fails the notebook.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from helpers.validation import check_choice

OPS = ("<", "<=", ">", ">=", "==", "between")


@dataclass(frozen=True)
class Verdict:
    """One checked claim, as stored in the ledger."""

    notebook: str
    statement: str
    measured: Any
    op: str
    threshold: Any
    passed: bool
    scale: str
    seed: int
    time: str

    def _ipython_display_(self) -> None:
        """Show nothing when a cell ends with ``claim(...)``: its verdict line is already printed."""

    def line(self) -> str:
        """The one-line verdict printed under the cell."""
        mark = "PASS" if self.passed else "FAIL"
        rule = (f"in [{_fmt(self.threshold[0])}, {_fmt(self.threshold[1])}]" if self.op == "between"
                else f"{self.op} {_fmt(self.threshold)}")
        return f"[{mark}] {self.statement} — measured {_fmt(self.measured)}, required {rule}"


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if value == 0 or math.isinf(value) or math.isnan(value):
            return str(value)
        return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


def _as_python(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return value.item()
    return value


def _holds(measured: Any, op: str, threshold: Any) -> bool:
    if op == "==":
        return bool(measured == threshold)
    if isinstance(measured, float) and math.isnan(measured):
        return False
    if op == "between":
        low, high = threshold
        return bool(low <= measured <= high)
    return bool({"<": measured < threshold, "<=": measured <= threshold,
                 ">": measured > threshold, ">=": measured >= threshold}[op])


def claim(statement: str, measured: Any, op: str, threshold: Any, *, notebook: str | None = None) -> Verdict:
    """Check ``measured <op> threshold``, print the verdict, record it, raise if it fails.

    ``op`` is one of ``<``, ``<=``, ``>``, ``>=``, ``==`` or ``between`` (threshold ``(low, high)``,
    inclusive).  Example: ``claim("ReLU + He keeps gradients balanced", ratio, "between", (0.25, 4))``.
    """
    from helpers import config

    if not isinstance(statement, str) or not statement.strip():
        raise ValueError(f"statement must be a non-empty sentence, got {statement!r}")
    check_choice("op", op, OPS)
    measured, threshold = _as_python(measured), _as_python(threshold)
    if op == "between":
        if not (isinstance(threshold, Sequence) and len(threshold) == 2 and threshold[0] <= threshold[1]):
            raise ValueError(f"threshold must be a (low, high) pair with low <= high for 'between', got {threshold!r}")
        threshold = (_as_python(threshold[0]), _as_python(threshold[1]))
    cfg = config.current()
    verdict = Verdict(notebook=notebook or cfg.notebook, statement=statement.strip(), measured=measured,
                      op=op, threshold=threshold, passed=_holds(measured, op, threshold), scale=cfg.scale,
                      seed=cfg.seed, time=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    print(verdict.line())
    _record(verdict)
    if not verdict.passed:
        raise AssertionError(verdict.line())
    return verdict


def ledger_path(notebook: str) -> Path:
    """Where the claims of ``notebook`` are stored."""
    from helpers import config

    return config.build_dir("claims") / f"{notebook}.json"


def _record(verdict: Verdict) -> None:
    path = ledger_path(verdict.notebook)
    entries = load(verdict.notebook)
    entries = [e for e in entries if e["statement"] != verdict.statement]
    entries.append(json.loads(json.dumps(asdict(verdict), default=str)))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(entries, handle, indent=1)
    os.replace(tmp, path)


def load(notebook: str) -> list[dict[str, Any]]:
    """The recorded claims of one notebook (an empty list if none yet)."""
    path = ledger_path(notebook)
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return []


def report() -> str:
    """A Markdown table of every recorded claim in every notebook."""
    from helpers import config

    rows = ["| notebook | claim | measured | threshold | verdict | scale | seed |", "|---|---|---|---|---|---|---|"]
    for path in sorted(config.build_dir("claims").glob("*.json")):
        for e in load(path.stem):
            rule = f"{e['op']} {e['threshold']}"
            rows.append(f"| {e['notebook']} | {e['statement']} | {_fmt(e['measured'])} | {rule} | "
                        f"{'pass' if e['passed'] else 'FAIL'} | {e['scale']} | {e['seed']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(report())
