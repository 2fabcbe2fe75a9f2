"""Time the cohort review report: the sample cohort, simulated large studies, CLI start-up.

Run: python benchmarks/bench_report.py [--repeat N] [--sizes 200,2000] [--startup-only]
Prints three tables (seconds; the machine may be shared, so figures are noisy):

1. ``ctk report`` on the sample cohort (default settings: cart_bcell_sle fitted to qPCR, flow
   and B cells, issue 12.5): load, each review step, writing, the in-process total with its
   CPU seconds, and the wall and CPU time of the command in a fresh process (imports
   included). Goal <= 15 s. ``--population focei|saem`` also times the population-first
   variant.
2. ``ctk report`` on simulated studies of N participants (3 dose levels, qPCR, flow and
   B cells sampled as in the sample cohort, 12 in escalation and the rest in expansion),
   fresh process, with the size of report.html. Goal: 2,000 participants <= 180 s.
3. Start-up of light commands (best of 5 fresh processes): ``ctk --help``, ``ctk validate``,
   ``ctk boin table``. Goals 0.3 s, well under 1 s.
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
SCHEDULE = (1, 4, 7, 10, 14, 21, 28, 42, 56, 90, 180)
DOSES = {"1": 3.0e8, "2": 4.5e8, "3": 6.0e8}
STUDY_TOML = """[study]
name = "Simulated large cohort ({n} participants)"

[dose_levels]
1 = 3.0e8
2 = 4.5e8
3 = 6.0e8

[design]
target_dlt_rate = 0.30
dlt_window_days = 28
stagger_days = 14
cohort_size = 3
max_subjects = 12

[expansion]
max_per_group = {n}

[analytes.transgene]
unit = "copies/ug"
lloq = 20
kind = "qpcr"

[analytes.car_flow]
unit = "cells/uL"
lloq = 0.5
kind = "flow"

[analytes.bcell]
unit = "cells/uL"
lloq = 1
kind = "bcell"
"""


def make_study(folder: Path, n: int, seed: int = 1) -> Path:
    """A tidy study folder of ``n`` simulated participants.

    Kinetics: stein2019 with the model file's between-subject variances for qPCR, flow as
    qPCR / 40 (both with 25-30 % proportional error), B cells from a baseline of ~150/µL to 0
    from day 4 until a log-normal return day (median 110). Calendar: the sample cohort's
    first 12 infusions in escalation, the rest in expansion, cut-off on day 400.
    """
    import numpy as np
    import pandas as pd

    from ctkinetics.modeling import load_model, simulate_population

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"P{i:05d}" for i in range(n)]
    levels = np.array([str(1 + min(i // 3, 2)) if i < 12 else str(1 + i % 3) for i in range(n)])
    infusion = np.where(np.arange(n) < 12, np.arange(n) * 15.0,
                        180 + np.sort(rng.uniform(0, 200, n)))
    cutoff = 400.0
    follow = cutoff - infusion
    times = np.array(SCHEDULE, float)
    model = load_model("stein2019")
    pop = simulate_population(model, n, times=times, seed=seed)
    pars = {k: pop.parameters[k].to_numpy(float) for k in model.param_names}
    qpcr = np.asarray(model.predict(pars, times)["qpcr"])
    back = np.exp(np.log(110) + 0.3 * rng.standard_normal(n))
    base = np.exp(np.log(150) + 0.3 * rng.standard_normal(n))
    rows = []
    for i, s in enumerate(ids):
        keep = times <= follow[i]
        t = times[keep]
        q = qpcr[i, keep] * np.exp(0.25 * rng.standard_normal(keep.sum()))
        f = qpcr[i, keep] / 40 * np.exp(0.3 * rng.standard_normal(keep.sum()))
        b = np.where((t >= 4) & (t < back[i]), 0.0, base[i]) * np.exp(0.2 * rng.standard_normal(keep.sum()))
        pre = -float(rng.integers(1, 4))
        rows += [(s, pre, "transgene", "<20"), (s, pre, "car_flow", "<LLOQ"),
                 (s, pre, "bcell", f"{base[i]:.4g}")]
        for name, vals, lloq, marker in (("transgene", q, 20, "<20"), ("car_flow", f, 0.5, "<LLOQ"),
                                         ("bcell", b, 1, "BLQ")):
            rows += [(s, tt, name, f"{v:.4g}" if v >= lloq else marker) for tt, v in zip(t, vals)]
    obs = pd.DataFrame(rows, columns=["subject", "time", "analyte", "value"])
    obs["unit"] = obs["analyte"].map({"transgene": "copies/ug", "car_flow": "cells/uL",
                                      "bcell": "cells/uL"})
    obs["time"] = obs["time"].map(lambda x: f"{x:g}")
    obs.to_csv(folder / "observations.csv", index=False)
    pd.DataFrame({"subject": ids, "dose_level": levels,
                  "dose": [f"{DOSES[lv]:.3g}" for lv in levels]}).to_csv(folder / "subjects.csv",
                                                                        index=False)
    dlt = (rng.random(n) < 0.1).astype(int)
    pd.DataFrame({"subject": ids, "infusion_day": infusion.round(0), "dlt": dlt,
                  "dlt_day": np.where(dlt == 1, rng.integers(2, 20, n), np.nan),
                  "last_followup_day": follow.round(0), "crs_grade": rng.integers(0, 3, n),
                  "icans_grade": rng.integers(0, 2, n),
                  "phase": np.where(np.arange(n) < 12, "escalation", "expansion")}
                 ).to_csv(folder / "safety.csv", index=False, float_format="%g")
    (folder / "study.toml").write_text(STUDY_TOML.format(n=n))
    return folder


def once(out: Path, population: str | None = None) -> dict:
    """One in-process report of the sample cohort (default settings; ``population``: the
    ``[population] method``): wall seconds per step, and the CPU seconds of this process."""
    from ctkinetics.data import load_study
    from ctkinetics.report import ReportSettings, build_review, write_report

    c0 = time.process_time()
    t0 = time.perf_counter()
    ds = load_study(SAMPLE)
    t1 = time.perf_counter()
    rv = build_review(ds, ReportSettings(population_method=population))
    t2 = time.perf_counter()
    write_report(rv, out, root=SAMPLE)
    t3 = time.perf_counter()
    row = {"load": t1 - t0}
    row.update({name.split(":")[0].split(",")[0]: sec for name, sec in rv.timings})
    row.update({"write (figures, HTML, CSV)": t3 - t2, "total in-process (wall)": t3 - t0,
                "  CPU of this process (figure workers not counted)": time.process_time() - c0})
    return row


def ctk(*argv, env=None, cpu=False):
    """Wall seconds of a fresh ``ctk`` process (with ``cpu=True``: (wall, CPU seconds of it and
    its worker processes), the CPU figure being the one that a shared machine does not
    inflate)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ctkinetics.cli.main", *map(str, argv)], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return (wall, used) if cpu else wall


def startup() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [("ctk --help", ("--help",), 0.3),
                ("ctk validate data/sample/sle_cohort", ("validate", SAMPLE), 1.0),
                ("ctk boin table", ("boin", "table"), 1.0),
                ("ctk boin table --out FILE", ("boin", "table", "--out", Path(tmp) / "t.csv"), 1.0)]
        print(f"\n{'start-up (best of 5 fresh processes)':<44}{'wall s':>9}{'CPU s':>8}{'goal':>7}")
        for label, argv, goal in rows:
            runs = [ctk(*argv, cpu=True) for _ in range(5)]
            print(f"{label:<44}{min(r[0] for r in runs):9.3f}{min(r[1] for r in runs):8.3f}"
                  f"{goal:7.1f}")
        print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default="200,2000", help="participants of the simulated studies")
    ap.add_argument("--startup-only", action="store_true")
    ap.add_argument("--population", default=None, choices=("focei", "saem"),
                    help="also time the report with this population fit first (issue 12.5: "
                         "the population-first variant of the mechanistic default)")
    ap.add_argument("--large-model", default=None, metavar="NAME",
                    help="ctk report --model NAME for the simulated studies (default the "
                         "report's; stein2019 times them as before the mechanistic default)")
    args = ap.parse_args()
    if args.startup_only:
        startup()
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = [once(tmp / f"r{i}") for i in range(args.repeat)]
        cli, cli_cpu = ctk("report", SAMPLE, "--out", tmp / "cli", "--quiet", cpu=True)
        print(f"ctk report on {SAMPLE.relative_to(ROOT)} ({os.cpu_count()} CPUs visible; "
              f"{args.repeat} in-process runs, the first pays the imports)")
        print(f"{'step':<52}" + "".join(f"{'run ' + str(i + 1):>9}" for i in range(len(rows))))
        for key in rows[0]:
            print(f"{key:<52}" + "".join(f"{r.get(key, float('nan')):9.2f}" for r in rows))
        print(f"{'ctk report, fresh process (wall, imports included)':<52}{cli:9.2f}")
        print(f"{'  CPU of it and its figure workers':<52}{cli_cpu:9.2f}")
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall "
              "figures above that are inflated on a shared machine)")
        print("goal: <= 15 s with the mechanistic fits (cart_bcell_sle of qPCR, flow and B cells)")
        if args.population:
            row = once(tmp / "pop", args.population)
            print(f"\nwith --population {args.population} first (one in-process run)")
            for key, sec in row.items():
                print(f"{key:<52}{sec:9.2f}")
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
        if sizes:
            print(f"\n{'participants':>12}{'samples':>10}{'wall (s)':>10}{'CPU (s)':>9}"
                  f"{'report.html (MB)':>18}{'figures':>9}{'load':>6}")
        for n in sizes:
            study = make_study(tmp / f"study{n}", n)
            samples = sum(1 for _ in open(study / "observations.csv")) - 1
            out = tmp / f"out{n}"
            model = ("--model", args.large_model) if args.large_model else ()
            sec, used = ctk("report", study, "--out", out, "--quiet", "--allow-failures", *model,
                            cpu=True)
            html = (out / "report.html").read_text(encoding="utf-8")
            print(f"{n:>12}{samples:>10}{sec:10.1f}{used:9.1f}{len(html.encode()) / 1e6:18.1f}"
                  f"{html.count('data-figure='):>9}{os.getloadavg()[0]:6.1f}")
        if sizes:
            print("goal: 2,000 participants <= 180 s on 2 cores")
    startup()


if __name__ == "__main__":
    main()
