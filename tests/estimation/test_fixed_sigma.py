"""Residual SDs held fixed (issue 12, POSTHOC individual fits): the optimum of a fit with a
fixed σ against a hand-written −2 log-likelihood minimised by scipy's Nelder-Mead, the
fixed rows of the outputs, bad names and values, and the model file's [residual_error] as
the σ of MAP fits with the model's prior."""
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from ctkinetics.errors import SettingsError
from ctkinetics.estimation import fit
from ctkinetics.estimation.results_io import read_fit, write_fit
from ctkinetics.modeling import load_model
from est_fakes import Stein, dataset

TIMES = np.array([1, 2, 4, 7, 10, 14, 21, 28, 60, 90.0])
NAMES = ["Cmax", "Tmax", "foldx", "alpha", "FB", "beta"]   # stein2019's order
LLOQ = 100.0


def _participant(seed=5):
    """One participant simulated from est_fakes' Stein (log-normal error, SD 0.3); samples
    below LLOQ are reported BLQ (censored in M3)."""
    rng = np.random.default_rng(seed)
    p = {"Cmax": 30000.0, "Tmax": 9.0, "foldx": 2000.0, "alpha": 0.2, "FB": 0.02,
         "beta": 0.01}
    f = np.ravel(Stein().predict(p, TIMES)["qpcr"])
    y = f * np.exp(rng.normal(0, 0.3, TIMES.size))
    blq = y < LLOQ
    obs = pd.DataFrame({"subject": "S1", "time": TIMES, "analyte": "qpcr",
                        "value": np.where(blq, np.nan, y), "blq": blq, "lloq": LLOQ})
    return dataset(obs, pd.DataFrame({"subject": ["S1"], "dose_level": "1"}),
                   {"qpcr": ("copies/ug", LLOQ, "qpcr")}), y, blq


def _m2ll(phi, y, blq, sigma):
    """−2 ln L by hand with σ given: log-normal quantified samples (with the 2·ln y of the
    change of variable) and −2 ln Φ((ln LLOQ − ln f)/σ) for each BLQ one (M3)."""
    f = np.ravel(Stein().predict(dict(zip(NAMES, np.exp(phi))), TIMES)["qpcr"])
    q = ~blq
    data = -2 * np.sum(stats.norm.logpdf(np.log(y[q]), np.log(f[q]), sigma) - np.log(y[q]))
    return data - 2 * np.sum(stats.norm.logcdf((np.log(LLOQ) - np.log(f[blq])) / sigma))


def test_fit_with_a_fixed_sigma_is_the_minimum_of_the_hand_objective(tmp_path):
    ds, y, blq = _participant()
    assert 1 <= blq.sum() <= 3
    res = fit(ds, load_model("stein2019"), fixed={"sigma_qpcr": 0.3}, starts=3,
              derived=False)
    f = res["S1"]
    t = f.parameters.set_index("parameter")
    assert list(t.index) == NAMES + ["sigma_qpcr"]
    phi = t.loc[NAMES, "estimate_transformed"].to_numpy(float)
    assert f.ofv == pytest.approx(_m2ll(phi, y, blq, 0.3), rel=1e-9)
    # Nelder-Mead from a perturbed start on the hand objective finds no lower point
    best = optimize.minimize(_m2ll, phi + 0.05, args=(y, blq, 0.3), method="Nelder-Mead",
                             options=dict(xatol=1e-7, fatol=1e-9, maxiter=20000,
                                          maxfev=20000))
    assert best.fun == pytest.approx(f.ofv, abs=1e-3)
    assert np.max(np.abs(best.x - phi)) < 0.02
    # the fixed row: its value, no SE or CI, 'fixed'; 6 estimated parameters (AIC, cov)
    row = t.loc["sigma_qpcr"]
    assert row["estimate"] == 0.3 and row["ci_method"] == "fixed" and row["role"] == "sigma"
    assert np.isnan([row["se"], row["rse_pct"], row["ci_low"], row["ci_high"]]).all()
    assert f.n_params == 6 and f.covariance.shape == (6, 6) and f.param_names == NAMES
    assert f.aic == pytest.approx(f.ofv + 12)
    assert res.settings["fixed"] == {"sigma_qpcr": 0.3}
    assert res.settings["sigma_sources"] == {"sigma_qpcr": "the user's value"}
    assert "sigma_qpcr" not in set(res.summary()["parameter"])   # no estimate to summarise
    write_fit(res, tmp_path / "out")
    assert read_fit(tmp_path / "out") == res


def test_fixed_sigma_names_and_values_are_checked():
    ds, _, _ = _participant()
    with pytest.raises(SettingsError, match=r"cannot fix unknown parameter\(s\) \['sigma_flow'\]"
                                            r".*residual SDs \['sigma_qpcr'\]"):
        fit(ds, "stein2019", fixed={"sigma_flow": 0.3}, starts=1)
    with pytest.raises(SettingsError, match="residual SDs .*'sigma_prop_qpcr', 'sigma_add_qpcr'"):
        fit(ds, "stein2019", error="combined", blq="M1", fixed={"sigma_qpcr": 0.3}, starts=1)
    with pytest.raises(SettingsError, match="a fixed residual SD must be > 0: sigma_qpcr"):
        fit(ds, "stein2019", fixed="sigma_qpcr=0", starts=1)
    # the combined model's two SDs by their table names: one fixed, one estimated
    res = fit(ds, "stein2019", error="combined", blq="M1", fixed=["sigma_add_qpcr=50"],
              starts=1, derived=False)
    t = res.to_frame().set_index("parameter")
    assert t.loc["sigma_add_qpcr", "ci_method"] == "fixed"
    assert t.loc["sigma_prop_qpcr", "ci_method"] != "fixed"


def test_model_prior_fixes_sigma_at_the_model_files_residual_error():
    """prior="model": σ at [residual_error] when the error models agree, else estimated
    and the note says why; estimate_sigma=True estimates them."""
    ds, _, _ = _participant()
    model = load_model("cart_bcell_sle")
    declared = {r.kind: r for r in model.residual_error}
    assert declared["qpcr"].model == "proportional" and declared["qpcr"].sigmas["sigma"] == 0.25
    assert "not a published assay CV" in declared["qpcr"].source
    from ctkinetics.estimation.fitproblem import FitProblem

    p = FitProblem.build(ds, model, prior="model")
    assert [s.name for s in p.layout.fixed_sigmas] == ["sigma_qpcr"]
    assert p.fixed_all["sigma_qpcr"] == 0.25
    assert "at the model file's assay precision ([residual_error]): sigma_qpcr = 0.25" in p.sigma.note
    other = FitProblem.build(ds, model, prior="model", error="additive", blq="M1")
    assert not other.layout.fixed_sigmas
    assert "declares a proportional residual error for qpcr, the fit uses additive" in \
        other.sigma.note
    own = FitProblem.build(ds, model, prior="model", estimate_sigma=True)
    assert not own.layout.fixed_sigmas and "estimate_sigma" in own.sigma.note
    # maximum likelihood keeps estimating σ; a library model without the table too
    assert not FitProblem.build(ds, model).layout.fixed_sigmas
    stein = FitProblem.build(ds, "stein2019", prior="model")
    assert not stein.layout.fixed_sigmas and "declares no [residual_error]" in stein.sigma.note


def test_population_fits_refuse_a_fixed_sigma():
    from ctkinetics.estimation.population import fit_population

    ds, _, _ = _participant()
    with pytest.raises(SettingsError, match="population fit estimates its residual SDs"):
        fit_population(ds, "stein2019", fixed={"sigma_qpcr": 0.3})
