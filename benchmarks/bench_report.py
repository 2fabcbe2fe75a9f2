"""Time the whole cohort review report on the sample cohort (fits included).

Run: python benchmarks/bench_report.py [--repeat N]
Prints a table: load, each review step, writing (figures + HTML + CSV) and the total, in
seconds, plus the wall time of the `ctk report` command in a fresh process (imports
included). Goal: under 15 s on 2 cores. The machine may be shared: figures are noisy.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "sle_cohort"


def once(out: Path) -> dict:
    from ctkinetics.data import load_study
    from ctkinetics.report import build_review, write_report

    t0 = time.perf_counter()
    ds = load_study(SAMPLE)
    t1 = time.perf_counter()
    rv = build_review(ds)
    t2 = time.perf_counter()
    write_report(rv, out, root=SAMPLE)
    t3 = time.perf_counter()
    row = {"load": t1 - t0}
    row.update({name.split(":")[0]: sec for name, sec in rv.timings})
    row.update({"write (figures, HTML, CSV)": t3 - t2, "total in-process": t3 - t0})
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [once(Path(tmp) / f"r{i}") for i in range(args.repeat)]
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ctkinetics.cli.main", "report", str(SAMPLE),
                        "--out", str(Path(tmp) / "cli"), "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
        cli = time.perf_counter() - t
    print(f"ctk report on {SAMPLE.relative_to(ROOT)} ({os.cpu_count()} CPUs visible; "
          f"{args.repeat} in-process runs, the first pays the imports)")
    print(f"{'step':<52}" + "".join(f"{'run ' + str(i + 1):>9}" for i in range(len(rows))))
    for key in rows[0]:
        print(f"{key:<52}" + "".join(f"{r.get(key, float('nan')):9.2f}" for r in rows))
    print(f"{'ctk report, fresh process (wall, imports included)':<52}{cli:9.2f}")
    print("goal: < 15 s on 2 cores")


if __name__ == "__main__":
    main()
