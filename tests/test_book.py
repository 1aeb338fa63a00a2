"""The book (`make book`) built from one small executed notebook: Sphinx with -W, then a real browser.

The fast test catches configuration rot: a small notebook with a heading, a formula, a figure, a claim and
an explorer is executed, assembled with the landing, questions and evidence pages, and built with warnings
as errors. The browser test opens the landing page, the chapter and the evidence page in headless Chromium
and checks rendered math, figures, search and that no request leaves the machine (MathJax and the widget
manager are served from the site; fetching them needs npm once, and the test is skipped without it).
"""
from __future__ import annotations

import functools
import http.server
import json
import shutil
import sys
import threading
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import book  # noqa: E402
import evidence  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

CELLS = [
    ("markdown", "# 98 · A small chapter\n\nA chapter to test the book with.\n\n**Questions this notebook answers**\n"
                 "- Does a formula render?\n- Does a figure show?"),
    ("code", 'from helpers import setup\n\ncfg = setup("98_small_chapter")'),
    ("markdown", "## 1. A formula and a figure\n\nThe loss of a uniform guess over $K$ classes is $\\ln K$:\n\n"
                 "$$\\mathcal{L} = -\\sum_k y_k \\ln p_k$$"),
    ("code", "import math\n\nfrom helpers import plotting\n\nfig, ax = plotting.figure('ln K grows slowly', "
             "'classes K (count)', 'loss (nats)')\nax.plot(range(2, 11), [math.log(k) for k in range(2, 11)], "
             "label='ln K')\nax.legend();"),
    ("code", 'from helpers.claims import claim\n\nclaim("a uniform guess over ten classes costs more than two nats", '
             'math.log(10), ">", 2.0);'),
    ("markdown", "## 2. An explorer"),
    ("code", "from helpers.widgets import Slider, explore\n\n\ndef curve(k=10):\n"
             "    fig, ax = plotting.figure('ln k', 'k (count)', 'ln k (nats)')\n"
             "    ax.plot([1, k], [0, math.log(k)])\n    return fig, {'ln k': math.log(k)}\n\n\n"
             "explore(curve, k=Slider(2, 20, 1, 10, label='classes'))"),
]


@pytest.fixture(scope="module")
def small_book(tmp_path_factory):
    """Execute the small chapter and build the book from it (with MathJax from npm where npm exists)."""
    folder = tmp_path_factory.mktemp("book")
    source = folder / "notebooks" / "98_small_chapter.ipynb"
    source.parent.mkdir()
    cells = [nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text)
             for kind, text in CELLS]
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}})
    nbformat.write(notebook, source)
    out = folder / "book"
    run = evidence.run_one(source, "quick", 0, out, timeout=300, keep=out / "executed" / source.name,
                           build=out / "run")
    (out / "run" / "scale.json").write_text(json.dumps({"scale": "quick", "seed": 0}))
    assert run["error"] is None, run["error"]
    vendored = shutil.which("npm") is not None
    argv = ["--notebooks", str(source), "--out", str(out), "--no-execute", "--evidence", str(folder / "none.json")]
    assert book.main(argv + ([] if vendored else ["--no-vendor"])) == 0
    return out / "html", vendored


def test_book_builds_with_warnings_as_errors_and_has_every_page(small_book):
    html, _ = small_book
    for page in ("index.html", "98_small_chapter.html", "questions.html", "evidence.html", "search.html",
                 "searchindex.js"):
        assert (html / page).exists(), f"{page} missing"
    chapter = (html / "98_small_chapter.html").read_text()
    assert "<img" in chapter and "math" in chapter and "live only in JupyterLab" in chapter
    evidence_html = (html / "evidence.html").read_text()
    assert "a uniform guess over ten classes costs more than two nats" in evidence_html and "pass" in evidence_html
    assert "Does a formula render?" in (html / "questions.html").read_text()


def test_claim_sections_and_slugs_link_each_claim_to_its_section():
    notebook = {"cells": [{"cell_type": "markdown", "source": "## 3. Warmup, measured"},
                          {"cell_type": "code", "source": 'claim("warmup rescues the rate", x, ">", 0.1)'}]}
    assert book.claim_sections(notebook) == {"warmup rescues the rate": "3. Warmup, measured"}
    assert book.slug("3. Warmup, measured") == "3-warmup-measured"


@pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium installed (apt-get install chromium)")
def test_book_pages_render_math_figures_and_search_without_leaving_the_machine(small_book):
    playwright = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    html, vendored = small_book
    if not vendored:
        pytest.skip("npm is missing, so MathJax was not fetched for the site")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    outside, failed = [], []
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page()
            page.on("request", lambda request: outside.append(request.url)
                    if not request.url.startswith((url, "data:", "blob:", "about:")) else None)
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto(f"{url}/index.html")
            assert "dl-interview-lab" in page.title()
            page.goto(f"{url}/98_small_chapter.html")
            page.wait_for_selector("mjx-container", timeout=30_000)
            assert page.locator("mjx-container").count() >= 2
            images = page.locator(".cell_output img")
            assert images.count() >= 1 and images.first.evaluate("img => img.naturalWidth") > 0
            page.goto(f"{url}/evidence.html")
            assert "a uniform guess over ten classes" in page.content()
            page.goto(f"{url}/search.html?q=uniform")
            page.wait_for_selector("#search-results li", timeout=30_000)
            assert "98_small_chapter" in page.locator("#search-results").inner_html()
            browser.close()
    finally:
        server.shutdown()
    assert not outside, f"requests left the machine: {outside[:5]}"
    assert not failed, f"requests failed: {failed[:5]}"


def test_evidence_summary_groups_runs_by_claim():
    runs = [{"notebook": "n", "scale": scale, "seed": seed, "claims": [
        {"statement": "s", "measured": value, "op": ">", "threshold": 1, "passed": value > 1}]}
        for scale, seed, value in [("quick", 0, 2.0), ("quick", 1, 3.0), ("full", 0, 0.5)]]
    (row,) = evidence.summarise(runs)
    assert row["values"] == {"quick": [2.0, 3.0], "full": [0.5]} and row["passed"] == 2 and row["runs"] == 3
    assert evidence.value_range(row["values"]["quick"]) == "2 – 3"
    assert json.dumps(row)
