"""Virtual-trial throughput on a local Dask cluster: trials/s for 1 and 2 worker processes.

Runs the seed design (data/sample/trial_sim_seed.toml: kinetics, logistic DLT link, TITE-BOIN
with stagger, expansion, two rules) and prints one table row per worker count: wall time
(cluster start excluded), trials/s, scaling efficiency (speed-up / workers) and peak memory
(RSS high-water mark of this process and of the largest worker). Also checks that both runs
wrote byte-identical trials.csv.

    python benchmarks/bench_trialsim.py [--trials 10000] [--seed 1] [--workers 1,2]

Timings depend on machine load: on a shared machine they are noisy.
"""
from __future__ import annotations

import argparse
import hashlib
import resource
import tempfile
import time
from pathlib import Path

SPEC = Path(__file__).resolve().parents[1] / "data" / "sample" / "trial_sim_seed.toml"


def _worker_peak_mb():
    import resource as r

    return r.getrusage(r.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    from distributed import Client, LocalCluster

    from ctkinetics.trialsim import load_spec, simulate_trials

    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    spec = load_spec(SPEC)
    rows = []
    tmp = Path(tempfile.mkdtemp())
    for w in [int(x) for x in args.workers.split(",")]:
        with LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
                Client(cl) as client:
            t0 = time.perf_counter()
            path = tmp / f"trials_{w}.csv"
            simulate_trials(spec, args.trials, args.seed, client=client, trials_path=path, keep_trials=False)
            wall = time.perf_counter() - t0
            worker_mb = max(client.run(_worker_peak_mb).values())
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        rows.append((w, wall, args.trials / wall, worker_mb, digest))
    main_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    base = rows[0][2] / rows[0][0]
    print(f"virtual trials of {SPEC.name}: {args.trials:,} trials x {len(spec.rules)} rules, seed {args.seed}")
    print(f"{'workers':>7} {'wall_s':>8} {'trials/s':>9} {'efficiency':>10} {'peak_worker_MB':>14} {'trials.csv sha256':>18}")
    for w, wall, rate, wmb, dig in rows:
        print(f"{w:>7} {wall:>8.1f} {rate:>9.1f} {rate / (base * w):>10.2f} {wmb:>14.0f} {dig:>18}")
    print(f"peak memory of the client process: {main_mb:.0f} MB")
    print("identical trials.csv across worker counts:", len({r[4] for r in rows}) == 1)


if __name__ == "__main__":
    main()
