"""ctkinetics.executors (layer 0): tasks consumed in task order on every executor; the module
imports nothing above ctkinetics.errors; trial-sim's names are the same objects."""
import ast
import doctest
from pathlib import Path

import pytest

import ctkinetics.executors as ex


def test_layer_zero_imports_only_errors():
    tree = ast.parse(Path(ex.__file__).read_text(encoding="utf-8"))
    mods = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    mods += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert {m for m in mods if m.startswith("ctkinetics")} == {"ctkinetics.errors"}


def test_docstring_examples_run():
    assert doctest.testmod(ex).failed == 0


def test_trialsim_re_exports_the_same_executors():
    from ctkinetics import trialsim
    from ctkinetics.trialsim import executors as tex

    for name in ("SerialExecutor", "LocalDaskExecutor", "DaskExecutor"):
        assert getattr(trialsim, name) is getattr(ex, name) is getattr(tex, name)
    # trial-sim's ClusterError is still a SimulationError and also the executors' one
    assert issubclass(trialsim.ClusterError, trialsim.SimulationError)
    assert issubclass(trialsim.ClusterError, ex.ClusterError)


def _square_after(k, delay):
    import time

    time.sleep(delay)
    return k * k


def test_local_dask_hands_results_back_in_task_order():
    pytest.importorskip("distributed")
    # the first task is the slowest: a worker finishes later tasks first, yet results are
    # consumed 0, 1, 2, ... as with the serial executor
    tasks = [(k, 0.6 if k == 0 else 0.0) for k in range(6)]
    got, want = [], []
    with ex.SerialExecutor().connect() as s:
        s.run(_square_after, (), tasks, want.append)
    with ex.LocalDaskExecutor(workers=2).connect() as s:
        assert s.n_workers == 2
        s.run(_square_after, (), tasks, got.append)
    assert got == want == [0, 1, 4, 9, 16, 25]


def test_options_are_checked():
    from ctkinetics.errors import SettingsError

    with pytest.raises(SettingsError, match="batch_size"):
        ex.SerialExecutor(batch_size=0)
    with pytest.raises(SettingsError, match="address or a client"):
        ex.DaskExecutor()


def _threads_env():
    import os

    from ctkinetics.modeling.compiled import default_threads

    return os.environ.get("CTK_THREADS"), default_threads()


def _worker_settings():
    import os

    import dask

    return (os.environ.get("MALLOC_TRIM_THRESHOLD_"),
            {k: dask.config.get(k) for k in ex.QUIET_MONITORING})


def test_local_workers_allocate_without_dasks_malloc_trim_and_monitor_quietly():
    """Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 before spawning a worker: glibc then
    unmaps freed memory at every free above 64 KiB and a batch of virtual trials cost ~40 %
    more CPU in a worker than in the process (benchmarks/bench_trialsim.py). Our local
    workers start without it, and with Dask's periodic book-keeping slowed down (the
    profiler off: it is not the default, so the workers got our configuration)."""
    pytest.importorskip("distributed")
    import dask

    assert dask.config.get("distributed.worker.profile.enabled") is True   # Dask's default
    got = []
    with ex.LocalDaskExecutor(workers=1).connect() as s:
        s.run(_worker_settings, (), [()], got.append)
    assert got == [(None, {"distributed.admin.tick.interval": "1s",
                           "distributed.admin.system-monitor.interval": "5s",
                           "distributed.worker.profile.enabled": False})]
    assert dask.config.get("distributed.worker.profile.enabled") is True   # this process: as it was


def test_local_scheduler_does_not_drop_workers_after_a_pause():
    """Dask drops a worker whose heartbeats stopped for 5 minutes (its default worker-ttl):
    every process of a local cluster stops together (a laptop's sleep), and on waking the
    scheduler removed all its workers. Ours has no worker-ttl; this process keeps Dask's."""
    pytest.importorskip("distributed")
    import dask

    assert dask.config.get("distributed.scheduler.worker-ttl") == "5 minutes"  # Dask's default
    with ex._local_client(1) as client:
        assert client.cluster.scheduler.worker_ttl is None
    assert dask.config.get("distributed.scheduler.worker-ttl") == "5 minutes"


def test_local_workers_run_the_engine_on_one_thread():
    pytest.importorskip("distributed")
    got = []
    # local_cluster: the workers of LocalDaskExecutor, kept open for several runs
    with ex.local_cluster(workers=1) as executor:
        assert isinstance(executor, ex.DaskExecutor)
        for _ in range(2):
            with executor.connect() as s:
                s.run(_threads_env, (), [()], got.append)
    assert got == [("1", 1)] * 2


def test_local_cluster_keeps_dask_warnings_off_the_terminal():
    """Dask's shutdown warnings ("Worker process still alive ... killing") reached the terminal
    of `ctk report --bootstrap` under load: only Dask's errors are logged while our cluster runs
    (a process of its own, as `ctk`: Dask's log handler writes to the real stderr)."""
    pytest.importorskip("distributed")
    import subprocess
    import sys

    script = (
        "import logging\n"
        "import ctkinetics.executors as ex\n"
        "log = logging.getLogger('distributed.nanny')\n"
        "with ex.local_cluster(workers=1):\n"
        "    log.warning('Worker process still alive, killing')\n"
        "    log.error('a Dask error still shows')\n"
        "log.warning('outside the cluster a warning shows')\n")
    err = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120).stderr
    assert "still alive" not in err
    assert "a Dask error still shows" in err
    assert "outside the cluster a warning shows" in err       # the user's setting is restored
