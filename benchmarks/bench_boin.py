"""Benchmark: BOIN operating characteristics, 10,000 trials (goal < 0.1 s; R's BOIN::get.oc ~3 s).

Run: python benchmarks/bench_boin.py. Prints a table: best and median wall time of several
repeats (the machine is shared, so single timings are noisy; the best is the fairer figure).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

from ctkinetics.escalation import (BoinDesign, EscalationState, Participant, decide, decide_fast, decide_situations,
                                   simulate_boin, simulate_tite, situation)


def _time(fn, repeats=7):
    fn()  # warm-up: imports, elimination table
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    p5 = [0.05, 0.15, 0.30, 0.45, 0.60]
    cases = [
        ("BOIN 10,000 trials, 5 doses, 10 cohorts of 3",
         lambda: simulate_boin(BoinDesign(0.3), p5, 10, 10_000, seed=1)),
        ("BOIN 10,000 trials, 3 doses, 4 cohorts of 3",
         lambda: simulate_boin(BoinDesign(0.3), [0.15, 0.3, 0.45], 4, 10_000, seed=1)),
        ("TITE-BOIN + 14 d stagger, 10,000 trials, 3 doses, 12 pts",
         lambda: simulate_tite(BoinDesign(0.3), [0.15, 0.3, 0.45], 4, 10_000, seed=1, accrual_per_month=2)),
    ]
    state = EscalationState(("1", "2", "3"), [Participant(f"P{i}", i // 3, 5.0 * i, 0.0) for i in range(9)])
    design = BoinDesign(0.3)
    cases.append(("decide() one decision (9 participants)", lambda: decide(state, design, 100)))
    cases.append(("decide_fast() one decision (9 participants)", lambda: decide_fast(state, design, 100)))
    import numpy as np

    from ctkinetics.escalation import decide_arrays

    m, k = 10_000, 3
    rng = np.random.default_rng(0)
    n_all = rng.integers(0, 7, (m, k))
    y_all = rng.binomial(n_all, 0.25)
    c_all = rng.binomial(n_all - y_all, 0.3)
    cases.append(("decide_arrays() 10,000 situations (what trial-sim calls), per situation",
                  lambda: decide_arrays(design, k, rng.integers(0, k, m), n_all, y_all, c_all, 0.5 * c_all,
                                        np.full(m, k), as_of=np.full(m, 100.0),
                                        min_followup_all=np.full((m, k), np.inf),
                                        sentinel=np.zeros((m, k))), m))
    from ctkinetics.data import load_study
    from ctkinetics.escalation import review_escalation

    sample = load_study(Path(__file__).resolve().parents[1] / "data" / "sample" / "sle_cohort")
    cases.append(("review_escalation() sample cohort (decision, MTD, paths, RD, committee replay)",
                  lambda: review_escalation(sample, 200)))
    sits = [situation(state, design, 100)] * 1000
    cases.append(("decide_situations() 1,000 situations, per situation",
                  lambda: decide_situations(design, 3, sits), 1000))
    print(f"{'case':<82} {'best s':>10} {'median s':>10}")
    for name, fn, *per in cases:
        best, med = _time(fn, repeats=7 if "decide" not in name else 50)
        div = per[0] if per else 1
        print(f"{name:<82} {best / div:>10.3g} {med / div:>10.3g}")
    oc = simulate_boin(BoinDesign(0.3), p5, 10, 10_000, seed=1)
    print("\nselection % (published ~1/23/54/20/1):", " / ".join(f"{v:.1f}" for v in oc.selection_pct))


if __name__ == "__main__":
    main()
