"""Running many virtual trials: batches on an executor, consumed in order.

``simulate_trials(spec, n_trials, seed, executor)`` splits trials 0 … n−1 into batches of
consecutive indices. A batch (:func:`run_batch`) draws each trial from its own seed
(``SeedSequence(seed, spawn_key=(trial,))``), runs the vectorised calendar of every rule
(:mod:`ctkinetics.trialsim.calendar`) and returns the batch's per-trial table (as CSV text
and/or columns) and an :class:`~ctkinetics.trialsim.aggregate.Accumulator` of exact integer
sums; curves never leave the worker. Batches are consumed in index order, so ``trials.csv``
and the summary are identical whatever the executor, the number of workers or the batch size.

Executors (:mod:`ctkinetics.executors`, re-exported by :mod:`ctkinetics.trialsim.executors`): :class:`SerialExecutor` (this process),
:class:`LocalDaskExecutor` (default; a local cluster started for the run),
:class:`DaskExecutor` (an existing cluster).
"""
from __future__ import annotations

import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

from ctkinetics.errors import SettingsError
from ctkinetics.trialsim.aggregate import TRIAL_COLUMNS, Accumulator, accumulate, trial_columns
from ctkinetics.trialsim.executors import (DaskExecutor, LocalDaskExecutor, SerialExecutor,
                                           default_batch_size, legacy_executor)
from ctkinetics.trialsim.result import TrialSimResult, build_result
from ctkinetics.trialsim.trial import simulate_trials_local

__all__ = ["simulate_trials", "run_batch", "BatchResult", "TRIAL_COLUMNS"]


@dataclass
class BatchResult:
    start: int
    stop: int
    csv: str | None  # the batch's rows of trials.csv (no header), when asked for
    columns: dict | None  # column -> ndarray, when the table is kept in memory
    acc: Accumulator


def _table(columns):
    import pandas as pd

    return pd.DataFrame(columns, columns=list(TRIAL_COLUMNS))


def run_batch(spec, seed: int, start: int, stop: int, csv: bool = True, columns: bool = False) -> BatchResult:
    """Trials ``start`` … ``stop − 1`` (runs on a worker; module-level so it pickles)."""
    sim = simulate_trials_local(spec, seed, range(start, stop))
    cols = trial_columns(spec, sim) if csv or columns else None
    text = None
    if csv:
        from ctkinetics.outputs import csv_text

        text = csv_text(_table(cols), header=False)
    return BatchResult(start, stop, text, cols if columns else None, accumulate(spec, sim))


class _Progress:
    """A one-line progress bar on stderr, or calls of ``callback(done, total)``."""

    def __init__(self, total: int, stream=None, enabled=True):
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.callback = enabled if callable(enabled) else None
        self.enabled = bool(enabled) and self.callback is None
        self.t0 = time.perf_counter()

    def update(self, n: int) -> None:
        self.done += n
        if self.callback is not None:
            self.callback(self.done, self.total)
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


_EXECUTORS = (SerialExecutor, LocalDaskExecutor, DaskExecutor)


def _executor(executor, legacy: dict):
    """The executor to use; the old ``client=``/``workers=``/``scheduler=``/``batch_size=``
    arguments still work, with a DeprecationWarning naming the replacement."""
    if executor is not None and not isinstance(executor, _EXECUTORS):
        legacy["client"], executor = executor, None  # the old 4th positional argument
    given = {k: v for k, v in legacy.items() if v is not None}
    if not given:
        return executor or LocalDaskExecutor()
    if executor is not None:
        raise SettingsError(f"give either an executor or the deprecated {', '.join(given)}, not both")
    ex = legacy_executor(**legacy)
    warnings.warn(f"simulate_trials({', '.join(f'{k}=...' for k in given)}) is deprecated; pass "
                  f"executor={type(ex).__name__}(...) (ctkinetics.trialsim.executors) instead",
                  DeprecationWarning, stacklevel=3)
    return ex


def simulate_trials(spec, n_trials: int, seed: int, executor=None, *, progress=False,
                    trials_path=None, keep_trials: bool = True, client=None, workers: int | None = None,
                    scheduler: str | None = None, batch_size: int | None = None) -> TrialSimResult:
    """Simulate ``n_trials`` virtual trials of ``spec`` under each of its decision rules.

    Parameters
    ----------
    spec : TrialSpec or path
        A spec (:func:`ctkinetics.trialsim.load_spec`) or the path of its TOML file.
    n_trials : int
    seed : int
        Trial i uses ``numpy.random.SeedSequence(seed, spawn_key=(i,))``: results do not
        depend on batching, the executor or the number of workers.
    executor : SerialExecutor, LocalDaskExecutor or DaskExecutor, optional
        Where the batches run and how big they are (default ``LocalDaskExecutor()``: one
        worker process per CPU).
    progress : bool or callable
        Progress bar on stderr, or ``progress(done, total)`` called after each batch (in
        trial order).
    trials_path : path, optional
        Write the per-trial table to this CSV (spreadsheet-safe), streamed as batches arrive
        into a temporary file beside it that takes the name only when the run completed (a
        failed run leaves no new ``trials_path``).
    keep_trials : bool
        Keep the per-trial table in the result (set False for very large runs).
    client, workers, scheduler, batch_size
        Deprecated: ``client="serial"`` is ``SerialExecutor(batch_size)``, a
        ``distributed.Client`` or ``scheduler`` address is ``DaskExecutor(...)``, ``workers``
        is ``LocalDaskExecutor(workers, batch_size)``.

    Returns
    -------
    TrialSimResult

    Raises
    ------
    ClusterError
        The Dask cluster failed (lost scheduler, no worker, workers dying repeatedly).

    Examples
    --------
    >>> from ctkinetics.trialsim import SerialExecutor, load_spec, simulate_trials
    >>> r = simulate_trials(load_spec("data/sample/trial_sim_seed.toml"), 200, seed=1,
    ...                     executor=SerialExecutor())                      # doctest: +SKIP
    >>> r.summary[["rule", "level", "pct_selected"]]                       # doctest: +SKIP
    """
    from ctkinetics.trialsim.spec import TrialSpec, load_spec

    executor = _executor(executor, {"client": client, "workers": workers, "scheduler": scheduler,
                                    "batch_size": batch_size})
    if not isinstance(spec, TrialSpec):
        spec = load_spec(spec)
    n_trials = _check_count("n_trials", n_trials)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SettingsError(f"seed must be a non-negative integer, got {seed!r}")
    acc = Accumulator(len(spec.rules), len(spec.design.levels))
    parts = [] if keep_trials else None
    bar = _Progress(n_trials, enabled=progress)
    with _cluster_errors(), _trials_file(trials_path) as out, executor.connect() as session:
        size = executor.batch_size or default_batch_size(n_trials, session.n_workers)
        tasks = [(s, min(s + size, n_trials), out is not None, keep_trials) for s in range(0, n_trials, size)]

        def consume(res: BatchResult):
            acc.merge(res.acc)
            if out is not None:
                out.write(res.csv)
            if parts is not None:
                parts.append(_table(res.columns))
            bar.update(res.stop - res.start)

        session.run(run_batch, (spec, seed), tasks, consume)
    trials = None
    if parts:
        import pandas as pd

        trials = pd.concat(parts, ignore_index=True)
    return build_result(spec, n_trials, seed, acc, trials)


@contextmanager
def _cluster_errors():
    """A cluster failure of the (layer-0) executors raised as trial-sim's ClusterError (a
    SimulationError, which ``ctk trial-sim`` reports in one line)."""
    from ctkinetics.executors import ClusterError as ExecutorClusterError
    from ctkinetics.trialsim.failures import ClusterError

    try:
        yield
    except ExecutorClusterError as exc:
        if isinstance(exc, ClusterError):
            raise
        raise ClusterError(str(exc)) from None


@contextmanager
def _trials_file(path):
    """trials.csv streamed through :func:`ctkinetics.outputs.atomic_file`: a temporary file
    beside the target that takes its name only when the run completed."""
    if path is None:
        yield None
        return
    from ctkinetics.outputs import atomic_file

    with atomic_file(path) as fh:
        fh.write(",".join(TRIAL_COLUMNS) + "\n")
        yield fh
