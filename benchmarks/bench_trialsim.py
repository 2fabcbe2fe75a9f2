"""Virtual-trial throughput: trials/s in this process and on local Dask clusters of 1 and 2
worker processes, the scaling efficiency, and where the time goes.

Runs a spec (default: the seed design, data/sample/trial_sim_seed.toml — Stein kinetics,
logistic DLT link on Cmax, TITE-BOIN with a 14-day stagger, expansion of 9 at the MTD, two
rules) and prints:

1. one row per executor: wall time, trials/s, trials/s per worker, ratio (speed-up over
   1 worker), efficiency (ratio / workers), the workers' CPU seconds, peak memory of the largest worker, the load average
   of the machine before and after (the machine may be shared: figures taken under load are
   not the program's), and the SHA-256 of trials.csv (identical for every row);
2. where the time goes: CPU time per trial of each step of a batch, measured in this
   process (random draws, kinetic model calls — the exposure registry — the rest of the calendar, the per-trial
   table, CSV text, summary sums), and per Dask run the share of workers' time not spent in
   that work (task overhead, transfer, waiting).

Cluster start-up is excluded; the clusters (1 and 2 workers) are started together, each runs a
small warm-up (imports, model load on each worker, the compiled engine's kernels), then the
timed runs alternate: 1 worker, 2 workers, 1 worker, ... (``--repeats``), so that each ratio
compares two runs taken seconds apart (the machine may be shared) and the spread of the
ratio over the repeats is printed, and the throughput ratio over the whole run (total
wall of the 1-worker runs / total wall of the N-worker runs: the machine's speed drifts by 10-20 % within a
minute, so a single repeat's ratio is noisy). Batches: the executors' default size. ``--model cart_bcell_sle`` swaps the spec's kinetics for that library model with
its own typical values and ω² (qPCR observable), e.g. the mechanistic model of issue 12.6.

    python benchmarks/bench_trialsim.py [--trials 10000] [--seed 1] [--workers 1,2] [--repeats 3]
                                        [--spec FILE] [--model NAME] [--rtol R]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

SPEC = Path(__file__).resolve().parents[1] / "data" / "sample" / "trial_sim_seed.toml"


def _worker_peak_mb():
    import resource as r

    return r.getrusage(r.RUSAGE_SELF).ru_maxrss / 1024.0


def _load():
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def breakdown(spec, n_trials, seed, batch):
    """CPU seconds per trial of each step of run_batch, in this process."""
    from ctkinetics.outputs import csv_text
    from ctkinetics.trialsim import kinetics
    from ctkinetics.trialsim.aggregate import accumulate, trial_columns
    from ctkinetics.trialsim.calendar import run_rule
    from ctkinetics.trialsim.draws import draw_trials
    from ctkinetics.trialsim.runner import _table
    from ctkinetics.trialsim.trial import SimulatedTrials

    spent = {}

    def tick(name, f):
        c = time.process_time()
        out = f()
        spent[name] = spent.get(name, 0.0) + time.process_time() - c
        return out

    model_call = kinetics.pair_exposures
    curves = [0]

    def timed(*a, **k):
        curves[0] += len(a[3])
        return tick("kinetics", lambda: model_call(*a, **k))

    kinetics.pair_exposures = timed
    try:
        draw_trials(spec, seed, range(2))  # model load
        spent.clear()
        for s in range(0, n_trials, batch):
            d = tick("random draws", lambda: draw_trials(spec, seed, range(s, min(s + batch, n_trials))))
            outs = tick("calendar", lambda: tuple(run_rule(spec, r, d) for r in spec.rules))
            sim = SimulatedTrials(d, outs)
            cols = tick("per-trial table", lambda: trial_columns(spec, sim))
            tick("CSV text", lambda: csv_text(_table(cols), header=False))
            tick("summary sums", lambda: accumulate(spec, sim))
    finally:
        kinetics.pair_exposures = model_call
    spent["calendar"] -= spent.get("kinetics", 0.0)  # the model calls happen inside the calendar
    return {k: v / n_trials for k, v in spent.items()}, curves[0] / n_trials


def with_model(spec, name, rtol=None):
    """``spec`` with the kinetics of library model ``name``: its typical values and ω² (and
    the ODE solver's ``rtol``, default the model file's)."""
    import dataclasses

    from ctkinetics.trialsim.kinetics import KineticsSpec, cached_model

    if name is None:
        return dataclasses.replace(spec, kinetics=dataclasses.replace(spec.kinetics, rtol=rtol))
    m = cached_model(name)
    omega = tuple((p.name, float(p.omega2)) for p in m.parameters if p.omega2)
    kin = KineticsSpec(name, spec.kinetics.observable, (), omega, spec.kinetics.until_day, rtol)
    return dataclasses.replace(spec, kinetics=kin)


def _cpu_seconds():
    import resource as r

    u = r.getrusage(r.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def main() -> None:
    os.environ.setdefault("CTK_THREADS", "1")  # one engine thread, as in a Dask worker

    from ctkinetics.executors import local_cluster
    from ctkinetics.trialsim import DaskExecutor, SerialExecutor, load_spec, simulate_trials
    from ctkinetics.trialsim.executors import default_batch_size
    from ctkinetics.trialsim.kinetics import cached_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--repeats", type=int, default=1,
                    help="timed runs per cluster, alternating 1, 2, ... workers (both clusters stay up)")
    ap.add_argument("--spec", default=str(SPEC))
    ap.add_argument("--model", default=None, help="library model for the kinetics (its defaults and omega^2)")
    ap.add_argument("--rtol", type=float, default=None,
                    help="ODE solver rtol of the virtual participants (default: the model file's)")
    args = ap.parse_args()
    spec = load_spec(args.spec)
    if args.model or args.rtol:
        spec = with_model(spec, args.model, args.rtol)
    tmp = Path(tempfile.mkdtemp())
    rows = []

    def timed_run(label, workers, executor, worker_cpu):
        path = tmp / f"trials_{label.replace(' ', '_')}.csv"
        load0 = _load()
        cpu0 = worker_cpu()
        t0 = time.perf_counter()
        c0 = _cpu_seconds()
        simulate_trials(spec, args.trials, args.seed, executor, trials_path=path, keep_trials=False)
        wall = time.perf_counter() - t0
        return dict(label=label, workers=workers, wall=wall, client_cpu=_cpu_seconds() - c0,
                    worker_cpu=worker_cpu() - cpu0, load=f"{load0} -> {_load()}",
                    sha=hashlib.sha256(path.read_bytes()).hexdigest()[:12])

    simulate_trials(spec, 50, args.seed, SerialExecutor(), keep_trials=False)  # imports, model, kernels
    r = timed_run("in-process", 1, SerialExecutor(), _cpu_seconds)
    r["worker_cpu"] = r["client_cpu"]
    r["worker_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    r["batch"] = SerialExecutor().batch_size or default_batch_size(args.trials, 1)
    rows.append(r)
    counts = [int(x) for x in args.workers.split(",")]
    with ExitStack() as stack:
        clusters = {}
        for w in counts:
            # the project's local cluster (the workers `ctk trial-sim --workers N` starts)
            ex = stack.enter_context(local_cluster(workers=w))
            simulate_trials(spec, 200 * w, args.seed + 1, DaskExecutor(client=ex.client, batch_size=100),
                            keep_trials=False)  # warm-up: imports, the model and its kernels on every worker
            clusters[w] = ex
        for rep in range(args.repeats):   # 1, 2, ... workers, 1, 2, ... workers: ratios within a repeat
            for w in counts:
                client = clusters[w].client

                def worker_cpu(client=client):
                    return sum(client.run(_cpu_seconds).values())
                suffix = f" #{rep + 1}" if args.repeats > 1 else ""
                r = timed_run(f"dask {w} worker{'s' if w > 1 else ''}{suffix}", w, clusters[w], worker_cpu)
                r["worker_mb"] = max(client.run(_worker_peak_mb).values())
                r["batch"] = default_batch_size(args.trials, w)
                r["repeat"] = rep
                rows.append(r)

    n_bd = min(args.trials, 5000)  # the breakdown runs in this process at the 1-worker batch size
    per_trial, curves = breakdown(spec, n_bd, args.seed, default_batch_size(n_bd, 1))
    cpu_per_trial = sum(per_trial.values())
    one = {r.get("repeat"): r["wall"] for r in rows if r["workers"] == 1 and r["label"].startswith("dask")}
    kin = spec.kinetics
    print(f"virtual trials of {Path(args.spec).name} (kinetics "
          f"{f'{kin.model}, rtol {kin.rtol or cached_model(kin.model).rtol:g}' if kin else 'off'}): "
          f"{args.trials:,} trials x {len(spec.rules)} rules, seed {args.seed}, {os.cpu_count()} CPUs")
    print(f"{'executor':<18} {'batch':>5} {'wall_s':>7} {'trials/s':>9} {'per worker':>10} {'ratio':>6} "
          f"{'efficiency':>10} {'worker_cpu_s':>12} {'trials/cpu_s':>12} {'cpu_share':>9} {'peak_MB':>7}  "
          f"{'load avg 1/5/15 min before -> after':<36} {'trials.csv':>12}")
    for r in rows:
        rate = args.trials / r["wall"]
        ratio = one.get(r.get("repeat"), rows[0]["wall"]) / r["wall"] if r["label"].startswith("dask") else float("nan")
        share = r["worker_cpu"] / (r["wall"] * r["workers"])
        print(f"{r['label']:<18} {r['batch']:>5} {r['wall']:>7.2f} {rate:>9.0f} {rate / r['workers']:>10.0f} "
              f"{ratio:>6.2f} {ratio / r['workers']:>10.2f} {r['worker_cpu']:>12.2f} "
              f"{args.trials / r['worker_cpu']:>12.0f} {share:>9.0%} "
              f"{r['worker_mb']:>7.0f}  {r['load']:<36} {r['sha']:>12}")
    print("identical trials.csv for every executor:", len({r["sha"] for r in rows}) == 1)
    print("ratio: speed-up over the 1-worker Dask run of the same repeat (wall); efficiency: ratio / workers")
    for w in counts[1:] if 1 in counts else ():
        ratios = sorted(one[r["repeat"]] / r["wall"] for r in rows if r["workers"] == w and "repeat" in r)
        print(f"{w} workers / 1 worker over {len(ratios)} repeat(s): " + ", ".join(f"{x:.2f}" for x in ratios)
              + f" (median {ratios[len(ratios) // 2]:.2f})")
        walls = [r["wall"] for r in rows if r["workers"] == w and "repeat" in r]
        print(f"{w} workers / 1 worker in throughput over the whole run (total wall of the 1-worker runs / "
              f"total wall of the {w}-worker runs, same trials): "
              f"{sum(one[r] for r in range(len(walls))) / sum(walls):.2f}")
    print("cpu_share: the workers' CPU seconds / (wall x workers): below 100 % the workers waited (for the "
          "CPU on a loaded machine, for tasks, for the client); trials/cpu_s: trials per CPU second of the "
          "workers (what one worker does on a core of its own)")
    print(f"\nwhere the time goes (CPU time per trial, in this process, {n_bd:,} trials in batches of "
          f"{default_batch_size(n_bd, 1):,}; {curves:.1f} model curves per trial; "
          f"'kinetics' is the exposure registry, model_exposure):")
    for k, v in sorted(per_trial.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<16} {1e3 * v:7.3f} ms  {100 * v / cpu_per_trial:5.1f} %")
    if curves:
        print(f"  exposure per model curve: {1e6 * per_trial.get('kinetics', 0.0) / curves:.1f} us CPU")
    print(f"  {'total':<16} {1e3 * cpu_per_trial:7.3f} ms  -> {1 / cpu_per_trial:,.0f} trials per CPU-second")


if __name__ == "__main__":
    main()
