"""Shared by the report tests: the sample cohort's report is built once per test session."""
from __future__ import annotations

import functools
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sle_cohort"
MINI = ROOT / "tests" / "data" / "mini_study"
OUTPUT = ROOT / "tests" / "_output"


def run_cli(*argv) -> int:
    from ctkinetics.cli.main import main

    return main(["report", *map(str, argv)])


@functools.lru_cache(maxsize=None)
def sample_report() -> Path:
    """ctk report on the sample cohort, written to tests/_output/sample_report (kept for people
    to look at)."""
    out = OUTPUT / "sample_report"
    shutil.rmtree(out, ignore_errors=True)
    code = run_cli(SAMPLE, "--out", out, "--quiet")
    assert code == 0
    return out


def study_with_subject_id(tmp: Path, new_id: str, old_id: str = "S01") -> Path:
    """A copy of the mini study with one participant renamed (IDs from input files are untrusted)."""
    dst = tmp / "study"
    shutil.copytree(MINI, dst)
    for name in ("subjects.csv", "observations.csv", "safety.csv"):
        p = dst / name
        lines = p.read_text().splitlines()
        out = [lines[0]] + [(f'"{new_id}"' if line.split(",")[0] == old_id else line.split(",")[0])
                            + line[len(line.split(",")[0]):] for line in lines[1:]]
        p.write_text("\n".join(out) + "\n")
    return dst
