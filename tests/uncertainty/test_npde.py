"""NPDE against R's npde package (3.5, built from source) on shared data sets, and a
misspecified model detected while the true one passes.

Shared data (tests/data/npde_shared_make.py): R's Theoph fitted by FOCE-I (onecpt_oral, random
effects on ka and CL, additive error) and 100 replicates simulated from the fit; a second copy
with an LLOQ of 1 mg/L (16 samples BLQ, M3). R's numbers come from
tests/data/npde_reference.R (autonpde, decorr.method = "cholesky", cens.method = "cdf",
ties = TRUE).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctkinetics.estimation.population.npde import compute_npde, gof_test

DATA = Path(__file__).resolve().parents[1] / "data"


def _shared(name):
    obs = pd.read_csv(DATA / f"{name}_obs.csv")
    sim = pd.read_csv(DATA / f"{name}_sim.csv.gz")
    K = len(sim) // len(obs)
    ysim = sim["ysim"].to_numpy(float).reshape(K, len(obs)).T
    # the BLQ copy has one LLOQ (1 mg/L); npde takes it from the censored rows
    lloq = np.full(len(obs), 1.0) if name.endswith("blq") else np.full(len(obs), np.nan)
    return obs, ysim, lloq


def test_npde_without_censoring_equals_r_npde_exactly():
    obs, ysim, lloq = _shared("npde_theoph")
    out = compute_npde(obs["id"].to_numpy(), obs["y"].to_numpy(float),
                       obs["cens"].to_numpy() == 1, lloq, ysim)
    r = pd.read_csv(DATA / "npde_theoph_r.csv")
    # no random step without censoring: same counts, same Cholesky decorrelation
    np.testing.assert_allclose(out["epred"], r["ypred"], rtol=1e-12)
    np.testing.assert_array_equal(out["pd"], r["pd"])
    np.testing.assert_allclose(out["npde"], r["npde"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["npd"], r["npd"], rtol=1e-10)
    rt = pd.read_csv(DATA / "npde_theoph_r_tests.csv").set_index("statistic")
    for stat in ("npde", "npd"):
        mine = gof_test(out[stat])
        for col in ("n", "mean", "se_mean", "variance", "se_variance", "skewness", "kurtosis",
                    "p_mean", "p_variance", "p_normality", "p_global"):
            assert mine[col] == pytest.approx(rt.loc[stat, col], rel=1e-8, abs=1e-12), (stat, col)


def test_npde_with_blq_equals_r_npde_within_monte_carlo_error():
    obs, ysim, lloq = _shared("npde_theoph_blq")
    cens = obs["cens"].to_numpy() == 1
    r1 = pd.read_csv(DATA / "npde_theoph_blq_r.csv")
    runs = [compute_npde(obs["id"].to_numpy(), obs["y"].to_numpy(float), cens, lloq, ysim,
                         np.random.default_rng(seed)) for seed in range(40)]
    # deterministic parts: P(BLQ) of every sample, pd of the quantified ones
    np.testing.assert_array_equal(runs[0]["ploq"], r1["ploq"])
    np.testing.assert_array_equal(runs[0]["pd"][~cens], r1["pd"][~cens])
    # censored pd ~ U(0, p_LOQ) and imputed values below the LLOQ, as in npde
    for out in runs[:5]:
        assert np.all(out["pd"][cens] <= np.maximum(out["ploq"][cens], 1 / 200) + 1e-12)
        assert np.all(out["ycomp"][cens] <= 1.0)
    # the random imputation: mean and variance of npde and npd over 40 seeds on each side
    rt = pd.read_csv(DATA / "npde_theoph_blq_r_tests.csv")
    for stat in ("npde", "npd"):
        r = rt[rt["statistic"] == stat]
        mine = pd.DataFrame([gof_test(o[stat]) for o in runs])
        for col in ("mean", "variance"):
            se = np.sqrt(r[col].var() / len(r) + mine[col].var() / len(mine))
            assert abs(mine[col].mean() - r[col].mean()) < 4 * se, (stat, col)


def test_gof_test_against_scipy_formulas():
    from scipy import stats

    x = np.random.default_rng(3).normal(0.3, 1.4, 200)
    g = gof_test(x)
    assert g["mean"] == pytest.approx(x.mean())
    assert g["p_mean"] == pytest.approx(min(1, 3 * stats.ttest_1samp(x, 0).pvalue))
    chi = np.var(x, ddof=1) * 199
    p = 2 * min(stats.chi2.cdf(chi, 199), stats.chi2.sf(chi, 199))
    assert g["p_variance"] == pytest.approx(min(1, 3 * p))
    assert g["p_global"] == pytest.approx(min(g["p_mean"], g["p_variance"], g["p_normality"]))
    assert g["p_global"] < 0.001          # variance 1.96: rejected


def test_misspecified_model_is_detected_and_the_true_one_passes():
    """24 simulated participants (onecpt_oral, IIV on ka and CL, proportional error 0.15):
    the true model's npde pass every test; the same model with ke fixed at half its true
    value is rejected by the mean test and the global test."""
    from ctkinetics.estimation.population import fit_population
    from ctkinetics.estimation.population.npde import npde
    from ctkinetics.estimation.population.simulate import simulate_study
    from ctkinetics.modeling import load_model

    m = load_model("onecpt_oral")
    times = np.array([0.25, 0.5, 1, 2, 3.5, 5, 7, 9, 12, 24])
    ds = simulate_study(m, 24, times, analyte="conc", kind="conc", unit="mg/L", sigma=0.15,
                        omega2={"ka": 0.4, "CL": 0.1, "ke": 0.0},
                        covariates={"dose": np.full(24, 4.0)}, seed=2)
    true = npde(fit_population(ds, m, random_effects="ka,CL"), ds, m, 500, seed=3)
    wrong = npde(fit_population(ds, m, random_effects="ka,CL", fixed={"ke": 0.0429}), ds, m,
                 500, seed=3)
    t, w = true.test("npde"), wrong.test("npde")
    assert t["p_global"] > 0.05 and t["n"] == 240
    assert w["p_mean"] < 0.05 and w["p_global"] < 0.01
    assert w["mean"] < -0.15            # observations below the wrong model's predictions
    assert len(true.table) == 240 and not true.table["imputed"].any()
