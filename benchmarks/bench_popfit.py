"""Fit time of population fits: R's Theoph (12 subjects, onecpt_oral, random effects on
ka and CL, additive error — Pinheiro & Bates) and a simulated 100-participant stein2019
study with BLQ (M3). Prints a table; times are wall-clock on a shared machine (noisy).

    python benchmarks/bench_popfit.py [--stein-subjects 100] [--skip-stein]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stein-subjects", type=int, default=100)
    ap.add_argument("--skip-stein", action="store_true")
    ap.add_argument("--methods", default="focei,saem")
    a = ap.parse_args(argv)
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
