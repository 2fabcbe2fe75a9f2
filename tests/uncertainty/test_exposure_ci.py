"""Intervals on model-based exposure.

- stein2019 peaks at its parameters (the curve's maximum is Cmax at Tmax), so the interval of
  the model-based Cmax / Tmax drawn from N(θ̂, Cov) must equal the parameter's own Wald
  interval exp(ln θ̂ ± 1.96 SE) within Monte-Carlo error; point estimates equal the fit's
  derived values; a participant with a parameter not estimable gets no interval, and a dose
  level with such a participant no interval either;
- population fit (Theoph): point estimates are the registry's metrics at the EBE individual
  parameters (computed here directly), every interval holds its estimate, and drawing the
  population parameters from the estimates alone (no population uncertainty) narrows them.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ctkinetics.estimation import fit
from ctkinetics.estimation.exposure_ci import exposure_intervals, x_from_natural
from ctkinetics.estimation.population import fit_population
from ctkinetics.estimation.population.simulate import simulate_study
from ctkinetics.modeling import load_model

from population.theoph import dataset, onecpt_model


@pytest.fixture(scope="module")
def stein():
    m = load_model("stein2019")
    times = np.array([1, 2, 3, 4, 6, 8, 10, 12, 14, 21, 28, 42, 60, 90, 180, 270, 365.0])
    ds = simulate_study(m, 3, times, analyte="qpcr", unit="copies/ug", sigma=0.15,
                        omega2={k: 0.05 for k in m.param_names}, seed=8)
    ds.subjects["dose_level"] = ["1", "1", "2"]
    return ds, m, fit(ds, m, starts=2)


def test_individual_cmax_tmax_intervals_equal_the_wald_interval_of_the_parameters(stein):
    ds, m, res = stein
    ci = exposure_intervals(res, ds, m, n_draws=2000, seed=3)
    p = ci.participants.set_index(["subject", "metric"])
    t = res.to_frame().set_index(["subject", "parameter"])
    d = res.derived_frame().set_index(["subject", "quantity"])
    for s in ds.subjects["subject"]:
        for metric in ("Cmax", "Tmax"):
            row = p.loc[(s, metric)]
            assert row["estimate"] == pytest.approx(d.loc[(s, metric), "value"], rel=1e-9)
            th, se = t.loc[(s, metric), "estimate_transformed"], t.loc[(s, metric),
                                                                         "se_transformed"]
            assert np.isfinite(se) and row["note"] == ""
            # 2000 draws: the 2.5 % quantile of ln has an SE of about 0.06 SE(ln theta)
            for lim, z in (("ci_low", -1.959964), ("ci_high", 1.959964)):
                assert np.log(row[lim]) == pytest.approx(th + z * se, abs=0.25 * se + 1e-6)
        auc = p.loc[(s, "AUC0-28")]
        assert auc["ci_low"] < auc["estimate"] < auc["ci_high"]
    lv = ci.dose_levels.set_index(["dose_level", "metric"])
    est = p.xs("Cmax", level="metric")["estimate"]
    assert lv.loc[("1", "Cmax"), "estimate"] == pytest.approx(np.exp(np.log(est[:2]).mean()))
    assert lv.loc[("1", "Cmax"), "ci_low"] < lv.loc[("1", "Cmax"), "estimate"] < \
        lv.loc[("1", "Cmax"), "ci_high"]


def test_no_interval_for_a_participant_not_estimable(stein):
    ds, m, res = stein
    t = res.to_frame()
    bad = t["subject"] == ds.subjects["subject"][0]
    t.loc[bad & (t["parameter"] == "beta"), "flags"] = "not_estimable"
    fake = SimpleNamespace(fits=res.fits, to_frame=lambda: t, settings=res.settings,
                           analytes=res.analytes, blq_method=res.blq_method,
                           error_model=res.error_model, dose_levels=res.dose_levels,
                           model=res.model)
    ci = exposure_intervals(fake, ds, m, n_draws=50, seed=1)
    p = ci.participants
    first = p[p["subject"] == ds.subjects["subject"][0]]
    assert first["ci_low"].isna().all() and (first["note"] == "not estimable: beta").all()
    lv = ci.dose_levels[ci.dose_levels["dose_level"] == "1"]
    assert lv["ci_low"].isna().all() and lv["note"].str.contains("1 of 2").all()
    assert ci.dose_levels[ci.dose_levels["dose_level"] == "2"]["ci_low"].notna().all()


def test_population_intervals(tmp_path):
    from ctkinetics.modeling.exposure import model_exposure

    ds, m = dataset(), onecpt_model()
    res = fit_population(ds, m, random_effects="ka,CL", error="additive")
    spec = res.spec
    est = res.estimates()
    np.testing.assert_allclose(x_from_natural(spec, est), res.x, rtol=1e-12, atol=1e-12)
    ci = exposure_intervals(res, ds, m, n_draws=60, seed=2)
    p = ci.participants
    ind = res.individual.pivot(index="subject", columns="parameter", values="individual")
    subjects = list(p[p["metric"] == "Cmax"]["subject"])
    dose = ds.subjects.set_index("subject").loc[subjects, "dose"].to_numpy(float)
    params = {k: ind.loc[subjects, k].to_numpy(float) for k in ("ka", "CL")}
    params["ke"] = np.full(len(subjects), est["ke"])
    e = model_exposure(m, params, {"dose": dose}, kinds=["conc"], t_end=np.full(12, 28.0),
                       window=(0.0, 28.0), metrics=("Cmax", "AUC"))
    np.testing.assert_allclose(p[p["metric"] == "Cmax"]["estimate"], e.values[("conc", "Cmax")],
                               rtol=1e-9)
    np.testing.assert_allclose(p[p["metric"] == "AUC0-28"]["estimate"],
                               e.values[("conc", "AUC0-28")], rtol=1e-9)
    assert np.all(p["ci_low"] <= p["estimate"]) and np.all(p["estimate"] <= p["ci_high"])
    # no population uncertainty (every draw of x at the estimates): narrower on average
    fixed = SimpleNamespace(values=lambda: pd.DataFrame([est] * 5), replicates=True)
    only_eta = exposure_intervals(res, ds, m, source=fixed, n_draws=60, seed=2).participants
    w = lambda q: np.log(q["ci_high"] / q["ci_low"]).mean()  # noqa: E731
    assert w(only_eta[only_eta["metric"] == "AUC0-28"]) < w(p[p["metric"] == "AUC0-28"])
    # a flagged source's flags reach the description the CLI and the report print
    flagged = SimpleNamespace(values=fixed.values, replicates=True,
                              flags=["replicates_unmoved:ke"])
    how = exposure_intervals(res, ds, m, source=flagged, n_draws=20, seed=2).settings["method"]
    assert "bootstrap replicates (flagged replicates_unmoved:ke" in how
    ci.write(tmp_path / "e")
    back = type(ci).read(tmp_path / "e")
    pd.testing.assert_frame_equal(back.dose_levels, ci.dose_levels, check_dtype=False)
