"""Markdown tables for notebooks: one builder, used for every table a notebook prints."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def format_cell(value: Any, digits: int = 3) -> str:
    """Floats in ``digits`` significant digits, words instead of a bare nan or inf; everything else as ``str``."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return "undefined"
    if isinstance(value, float) and math.isinf(value):
        return "infinite" if value > 0 else "minus infinite"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """A Markdown table of ``rows`` (mappings from column name to value), columns in the first row's order."""
    if not rows:
        raise ValueError("rows must hold at least one row")
    columns = list(columns or rows[0])
    missing = [column for column in columns if any(column not in row for row in rows)]
    if missing:
        raise ValueError(f"every row must have the columns {columns}; missing {missing}")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(format_cell(row[column], digits) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def show(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, digits: int = 3) -> None:
    """Display :func:`markdown_table` rendered as Markdown in a notebook (plain text elsewhere)."""
    text = markdown_table(rows, columns, digits)
    try:
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython ships with the kernel
        print(text)
        return
    display(Markdown(text))
