"""Prediction-corrected VPC and the predictive simulation it shares with NPDE and the VPC.

- the simulated share of BLQ samples equals P(y < LLOQ) integrated over the random effects
  by Gauss–Hermite quadrature (an independent computation of the predictive distribution);
- prediction correction equals Y·median(PRED)/PRED by hand from the fit's own PRED column
  (two dose levels, so PRED differs within a bin);
- the observed BLQ fraction per bin is the count; imputed BLQ values lie below the LLOQ.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr

from ctkinetics.estimation.population import fit_population
from ctkinetics.estimation.population.npde import observation_arrays
from ctkinetics.estimation.population.pcvpc import pcvpc
from ctkinetics.estimation.population.predictive import rebuild, simulate

from population.theoph import dataset, onecpt_model


@pytest.fixture(scope="module")
def theoph_blq():
    ds, m = dataset(lloq=1.0), onecpt_model()
    return ds, m, fit_population(ds, m, random_effects="ka,CL", error="additive")


def test_simulated_blq_share_equals_the_integral_over_the_random_effects(theoph_blq):
    ds, m, res = theoph_blq
    fitted = rebuild(res, ds, m)
    obs = observation_arrays(fitted, simulate(fitted, 4000, np.random.default_rng(5)))
    share = np.mean(obs["ysim"] < 1.0, axis=1)
    # P(y < 1) = E_eta[Phi((1 - f(eta)) / sigma)], 2-D Gauss-Hermite, 30 x 30 nodes
    z, w = np.polynomial.hermite_e.hermegauss(30)
    w = w / w.sum()
    om = np.sqrt(np.diag(fitted.omega))
    th = dict(zip(fitted.pm.spec.theta_names, fitted.theta))
    ka = np.exp(th["ka"] + om[0] * z)[:, None]
    cl = np.exp(th["CL"] + om[1] * z)[None, :]
    ke = np.exp(th["ke"])
    sigma = float(fitted.sigma[0])
    dose = dict(zip(ds.subjects["subject"], ds.subjects["dose"]))
    for k in np.flatnonzero(obs["time"] > 0)[::7]:
        t, d = obs["time"][k], dose[obs["subject"][k]]
        f = d * ka * ke / (cl * (ka - ke)) * (np.exp(-ke * t) - np.exp(-ka * t))
        p = float(np.sum(np.outer(w, w) * ndtr((1.0 - f) / sigma)))
        se = np.sqrt(max(p * (1 - p), 1e-4) / 4000)
        assert share[k] == pytest.approx(p, abs=4 * se + 1e-9), (k, t)


def test_blq_fraction_and_imputation(theoph_blq):
    ds, m, res = theoph_blq
    v = pcvpc(res, ds, m, n_replicates=200, seed=2)
    o = v.observed
    f = v.table[v.table["statistic"] == "blq_fraction"].set_index("bin")
    for b, g in o.groupby("bin"):
        assert f.loc[b, "observed"] == pytest.approx(g["blq"].mean())
        assert f.loc[b, "sim_low"] <= f.loc[b, "sim_median"] <= f.loc[b, "sim_high"]
    # imputed BLQ samples lie below the LLOQ before the correction moves them
    plain = pcvpc(res, ds, m, n_replicates=200, seed=2, prediction_corrected=False)
    blq = plain.observed[plain.observed["blq"]]
    assert len(blq) == 16 and np.all(blq["value"] < 1.0)
    assert v.settings["prediction_corrected"] and v.settings["blq"] == "impute"
    # the late bin predicts the BLQ share the data show (a well-specified model)
    last = f.iloc[-1]
    assert last["sim_low"] <= last["observed"] <= last["sim_high"]


def test_prediction_correction_by_hand():
    from ctkinetics.estimation.population.simulate import simulate_study

    m = onecpt_model()
    times = np.array([0.5, 1, 2, 4, 8, 12, 24.0])
    dose = np.repeat([2.0, 8.0], 8)
    ds = simulate_study(m, 16, times, analyte="conc", kind="conc", unit="mg/L", sigma=0.1,
                        omega2={"ka": 0.2, "CL": 0.1, "ke": 0.0},
                        covariates={"dose": dose}, seed=4)
    res = fit_population(ds, m, random_effects="ka,CL")
    v = pcvpc(res, ds, m, n_replicates=100, seed=1, bins=[0, 0.75, 1.5, 3, 6, 10, 18, 30])
    pred = res.predictions[["subject", "time", "pred", "observed"]]
    o = v.observed.assign(subject=np.repeat(ds.subjects["subject"].to_numpy(), 7))
    merged = o.merge(pred, on=["subject", "time"])
    for b, g in merged.groupby("bin"):
        want = g["observed"] * np.median(g["pred"]) / g["pred"]
        np.testing.assert_allclose(g["value"], want, rtol=1e-6)
    # plain VPC of the same: the 4-fold dose difference widens the spread of the data
    plain = pcvpc(res, ds, m, n_replicates=100, seed=1, prediction_corrected=False,
                  bins=[0, 0.75, 1.5, 3, 6, 10, 18, 30])
    width = lambda t: (t[t.statistic == "p95"]["observed"].to_numpy()  # noqa: E731
                       / t[t.statistic == "p5"]["observed"].to_numpy())
    assert np.all(width(v.table) < width(plain.table))
