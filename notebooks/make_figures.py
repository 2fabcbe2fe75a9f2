"""Render the notebooks' figures as PNG files in notebooks/figures/ (shown in their notes).

Run: python notebooks/make_figures.py      (after changing a notebook or a figure function)

Each notebook is executed once; the output of every code cell whose first line is
``# figure: NAME`` (a plotly figure) is drawn by headless Chromium into ``figures/NAME.png``.

Why Chromium: the PNG is then exactly what the interactive figure shows (plotly.js itself
draws it, from the copy inside the installed plotly package, offline), and nothing is added
to the dependencies — Debian's chromium is what the report's browser tests already use.
plotly's own static export needs kaleido, which in its current version drives a Chrome
browser too (and adds its packages); matplotlib would be a second plotting library whose
figures differ from the ones the package draws.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
FIGURES = HERE / "figures"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--virtual-time-budget=10000"]
TAG = "# figure:"
PLOTLY_MIME = "application/vnd.plotly.v1+json"


def figure_outputs(path: Path) -> dict[str, dict]:
    """Run the notebook; NAME -> plotly figure JSON of each ``# figure: NAME`` cell."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    found = {}
    for cell in nb.cells:
        first = cell.source.splitlines()[0] if cell.source else ""
        if cell.cell_type != "code" or not first.startswith(TAG):
            continue
        name = first[len(TAG):].strip()
        specs = [o["data"][PLOTLY_MIME] for o in cell.outputs if PLOTLY_MIME in o.get("data", {})]
        if not specs:
            raise RuntimeError(f"{path.name}: cell '{name}' shows no plotly figure")
        found[name] = specs[-1]
    return found


def render(spec: dict, png: Path, workdir: Path) -> None:
    """Draw one figure with plotly.js in headless Chromium, at the figure's own size."""
    from plotly.offline import get_plotlyjs

    layout = spec.get("layout", {})
    width, height = int(layout.get("width") or 1000), int(layout.get("height") or 500)
    html = workdir / f"{png.stem}.html"
    html.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><style>body{margin:0;background:#fff}"
        f"</style><script>{get_plotlyjs()}</script></head><body><div id='f' style='width:{width}px;"
        f"height:{height}px'></div><script>var s={json.dumps(spec)};"
        "Plotly.newPlot('f',s.data,s.layout,{staticPlot:true,displayModeBar:false});</script>"
        "</body></html>", encoding="utf-8")
    subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={workdir / 'profile'}",
                    f"--window-size={width},{height}", f"--screenshot={png}", html.as_uri()],
                   check=True, capture_output=True, timeout=300)


def main() -> int:
    if not CHROMIUM.exists():
        print("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
        return 2
    FIGURES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for nb in sorted(HERE.glob("*.ipynb")):
            for name, spec in figure_outputs(nb).items():
                png = FIGURES / f"{name}.png"
                render(spec, png, Path(tmp))
                print(f"{nb.name}: {png.relative_to(HERE)} ({png.stat().st_size // 1024} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
