"""The batched Levenberg–Marquardt engine against lmfit, and its residuals against the
likelihood module's reference formula."""
from pathlib import Path

import numpy as np
import pytest

from ctkinetics.estimation import fit
from ctkinetics.estimation import batched
from ctkinetics.estimation.flags import FLAGS, flag_id, split
from ctkinetics.estimation.likelihood import (
    CENSORED, EXCLUDED, QUANTIFIED, get_error_model, m2ll_terms, pseudo_residuals,
)
from ctkinetics.estimation.objective import Group
from ctkinetics.estimation.optimize import minimize
from ctkinetics.estimation.problem import (
    AnalyteData, AnalyteMap, ParamLayout, ParamSpec, SubjectData,
)
from est_fakes import OneCptOral, Stein, theoph
from test_fit import simulate_stein

THEOPH = Path(__file__).parents[1] / "data" / "theoph.csv"


@pytest.fixture(scope="module")
def stein_pair():
    ds, truth, names = simulate_stein(12, seed=11, sigma=0.15, lloq=100.0)
    lm = fit(ds, Stein(), blq="M3", starts=1, engine="lmfit", derived=False)
    bt = fit(ds, Stein(), blq="M3", starts=1, engine="batched", derived=False)
    return ds, lm, bt


def _group(error_name, sigmas, rng):
    """A ragged two-subject group of a constant model, to check residuals by formula."""
    err = get_error_model(error_name)

    class Flat:
        name = "flat"
        parameters = ()
        covariates = ()
        observables = {"conc": "c"}

        def predict(self, params, times, covariates=None, observables=None):
            return {"conc": np.asarray(params["level"])[..., None] * np.ones(len(times))}

    specs = [ParamSpec("level", "model", 50.0, 1e-3, 1e6, True, model_name="level")]
    specs += [ParamSpec(f"{n}_c", "sigma", s, 1e-3, 20.0, True, analyte="c", model_name=n)
              for n, s in zip(err.sigma_names, sigmas)]
    layout = ParamLayout(tuple(specs), {}, (AnalyteMap("c", "conc", ""),))
    subjects = []
    for n in (5, 7):
        t = np.sort(rng.uniform(0, 10, n))
        y = rng.lognormal(np.log(40), 0.5, n)
        mode = rng.choice([QUANTIFIED, QUANTIFIED, CENSORED, EXCLUDED], n)
        subjects.append(SubjectData(f"S{n}", {}, (AnalyteData("c", t, y, mode),), {}))
    return err, Group(Flat(), layout, err, subjects)


@pytest.mark.parametrize("error_name,sigmas", [("proportional", (0.4,)),
                                               ("combined", (0.2, 3.0))])
def test_group_residuals_and_ofv_equal_the_likelihood_formulas(error_name, sigmas):
    rng = np.random.default_rng(3)
    err, g = _group(error_name, sigmas, rng)
    theta = np.log([[45.0, *sigmas], [60.0, *[1.5 * s for s in sigmas]]])
    r = g.residuals(theta)
    ofv = g.ofv(np.vstack([theta, theta[::-1]]))        # two copies: a stencil
    floor = g.ln_sd2_floor["c"]
    for i, s in enumerate(g.subjects):
        a = s.analytes[0]
        f = np.full(len(a.y), np.exp(theta[i, 0]))
        sd = err.sd(f, tuple(np.exp(theta[i, 1:])))
        ref = pseudo_residuals(err, a.y, f, sd, a.mode, floor)
        assert ofv[i] == pytest.approx(m2ll_terms(err, a.y, f, sd, a.mode).sum(), rel=1e-12)
        n = len(a.y)
        w = r.shape[1] // 2
        got = np.concatenate([r[i, :n], r[i, w:w + n]])
        assert got == pytest.approx(np.nan_to_num(ref), rel=1e-12, abs=1e-12)
        # the padding of the shorter subject contributes nothing
        assert np.all(r[i, n:w] == 0) and np.all(r[i, w + n:] == 0)


def _at_kink(fit_result, subject, times):
    """Tmax on a sampling time: the objective has a kink there (the prediction switches
    phase at that sample), where gradient-based solvers — lmfit included — stall."""
    tmax = fit_result[subject].estimates()["Tmax"]
    return bool(np.any(np.abs(times - tmax) < 1e-6 * tmax))


def test_batched_optimum_is_an_lmfit_optimum(stein_pair):
    # lmfit started at the batched optimum finds nothing lower: the batched engine stops at
    # a minimum of the same objective (−2LL to 1e-6)
    ds, lm, bt = stein_pair
    from ctkinetics.estimation.likelihood import get_blq_method
    from ctkinetics.estimation.problem import analyte_maps, build_layout, subjects_data

    model = Stein()
    err, blq = get_error_model("proportional"), get_blq_method("M3")
    maps = analyte_maps(model, ["qpcr"], {"qpcr": "qpcr"}, {"qpcr": ""})
    obs = ds.observations
    times = np.unique(obs.time)
    data = subjects_data(list(bt.estimates_wide().index), obs, {}, model, maps, blq, err)
    layout = build_layout(model, maps, err, {"qpcr": obs.value.dropna().to_numpy()})
    smooth = 0
    for d in data:
        f = bt[d.subject]
        assert f.success and f.engine == "batched"
        g = Group(model, layout, err, [d])
        theta = f.parameters["estimate_transformed"].to_numpy(float)[None, :]
        assert f.ofv == pytest.approx(g.ofv(theta)[0], abs=1e-9)
        if _at_kink(bt, d.subject, times):
            continue
        smooth += 1
        polished, ok, _, _ = minimize(g, theta)
        assert g.ofv(polished)[0] >= f.ofv - 1e-6, d.subject
    assert smooth >= 10


def test_batched_and_lmfit_agree_from_the_same_start(stein_pair):
    ds, lm, bt = stein_pair
    times = np.unique(ds.observations.time)
    a = lm.fits_frame().set_index("subject")
    b = bt.fits_frame().set_index("subject")
    # well-defined optima: no flag (bound, singular Hessian, RSE > 50 %, |corr| > 0.95 mark
    # a flat ridge with no unique point) and no kink; there −2LL and estimates agree
    # (a note such as exact_fit says nothing about the optimum)
    def ridge(flags):
        return [f for f in split(flags) if FLAGS[flag_id(f)].severity != "note"]

    clean = [s for s in a.index if not ridge(a.loc[s, "flags"]) and not ridge(b.loc[s, "flags"])
             and not _at_kink(lm, s, times) and not _at_kink(bt, s, times)]
    assert len(clean) >= 5
    assert (b.loc[clean, "ofv"] - a.loc[clean, "ofv"]).abs().max() < 1e-6
    rel = (bt.estimates_wide().loc[clean] / lm.estimates_wide().loc[clean] - 1).abs()
    assert float(rel.max().max()) < 1e-4


def test_ragged_stack_equals_subjects_fitted_alone():
    # Theoph subjects have their own sampling times: stacked at the union of the times
    # (padded), each must still reach the optimum of its own lmfit fit
    theo = theoph(THEOPH)
    subs = ["1", "2", "3", "4", "5", "6"]
    stack = fit(theo, OneCptOral(), subjects=subs, error="additive", starts=1,
                derived=False, engine="batched")
    ff = stack.fits_frame().set_index("subject")
    assert set(ff.engine) == {"batched"}
    for s in subs:
        alone = fit(theo, OneCptOral(), subjects=[s], error="additive", starts=1,
                    derived=False)
        assert alone[s].engine == "lmfit"
        assert ff.loc[s, "ofv"] == pytest.approx(alone[s].ofv, abs=1e-6)
        ea, eb = alone[s].estimates(), stack[s].estimates()
        for k in ("ka", "ke", "CL"):
            assert eb[k] == pytest.approx(ea[k], rel=1e-4)
    # R nls SSfol for subject 1 (see test_fit): the stack reproduces it too
    t = stack["1"].parameters.set_index("parameter")["estimate_transformed"]
    assert t["ke"] == pytest.approx(-2.9196, abs=5e-5)
    assert t["CL"] == pytest.approx(-3.9159, abs=5e-5)


def test_subject_the_batched_engine_does_not_converge_goes_to_lmfit(monkeypatch):
    theo = theoph(THEOPH)
    real = batched.levenberg_marquardt
    monkeypatch.setattr(batched, "levenberg_marquardt",
                        lambda group, theta0, **kw: real(group, theta0, max_iter=2, **kw))
    res = fit(theo, OneCptOral(), subjects=["1", "2"], error="additive", starts=1,
              derived=False, engine="batched")
    ff = res.fits_frame().set_index("subject")
    assert set(ff.engine) == {"lmfit"} and ff.success.all()
    assert ff.message.str.contains("lmfit after batched").all()
    t = res["1"].parameters.set_index("parameter")["estimate_transformed"]
    assert t["ke"] == pytest.approx(-2.9196, abs=5e-5)


def test_unknown_engine_is_a_settings_error():
    from ctkinetics.errors import SettingsError

    with pytest.raises(SettingsError, match="engine"):
        fit(theoph(THEOPH), OneCptOral(), subjects=["1"], error="additive", engine="nope")


def test_stacked_covariance_equals_one_at_a_time():
    from ctkinetics.estimation.uncertainty import covariance, covariance_batch

    rng = np.random.default_rng(8)
    p = 4
    A = rng.normal(size=(6, p, p))
    H = np.einsum("gij,gkj->gik", A, A) + 0.1 * np.eye(p)
    H[2] = np.outer(A[2, 0], A[2, 0])                       # rank one: singular
    H[3, 1, 1] = np.nan                                      # not finite
    free = np.ones((6, p), bool)
    free[4, 1] = free[5, 1] = False                          # a parameter at a bound
    cov, singular = covariance_batch(H, free)
    for g in range(6):
        ref, sing = covariance(H[g], free[g])
        assert singular[g] == sing
        np.testing.assert_allclose(cov[g], ref, rtol=1e-12, equal_nan=True)
    assert list(singular) == [False, False, True, True, False, False]


def test_auto_engine_batches_any_stack_and_keeps_lmfit_for_a_lone_subject():
    theo = theoph(THEOPH)           # each subject sampled at its own times: a ragged stack
    res = fit(theo, OneCptOral(), subjects=["1", "2"], error="additive", starts=1,
              derived=False)
    assert set(res.fits_frame().engine) == {"batched"}
    alone = fit(theo, OneCptOral(), subjects=["1"], error="additive", starts=1, derived=False)
    assert set(alone.fits_frame().engine) == {"lmfit"}
    # R nls SSfol for subject 1 (see test_fit), reached in the ragged stack too
    t = res["1"].parameters.set_index("parameter")["estimate_transformed"]
    assert t["ke"] == pytest.approx(-2.9196, abs=5e-5)
    ds, _, _ = simulate_stein(3, seed=2)   # a common design
    res = fit(ds, Stein(), blq="M3", starts=1, derived=False)
    assert set(res.fits_frame().engine) == {"batched"}
