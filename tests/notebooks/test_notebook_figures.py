"""The notebooks' static figures: every `# figure: NAME` cell has notebooks/figures/NAME.png,
and every image a markdown cell shows exists (so the notes read without running them)."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_every_figure_has_its_png_and_every_image_exists(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c.source.splitlines()[0].split(":", 1)[1].strip() for c in nb.cells
              if c.cell_type == "code" and c.source.startswith("# figure:")]
    shown = [m for c in nb.cells if c.cell_type == "markdown"
             for m in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", c.source)]
    assert tagged, "a notebook that teaches shows its figures"
    for name in tagged:
        png = NOTEBOOKS / "figures" / f"{name}.png"
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"figures/{name}.png" in shown, f"{name}.png is not shown in the notes"
    for src in shown:
        assert (NOTEBOOKS / src).exists(), src


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_each_step_is_explained(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    words = sum(len(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
    assert nb.cells[0].cell_type == "markdown" and words >= 40 * len(code) / 2
    # no two code cells in a row without a word between them, at most a few times
    runs = sum(1 for a, b in zip(nb.cells, nb.cells[1:]) if a.cell_type == b.cell_type == "code")
    assert runs <= len(code) // 2
