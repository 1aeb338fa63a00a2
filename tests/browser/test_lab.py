"""A real-browser test: JupyterLab in headless Chromium runs every notebook, then drives every explorer.

For each notebook, "Run All Cells" must finish without a traceback. Then, for every explorer
(``.dl-explorer``), each enabled control is changed at least once; a live explorer must redraw within a
few seconds of each change, a Run-button explorer must mark its figure stale and redraw after Run. After
every redraw the explorer must show a figure, no error banner and no "nan". Finally the notebook is saved,
as a learner would, and what it would commit (outputs stripped by the git filter) must equal the original,
with its paired script still in sync. Screenshots and the measured latencies land in ``build/browser/``.

Skipped, with the reason, where Debian's Chromium or the playwright package is missing; `.ci/run`
installs Chromium so it runs in CI. The browser is never downloaded: playwright launches the system
Chromium through ``executable_path``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# DL_BROWSER_NOTEBOOKS="00_start_here 06_calibration" limits a development run to some notebooks.
ONLY = os.environ.get("DL_BROWSER_NOTEBOOKS", "").split()
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("*.ipynb") if not ONLY or p.stem in ONLY)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "dl-interview-lab-browser-test"
SHOTS = ROOT / "build" / "browser"
PARALLEL_NOTEBOOKS = 3  # notebooks running at once (each kernel on one CPU thread)
LIVE_TIMEOUT_MS, RUN_TIMEOUT_MS, NOTEBOOK_TIMEOUT_S = 20_000, 90_000, 420
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                 "--disable-backgrounding-occluded-windows"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lab_settings(folder: Path) -> Path:
    """Render every cell (no windowing), so offscreen explorers exist in the page; no news pop-up."""
    notebook = folder / "@jupyterlab" / "notebook-extension"
    notebook.mkdir(parents=True)
    (notebook / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    news = folder / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    return folder


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    """JupyterLab on a free loopback port, serving a copy of the notebooks; stopped by its PID."""
    tmp_path = tmp_path_factory.mktemp("lab")
    served = tmp_path / "notebooks"
    served.mkdir()
    for path in NOTEBOOKS:  # the notebooks with their paired scripts, as a learner's clone has them
        shutil.copy(path, served / path.name)
        shutil.copy(path.with_suffix(".py"), served / path.with_suffix(".py").name)
    shutil.copy(ROOT / "jupytext.toml", tmp_path / "jupytext.toml")
    port = free_port()
    env = dict(os.environ, DL_SCALE="quick", DL_PROGRESS="1", JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(lab_settings(tmp_path / "settings")),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"), DL_BUILD_DIR=str(tmp_path / "build"))
    env.pop("MPLBACKEND", None)
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={served}",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = open(tmp_path / "lab.log", "w")  # noqa: SIM115 - closed in the finally below
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log_text = (tmp_path / "lab.log").read_text()[-3000:]
                    raise RuntimeError("JupyterLab did not start:\n" + log_text) from None
                time.sleep(0.5)
        yield url, served
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def dismiss_dialogs(page) -> None:
    """Accept the kernel dialog (it picks the notebook's kernelspec) where one shows."""
    select = page.locator(".jp-Dialog").get_by_role("button", name="Select", exact=True)
    try:
        select.wait_for(timeout=5_000)
        select.click()
    except Exception:  # noqa: BLE001 - the dialog only shows when no kernel started on its own
        pass


def start_run_all(page, url: str, notebook: str) -> None:
    workspace = Path(notebook).stem  # one workspace per page, so no page restores another's notebooks
    page.goto(f"{url}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={TOKEN}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", state="attached", timeout=60_000)
    dismiss_dialogs(page)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


PROMPTS_JS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))
                      .map(p => p.textContent.trim())"""


def finished(page) -> bool:
    prompts = page.evaluate(PROMPTS_JS)
    return bool(prompts) and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)


def tracebacks(page) -> list[str]:
    texts = page.evaluate("""() => Array.from(document.querySelectorAll(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')).map(o => o.textContent)""")
    return [t[:2000] for t in texts if "Traceback (most recent call last)" in t]


STATE_JS = """el => [el.querySelector('table.dl-numbers') ? el.querySelector('table.dl-numbers').textContent : '',
                     (el.querySelector('img') || {}).src || '',
                     (el.querySelector('.dl-banner') || {}).textContent || ''].join('\\u0001')"""


def state(explorer) -> str:
    return explorer.evaluate(STATE_JS)


def wait_for_change(explorer, before: str, timeout_ms: int, where: str) -> float:
    """Seconds until the explorer's numbers, figure or banner differ from ``before``."""
    started = time.perf_counter()
    try:
        explorer.page.wait_for_function(f"([el, before]) => ({STATE_JS})(el) !== before",
                                        arg=[explorer.element_handle(), before], timeout=timeout_ms)
    except Exception as error:  # playwright's TimeoutError: name the explorer and control that did not answer
        pytest.fail(f"{where}: nothing visible changed within {timeout_ms / 1000:g} s ({type(error).__name__})")
    return time.perf_counter() - started


def check_healthy(explorer, where: str) -> None:
    errors = explorer.locator(".dl-error")
    assert errors.count() == 0, f"{where}: {errors.first.inner_text()}"
    table = explorer.locator("table.dl-numbers")
    assert table.count() == 1, f"{where}: no numbers shown"
    assert not re.search(r"\bnan\b|\binf\b", table.inner_text(), re.IGNORECASE), f"{where}: {table.inner_text()}"
    width = explorer.locator("img").first.evaluate("img => img.naturalWidth")
    assert width > 0, f"{where}: no figure shown"


def change(control) -> bool:
    """Change one control (a slider one step, a drop-down to its next option, a checkbox); False if disabled.

    A slider at its maximum steps down instead."""
    kind = control.evaluate("el => el.className")
    if "widget-slider" in kind:
        handle = control.locator(".noUi-handle").first
        if control.locator("[disabled]").count():
            return False
        now, top = float(handle.get_attribute("aria-valuenow")), float(handle.get_attribute("aria-valuemax"))
        handle.focus()
        handle.press("ArrowLeft" if now >= top else "ArrowRight")  # one step: one update to wait for
        handle.evaluate("h => h.blur()")
        return True
    select = control.locator("select")
    if select.count():
        if select.is_disabled():
            return False
        options = select.locator("option").count()
        if options < 2:
            return False
        current = select.evaluate("s => s.selectedIndex")
        select.select_option(index=(current + 1) % options)
        return True
    box = control.locator("input[type=checkbox]")
    if box.count() and not box.is_disabled():
        box.click()
        return True
    return False


def drive(explorer, where: str, latencies: list[dict]) -> None:
    """Change every control of one explorer and check each redraw."""
    explorer.scroll_into_view_if_needed()
    run = explorer.get_by_role("button", name="Run")
    controls = explorer.locator(".widget-slider, .widget-dropdown, .widget-checkbox")
    if run.count():
        if explorer.locator("table.dl-numbers").count() == 0:
            assert "press Run" in explorer.inner_text(), f"{where}: no placeholder before the first Run"
        for i in range(controls.count()):
            change(controls.nth(i))
        before, started = state(explorer), time.perf_counter()
        run.click()
        wait_for_change(explorer, before, RUN_TIMEOUT_MS, f"{where}, Run")
        explorer.page.wait_for_function("el => !el.querySelector('.dl-info') && el.querySelector('table.dl-numbers')",
                                        arg=explorer.element_handle(), timeout=RUN_TIMEOUT_MS)
        seconds = time.perf_counter() - started
        latencies.append({"explorer": where, "control": "Run", "seconds": round(seconds, 2)})
        check_healthy(explorer, where)
        if controls.count() and change(controls.first):
            explorer.locator(".dl-stale").wait_for(timeout=LIVE_TIMEOUT_MS)
        return
    for i in range(controls.count()):
        before = state(explorer)
        if not change(controls.nth(i)):
            continue
        seconds = wait_for_change(explorer, before, LIVE_TIMEOUT_MS, f"{where}, control {i}")
        latencies.append({"explorer": where, "control": i, "seconds": round(seconds, 2)})
        check_healthy(explorer, f"{where}, control {i}")


def save(page) -> None:
    """Save the notebook as a learner would, and wait until the tab is no longer marked as modified."""
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('.jp-mod-current.jp-mod-dirty')", timeout=30_000)


def check_saved_copy(saved: Path) -> None:
    """What the learner's save would commit equals the original notebook; its paired script is in sync."""
    import jupytext
    import nbformat
    from nbstripout import strip_output

    notebook = nbformat.read(saved, as_version=4)
    committed = strip_output(notebook, keep_output=False, keep_count=False, keep_id=True,
                             extra_keys=["metadata.language_info", "cell.metadata.execution"])
    original = nbformat.read(ROOT / "notebooks" / saved.name, as_version=4)
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in original.cells]
    assert all(c.get("outputs", []) == [] for c in committed.cells) and "widgets" not in committed.metadata
    paired = jupytext.read(saved.with_suffix(".py"))
    assert [(c.cell_type, c.source.strip()) for c in paired.cells] == [
        (c.cell_type, c.source.strip()) for c in original.cells], f"{saved.name}: paired script out of sync"


def test_every_notebook_runs_and_every_explorer_answers_its_controls(lab_server):
    url, served = lab_server
    playwright = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    latencies: list[dict] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        waiting = [path.name for path in NOTEBOOKS]
        running: dict[str, tuple] = {}
        try:
            while waiting or running:
                while waiting and len(running) < PARALLEL_NOTEBOOKS:
                    name = waiting.pop(0)
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    start_run_all(page, url, name)
                    running[name] = (page, time.monotonic())
                for name, (page, started) in list(running.items()):
                    errors = tracebacks(page)  # a cell that raised stops Run All: fail now, not at the timeout
                    assert not errors, f"{name} raised:\n{errors[0]}"
                    if finished(page):
                        del running[name]
                        for k, explorer in enumerate(page.locator(".dl-explorer").all()):
                            drive(explorer, f"{name} explorer {k}", latencies)
                            explorer.screenshot(path=str(SHOTS / f"{Path(name).stem}-explorer-{k}.png"))
                        save(page)
                        page.close()
                        check_saved_copy(served / name)
                    elif time.monotonic() - started > NOTEBOOK_TIMEOUT_S:
                        page.screenshot(path=str(SHOTS / f"{Path(name).stem}-timeout.png"), full_page=True)
                        pytest.fail(f"{name} did not finish Run All within {NOTEBOOK_TIMEOUT_S} s")
                time.sleep(1)
        finally:
            (SHOTS / "latencies.json").write_text(json.dumps(latencies, indent=1))
            browser.close()
    explorers = {entry["explorer"] for entry in latencies}
    assert len(explorers) >= len(NOTEBOOKS), f"only {len(explorers)} explorers were driven"
