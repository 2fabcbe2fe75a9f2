"""Issue 12's benchmark fit (cart_bcell_sle, sample cohort, six parameters, one start, BLQ M1)
pinned against a hand-written −2LL and against R deSolve + minpack.lm.

The hand objective below is written from the likelihood alone (log-normal error, one SD per
analyte, BLQ samples dropped): for each analyte with n quantified samples,
``Σ z²/σ² + n ln(2πσ²) + 2 Σ ln y``, z = ln y − ln f, f from ``model.predict`` with SciPy's
LSODA (the engine's reference, not the compiled solver the fit uses). It shares no code with
:mod:`ctkinetics.estimation`.

SLE-101's B cells have three quantified samples; the fitted curve passes through them so
closely that the −2LL keeps falling as their SD goes to 0: the optimum lies on the SD's lower
bound ``MIN_CV`` (0.01). R's former script had a floor of 0.001 and so reported 57.00 —
"better" than ctkinetics' 64.71 on a different objective (the difference that looked like an
optimiser problem). Evaluated here, R's estimates give 57.00 with the 0.001 floor (R's own
number: the hand objective is R's) and 70.8 with the 0.01 floor: worse than ctkinetics.
"""
from pathlib import Path

import numpy as np
import pytest

from ctkinetics import load_study
from ctkinetics.estimation import fit
from ctkinetics.estimation.likelihood import MIN_CV

modeling = pytest.importorskip("ctkinetics.modeling")
STUDY = Path(__file__).parents[2] / "data" / "sample" / "sle_cohort"
EST = ["fE", "kexp", "kfade", "dM", "Bbase", "kkill"]
KIND = {"transgene": "qpcr", "car_flow": "flow", "bcell": "bcell"}

#: R deSolve lsoda (rtol 1e-8) + minpack.lm::nls.lm, benchmarks/r/fit_sle_desolve.R with its
#: former SD floor 0.001, SLE-101 from the model defaults: -2LL 56.9992 at
R_THETA_FLOOR_0001 = dict(fE=7.28473345568799e-4, kexp=1.81750981876928, kfade=0.248755017952809,
                          dM=0.0167760458753601, Bbase=218.959196629761, kkill=38.8162532716676)
R_M2LL_FLOOR_0001 = 56.9992
#: SciPy Nelder-Mead (bounds, two restarts, ~800 evaluations) on the hand objective below
#: with the 0.01 floor, from the model defaults: the same optimum, -2LL
SCIPY_M2LL = 64.7103


@pytest.fixture(scope="module")
def sle101():
    ds = load_study(STUDY)
    obs = ds.observations
    keep = (obs.subject == "SLE-101") & ~obs.pre_infusion & ~obs.blq & (obs.time > 0)
    dose = float(ds.subjects.set_index("subject").loc["SLE-101", "dose"])
    return ds, obs[keep], dose


def hand_m2ll(model, obs, dose, theta, floor):
    """(−2LL, SD per analyte) with each SD at its profile optimum sqrt(mean z²), floored."""
    params = dict(model.defaults(), **theta)
    t = np.unique(obs.time.to_numpy(float))
    pred = model.predict(params, t, covariates={"dose": dose}, observables=list(KIND.values()),
                         method="lsoda")
    total, sd = 0.0, {}
    for analyte, kind in KIND.items():
        s = obs[obs.analyte == analyte]
        y = s.value.to_numpy(float)
        z = np.log(y) - np.log(np.asarray(pred[kind])[np.searchsorted(t, s.time)])
        s2 = max(np.mean(z ** 2), floor ** 2)
        sd[analyte] = np.sqrt(s2)
        total += np.sum(z ** 2) / s2 + len(y) * np.log(2 * np.pi * s2) + 2 * np.sum(np.log(y))
    return total, sd


@pytest.mark.parametrize("engine", ["batched", "lmfit"])
def test_sle101_one_start_reaches_the_optimum_of_the_hand_objective(sle101, engine):
    ds, obs, dose = sle101
    model = modeling.load_model("cart_bcell_sle")
    res = fit(ds, model, subjects=["SLE-101"], blq="M1", starts=1, estimate=EST,
              derived=False, engine=engine)
    f = res["SLE-101"]
    assert f.success
    est = f.parameters.set_index("parameter")["estimate"]
    m2ll, sd = hand_m2ll(model, obs, dose, {k: est[k] for k in EST}, MIN_CV)
    # the reported objective is the hand -2LL at the reported estimates (no constant, sample
    # or SD counted differently; compiled Radau at rtol 1e-6 vs LSODA)
    assert f.ofv == pytest.approx(m2ll, abs=2e-3)
    # every SD at its own optimum within its bounds; the B cells' on the floor, flagged
    for a in KIND:
        assert est[f"sigma_{a}"] == pytest.approx(sd[a], rel=1e-3), a
    assert est["sigma_bcell"] == pytest.approx(MIN_CV, rel=1e-6)
    assert "at_bound" in f.flags
    # the optimum a second, derivative-free optimiser finds from the same start
    assert f.ofv == pytest.approx(SCIPY_M2LL, abs=0.01)


def test_r_estimates_are_worse_on_the_same_objective(sle101):
    ds, obs, dose = sle101
    model = modeling.load_model("cart_bcell_sle")
    # the hand objective reproduces R's reported -2LL with R's floor ...
    m2ll_r, sd_r = hand_m2ll(model, obs, dose, R_THETA_FLOOR_0001, 1e-3)
    assert m2ll_r == pytest.approx(R_M2LL_FLOOR_0001, abs=0.01)
    assert sd_r["bcell"] == pytest.approx(1e-3)        # R ended on its floor too
    # ... and with ctkinetics' floor R's estimates are worse than ctkinetics' optimum
    m2ll_r01, _ = hand_m2ll(model, obs, dose, R_THETA_FLOOR_0001, MIN_CV)
    assert m2ll_r01 > SCIPY_M2LL + 1.0
