"""Project-level checks: pins agree, notebooks are clean, paired and complete, code is linted and layered."""
from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
BIN = Path(sys.executable).parent
CLEAN_UP = "run `make clean-notebooks` (it strips outputs and widget state and re-syncs the paired scripts)"


def pins(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        match = re.match(r"^\s*(?:-\s*)?([A-Za-z0-9_.\-]+)==([^\s#]+)", line)
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def committed_text(path: Path) -> str:
    """What git would commit for ``path``: the staged (index) version of a tracked file, else the file.

    JupyterLab saves outputs into the working copy while a learner works; those never reach a commit
    (the set-up installs nbstripout as a git filter), so they must not fail the tests either.
    """
    if shutil.which("git"):
        relative = path.relative_to(ROOT).as_posix()
        shown = subprocess.run(["git", "show", f":{relative}"], cwd=ROOT, capture_output=True, text=True)
        if shown.returncode == 0:
            return shown.stdout
    return path.read_text()


def notebook_cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_requirements_and_environment_yml_pin_the_same_versions():
    requirements = pins((ROOT / "requirements.txt").read_text().splitlines())
    environment = pins((ROOT / "environment.yml").read_text().splitlines())
    assert requirements == environment
    assert requirements["torch"] == "2.13.0"
    assert "torchvision" not in requirements


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1].strip() == "make test"


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_start_here.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean(path):
    nb = json.loads(committed_text(path))
    where = f"{path.relative_to(ROOT)} would be committed"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{where} with outputs: {CLEAN_UP}"
            assert cell.get("execution_count") is None, f"{where} with execution counts: {CLEAN_UP}"
    assert "widgets" not in nb["metadata"], f"{where} with widget state: {CLEAN_UP}"
    assert nb["metadata"].get("kernelspec") == KERNELSPEC, f"{where} with another kernel: {CLEAN_UP}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_and_its_paired_script_hold_the_same_cells(path):
    import jupytext

    script = path.with_suffix(".py")
    assert script.exists(), f"{script.name} is missing: run `jupytext --sync {path.relative_to(ROOT)}`"
    paired = jupytext.read(script)
    notebook = jupytext.read(path)
    left = [(c.cell_type, c.source.strip()) for c in notebook.cells]
    right = [(c.cell_type, c.source.strip()) for c in paired.cells]
    assert left == right, f"{path.name} and {script.name} differ: run `make sync`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_a_claim_an_explorer_and_a_setup_cell(path):
    code = "\n".join("".join(c["source"]) for c in notebook_cells(path) if c["cell_type"] == "code")
    assert re.search(r"\bclaim\(", code), f"{path.name} checks no claim"
    assert re.search(r"\bexplore\(", code), f"{path.name} has no explorer"
    assert f'setup("{path.stem}"' in code, f"{path.name} must call setup(\"{path.stem}\")"
    assert "sys.path" not in code


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_code_cells_are_short(path):
    for cell in notebook_cells(path):
        if cell["cell_type"] == "code":
            lines = [line for line in "".join(cell["source"]).splitlines() if line.strip()]
            assert len(lines) <= 20, f"{path.name}: a code cell has {len(lines)} lines; move logic to helpers"


def prose_in_comments(source: str) -> str | None:
    """Markdown written as comments in a code cell: a heading, a formula, or a paragraph of comments."""
    run = 0
    for line in source.splitlines():
        stripped = line.strip()
        if re.match(r"^#\s*#{1,6}\s+\S", stripped):
            return f"a Markdown heading in a comment: {stripped!r}"
        if re.match(r"^#.*\$[^$]+\$", stripped):
            return f"a formula in a comment: {stripped!r}"
        run = run + 1 if stripped.startswith("#") else 0
        if run > 4:
            return "more than four comment lines in a row (a paragraph belongs in a Markdown cell)"
    return None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_prose_is_not_hidden_in_code_comments(path):
    for number, cell in enumerate(notebook_cells(path)):
        if cell["cell_type"] == "code":
            problem = prose_in_comments("".join(cell["source"]))
            assert problem is None, f"{path.name} cell {number}: {problem}"


PROJECT_TALK = re.compile(r"\b(issues?|reviewers?|in review|specified|nbval|pytest|DESIGN\.md|REVIEW\.md|"
                          r"pull request|ticket|the spec)\b", re.IGNORECASE)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_prose_speaks_of_deep_learning_not_of_how_the_project_is_run(path):
    for number, cell in enumerate(notebook_cells(path)):
        if cell["cell_type"] == "markdown":
            found = PROJECT_TALK.search("".join(cell["source"]))
            assert found is None, f"{path.name} cell {number} speaks of the project: {found.group(0)!r}"


def test_prose_checks_catch_what_they_are_for():
    assert prose_in_comments("x = 1\n# ## 6. Label smoothing\ny = 2")
    assert prose_in_comments("# the target is $1 - \\epsilon$")
    assert prose_in_comments("\n".join(["# words"] * 5))
    assert prose_in_comments("# set the seed\nx = 1\n# and train\nfit()") is None
    assert PROJECT_TALK.search("The issue that specified this experiment")


@pytest.mark.parametrize("document", ["README.md", "notebooks/00_start_here.ipynb"])
def test_map_lists_every_notebook_present(document):
    text = (ROOT / document).read_text()
    for path in NOTEBOOKS:
        assert path.name in text, f"{document} does not list {path.name}"


SHORT_ALIASES_ALLOWED = {"np", "nn", "plt"}


def python_sources() -> list[Path]:
    found = [*ROOT.glob("helpers/**/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("notebooks/*.py")]
    return sorted(found)


@pytest.mark.parametrize("path", python_sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_cryptic_module_aliases(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.asname and len(alias.asname) <= 2 and alias.asname not in SHORT_ALIASES_ALLOWED:
                    pytest.fail(f"{path.name}: `{alias.name} as {alias.asname}`: name the module in words")


def test_ruff_finds_nothing_in_helpers_tests_tools_and_paired_scripts():
    result = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "helpers", "tests", "notebooks", "tools"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_helpers_keep_their_three_layers():
    result = subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_every_core_module_is_bound_by_the_layer_contract():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    core_contract = config["tool"]["importlinter"]["contracts"][0]
    listed = set(core_contract["source_modules"])
    core = {f"helpers.{p.stem}" for p in (ROOT / "helpers").glob("*.py")
            if p.stem != "__init__"}
    assert core == listed, f"pyproject.toml's core contract must list exactly the core modules: {sorted(core ^ listed)}"


@pytest.mark.parametrize("path", [p for p in python_sources() if p.parts[-2] != "tests" and "helpers" in p.parts],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_modules_stay_readable_in_length(path):
    lines = len(path.read_text().splitlines())
    limit = 220 if "scratch" in path.parts else 500
    assert lines <= limit, f"{path.relative_to(ROOT)} has {lines} lines (limit {limit}): split it by idea"


def test_github_workflow_is_valid_and_runs_the_readme_test_command():
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows, "no GitHub Actions workflow"
    result = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                             *map(str, workflows)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    text = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert "make test" in text and "make test-full" in text and "schedule" in text
