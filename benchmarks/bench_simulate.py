"""Population simulation speed: per-subject time for N = 1, 1,000 and 100,000.

Goals (issue #3): 100,000 stein2019 subjects in < 0.5 s; 1,000 cart_bcell_sle subjects over
365 days in < 10 s on 2 cores. Also the single-subject prediction the fitters call in a loop.
Prints a table; figures are wall-clock on a shared machine and may be noisy.

Run: python benchmarks/bench_simulate.py [--quick]
"""
from __future__ import annotations

import sys
import time

import numpy as np

from ctkinetics.modeling import load_model, simulate_population


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    quick = "--quick" in (argv or sys.argv[1:])
    daily = np.arange(0.0, 366.0)
    sparse = np.array([0, 1, 4, 7, 10, 14, 21, 28, 60, 90, 180, 270, 365.0])
    rows = []
    cases = [
        ("stein2019", "closed", 1), ("stein2019", "closed", 1000), ("stein2019", "closed", 100_000),
        ("stein2019", "ode", 1), ("stein2019", "ode", 1000),
        ("em_firstorder", "closed", 100_000),
        ("cart_bcell_sle", "ode", 1), ("cart_bcell_sle", "ode", 1000),
    ]
    if not quick:
        cases.append(("cart_bcell_sle", "ode", 100_000))
    for name, method, n in cases:
        m = load_model(name)
        pop = simulate_population(m, n, times=[0.0], seed=1)
        params = {k: pop.parameters[k].to_numpy() for k in m.param_names}
        if n == 1:
            params = {k: float(v[0]) for k, v in params.items()}
        for times, label in ((daily, "0:365 daily"), (sparse, "13 samples")):
            if n >= 100_000 and method == "ode" and label != "13 samples":
                continue
            repeat = 20 if n == 1 else (3 if n <= 1000 else 1)
            total = best_of(lambda: m.predict(params, times, method=method), repeat)
            rows.append((name, method, n, label, total, total / n))
    print(f"{'model':<16}{'engine':<8}{'N':>8}  {'times':<12}{'total s':>10}{'per subject':>14}")
    for name, method, n, label, total, per in rows:
        print(f"{name:<16}{method:<8}{n:>8}  {label:<12}{total:>10.4f}{per * 1e6:>11.1f} us")
    m = load_model("cart_bcell_sle")
    t0 = time.perf_counter()
    simulate_population(m, 1000, times=daily, seed=1)
    print(f"\nsimulate_population(cart_bcell_sle, 1000, daily 0:365) incl. tables: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
