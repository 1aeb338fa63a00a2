"""Print an executed notebook's text outputs and save its figures as PNG files (for review).

    python tools/show_outputs.py EXECUTED.ipynb OUT_DIR
"""
import base64
import json
import sys
from pathlib import Path

notebook, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
out_dir.mkdir(parents=True, exist_ok=True)
figure = 0
for number, cell in enumerate(json.loads(notebook.read_text())["cells"]):
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if "text" in output:
            print(f"[cell {number}] {''.join(output['text'])[:600]}")
        elif "image/png" in data:
            path = out_dir / f"{notebook.stem}-{figure:02d}.png"
            path.write_bytes(base64.b64decode(data["image/png"]))
            print(f"[cell {number}] figure -> {path}")
            figure += 1
        elif "application/vnd.jupyter.widget-view+json" in data:
            print(f"[cell {number}] widget")
        elif "text/plain" in data:
            print(f"[cell {number}] {''.join(data['text/plain'])[:300]}")
        elif output.get("output_type") == "error":
            print(f"[cell {number}] ERROR {output['ename']}: {output['evalue']}")
