"""Where tasks run: executors as objects carrying their own options (layer 0).

- :class:`SerialExecutor` — this process, one task after another (no Dask);
- :class:`LocalDaskExecutor` — a ``distributed.LocalCluster`` of single-threaded worker
  processes started for the run and closed at its end;
- :class:`DaskExecutor` — an existing Dask cluster, by scheduler address or ``Client``.

An executor's ``connect()`` gives a session whose ``run(fn, args, tasks, consume)`` calls
``fn(*args, *task)`` for every task and hands each result to ``consume`` **in task order**
(a small reorder buffer), at most ``2 × workers`` tasks in flight, so memory stays bounded
and nothing a caller computes depends on which worker finished first. Callers that want
results identical for any number of workers seed each *item* (a trial, a bootstrap
replicate), never a worker or a task. ``batch_size`` (items per task) is the caller's to
use: virtual trials batch hundreds of trials per task, bootstrap replicates one or a few.

Used by virtual trials (:mod:`ctkinetics.trialsim.runner`) and by the resampling methods of
estimation (bootstrap, SIR, covariate search); ``ctkinetics.trialsim.executors`` re-exports
these names.

Faults on Dask:

- a worker that dies (killed, out of memory) loses its tasks; the scheduler gives them to
  another worker or to the worker the nanny restarts, and the run goes on. A task whose
  workers died ``distributed.scheduler.allowed-failures`` times (default 3), or a cluster
  with no worker for ``worker_wait_s`` seconds, ends the run with :class:`ClusterError`;
- a task that raises is retried ``retries`` times (default 1) before its error ends the run;
- a lost scheduler ends the run with :class:`ClusterError` naming its address.

Nothing is consumed out of order, so when the run ends early the caller has consumed exactly
the tasks before the failure (and must not present its outputs as complete).

>>> from ctkinetics.executors import SerialExecutor
>>> out = []
>>> with SerialExecutor().connect() as session:
...     session.run(pow, (2,), [(k,) for k in range(4)], out.append)
>>> out
[1, 2, 4, 8]
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from ctkinetics.errors import CtkError, SettingsError


#: Environment of the worker processes of a :class:`LocalDaskExecutor` (Dask itself sets the
#: BLAS/OpenMP thread counts to 1): the compiled ODE engine's threads too.
WORKER_ENVIRONMENT = {"CTK_THREADS": "1"}


class ClusterError(CtkError):
    """The Dask cluster failed during a run (lost scheduler, no workers, workers dying)."""


def _check_int(name, v, minimum):
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise SettingsError(f"{name} must be an integer >= {minimum}, got {v!r}")


class _SerialSession:
    n_workers = 1
    where = "this process"

    def run(self, fn, args, tasks, consume) -> None:
        for task in tasks:
            consume(fn(*args, *task))


@dataclass(frozen=True)
class SerialExecutor:
    """Run every task in this process (debugging, tests, small runs)."""

    batch_size: int | None = None

    def __post_init__(self):
        _check_int("batch_size", self.batch_size, 1)

    @contextmanager
    def connect(self):
        yield _SerialSession()


@dataclass(frozen=True, kw_only=True)
class _DaskOptions:
    batch_size: int | None = None
    retries: int = 1
    worker_wait_s: float = 60.0

    def _check(self):
        _check_int("batch_size", self.batch_size, 1)
        _check_int("retries", self.retries, 0)
        if not (isinstance(self.worker_wait_s, (int, float)) and self.worker_wait_s > 0):
            raise SettingsError(f"worker_wait_s must be a positive number of seconds, got {self.worker_wait_s!r}")


@dataclass(frozen=True, kw_only=True)
class LocalDaskExecutor(_DaskOptions):
    """A local cluster of ``workers`` single-threaded processes (default: one per CPU), each
    with :data:`WORKER_ENVIRONMENT` (one engine thread; an existing cluster's workers should
    set ``CTK_THREADS=1`` themselves)."""

    workers: int | None = None

    def __post_init__(self):
        self._check()
        _check_int("workers", self.workers, 1)

    @contextmanager
    def connect(self):
        n = _n_workers(self.workers)
        with _local_client(n) as client:
            yield _DaskSession(client, self, f"the local Dask cluster ({n} workers)")


def _n_workers(workers) -> int:
    import os

    return workers or os.cpu_count() or 1


@contextmanager
def _local_client(n: int):
    """A client of a new local cluster of ``n`` single-threaded worker processes."""
    from distributed import Client, LocalCluster

    import logging

    # one thread of computation per worker process: the compiled engine would otherwise
    # solve a large stack on as many threads as the machine has cores, in every worker.
    # Dask's own warnings ("Worker process still alive after ... seconds, killing" at shutdown
    # under load) are not the user's business: a fault that matters reaches the user as a
    # ClusterError or a failed task, so only Dask's errors are logged.
    with _local_config(), \
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                         env=dict(WORKER_ENVIRONMENT), silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        yield client


#: Dask's periodic book-keeping in a local cluster's processes, at a pace that costs next to
#: nothing: the event-loop "tick" (a diagnostic: it logs a loop blocked for more than
#: ``distributed.admin.tick.limit``, 3 s, which a 1 s tick still sees), the system monitor
#: (CPU / memory / network samples for the dashboard) and the workers' statistical profiler
#: (a stack sample of the running task every 10 ms, for the dashboard's profile page).
#: Idle, a local cluster of 2 workers took 4.4 % of a core in this process (scheduler,
#: nannies, client) and 6.0 % in its workers at Dask's defaults (20 ms tick, 500 ms monitor,
#: profiler on), 0.8 % and 0.8 % with these. On a machine with as many cores as workers that
#: CPU is taken from the workers. The memory monitor (the nanny's guard against a worker
#: running out of memory) keeps its default; a cluster of one's own (:class:`DaskExecutor`)
#: keeps its configuration.
QUIET_MONITORING = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.profile.enabled": False,
}


def _local_config():
    """Dask's configuration for a local cluster: :data:`QUIET_MONITORING`, a scheduler that
    never drops a worker for missed heartbeats (``distributed.scheduler.worker-ttl`` None
    instead of 5 minutes), and no ``MALLOC_TRIM_THRESHOLD_`` set by the nannies before they
    spawn a worker (``distributed.nanny.pre-spawn-environ``, 64 KiB by default).

    The scheduler and its workers are processes of this machine and pause together — a
    laptop's sleep, a job stopped and continued: after a pause of more than 5 minutes Dask's
    default removed every worker as soon as the scheduler woke up, and each later task failed
    with "no Dask worker connected" (a 2-hour benchmark stopped for 10 minutes lost its
    cluster that way). A local worker that dies closes its connection, which the scheduler
    notices without heartbeats.

    glibc then gives freed memory back to the system at every free above 64 KiB (and keeps no
    dynamic mmap threshold), so a worker's many short-lived numpy arrays are mapped and
    unmapped again and again: a batch of 1,000 Stein virtual trials took ~0.98 s of its
    thread's CPU in a worker against ~0.70 s in this process — the same batch in this process
    with ``MALLOC_TRIM_THRESHOLD_=65536`` set took 0.93-1.07 s, and in a worker without it
    0.72-0.79 s. The workers then allocate as any Python process does. (A worker's own
    setting, e.g. of an existing cluster, cannot be changed from here: start such workers
    without the variable.)
    """
    import dask
    import distributed  # noqa: F401 - registers the distributed.* configuration

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return dask.config.set({"distributed.nanny.pre-spawn-environ": env,
                            "distributed.scheduler.worker-ttl": None, **QUIET_MONITORING})


@contextmanager
def local_cluster(workers: int | None = None, **options):
    """A local cluster kept open for several runs (a benchmark of many studies, a warm-up
    before a timed run): yields a :class:`DaskExecutor` on it (``options``: its batch size,
    retries, ...), with the workers of :class:`LocalDaskExecutor`.

    >>> with local_cluster(workers=2) as ex:                      # doctest: +SKIP
    ...     for study in studies:
    ...         bootstrap(study, model, 200, executor=ex)
    """
    with _local_client(_n_workers(workers)) as client:
        yield DaskExecutor(client=client, **options)


@dataclass(frozen=True, kw_only=True)
class DaskExecutor(_DaskOptions):
    """An existing Dask cluster: its scheduler ``address`` (e.g. ``tcp://10.0.0.5:8786``) or a
    connected ``client`` (left open at the end)."""

    address: str | None = None
    client: object = field(default=None, compare=False, repr=False)
    connect_timeout_s: float = 20.0

    def __post_init__(self):
        self._check()
        if (self.address is None) == (self.client is None):
            raise SettingsError("DaskExecutor needs either a scheduler address or a client")

    @contextmanager
    def connect(self):
        if self.client is not None:
            yield _DaskSession(self.client, self, f"the Dask scheduler at {_address(self.client)}")
            return
        from distributed import Client

        try:
            client = Client(self.address, timeout=f"{self.connect_timeout_s}s")
        except (OSError, TimeoutError) as exc:
            raise SettingsError(f"cannot connect to the Dask scheduler at {self.address}: {exc}") from None
        try:
            yield _DaskSession(client, self, f"the Dask scheduler at {self.address}")
        finally:
            _close_quietly(client)


def _address(client) -> str:
    try:
        return str(client.scheduler.address)
    except Exception:  # noqa: BLE001 - only for a message
        return "?"


def _close_quietly(client) -> None:
    try:
        client.close(timeout=5)
    except Exception:  # noqa: BLE001 - the scheduler may be gone already; nothing to close
        pass


class _DaskSession:
    """Tasks on a Dask client, results handed back in task order, faults turned into errors."""

    poll_s = 1.0

    def __init__(self, client, options: _DaskOptions, where: str):
        self.client, self.options, self.where = client, options, where

    @property
    def n_workers(self) -> int:
        try:
            return max(len(self.client.scheduler_info().get("workers", {})), 1)
        except Exception as exc:  # noqa: BLE001 - a dead scheduler at the start
            raise ClusterError(f"lost {self.where}: {exc}") from None

    def run(self, fn, args, tasks, consume) -> None:
        from distributed import wait

        max_inflight = 2 * self.n_workers
        index, ready = {}, {}
        submitted = consumed = 0
        no_worker_since = None
        try:
            while consumed < len(tasks):
                while submitted < len(tasks) and submitted - consumed < max_inflight:
                    f = self.client.submit(fn, *args, *tasks[submitted], pure=False, retries=self.options.retries)
                    index[f] = submitted
                    submitted += 1
                try:
                    done = wait(list(index), timeout=self.poll_s, return_when="FIRST_COMPLETED").done
                except TimeoutError:
                    done = ()
                for f in done:
                    ready[index.pop(f)] = f.result()
                    f.release()
                while consumed in ready:
                    consume(ready.pop(consumed))
                    consumed += 1
                if not done:
                    no_worker_since = self._check_health(no_worker_since)
        except Exception as exc:
            self._cancel(index)
            raise self._translate(exc, consumed, len(tasks)) from None
        except BaseException:
            self._cancel(index)
            raise

    @staticmethod
    def _cancel(futures) -> None:
        for f in futures:
            try:
                f.cancel()
            except Exception:  # noqa: BLE001 - the scheduler may be gone
                pass

    def _translate(self, exc, consumed: int, n_tasks: int):
        """The error to raise for ``exc`` met while running: a cluster fault as ClusterError
        (naming how far the run got), an error of a task as itself."""
        import concurrent.futures

        from distributed import KilledWorker

        where = f"after {consumed} of {n_tasks} tasks"
        if isinstance(exc, ClusterError):
            return ClusterError(f"{exc} ({where})")
        if isinstance(exc, CtkError):
            return exc
        if isinstance(exc, KilledWorker):
            return ClusterError(f"the Dask workers running a task died {_allowed_failures()} "
                                f"times (out of memory?) on {self.where} ({where})")
        if isinstance(exc, (concurrent.futures.CancelledError, OSError, TimeoutError)) or \
                self.client.status not in ("running", "connecting"):
            return ClusterError(f"lost {self.where} ({where}; {type(exc).__name__})")
        return exc

    def _check_health(self, no_worker_since):
        if self.client.status not in ("running", "connecting"):
            raise ClusterError(f"lost {self.where} (client {self.client.status})")
        workers = self.client.scheduler_info().get("workers", {})
        if workers:
            return None
        now = time.monotonic()
        if no_worker_since is None:
            return now
        if now - no_worker_since > self.options.worker_wait_s:
            raise ClusterError(f"no Dask worker connected to {self.where} for "
                               f"{self.options.worker_wait_s:g} s")
        return no_worker_since


def _allowed_failures() -> int:
    import dask

    return int(dask.config.get("distributed.scheduler.allowed-failures", 3))


#: The executor classes (for ``isinstance`` checks of an ``executor=`` argument).
EXECUTORS = (SerialExecutor, LocalDaskExecutor, DaskExecutor)


__all__ = ["SerialExecutor", "LocalDaskExecutor", "DaskExecutor", "ClusterError", "EXECUTORS",
           "WORKER_ENVIRONMENT", "local_cluster"]
