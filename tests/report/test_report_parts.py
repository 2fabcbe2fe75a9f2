"""Pieces of the report checked against hand calculations: the fitted band, the summaries and
the settings file."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ctkinetics.errors import SettingsError
from ctkinetics.modeling import load_model
from ctkinetics.estimation import fitted_curves
from ctkinetics.report import (
    ReportSettings, bcell_aplasia, geometric_mean_profile, settings_from_mapping,
)


def _dataset(rows, subjects, analytes):
    obs = pd.DataFrame(rows, columns=["subject", "time", "analyte", "value", "blq", "pre_infusion"])
    obs["lloq"] = np.nan
    study = SimpleNamespace(analytes={a: SimpleNamespace(kind=k, unit="u", lloq=1.0)
                                      for a, k in analytes.items()})
    return SimpleNamespace(observations=obs, subjects=pd.DataFrame(subjects), study=study)


def _stein_fit(sd_ln_cmax):
    """A converged stein2019 fit whose only uncertain parameter is Cmax (SD on ln scale)."""
    model = load_model("stein2019")
    est = {"Cmax": 24000.0, "Tmax": 9.3, "foldx": 3900.0, "alpha": 0.16, "FB": 0.0079,
           "beta": 0.0032}
    names = [p.name for p in model.parameters]
    par = pd.DataFrame({"subject": "S", "parameter": names + ["sigma_transgene"],
                        "estimate": [est[n] for n in names] + [0.5],
                        "estimate_transformed": np.log([est[n] for n in names] + [0.5]),
                        "scale": "log", "role": ["model"] * len(names) + ["sigma"], "flags": ""})
    allp = list(par["parameter"])
    cov = pd.DataFrame(0.0, index=allp, columns=allp)
    cov.loc["Cmax", "Cmax"] = sd_ln_cmax ** 2
    # duck-typed like SubjectFit / FitResult: what fitted_curves reads of them
    f = SimpleNamespace(subject="S", success=True, flags=(), parameters=par, covariance=cov)
    return model, SimpleNamespace(model="stein2019", analytes=("transgene",), fits=(f,),
                                  settings={"fixed": {}})


def test_band_of_a_curve_linear_in_one_lognormal_parameter():
    # Stein's C(t) is proportional to Cmax at fixed foldx, Tmax, alpha, FB, beta, so with only
    # ln Cmax uncertain (SD s) the 95 % band is pred·exp(±1.96 s) at every time.
    s = 0.2
    model, fr = _stein_fit(s)
    ds = _dataset([("S", 28.0, "transgene", 1.0, False, False)], {"subject": ["S"], "dose": [1.0]},
                  {"transgene": "qpcr"})
    c = fitted_curves(fr, ds, model, draws=4000, seed=1)
    at_tmax = c.iloc[(c["time"] - 9.3).abs().argmin()]
    # the curve itself: C(Tmax) = Cmax (DOMAIN 3.1), on a 0.12-day grid close to Tmax
    assert c["pred"].max() <= 24000.0 * (1 + 1e-9)
    assert at_tmax["pred"] == pytest.approx(24000.0, rel=0.02)
    ratio_hi = (c["upper"] / c["pred"]).to_numpy()
    ratio_lo = (c["lower"] / c["pred"]).to_numpy()
    assert np.allclose(ratio_hi, np.exp(1.96 * s), rtol=0.03)
    assert np.allclose(ratio_lo, np.exp(-1.96 * s), rtol=0.03)


def test_band_is_reproducible_and_absent_without_covariance():
    model, fr = _stein_fit(0.3)
    ds = _dataset([("S", 28.0, "transgene", 1.0, False, False)], {"subject": ["S"], "dose": [1.0]},
                  {"transgene": "qpcr"})
    a = fitted_curves(fr, ds, model, seed=3)
    b = fitted_curves(fr, ds, model, seed=3)
    pd.testing.assert_frame_equal(a, b)
    _, nan_fit = _stein_fit(float("nan"))
    c = fitted_curves(nan_fit, ds, model)
    assert c["lower"].isna().all() and np.isfinite(c["pred"]).all()


def test_geometric_mean_profile_by_hand():
    rows = [("A", 7.0, "t", 100.0, False, False), ("B", 7.0, "t", 400.0, False, False),
            ("C", 7.0, "t", np.nan, True, False),           # 2 of 3 quantified: mean shown
            ("A", 28.0, "t", 50.0, False, False), ("B", 28.0, "t", np.nan, True, False),
            ("C", 28.0, "t", np.nan, True, False),          # 1 of 3: below half, no mean
            ("A", -1.0, "t", np.nan, True, True)]           # pre-infusion: ignored
    ds = _dataset(rows, {"subject": ["A", "B", "C"], "dose_level": ["1"] * 3}, {"t": "qpcr"})
    g = geometric_mean_profile(ds, "t").set_index("time")
    assert g.loc[7.0, "geo_mean"] == pytest.approx(200.0)   # sqrt(100·400)
    assert g.loc[7.0, "n"] == 3 and g.loc[7.0, "n_quantified"] == 2
    assert np.isnan(g.loc[28.0, "geo_mean"])
    assert -1.0 not in g.index


def test_bcell_aplasia_start_and_return_by_hand():
    rows = [("A", -2.0, "b", 150.0, False, True), ("A", 1.0, "b", 20.0, False, False),
            ("A", 4.0, "b", np.nan, True, False), ("A", 28.0, "b", np.nan, True, False),
            ("A", 90.0, "b", 3.0, False, False),
            ("B", -2.0, "b", 120.0, False, True), ("B", 4.0, "b", np.nan, True, False)]
    ds = _dataset(rows, {"subject": ["A", "B"], "dose_level": ["1", "1"]}, {"b": "bcell"})
    t = bcell_aplasia(ds, "b").set_index("subject")
    assert t.loc["A", "aplasia_start"] == 4.0 and t.loc["A", "aplasia_end"] == 90.0
    assert t.loc["A", "baseline"] == 150.0 and t.loc["A", "nadir"] == 3.0
    assert t.loc["B", "aplasia_start"] == 4.0 and np.isnan(t.loc["B", "aplasia_end"])
    assert "ongoing" in t.loc["B", "status"]


def test_settings_file_fixes_every_option_and_rejects_typos():
    s = settings_from_mapping({"report": {"model": "stein2019", "as_of": 120},
                               "fit": {"starts": 2, "analytes": ["transgene"]},
                               "nca": {"intervals": [[0, 28]], "lambda_z_window": [14, 84]},
                               "escalation": {"tite": False}, "band": {"draws": 100}})
    assert (s.as_of, s.fit_starts, s.fit_analytes, s.tite, s.band_draws) == (120.0, 2, ("transgene",), False, 100)
    assert s.nca_intervals == ((0.0, 28.0),) and s.nca_lambda_z_window == (14.0, 84.0)
    assert s.with_overrides(model="x", as_of=None).model == "x"
    with pytest.raises(SettingsError, match="unknown key 'start'"):
        settings_from_mapping({"fit": {"start": 2}}, "review.toml")
    with pytest.raises(SettingsError, match=r"unknown table \[plots\]"):
        settings_from_mapping({"plots": {}})
    with pytest.raises(SettingsError, match="key 'fit.starts': expected an integer >= 1"):
        settings_from_mapping({"fit": {"starts": "4"}})
    with pytest.raises(SettingsError):
        ReportSettings(band_level=0.2)
