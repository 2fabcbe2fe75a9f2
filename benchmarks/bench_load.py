"""Reading a study at scale: load_study in every format, and the Dataset accessors in loops.

Run: python benchmarks/bench_load.py [--quick] [--repeat N] [--only tidy-10000,...]

Goals (issue 15.1): 1,000 participants x 16 samples <= 0.3 s; 10,000 x 16 <= 3 s; 200,000
observation rows with 3 analytes <= 5 s and <= 1 GB peak memory. Each case runs in a fresh
Python process (imports done before the clock starts), so the peak resident memory (ru_maxrss)
is that of one load, interpreter and pandas included. Best of 3 wall-clock seconds; figures are
noisy on a shared 2-core machine, so the process's CPU time is shown beside them.

Studies are simulated (seeded): CAR-T-like profiles, an LLOQ of 20 copies/ug with late samples
below it written as '<20', one pre-infusion sample per participant and analyte, a missing
sample every 97 rows, two covariates and a safety table. The NONMEM and SDTM renderings are
written by ctkinetics' own writers from the tidy study.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

TIMES = np.array([-1, 1, 4, 7, 10, 14, 21, 28, 35, 42, 56, 84, 112, 168, 252, 365], float)
ANALYTES = {"transgene": ("copies/ug", 20.0, "qpcr"), "car_flow": ("cells/uL", 0.5, "flow"),
            "bcell": ("cells/uL", 1.0, "bcell")}


def write_tidy(folder: Path, n: int, analytes: int = 1, seed: int = 1) -> int:
    """A tidy study of ``n`` participants x 16 sampling times x ``analytes``; returns its rows."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = list(ANALYTES)[:analytes]
    toml = ['[study]', 'name = "bench"', '', '[dose_levels]', '1 = 3.0e8', '2 = 4.5e8', '3 = 6.0e8', '',
            '[design]', 'target_dlt_rate = 0.30', 'dlt_window_days = 28', 'stagger_days = 14',
            'cohort_size = 3', f'max_subjects = {max(n, 12)}']
    for a in names:
        unit, lloq, kind = ANALYTES[a]
        toml += ['', f'[analytes.{a}]', f'unit = "{unit}"', f'lloq = {lloq:g}', f'kind = "{kind}"']
    (folder / "study.toml").write_text("\n".join(toml) + "\n")
    subj = np.char.add("P", np.char.zfill(np.arange(1, n + 1).astype(str), 6))
    level = rng.integers(1, 4, n)
    pd.DataFrame({"subject": subj, "dose_level": level, "dose": np.array([3.0e8, 4.5e8, 6.0e8])[level - 1],
                  "age": rng.integers(18, 80, n), "sex": rng.choice(["F", "M"], n)}).to_csv(folder / "subjects.csv", index=False)
    pd.DataFrame({"subject": subj, "infusion_day": np.arange(n) * 3, "dlt": 0, "dlt_day": "",
                  "last_followup_day": 60, "crs_grade": rng.integers(0, 3, n), "icans_grade": 0,
                  "phase": "escalation"}).to_csv(folder / "safety.csv", index=False)
    frames = []
    for a in names:
        unit, lloq, _ = ANALYTES[a]
        c = 24000 * np.exp(rng.normal(0, 0.8, (n, 1))) * np.exp(-0.05 * np.abs(TIMES - 10))[None, :]
        c *= lloq / 20
        text = np.char.mod("%.4g", c)
        text = np.where(c < lloq, f"<{lloq:g}", text)
        text[:, 0] = "BLQ"  # pre-infusion
        frames.append(pd.DataFrame({"subject": np.repeat(subj, TIMES.size), "time": np.tile(TIMES, n).astype(int),
                                    "analyte": a, "value": text.ravel(), "unit": unit}))
    obs = pd.concat(frames, ignore_index=True)
    obs.loc[obs.index[5::97], "value"] = ""  # missing samples (audited)
    obs.to_csv(folder / "observations.csv", index=False)
    return len(obs)


CHILD = """
import json, resource, sys, time, warnings
from ctkinetics.data import load_study
path, fmt, loop, repeat = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
best = cpu = 1e9
for _ in range(repeat):
    t0, c0 = time.perf_counter(), time.process_time()
    ds = load_study(path, format=fmt, warn=False)
    best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
acc = float("nan")
if loop:
    t0 = time.perf_counter()
    for s in ds.subject_ids:
        ds.samples(s, "transgene"); ds.dose_of(s); ds.covariates_of(s)
    acc = time.perf_counter() - t0
print(json.dumps({"seconds": best, "cpu": cpu, "rows": len(ds.observations), "subjects": len(ds.subject_ids),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "accessors": acc}))
"""


def measure(path: Path, fmt: str, loop: bool = False, repeat: int = 3) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), fmt, "1" if loop else "0", str(repeat)],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"load of {path} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(quick: bool = False, repeat: int = 3, only=None) -> None:
    from ctkinetics.data import load_study, write_study

    cases = [("tidy", 1_000, 1, 0.3), ("nonmem", 1_000, 1, None), ("sdtm", 1_000, 1, None)]
    if not quick:
        cases += [("tidy", 10_000, 1, 3.0), ("tidy", 4_167, 3, 5.0), ("nonmem", 4_167, 3, None),
                  ("sdtm", 4_167, 3, None)]
    if only:
        cases = [c for c in cases if f"{c[0]}-{c[1]}" in only]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        made = {}
        for fmt, n, na, goal in cases:
            tidy = Path(tmp) / f"tidy_{n}_{na}"
            if tidy not in made:
                made[tidy] = write_tidy(tidy, n, na)
            path = tidy
            if fmt != "tidy":
                path = Path(tmp) / f"{fmt}_{n}_{na}"
                write_study(load_study(tidy, warn=False), path, fmt)
            r = measure(path, fmt, loop=(n == 1_000), repeat=repeat)
            rows.append({"format": fmt, "participants": n, "analytes": na, "rows": r["rows"],
                         "load_s": round(r["seconds"], 3), "cpu_s": round(r["cpu"], 3), "goal_s": goal if goal else "",
                         "peak_rss_mb": round(r["rss_mb"]), "accessor_loop_s": round(r["accessors"], 3)})
            print("  done:", rows[-1], flush=True)
    table = pd.DataFrame(rows)
    import os

    print(f"load average during the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores "
          "(wall-clock load_s is inflated on a busy machine; cpu_s is the process's own CPU time)")
    print(f"load_study, best of {repeat} (fresh process per case; accessor loop = samples + dose_of +")
    print("covariates_of for every participant):")
    print(table.to_string(index=False))


if __name__ == "__main__":
    t = time.perf_counter()
    args = sys.argv[1:]
    rep = int(args[args.index("--repeat") + 1]) if "--repeat" in args else 3
    sel = args[args.index("--only") + 1].split(",") if "--only" in args else None
    main(quick="--quick" in args, repeat=rep, only=sel)
    print(f"total {time.perf_counter() - t:.0f} s")
