"""Bootstrap of a population fit against R (nlme + a case-resampling bootstrap,
tests/data/theoph_bootstrap.R: Theoph, onecpt_oral = SSfol, random effects on ka and CL,
additive error, ML; 1,000 replicates, jackknife for BCa).

- the interval code on R's own replicates gives R's percentile and BCa limits;
- a replicate fitted on the same resample as R agrees with nlme's fit of it (FOCE-I and
  nlme differ by < 0.025 on log parameters on Theoph: tests/population/test_theoph.py);
- stratified draws, read-back, flags; replicates identical on 1 and 2 Dask workers.
The 1,000-replicate comparison within Monte-Carlo error is benchmarks/bootstrap_theoph.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctkinetics.estimation.bootstrap import (
    _fit_one, bootstrap, fit_options_from, interval_table, replicate_flags,
)
from ctkinetics.estimation.flags import FLAGS
from ctkinetics.estimation.population import fit_population
from ctkinetics.estimation.population.methods import FOCEI
from ctkinetics.estimation.resampling import FitData, ModelRef, draw_subjects, replicate_rng

from population.theoph import dataset, onecpt_model

DATA = Path(__file__).resolve().parents[1] / "data"
NAMES = ["ka", "ke", "CL", "omega2_ka", "omega2_CL", "sigma"]
OURS = dict(zip(NAMES, ["ka", "ke", "CL", "omega2_ka", "omega2_CL", "sigma_conc"]))
SCALES = dict(zip(NAMES, ["log", "log", "log", "variance", "variance", "log"]))


@pytest.fixture(scope="module")
def r_boot():
    reps = pd.read_csv(DATA / "theoph_bootstrap_r_replicates.csv", dtype={"replicate": str})
    ci = pd.read_csv(DATA / "theoph_bootstrap_r_ci.csv").set_index("parameter")
    return reps, ci


@pytest.fixture(scope="module")
def theoph_fit():
    ds, m = dataset(), onecpt_model()
    return ds, m, fit_population(ds, m, random_effects="ka,CL", error="additive")


def test_interval_code_on_r_replicates_gives_r_intervals(r_boot):
    reps, ci = r_boot
    boot = reps[~reps["replicate"].str.startswith("jack") & (reps["converged"] == 1)]
    jack = reps[reps["replicate"].str.startswith("jack")]
    params = pd.DataFrame({"parameter": NAMES, "kind": "theta",
                           "estimate": ci.loc[NAMES, "estimate"].to_numpy(),
                           "scale": [SCALES[n] for n in NAMES], "unit": ""})
    t = interval_table(params, boot[NAMES], jack[NAMES], 0.95).set_index("parameter")
    for n in NAMES:
        for col in ("pct_low", "pct_high", "bca_low", "bca_high"):
            assert t.loc[n, col] == pytest.approx(ci.loc[n, col], rel=1e-9), (n, col)
        assert t.loc[n, "n_used"] == ci.loc[n, "n_ok"] == 986


def test_replicates_fitted_on_r_resamples_agree_with_nlme(r_boot, theoph_fit):
    reps, _ = r_boot
    ds, m, res = theoph_fit
    data, ref = FitData.of(ds), ModelRef.of(m)
    opts = fit_options_from(res, {"random_effects": "ka,CL", "error": "additive"})
    for rep in ("1", "2"):
        row = reps[reps["replicate"] == rep].iloc[0]
        draw = [str(int(row[f"s{k}"])) for k in range(1, 13)]
        got = _fit_one(data.take(draw), ref, opts)
        assert got["status"] == "ok"
        for n in NAMES:
            mine, theirs = got["values"][OURS[n]], row[n]
            if SCALES[n] == "log":
                assert np.log(mine) == pytest.approx(np.log(theirs), abs=0.03), (rep, n)
            else:   # omega^2: FOCE-I vs nlme's Lindstrom-Bates, 10 % on omega
                assert np.sqrt(mine) == pytest.approx(np.sqrt(theirs), rel=0.12), (rep, n)


def test_draws_stay_within_strata_and_repeat_subjects_count_twice():
    strata = {f"S{i}": ("low" if i < 4 else "high") for i in range(10)}
    for r in range(20):
        d = draw_subjects(strata, replicate_rng(3, r))
        assert sorted(strata[s] for s in d[:4]) == ["low"] * 4
        assert {strata[s] for s in d[4:]} == {"high"} and len(d) == 10
    assert draw_subjects(strata, replicate_rng(3, 7)) == draw_subjects(strata,
                                                                       replicate_rng(3, 7))
    ds = dataset()
    data = FitData.of(ds, strata=("dose_level",))
    two = data.take(["1", "1", "2"])
    assert list(two.subjects["subject"]) == ["1~1", "1~2", "2~3"]
    n1 = (ds.observations["subject"] == "1").sum()
    assert (two.observations["subject"] == "1~2").sum() == n1
    assert set(data.strata.values()) == {"dose_level=1"}


def test_flags_from_shares_use_the_registry_limits():
    lim = FLAGS["replicates_failed"].limit
    assert replicate_flags({"failed_pct": lim / 2, "not_converged_pct": lim / 2 + 1,
                            "at_bound_pct": 0}) == ["replicates_failed"]
    assert replicate_flags({"failed_pct": 0, "not_converged_pct": 0,
                            "at_bound_pct": FLAGS["replicates_at_bound"].limit + 1}) == \
        ["replicates_at_bound"]
    assert replicate_flags({"failed_pct": 0, "not_converged_pct": lim,
                            "at_bound_pct": 0}) == []


def test_identical_for_any_worker_count_and_reads_back(theoph_fit, tmp_path):
    pytest.importorskip("distributed")
    from ctkinetics.executors import LocalDaskExecutor, SerialExecutor
    from ctkinetics.estimation.bootstrap import BootstrapResult

    ds, m, res = theoph_fit
    opts = dict(random_effects="ka,CL", error="additive", method=FOCEI(max_iter=10))
    one = bootstrap(ds, m, 2, seed=5, original=res, bca=False, executor=SerialExecutor(),
                    **opts)
    two = bootstrap(ds, m, 2, seed=5, original=res, bca=False,
                    executor=LocalDaskExecutor(workers=2), **opts)
    pd.testing.assert_frame_equal(one.estimates, two.estimates)
    cols = ["replicate", "sample", "status", "used", "ofv", "subjects"]
    pd.testing.assert_frame_equal(one.replicates[cols], two.replicates[cols])
    pd.testing.assert_frame_equal(one.intervals, two.intervals)
    assert two.settings["workers"] == 2 and one.settings["workers"] == 1
    one.write(tmp_path / "b")
    back = BootstrapResult.read(tmp_path / "b")
    pd.testing.assert_frame_equal(back.intervals, one.intervals, check_dtype=False)
    assert back.shares == one.shares and back.flags == one.flags


def test_values_are_the_used_replicates():
    from ctkinetics.estimation.bootstrap import BootstrapResult

    est = pd.DataFrame({"replicate": ["0", "0", "1", "1", "2", "2"], "sample": "bootstrap",
                        "parameter": ["a", "b"] * 3, "estimate": [1.0, 2, 3, 4, 5, 6]})
    rep = pd.DataFrame({"replicate": ["0", "1", "2"], "sample": "bootstrap",
                        "used": [True, False, True]})
    b = BootstrapResult(pd.DataFrame({"parameter": ["a", "b"]}), rep, est, {}, [])
    v = b.values()
    assert list(v.index) == ["0", "2"] and v.loc["2", "b"] == 6 and len(b.values(False)) == 3
