"""Same seed, same results whatever the executor, the number of workers or the batch size.

trials.csv byte for byte and the summary tables exactly (the summary's sums are exact
integers, so even the order in which batches are merged cannot change a digit): in this
process with batches of 1, 7 and all 24 trials; on a real local Dask cluster with 2 worker
processes and, after one is retired, 1.
"""
import warnings

import pandas as pd
import pytest

from ctkinetics.trialsim import DaskExecutor, SerialExecutor, load_spec, simulate_trials

pytest.importorskip("distributed")

SPEC = "data/sample/trial_sim_seed.toml"
N = 24


@pytest.fixture(scope="module")
def spec():
    from pathlib import Path

    return load_spec(Path(__file__).resolve().parents[2] / SPEC)


def _same(a, b):
    pd.testing.assert_frame_equal(a.summary, b.summary, check_exact=True)
    pd.testing.assert_frame_equal(a.exposure, b.exposure, check_exact=True)
    pd.testing.assert_frame_equal(a.durations, b.durations, check_exact=True)


def test_identical_results_for_any_executor_workers_and_batch_size(spec, tmp_path):
    from distributed import Client, LocalCluster

    runs, files = {}, {}
    for b in (1, 7, N):
        files["serial", b] = tmp_path / f"serial_{b}.csv"
        runs["serial", b] = simulate_trials(spec, N, 42, SerialExecutor(batch_size=b), trials_path=files["serial", b])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        files[2] = tmp_path / "w2.csv"  # 5 uneven batches: the two workers finish them out of order
        runs[2] = simulate_trials(spec, N, 42, DaskExecutor(client=client, batch_size=5), trials_path=files[2])
        client.retire_workers(n=1)  # the same cluster with one worker retired is a one-worker cluster
        client.wait_for_workers(1)
        assert len(client.scheduler_info()["workers"]) == 1
        files[1] = tmp_path / "w1.csv"
        runs[1] = simulate_trials(spec, N, 42, DaskExecutor(client=client, batch_size=11), trials_path=files[1])
    text = files["serial", N].read_bytes()
    assert len(text.splitlines()) == 1 + N * len(spec.rules) * len(spec.design.levels)
    for key, path in files.items():
        assert path.read_bytes() == text, key
        _same(runs[key], runs["serial", N])
        pd.testing.assert_frame_equal(runs[key].trials, runs["serial", N].trials, check_exact=True)
    # the table in memory is the file's
    from ctkinetics.outputs import read_csv

    back = read_csv(files[2], dtype={"level": str, "mtd": str})
    pd.testing.assert_frame_equal(back, runs[2].trials, check_dtype=False, check_exact=True)
    # a different seed gives different trials (the test above could not pass by ignoring seeds)
    other = simulate_trials(spec, N, 43, SerialExecutor())
    assert not other.trials["duration_total_days"].equals(runs[2].trials["duration_total_days"])


def test_deprecated_client_argument_still_works(spec):
    with pytest.warns(DeprecationWarning, match=r"executor=SerialExecutor"):
        old = simulate_trials(spec, 6, 3, client="serial", batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = simulate_trials(spec, 6, 3, SerialExecutor(batch_size=2))
    _same(old, new)
    with pytest.warns(DeprecationWarning):
        positional = simulate_trials(spec, 6, 3, "serial")
    _same(positional, new)


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("n", [1, 99, 100, 250, 1000, 2000, 5001, 10_000, 12_345, 100_000])
def test_default_batches_cover_the_trials_evenly_over_the_workers(n, workers):
    # tasks of at most MAX_BATCH trials, at least MIN_BATCH where there are that many, and
    # (with MIN_BATCH trials for every worker) the same number of tasks for every worker:
    # the fewest whole number per worker that keeps tasks within MAX_BATCH
    from ctkinetics.trialsim.executors import MAX_BATCH, MIN_BATCH, default_batch_size

    size = default_batch_size(n, workers)
    tasks = -(-n // size)
    assert MIN_BATCH <= size <= MAX_BATCH or size == n < MIN_BATCH
    if n >= workers * MIN_BATCH:
        per_worker = -(-n // (workers * MAX_BATCH))
        assert tasks == workers * per_worker
