"""Where batches of virtual trials run: the executors of :mod:`ctkinetics.executors` (re-exported
here) and the trial-sim policy for them (batch size, the deprecated arguments).

- :class:`SerialExecutor` — this process, one batch after another (no Dask);
- :class:`LocalDaskExecutor` — a ``distributed.LocalCluster`` of single-threaded worker
  processes started for the run and closed at its end;
- :class:`DaskExecutor` — an existing Dask cluster, by scheduler address or ``Client``.

Each has a ``batch_size`` (trials per task; default :func:`default_batch_size`). An executor
runs tasks and hands their results back **in task order** (a small reorder buffer), at most
``2 × workers`` tasks in flight, so memory stays bounded and the output does not depend on
which worker finished first.

Faults on Dask (a dead worker, a lost scheduler, a task that raises): see
:mod:`ctkinetics.executors`. When a run ends early the caller has consumed exactly the batches
before the failure (and must not present its outputs as complete).

>>> from ctkinetics.trialsim import LocalDaskExecutor, load_spec, simulate_trials
>>> spec = load_spec("data/sample/trial_sim_seed.toml")
>>> r = simulate_trials(spec, 10_000, seed=1,
...                     executor=LocalDaskExecutor(workers=2))              # doctest: +SKIP
>>> r = simulate_trials(spec, 10_000, seed=1,
...                     executor=DaskExecutor(address="tcp://10.0.0.5:8786",
...                                           batch_size=500, retries=2))   # doctest: +SKIP
"""
from __future__ import annotations

import math

from ctkinetics.errors import SettingsError
# the generic executors live in layer 0 (ctkinetics.executors) since estimation's resampling
# methods run on them too; these names stay importable from here
from ctkinetics.executors import DaskExecutor, LocalDaskExecutor, SerialExecutor
from ctkinetics.trialsim.failures import ClusterError

MIN_BATCH, MAX_BATCH = 100, 2500


def default_batch_size(n_trials: int, n_workers: int) -> int:
    """Trials per task: the same number of tasks for every worker (load balance), each as
    large as :data:`MAX_BATCH` allows — ``n_workers · ceil(n_trials / (n_workers · MAX_BATCH))``
    tasks — but at least :data:`MIN_BATCH` trials. The calendar decides a whole batch at
    once, round by round, so each round's fixed cost is shared by the batch: per trial,
    batches of 500 cost ~1.5x and of 1,000 ~1.2x the CPU of batches of 2,500 (seed spec;
    5,000 would gain nothing more).

    >>> default_batch_size(10_000, 1), default_batch_size(10_000, 2), default_batch_size(2_000, 2)
    (2500, 2500, 1000)
    """
    w = max(n_workers, 1)
    tasks = w * math.ceil(n_trials / (w * MAX_BATCH))
    return max(1, min(n_trials, max(math.ceil(n_trials / tasks), MIN_BATCH)))


def legacy_executor(client=None, workers=None, scheduler=None, batch_size=None):
    """The executor the deprecated ``simulate_trials(client=..., workers=..., scheduler=...,
    batch_size=...)`` arguments meant."""
    if scheduler is not None and (client is not None or workers is not None):
        raise SettingsError("give either a scheduler address or a number of workers/a client, not both")
    if client == "serial":
        return SerialExecutor(batch_size)
    if client is not None:
        return DaskExecutor(client=client, batch_size=batch_size)
    if scheduler is not None:
        return DaskExecutor(address=scheduler, batch_size=batch_size)
    return LocalDaskExecutor(workers=workers, batch_size=batch_size)


__all__ = ["SerialExecutor", "LocalDaskExecutor", "DaskExecutor", "ClusterError", "default_batch_size",
           "legacy_executor"]
