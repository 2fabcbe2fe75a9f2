"""Bootstrap throughput on local Dask clusters of 1 and 2 worker processes, in one run.

A 12-participant stein2019 study in the setting of benchmarks/popfit_recovery.py (days 1 to
365, residual SD 0.56 on ln, LLOQ 20 copies/µg, BLQ by M3) is fitted by FOCE-I; then its
case-resampling bootstrap runs

1. on a 1-worker local cluster: ``--one`` replicates,
2. on a 2-worker local cluster: ``--replicates`` replicates (default 1,000),
3. on the 1-worker cluster again: ``--one`` replicates (the machine is shared; its load drifts),

and the table gives replicates per second, the speed-up of 2 workers over the mean of the two
1-worker runs, the load average before and after each run, the CPU seconds per replicate
(process CPU time of each fit, as its worker measured it: compare with wall time per worker to
see the machine's share) and the share failed / not converged / at a bound. Replicate r draws from SeedSequence(seed, spawn_key=(r,)) whatever
the worker: the replicates the 1- and 2-worker runs share are compared value for value.
Cluster start-up is excluded (each cluster first fits one replicate: imports, model load).

    python benchmarks/bench_bootstrap.py [--replicates 1000] [--one 100] [--seed 1]
        [--out benchmarks/results/bench_bootstrap.txt]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _load():
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def study(seed=2024, n=12):
    from popfit_recovery import TIMES

    from ctkinetics.estimation.population.simulate import simulate_study
    from ctkinetics.modeling import load_model

    m = load_model("stein2019")
    return simulate_study(m, n, TIMES, lloq=20.0, sigma=0.56, seed=seed), m


def timed(ds, m, res, n, seed, workers):
    """(result, wall seconds, load before, load after) of n replicates on a local cluster
    of ``workers`` processes, started and warmed up (2 replicates of another seed) first."""
    from ctkinetics.estimation.bootstrap import bootstrap
    from ctkinetics.executors import local_cluster

    # the workers of LocalDaskExecutor (one engine thread each), kept open for the warm-up
    with local_cluster(workers=workers) as ex:
        bootstrap(ds, m, 2, seed=seed + 10_000, original=res, bca=False, executor=ex)
        before = _load()
        t0 = time.perf_counter()
        b = bootstrap(ds, m, n, seed=seed, original=res, bca=False, executor=ex)
        wall = time.perf_counter() - t0
    return b, wall, before, _load()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--one", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    from popfit_recovery import INIT

    from ctkinetics.estimation.population import fit_population

    ds, m = study()
    t0 = time.perf_counter()
    res = fit_population(ds, m, init=INIT, covariance=False)
    print(f"original fit: -2LL {res.ofv:.3f}, converged {res.converged}, "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    rows, runs = [], {}
    for label, workers, n in (("1 worker (before)", 1, a.one), ("2 workers", 2, a.replicates),
                              ("1 worker (after)", 1, a.one)):
        b, wall, before, after = timed(ds, m, res, n, a.seed, workers)
        runs[label] = b
        reps = b.replicates
        cpu = float(reps["cpu_seconds"].sum())
        rows.append(dict(run=label, workers=workers, replicates=n, wall_s=wall,
                         per_s=n / wall, cpu_s_per_replicate=cpu / n,
                         failed_pct=b.shares["failed_pct"],
                         not_converged_pct=b.shares["not_converged_pct"],
                         at_bound_pct=b.shares["at_bound_pct"], load_before=before,
                         load_after=after))
        print(f"{label}: {n} replicates in {wall:.0f} s ({n / wall:.3f}/s), load "
              f"{before} -> {after}", flush=True)
    one = np.mean([r["per_s"] for r in rows if r["workers"] == 1])
    for r in rows:
        r["speedup_vs_1"] = r["per_s"] / one
    import pandas as pd

    table = pd.DataFrame(rows)
    # identical replicates whatever the number of workers
    e1 = runs["1 worker (before)"].estimates
    e2 = runs["2 workers"].estimates
    shared = e2[e2["replicate"].isin(e1["replicate"])].reset_index(drop=True)
    same = shared.equals(e1.reset_index(drop=True))
    text = table.to_string(index=False, float_format=lambda v: f"{v:.3f}")
    text += (f"\nreplicates 0..{a.one - 1} identical on 1 and 2 workers: {same}"
             f"\nmachine: {os.cpu_count()} CPUs; 2 workers vs the mean of the 1-worker runs: "
             f"{rows[1]['speedup_vs_1']:.2f}x\n")
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(f"# bench_bootstrap: 12-participant stein2019 study, FOCE-I, seed "
                     f"{a.seed}\n{text}")


if __name__ == "__main__":
    main()
