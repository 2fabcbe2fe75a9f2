"""The README's Python section runs as written, from the repository root."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python_blocks():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_readme_python_section_runs_end_to_end(capsys):
    blocks = _python_blocks()
    assert len(blocks) == 1
    ns: dict = {}
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(blocks[0], "README.md", "exec"), ns)  # the project's own README, not input
    finally:
        os.chdir(cwd)
    from ctkinetics.escalation.rules import ACTIONS
    from ctkinetics.nca import NCAResult

    assert isinstance(ns["nca"], NCAResult) and set(ns["nca"].results["analyte"]) == {"transgene", "car_flow"}
    assert len(ns["fits"].fits_frame()) == 12
    assert ns["decision"].decision in ACTIONS.values()
    assert ns["decision"].decision in capsys.readouterr().out
