"""Write and clean the curriculum's notebooks.

    python tools/nbsync.py build SOURCE.py NOTEBOOK.ipynb   # percent-format script -> clean notebook
    python tools/nbsync.py export NOTEBOOK.ipynb SOURCE.py  # notebook -> percent-format script
    python tools/nbsync.py strip NOTEBOOK.ipynb [...]       # drop outputs, counts and widget state

In a percent-format script, ``# %%`` starts a code cell and ``# %% [markdown]`` a Markdown
cell whose lines are comments (``# `` is removed).  Committed notebooks carry no outputs,
no execution counts and no widget state, and all use the same kernelspec.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3"}


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove outputs, execution counts, cell ids' noise and widget state; set the kernelspec."""
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in ("tags",)}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO}
    return nb


def build(source: Path, target: Path) -> None:
    """Turn a percent-format script into a clean notebook."""
    cells, kind, lines = [], None, []

    def flush() -> None:
        text = "\n".join(lines).strip("\n")
        if kind == "markdown":
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in text.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(text))
        elif kind == "code" and text:
            cells.append(nbformat.v4.new_code_cell(text))

    for line in source.read_text().splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    nb = nbformat.v4.new_notebook(cells=cells)
    for i, cell in enumerate(nb.cells):
        cell.id = f"{target.stem[:2]}-{i:03d}"
    nbformat.write(clean(nb), target)


def export(notebook: Path, target: Path) -> None:
    """Write a notebook as a percent-format script (the inverse of ``build``)."""
    nb = nbformat.read(notebook, as_version=4)
    parts = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append("# %% [markdown]\n" + "\n".join(f"# {l}" if l else "#" for l in cell.source.splitlines()))
        else:
            parts.append("# %%\n" + cell.source)
    target.write_text("\n\n".join(parts) + "\n")


def strip(paths: list[Path]) -> None:
    """Clean notebooks in place."""
    for path in paths:
        nbformat.write(clean(nbformat.read(path, as_version=4)), path)


if __name__ == "__main__":
    command, *args = sys.argv[1:] or ["help"]
    if command == "build" and len(args) == 2:
        build(Path(args[0]), Path(args[1]))
    elif command == "export" and len(args) == 2:
        export(Path(args[0]), Path(args[1]))
    elif command == "strip" and args:
        strip([Path(a) for a in args])
    else:
        sys.exit(__doc__)
