"""Running many virtual trials: batches, in this process or on a Dask cluster.

``simulate_trials(spec, n_trials, seed, client=None)`` splits trials 0 … n−1 into batches of
consecutive indices. A batch (:func:`run_batch`) draws each trial from its own seed
(``SeedSequence(seed, spawn_key=(trial,))``) and returns the batch's per-trial rows and an
:class:`~ctkinetics.trialsim.aggregate.Accumulator`; curves never leave the worker. Batches
are consumed in index order (a small reorder buffer), so ``trials.csv`` and the summary are
identical whatever the number of workers or the order in which batches finish. At most
``2 × workers`` batches are in flight, which bounds memory for any number of trials.

Where the work runs:

- ``client=None``: a ``distributed.LocalCluster`` with ``workers`` single-threaded worker
  processes (default: one per CPU), closed at the end;
- ``scheduler="tcp://host:8786"``: an existing Dask cluster;
- ``client=<distributed.Client>``: that client (left open);
- ``client="serial"``: this process, no Dask (debugging, tests).
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ctkinetics.errors import SettingsError
from ctkinetics.trialsim.aggregate import Accumulator, accumulate, trial_rows
from ctkinetics.trialsim.result import TrialSimResult, build_result
from ctkinetics.trialsim.trial import simulate_trials_local

TRIAL_COLUMNS = ("trial", "rule", "level", "dose", "selected", "mtd", "n", "dlt", "n_expansion",
                 "dlt_expansion", "cmax_gmean", "cmax_median", "auc0_28_gmean", "auc0_28_median",
                 "duration_escalation_days", "duration_total_days", "days_suspended", "stop_rule")


@dataclass
class BatchResult:
    start: int
    stop: int
    rows: dict  # column -> list
    acc: Accumulator


def run_batch(spec, seed: int, start: int, stop: int) -> BatchResult:
    """Trials ``start`` … ``stop − 1`` (runs on a worker; module-level so it pickles)."""
    trials = range(start, stop)
    results = simulate_trials_local(spec, seed, trials)
    return BatchResult(start, stop, trial_rows(spec, trials, results), accumulate(spec, results))


class _Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, stream=None, enabled: bool = True):
        self.total, self.done, self.stream, self.enabled = total, 0, stream or sys.stderr, enabled
        self.t0 = time.perf_counter()

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(30 * frac)
        rate = self.done / max(time.perf_counter() - self.t0, 1e-9)
        self.stream.write(f"\rtrial-sim [{bar:<30}] {self.done:,}/{self.total:,} trials  {rate:,.0f}/s")
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def _check_count(name, v, minimum=1):
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise SettingsError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return v


def _batches(n_trials: int, batch_size: int):
    return [(s, min(s + batch_size, n_trials)) for s in range(0, n_trials, batch_size)]


def simulate_trials(spec, n_trials: int, seed: int, client=None, *, workers: int | None = None,
                    scheduler: str | None = None, batch_size: int | None = None,
                    progress: bool = False, trials_path=None, keep_trials: bool = True) -> TrialSimResult:
    """Simulate ``n_trials`` virtual trials of ``spec`` under each of its decision rules.

    Parameters
    ----------
    spec : TrialSpec or path
        A spec (:func:`ctkinetics.trialsim.load_spec`) or the path of its TOML file.
    n_trials : int
    seed : int
        Trial i uses ``numpy.random.SeedSequence(seed, spawn_key=(i,))``: results do not
        depend on batching or on the number of workers.
    client : None, "serial" or distributed.Client
        See the module doc.
    workers : int, optional
        Worker processes of the local cluster (default: CPU count).
    scheduler : str, optional
        Address of an existing Dask scheduler.
    batch_size : int, optional
        Trials per task (default: about 4 tasks per worker, at most 250 trials).
    progress : bool
        Progress bar on stderr.
    trials_path : path, optional
        Stream the per-trial table to this CSV as batches arrive.
    keep_trials : bool
        Keep the per-trial table in the result (set False for very large runs).

    Returns
    -------
    TrialSimResult

    Examples
    --------
    >>> from ctkinetics.trialsim import load_spec, simulate_trials
    >>> r = simulate_trials(load_spec("data/sample/trial_sim_seed.toml"), 20, seed=1,
    ...                     client="serial")                                # doctest: +SKIP
    >>> r.summary[["rule", "level", "pct_selected"]]                       # doctest: +SKIP
    """
    import pandas as pd

    from ctkinetics.trialsim.spec import TrialSpec, load_spec

    if not isinstance(spec, TrialSpec):
        spec = load_spec(spec)
    n_trials = _check_count("n_trials", n_trials)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SettingsError(f"seed must be a non-negative integer, got {seed!r}")
    if workers is not None:
        _check_count("workers", workers)
    if scheduler is not None and (client is not None or workers is not None):
        raise SettingsError("give either a scheduler address or a number of workers/a client, not both")

    own = None
    if client == "serial":
        n_workers = 1
    elif client is None:
        from distributed import Client, LocalCluster

        if scheduler is not None:
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise SettingsError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None
            own = (client, None)
        else:
            cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                   processes=True, dashboard_address=None)
            client = Client(cluster)
            own = (client, cluster)
    if client != "serial":
        n_workers = max(len(client.scheduler_info().get("workers", {})), 1)
    if batch_size is None:
        batch_size = max(1, min(250, math.ceil(n_trials / (4 * n_workers))))
    _check_count("batch_size", batch_size)
    batches = _batches(n_trials, batch_size)

    bar = _Progress(n_trials, enabled=progress)
    acc = Accumulator(len(spec.rules), len(spec.design.levels))
    frames = [] if keep_trials else None
    out = None
    if trials_path is not None:
        Path(trials_path).parent.mkdir(parents=True, exist_ok=True)
        out = open(trials_path, "w", newline="")
    header = [True]

    def consume(res: BatchResult):
        acc.merge(res.acc)
        df = pd.DataFrame(res.rows, columns=list(TRIAL_COLUMNS))
        if out is not None:
            df.to_csv(out, index=False, header=header[0], lineterminator="\n")
            header[0] = False
        if frames is not None:
            frames.append(df)
        bar.update(res.stop - res.start)

    try:
        if client == "serial":
            for s, e in batches:
                consume(run_batch(spec, seed, s, e))
        else:
            _run_dask(client, spec, seed, batches, consume, max_inflight=2 * n_workers)
    finally:
        if out is not None:
            out.close()
        if own is not None:
            own[0].close()
            if own[1] is not None:
                own[1].close()
    trials = pd.concat(frames, ignore_index=True) if frames else None
    return build_result(spec, n_trials, seed, acc, trials)


def _run_dask(client, spec, seed, batches, consume, max_inflight: int):
    from distributed import as_completed

    spec_future = client.scatter(spec, broadcast=True)
    futures = {}
    nxt_submit = 0
    ready = {}
    nxt_consume = 0
    done = as_completed()

    def submit():
        nonlocal nxt_submit
        while nxt_submit < len(batches) and nxt_submit - nxt_consume < max_inflight:
            s, e = batches[nxt_submit]
            f = client.submit(run_batch, spec_future, seed, s, e, pure=False)
            futures[f.key] = nxt_submit
            done.add(f)
            nxt_submit += 1

    submit()
    try:
        for f in done:
            ready[futures.pop(f.key)] = f.result()
            f.release()
            while nxt_consume in ready:
                consume(ready.pop(nxt_consume))
                nxt_consume += 1
            submit()
    except BaseException:
        for f in list(done.futures):
            f.cancel()
        raise
