"""Fit time of population fits: R's Theoph (12 subjects, onecpt_oral, random effects on
ka and CL, additive error — Pinheiro & Bates) and a simulated 100-participant stein2019
study with BLQ (M3). Prints a table; times are wall-clock on a shared machine (noisy).

    python benchmarks/bench_popfit.py [--stein-subjects 100] [--skip-stein]
    python benchmarks/bench_popfit.py --sle-cohort     # issue 12's commands, wall and CPU
    python benchmarks/bench_popfit.py --sle-cohort --commands saem --repeats 2

``--sle-cohort`` times the commands of issue 12 on ``data/sample/sle_cohort`` (12
participants, qPCR + flow + B cells) with ``cart_bcell_sle``: ``ctk fit`` (the model's
default estimated set; targets <= 30 s and fewer than half flagged non-identifiable) and
``ctk popfit --method saem`` (target <= 60 s) and ``--method focei``, each in a fresh
process: wall seconds and the CPU seconds of that process (user + system, from
``os.wait4``), which on a loaded machine say more than the wall time. ``--commands``
picks some of ``fit,saem,focei``; ``--repeats`` runs each that many times. The commands
run the ``ctkinetics`` that ``python -c 'import ctkinetics'`` finds from here (set
``PYTHONPATH`` to an exported older tree to time a before/after pair in one session); the
header names it and its git commit.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _timed(cmd):
    """(wall s, CPU s of the child, exit code, stdout) of a command."""
    import os
    import subprocess

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime, proc.returncode, out


def _tree():
    """'path (commit)' of the ctkinetics the commands import."""
    import subprocess

    path = subprocess.run([sys.executable, "-c", "import ctkinetics, os; "
                           "print(os.path.dirname(os.path.dirname(ctkinetics.__file__)))"],
                          capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    return f"{path} ({head or 'not a git tree'})"


def sle_cohort(commands=("fit", "saem", "focei"), repeats=1):
    """Issue 12's ctk fit / ctk popfit on the sample SLE cohort (see the module)."""
    import json
    import os
    import tempfile

    import pandas as pd

    study = ROOT / "data" / "sample" / "sle_cohort"
    ctk = [sys.executable, "-m", "ctkinetics.cli.main"]
    print(f"ctkinetics {_tree()}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    print("| command | wall s | CPU s | exit | result |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(int(repeats)):
            if "fit" in commands:
                out = Path(tmp) / "fit"
                wall, cpu, rc, _ = _timed(ctk + ["fit", str(study), "--model", "cart_bcell_sle",
                                                 "--out", str(out), "--allow-failures"])
                f = pd.read_csv(out / "fits.csv") if (out / "fits.csv").is_file() else None
                what = "no fits.csv" if f is None else (
                    f"{len(f)} fits, {int(f['success'].sum())} converged, "
                    f"{int(f['flags'].fillna('').str.contains('non_identifiable').sum())} "
                    f"flagged non_identifiable, -2LL sum {f['ofv'].sum():.2f}")
                print(f"| ctk fit --model cart_bcell_sle | {wall:.1f} | {cpu:.1f} | {rc} | "
                      f"{what} |", flush=True)
            for method in ("saem", "focei"):
                if method not in commands:
                    continue
                out = Path(tmp) / method
                wall, cpu, rc, _ = _timed(ctk + ["popfit", str(study), "--model",
                                                 "cart_bcell_sle", "--method", method,
                                                 "--out", str(out), "--allow-failures"])
                js = out / "fit.json"
                what = "no fit.json"
                if js.is_file():
                    d = json.loads(js.read_text())
                    what = (f"-2LL {d.get('ofv', float('nan')):.4f}, converged "
                            f"{d.get('converged')}, flags "
                            f"{', '.join((d.get('diagnostics') or {}).get('flags', [])) or '-'}")
                print(f"| ctk popfit --method {method} | {wall:.1f} | {cpu:.1f} | {rc} | "
                      f"{what} | load {os.getloadavg()[0]:.1f}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stein-subjects", type=int, default=100)
    ap.add_argument("--skip-stein", action="store_true")
    ap.add_argument("--methods", default="focei,saem")
    ap.add_argument("--sle-cohort", action="store_true",
                    help="only issue 12's ctk fit / popfit commands on the sample SLE cohort")
    ap.add_argument("--commands", default="fit,saem,focei",
                    help="with --sle-cohort: which of fit,saem,focei to time")
    ap.add_argument("--repeats", type=int, default=1, help="with --sle-cohort: runs of each")
    a = ap.parse_args(argv)
    if a.sle_cohort:
        sle_cohort(tuple(a.commands.split(",")), a.repeats)
        return
    from ctkinetics.estimation.population import fit_population
    from ctkinetics.estimation.population.simulate import simulate_study
    from ctkinetics.modeling import load_model
    from tests.population.theoph import dataset, onecpt_model

    rows = []
    for method in a.methods.split(","):
        t0 = time.perf_counter()
        r = fit_population(dataset(), onecpt_model(), random_effects="ka,CL",
                           error="additive", method=method)
        rows.append(("Theoph (12)", method, time.perf_counter() - t0, r.ofv, r.converged))
    if not a.skip_stein:
        m = load_model("stein2019")
        times = np.array([1, 4, 7, 10, 14, 21, 28, 56, 90, 180, 270, 365.0])
        ds = simulate_study(m, a.stein_subjects, times, lloq=20.0, sigma=0.56, seed=1)
        init = {"Cmax": 15000, "Tmax": 8, "foldx": 2000, "alpha": 0.2, "FB": 0.01,
                "beta": 0.005}
        for method in a.methods.split(","):
            t0 = time.perf_counter()
            r = fit_population(ds, m, method=method, init=init)
            rows.append((f"stein2019 ({a.stein_subjects}, "
                         f"{ds.observations['blq'].mean():.0%} BLQ)", method,
                         time.perf_counter() - t0, r.ofv, r.converged))
    print(f"{'data set':32s} {'method':7s} {'seconds':>8s} {'-2LL':>11s} converged")
    for name, method, sec, ofv, ok in rows:
        print(f"{name:32s} {method:7s} {sec:8.1f} {ofv:11.3f} {ok}")


if __name__ == "__main__":
    main()
