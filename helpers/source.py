"""Show the code a notebook is about: a whole from-scratch class or function, highlighted."""
from __future__ import annotations

import inspect
import textwrap
from typing import Any


def source_of(obj: Any) -> str:
    """The source text of a class, function or method, dedented."""
    try:
        return textwrap.dedent(inspect.getsource(obj)).rstrip() + "\n"
    except (TypeError, OSError) as error:
        raise ValueError(f"obj must be a class, function or method defined in a file, got {obj!r}") from error


def show_source(*objects: Any) -> None:
    """Display the source of each object as a highlighted Python block (plain text outside Jupyter)."""
    if not objects:
        raise ValueError("show_source needs at least one class or function")
    text = "\n\n".join(source_of(obj) for obj in objects)
    try:
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython ships with the kernel
        print(text)
        return
    display(Markdown(f"```python\n{text}```"))
