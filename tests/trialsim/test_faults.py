"""Dask faults on real local clusters (issue 19.6): worker processes killed by their PID.

- a worker killed mid-run (one of two, or the only one, restarted by its nanny): the run
  finishes and its results are exactly those of a run in this process;
- the only worker killed and never back: the run stops with ClusterError naming the cause;
- the scheduler killed mid-run (``ctk trial-sim --scheduler``): exit 1, one clear line (no
  traceback), and the output folder is left as it was (a previous complete run untouched,
  no temporary folder left behind).

Workers are killed after the first batch has been consumed, while the others are in flight.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctkinetics.trialsim import ClusterError, DaskExecutor, SerialExecutor, load_spec, simulate_trials

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "data" / "sample" / "trial_sim_seed.toml"
N, BATCH = 240, 20


@pytest.fixture(scope="module")
def spec():
    return load_spec(SPEC)


@pytest.fixture(scope="module")
def serial(spec, tmp_path_factory):
    path = tmp_path_factory.mktemp("serial") / "trials.csv"
    result = simulate_trials(spec, N, 9, SerialExecutor(), trials_path=path)
    return result, path.read_bytes()


def _kill_one_worker_after_first_batch(client):
    pids = client.run(os.getpid)
    killed = []

    def progress(done, total):
        if not killed:
            pid = sorted(pids.values())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return progress, killed


@pytest.mark.parametrize("n_workers", [2, 1])
def test_run_survives_a_killed_worker(spec, serial, tmp_path, n_workers):
    import pandas as pd
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0") as c, \
            Client(c) as client:
        progress, killed = _kill_one_worker_after_first_batch(client)
        path = tmp_path / "trials.csv"
        result = simulate_trials(spec, N, 9, DaskExecutor(client=client, batch_size=BATCH), progress=progress,
                                 trials_path=path)
        assert killed and killed[0] not in client.run(os.getpid).values()  # that process is gone
    assert path.read_bytes() == serial[1]
    pd.testing.assert_frame_equal(result.summary, serial[0].summary, check_exact=True)


def test_lost_worker_that_never_comes_back_stops_the_run(spec, tmp_path):
    from distributed import Client, LocalCluster

    # a worker without a nanny (as a worker on another machine, gone for good): distributed
    # 2026.8's nanny restarts its worker whatever the attribute auto_restart says
    with LocalCluster(n_workers=0, processes=True, dashboard_address=":0") as c, Client(c) as client:
        worker = _start(["distributed.cli.dask_worker", c.scheduler_address, "--nthreads", "1", "--no-nanny",
                         "--dashboard-address", ":0"])
        try:
            client.wait_for_workers(1, timeout=120)
            progress, killed = _kill_one_worker_after_first_batch(client)
            path = tmp_path / "trials.csv"
            t0 = time.monotonic()
            with pytest.raises(ClusterError, match=r"no Dask worker connected to .* for 1 s"):
                simulate_trials(spec, N, 9, DaskExecutor(client=client, batch_size=BATCH, worker_wait_s=1.0),
                                progress=progress, trials_path=path)
            assert time.monotonic() - t0 < 60
        finally:
            if worker.poll() is None:
                os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
    assert killed == [worker.pid] and not path.exists()
    assert not list(tmp_path.iterdir())  # no partial trials.csv under any name


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args):
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=ROOT)


def _ctk(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "ctkinetics.cli.main", "trial-sim", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, **kw)


def test_lost_scheduler_stops_cleanly_and_leaves_the_output_folder_as_it_was(tmp_path):
    from ctkinetics.outputs import verify

    from ctkinetics.cli.main import main

    out = tmp_path / "ts"
    assert main(["trial-sim", str(SPEC), "--trials", "30", "--seed", "1", "--out", str(out), "--workers", "0",
                 "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert verify(out) == []

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = _start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
                        "--dashboard-address", ":0"])
    worker = _start(["distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny",
                     "--dashboard-address", ":0"])
    try:
        run = _ctk(SPEC, "--trials", 4000, "--seed", 1, "--out", out, "--scheduler", address,
                   "--batch-size", BATCH)
        seen = b""
        while b"trials" not in seen:  # the progress bar: the first batch has arrived
            ch = run.stderr.read(1)
            assert ch, f"ctk trial-sim ended before its first batch: {seen!r}"
            seen += ch
        os.kill(scheduler.pid, signal.SIGKILL)
        _, err = run.communicate(timeout=120)
        err = (seen + err).decode()
    finally:
        for p in (scheduler, worker):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.wait()
    assert run.returncode == 1, err
    assert f"lost the Dask scheduler at {address}" in err and "was not written" in err
    assert "Traceback" not in err and "internal error" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the previous run, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ts"]  # no temporary folder left behind
