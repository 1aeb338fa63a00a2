"""Run notebooks for several seeds and scales and collect every claim's measured values.

    python tools/evidence.py notebooks/03_regularization.ipynb --seeds 0 1 2 3 4 --scales quick full
    python tools/evidence.py notebooks/*.ipynb --jobs 2 --out build/evidence

Each run executes the notebook (nothing is written back to it) with ``DL_SCALE``, ``DL_SEED`` and a
private ``DL_BUILD_DIR``, so its claims ledger holds exactly that run's claims. The summary lists, per
claim, the range of measured values, the threshold and how many runs passed, and is saved as
``<out>/evidence.json`` and ``<out>/evidence.md``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_one(notebook: Path, scale: str, seed: int | None, out: Path, timeout: int, keep: Path | None = None,
            build: Path | None = None) -> dict:
    """Execute one notebook at one scale and seed; return its wall time, error and claims.

    ``seed`` None keeps the notebook's own seed; ``keep`` saves the executed notebook there; ``build`` is
    the build folder the run writes its claims ledger to (default: a folder of its own under ``out``).
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    build = build or out / "runs" / f"{notebook.stem}-{scale}-{seed}"
    ledger = build / "claims" / f"{notebook.stem}.json"
    ledger.parent.mkdir(parents=True, exist_ok=True)
    ledger.unlink(missing_ok=True)
    env = {"DL_SCALE": scale, "DL_BUILD_DIR": str(build), "DL_PROGRESS": "0", "DL_CACHE": "0",
           "OMP_WAIT_POLICY": "PASSIVE", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    if seed is not None:
        env["DL_SEED"] = str(seed)
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}})
    started, error = time.perf_counter(), None
    try:
        client.execute(env=dict(os.environ, **env))
    except CellExecutionError as failure:
        error = str(failure).strip().splitlines()[-1][:500]
    except Exception as failure:  # noqa: BLE001 - a run that breaks is reported, not fatal
        error = f"{type(failure).__name__}: {failure}"[:500]
    seconds = time.perf_counter() - started
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep)
    claims = json.loads(ledger.read_text()) if ledger.exists() else []
    return {"notebook": notebook.stem, "scale": scale, "seed": seed, "seconds": round(seconds, 1),
            "error": error, "claims": claims}


def summarise(runs: list[dict]) -> list[dict]:
    """One row per (notebook, claim statement): measured values by scale, threshold, passes."""
    rows: dict[tuple[str, str], dict] = {}
    for run in runs:
        for claim in run["claims"]:
            row = rows.setdefault((run["notebook"], claim["statement"]), {
                "notebook": run["notebook"], "statement": claim["statement"], "op": claim["op"],
                "threshold": claim["threshold"], "values": {}, "passed": 0, "runs": 0})
            row["values"].setdefault(run["scale"], []).append(claim["measured"])
            row["passed"] += bool(claim["passed"])
            row["runs"] += 1
    return list(rows.values())


def value_range(values: list) -> str:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) != len(values) or not numbers:
        return ", ".join(sorted({str(v) for v in values}))
    low, high = min(numbers), max(numbers)
    fmt = (lambda v: f"{v:.3g}") if all(math.isfinite(v) for v in numbers) else str
    return fmt(low) if low == high else f"{fmt(low)} – {fmt(high)}"


def markdown(runs: list[dict], rows: list[dict]) -> str:
    lines = ["| notebook | scale | seed | seconds | error |", "|---|---|---|---|---|"]
    lines += [f"| {r['notebook']} | {r['scale']} | {r['seed']} | {r['seconds']} | {r['error'] or ''} |" for r in runs]
    lines += ["", "| notebook | claim | quick | full | required | passed |", "|---|---|---|---|---|---|"]
    for row in rows:
        rule = (f"in [{row['threshold'][0]}, {row['threshold'][1]}]" if row["op"] == "between"
                else f"{row['op']} {row['threshold']}")
        lines.append(f"| {row['notebook']} | {row['statement']} | {value_range(row['values'].get('quick', []))} | "
                     f"{value_range(row['values'].get('full', []))} | {rule} | {row['passed']}/{row['runs']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--scales", nargs="+", choices=["quick", "full"], default=["quick", "full"])
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at once (each on one CPU thread)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds allowed per cell")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "evidence")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()  # the kernels run in notebooks/, so a relative folder would land there
    jobs = [(nb.resolve(), scale, seed) for nb in args.notebooks for scale in args.scales for seed in args.seeds]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        runs = list(pool.map(lambda job: run_one(*job, args.out, args.timeout), jobs))
    for run in runs:
        status = "ok" if run["error"] is None else f"ERROR {run['error']}"
        print(f"{run['notebook']} {run['scale']} seed {run['seed']}: {run['seconds']} s, {status}", file=sys.stderr)
    rows = summarise(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evidence.json").write_text(json.dumps({"runs": runs, "claims": rows}, indent=1, default=str))
    text = markdown(runs, rows)
    (args.out / "evidence.md").write_text(text + "\n")
    print(text)
    return 0 if all(r["error"] is None for r in runs) and all(r["passed"] == r["runs"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
