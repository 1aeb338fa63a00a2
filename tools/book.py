"""Build the curriculum as a static site that works offline: `make book`.

    python tools/book.py                    # execute every notebook at full scale, then build the site
    python tools/book.py --no-execute       # rebuild from the notebooks executed last time
    python tools/book.py --notebooks A.ipynb --out DIR --no-vendor   # what the fast test does

Notebooks are executed into ``build/book/executed`` (never into ``notebooks/``) with a fresh claims ledger
written by that same run, so the evidence page shows exactly the numbers on the pages. MathJax 3,
RequireJS and the Jupyter widget manager are fetched from the npm registry at pinned versions (cached in
``build/vendor``) and served from the site itself; they are never committed.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
sys.path.insert(0, str(ROOT / "tools"))
import evidence  # noqa: E402 - the evidence runner beside this file

VENDOR = {  # npm package -> {file or folder of it: where the site serves it}
    "mathjax@3.2.2": {"es5/tex-chtml.js": "_static/vendor/mathjax/tex-chtml.js",
                      "es5/output/chtml/fonts/woff-v2": "_static/vendor/mathjax/output/chtml/fonts/woff-v2",
                      "es5/input/tex/extensions": "_static/vendor/mathjax/input/tex/extensions",
                      "es5/ui": "_static/vendor/mathjax/ui", "es5/a11y": "_static/vendor/mathjax/a11y"},
    "requirejs@2.3.8": {"require.js": "_static/vendor/require.js"},
    # The widget manager loads its icon fonts from @jupyter-widgets/html-manager/dist/ beside each page.
    "@jupyter-widgets/html-manager@1.0.15": {"dist/embed-amd.js": "_static/vendor/embed-amd.js",
                                             "dist/*.woff2": "_extra/@jupyter-widgets/html-manager/dist",
                                             "dist/*.woff": "_extra/@jupyter-widgets/html-manager/dist",
                                             "dist/*.ttf": "_extra/@jupyter-widgets/html-manager/dist"},
}
EXPLORER_NOTE = ("```{note}\nThis explorer is live only in JupyterLab (run the notebook yourself): "
                 "here it shows the figure for its starting values.\n```")


def execute(notebooks: list[Path], executed: Path, run_dir: Path, scale: str, seed: int | None) -> list[dict]:
    """Run each notebook at ``scale`` into ``executed``; claims go to a fresh ledger under ``run_dir``."""
    import nbformat

    shutil.rmtree(run_dir / "claims", ignore_errors=True)
    executed.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "scale.json").write_text(json.dumps({"scale": scale, "seed": seed}))
    runs = []
    for notebook in notebooks:
        started = time.perf_counter()
        run = evidence.run_one(notebook, scale, seed, run_dir, timeout=1800, keep=executed / notebook.name,
                               build=run_dir)
        run["seconds"] = round(time.perf_counter() - started, 1)
        print(f"executed {notebook.name} at {scale} scale in {run['seconds']} s"
              + (f": ERROR {run['error']}" if run["error"] else ""), file=sys.stderr)
        runs.append(run)
        assert nbformat.read(executed / notebook.name, as_version=4)
    return runs


def vendor(src: Path, cache: Path) -> None:
    """Copy the pinned npm files the site serves into the Sphinx source ``src`` (fetched once into ``cache``)."""
    for package, files in VENDOR.items():
        folder = cache / package.replace("/", "__")
        if not (folder / "package").exists():
            if shutil.which("npm") is None:
                sys.exit(f"npm is needed once to fetch {package} for the book (MathJax and the widget manager are "
                         "served from the site so it works offline); install Node.js and npm, then rerun.")
            folder.mkdir(parents=True, exist_ok=True)
            packed = subprocess.run(["npm", "pack", "--silent", package], cwd=folder, capture_output=True, text=True)
            if packed.returncode != 0:
                sys.exit(f"npm pack {package} failed:\n{packed.stderr[-2000:]}")
            with tarfile.open(folder / packed.stdout.strip().splitlines()[-1]) as archive:
                archive.extractall(folder, filter="data")
        for source, destination in files.items():
            if "*" in source:
                (src / destination).mkdir(parents=True, exist_ok=True)
                for origin in (folder / "package").glob(source):
                    shutil.copy(origin, src / destination / origin.name)
                continue
            origin, copy = folder / "package" / source, src / destination
            copy.parent.mkdir(parents=True, exist_ok=True)
            if origin.is_dir():
                shutil.copytree(origin, copy, dirs_exist_ok=True)
            else:
                shutil.copy(origin, copy)


def title_of(notebook: dict) -> str:
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return "untitled"


def slug(heading: str) -> str:
    """The anchor myst gives a heading (GitHub style)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def with_explorer_notes(notebook: dict) -> dict:
    """Insert a note after every cell that shows an explorer: its snapshot is not interactive here."""
    cells = []
    for number, cell in enumerate(notebook["cells"]):
        cells.append(cell)
        outputs = cell.get("outputs", [])
        if cell["cell_type"] == "code" and "explore(" in "".join(cell["source"]) and any(
                "application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs):
            cells.append({"cell_type": "markdown", "id": f"explorer-note-{number}", "metadata": {},
                          "source": EXPLORER_NOTE})
    return dict(notebook, cells=cells)


def claim_sections(notebook: dict) -> dict[str, str]:
    """For each claim statement found literally in a code cell, the heading of the section holding it."""
    found, heading = {}, ""
    for cell in notebook["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            headings = [line.lstrip("#").strip() for line in text.splitlines() if re.match(r"^#{2,3} ", line)]
            heading = headings[-1] if headings else heading
        else:
            for statement in re.findall(r"claim\(\s*[\"']([^\"']+)[\"']", text):
                found[statement] = heading
    return found


def questions_page(notebooks: dict[str, dict]) -> str:
    """Every question the notebooks open with, as links to the notebook that answers it."""
    lines = ["# Interview questions", "", "Each chapter opens with the questions it answers; follow a link to "
             "the experiments behind the answer.", ""]
    for stem, notebook in notebooks.items():
        lines += [f"## [{title_of(notebook)}]({stem}.ipynb)", ""]
        for cell in notebook["cells"]:
            text = "".join(cell["source"])
            if cell["cell_type"] == "markdown" and re.search(r"questions? (this notebook|it) answers", text, re.I):
                lines += [line for line in text.splitlines() if re.match(r"^\s*[-*] ", line)]
                break
        lines.append("")
    return "\n".join(lines)


def _rule(claim: dict) -> str:
    if claim["op"] == "between":
        return f"in [{claim['threshold'][0]}, {claim['threshold'][1]}]"
    return f"{claim['op']} {claim['threshold']}"


def evidence_page(notebooks: dict[str, dict], run_dir: Path, seeds_file: Path, scale: str) -> str:
    """Every claim of this build's run, with its section, value, threshold and verdict, and across seeds."""
    across = {}
    if seeds_file.exists():
        for row in json.loads(seeds_file.read_text())["claims"]:
            across[(row["notebook"], row["statement"])] = row
    lines = ["# Evidence", "",
             "Every claim in the chapters is a sentence, a measured value and a threshold that can fail. The "
             f"table lists each claim with the value measured by the run shown on these pages ({scale} scale), its "
             "threshold and its verdict; where `make evidence` has run, the last columns give the range of values "
             "at quick scale across seeds and how many of those runs passed.", ""]
    for stem, notebook in notebooks.items():
        ledger = run_dir / "claims" / f"{stem}.json"
        claims = json.loads(ledger.read_text()) if ledger.exists() else []
        sections = claim_sections(notebook)
        lines += [f"## [{title_of(notebook)}]({stem}.ipynb)", ""]
        if not claims:
            lines += ["No claims were recorded for this chapter in this build.", ""]
            continue
        lines += ["| claim | measured | required | verdict | across seeds (quick) | passed |",
                  "|---|---|---|---|---|---|"]
        for claim in claims:
            section = sections.get(claim["statement"])
            link = f"{stem}.ipynb#{slug(section)}" if section else f"{stem}.ipynb"
            seeds = across.get((stem, claim["statement"]))
            spread = evidence.value_range(seeds["values"].get("quick", [])) if seeds else "not run"
            passed = f"{seeds['passed']}/{seeds['runs']}" if seeds else ""
            statement = claim["statement"].replace("|", "\\|")
            lines.append(f"| [{statement}]({link}) | {evidence.value_range([claim['measured']])} | "
                         f"{_rule(claim).replace('|', '/')} | {'pass' if claim['passed'] else '**FAIL**'} | "
                         f"{spread} | {passed} |")
        lines.append("")
    return "\n".join(lines)


def curriculum_table(notebooks: dict[str, dict]) -> str:
    lines = ["| # | chapter |", "|---|---|"]
    lines += [f"| {stem[:2]} | [{title_of(nb)}]({stem}.ipynb) |" for stem, nb in notebooks.items()]
    return "\n".join(lines)


def assemble(executed: list[Path], src: Path, run_dir: Path, seeds_file: Path, machine: str, scale: str) -> None:
    """Write the Sphinx source folder: configuration, landing page, chapters, questions and evidence."""
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(BOOK, src, ignore=shutil.ignore_patterns("__pycache__"))
    notebooks = {path.stem: json.loads(path.read_text()) for path in sorted(executed)}
    for stem, notebook in notebooks.items():
        (src / f"{stem}.ipynb").write_text(json.dumps(with_explorer_notes(notebook)))
    index = (src / "index.md").read_text()
    index = index.replace("{{ curriculum }}", curriculum_table(notebooks)).replace("{{ machine }}", machine)
    first = next(iter(notebooks))
    index = index.replace("{{ first }}", f"[{title_of(notebooks[first])}]({first}.ipynb)")
    (src / "index.md").write_text(index.replace("{{ toctree }}", "\n".join(notebooks)))
    (src / "questions.md").write_text(questions_page(notebooks))
    (src / "evidence.md").write_text(evidence_page(notebooks, run_dir, seeds_file, scale))


def build(src: Path, html: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(src),
                             str(html)], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"sphinx-build failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebooks", nargs="+", type=Path, default=sorted((ROOT / "notebooks").glob("*.ipynb")))
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "book")
    parser.add_argument("--scale", choices=["quick", "full"], default="full")
    parser.add_argument("--seed", type=int, default=None, help="default: each notebook's own seed")
    parser.add_argument("--no-execute", action="store_true", help="use the notebooks executed last time")
    parser.add_argument("--no-vendor", action="store_true", help="skip MathJax and the widget manager (tests)")
    parser.add_argument("--evidence", type=Path, default=ROOT / "build" / "evidence" / "evidence.json")
    args = parser.parse_args(argv)
    executed_dir, run_dir, started = args.out / "executed", args.out / "run", time.perf_counter()
    if not args.no_execute:
        runs = execute([p.resolve() for p in args.notebooks], executed_dir, run_dir, args.scale, args.seed)
        failed = [r["notebook"] for r in runs if r["error"]]
        if failed:
            sys.exit(f"these notebooks failed at {args.scale} scale: {failed} (see {executed_dir})")
    executed = [executed_dir / p.name for p in args.notebooks]
    missing = [p.name for p in executed if not p.exists()]
    if missing:
        sys.exit(f"not executed yet: {missing}; run without --no-execute")
    from helpers.timing import machine_note

    src = args.out / "src"
    scale = json.loads((run_dir / "scale.json").read_text())["scale"] if (run_dir / "scale.json").exists() else "?"
    assemble(executed, src, run_dir, args.evidence, machine_note("cpu").removeprefix("timed on "), scale)
    if not args.no_vendor:
        vendor(src, ROOT / "build" / "vendor")
    build(src, args.out / "html")
    size = sum(f.stat().st_size for f in (args.out / "html").rglob("*") if f.is_file())
    print(f"book built in {time.perf_counter() - started:.1f} s: {args.out / 'html' / 'index.html'} "
          f"({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
