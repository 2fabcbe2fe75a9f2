"""Issue 12.5: the default report fits the model that observes the study's analytes and shows
each participant's model-based exposure beside the observed (NCA) one.

Independent checks:

* the model columns against the exposure registry called here on the fitted parameters read
  back from ``fit_parameters.csv`` (+ the model's fixed defaults and the dose from
  ``subjects.csv``): the report wires the right parameters, covariates and threshold;
* the same numbers against a second method: the fitted curve evaluated by ``Model.predict``
  on a dense grid (max, argmax, trapezoid AUC on 0.002-day steps, the first crossings of the
  B-cell LLOQ), within that grid's accuracy;
* the observed columns against ``nca.csv`` and ``bcell_aplasia.csv`` row by row;
* a qPCR-only study keeps stein2019 and maximum-likelihood fits.
"""
from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from report_helpers import MINI, SAMPLE

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The default review of the sample cohort (1 start, 20 band draws for speed), written."""
    from ctkinetics.data import load_study
    from ctkinetics.report import ReportSettings, build_review, write_report

    rv = build_review(load_study(SAMPLE), ReportSettings(fit_starts=1, band_draws=20))
    out = tmp_path_factory.mktemp("mvo") / "report"
    files = write_report(rv, out, root=SAMPLE)
    return rv, out, files


def _read(out, name):
    return pd.read_csv(out / name, keep_default_na=True, dtype={"subject": str, "dose_level": str})


def _fitted(out, model):
    """Natural-scale parameters (n,) per model parameter and the dose, read from the CSVs."""
    pars = _read(out, "fit_parameters.csv")
    pars = pars[pars["role"] == "model"]
    est = pars.pivot_table(index="subject", columns="parameter", values="estimate", aggfunc="first")
    subjects = list(est.index)
    params = {p.name: (est[p.name].to_numpy(float) if p.name in est.columns
                       else np.full(len(subjects), p.default)) for p in model.parameters}
    subj = pd.read_csv(SAMPLE / "subjects.csv", dtype={"subject": str}).set_index("subject")
    return subjects, params, {"dose": subj.loc[subjects, "dose"].to_numpy(float)}


def test_the_default_fits_cart_bcell_sle_to_all_three_analytes_and_records_why(written):
    rv, out, files = written
    assert rv.settings.model == "cart_bcell_sle" and rv.fit.model == "cart_bcell_sle"
    assert set(rv.fit.analytes) == {"transgene", "car_flow", "bcell"}
    # the participants' plots carry the fitted curve of every analyte
    assert {(s, a) for s, a in zip(rv.curves["subject"], rv.curves["analyte"])} == \
        {(s, a) for s in rv.dataset.subjects["subject"].astype(str)
         for a in ("transgene", "car_flow", "bcell")}
    assert {f"individual_profile:SLE-101:{a}" for a in ("transgene", "car_flow", "bcell")} \
        <= set(files.figures)
    s = json.loads((out / "summary.json").read_text())
    assert s["settings"]["model"] == "cart_bcell_sle" and s["settings"]["fit_prior"] == "model"
    assert "population_method" not in s["settings"]        # auto: no population fit (yet)
    assert "flow (car_flow)" in s["fits"]["model_choice"] and "bcell (bcell)" in s["fits"]["model_choice"]
    assert s["fits"]["prior"] == "model" and "MAP" in s["fits"]["fits_are"]
    # MAP fits: the prior is recorded by the fit itself (the model file's omega2)
    assert rv.fit.prior is not None


def test_the_default_map_fits_hold_sigma_at_the_model_files_assay_precision(written):
    """POSTHOC: the residual SDs are the model file's [residual_error], not the
    participant's own (which ran sigma_bcell to its lower bound in 11 of 12 fits), and the
    report says so in the fit section and the parameter rows."""
    from ctkinetics.modeling import load_model

    rv, out, files = written
    declared = {r.kind: r.sigmas["sigma"] for r in load_model("cart_bcell_sle").residual_error}
    kinds = {a: rv.dataset.study.analytes[a].kind for a in rv.fit.analytes}
    pars = _read(out, "fit_parameters.csv")
    sig = pars[pars["role"] == "sigma"]
    assert len(sig) == 3 * len(rv.fit.fits)
    assert (sig["ci_method"] == "fixed").all() and sig["se"].isna().all()
    for name, value in zip(sig["parameter"], sig["estimate"]):
        assert value == declared[kinds[name.removeprefix("sigma_")]]
    assert not sig["flags"].astype(str).str.contains("at_bound").any()
    assert all(v.startswith("model file [residual_error.") for v in
               rv.fit.settings["sigma_sources"].values())
    s = json.loads((out / "summary.json").read_text())
    assert "Residual SDs fixed (not estimated) at the model file's assay precision" in \
        s["fits"]["fits_are"]
    fits = files.html.read_text(encoding="utf-8").split("<h2 id='fits'>", 1)[1]
    assert "Residual SDs fixed (not estimated) at the model file&#x27;s assay precision" in fits
    assert "sigma_bcell = 0.2" in fits and "not a published assay CV" in fits


def test_fit_estimate_sigma_setting_estimates_each_participants_sds():
    """[fit] estimate_sigma = true: the report's fits go back to each participant's own SDs."""
    from ctkinetics.data import load_study
    from ctkinetics.modeling import load_model
    from ctkinetics.report import ReportSettings
    from ctkinetics.report.review import _fits

    settings = ReportSettings(fit_starts=1, fit_estimate_sigma=True)
    res, error = _fits(load_study(SAMPLE), load_model("cart_bcell_sle"), settings, "model")
    assert error == "" and res.settings["sigma_sources"] == {}
    sig = res.to_frame().query("role == 'sigma'")
    assert len(sig) == 3 * len(res.fits) and (sig["ci_method"] != "fixed").all()
    assert res.settings["sigma_note"] == "residual SDs estimated (estimate_sigma)"
    # their own SDs bring the flags back (sigma_bcell at its bound): the box at the top of the
    # report names every flagged participant
    from ctkinetics.report.sections import fit_status_box

    flagged = [f.subject for f in res.fits if f.success and f.flags]
    assert len(flagged) > len(res.fits) // 2
    box = fit_status_box(SimpleNamespace(fit=res))
    assert f"{len(flagged)} of {len(res.fits)} fits are flagged" in box
    assert all(f"<b>{s}</b>" in box for s in flagged)


def test_model_columns_equal_the_exposure_registry_on_the_fitted_parameters(written):
    from ctkinetics.modeling import load_model
    from ctkinetics.modeling.exposure import model_exposure

    rv, out, _ = written
    model = load_model("cart_bcell_sle")
    subjects, params, covs = _fitted(out, model)
    ex = _read(out, "exposure_model_vs_nca.csv")
    obs = pd.read_csv(SAMPLE / "observations.csv", dtype={"subject": str})
    t_end = np.maximum(28.0, obs[obs["time"] >= 0].groupby("subject")["time"].max()
                       .reindex(subjects).to_numpy(float))
    e = model_exposure(model, params, covs, kinds=["qpcr", "flow"], t_end=t_end,
                       metrics=("Cmax", "Tmax", "AUC"))
    for analyte, kind in (("transgene", "qpcr"), ("car_flow", "flow")):
        d = ex[ex["analyte"] == analyte].set_index("subject").loc[subjects]
        np.testing.assert_allclose(d["cmax_model"], e.values[(kind, "Cmax")], rtol=1e-6)
        np.testing.assert_allclose(d["tmax_model_day"], e.values[(kind, "Tmax")], rtol=1e-5)
        np.testing.assert_allclose(d["auc0_28_model"], e.values[(kind, "AUC0-28")], rtol=1e-6)
    ap = _read(out, "aplasia_model_vs_observed.csv").set_index("subject").loc[subjects]
    e = model_exposure(model, params, covs, kinds=["bcell"], t_end=365.0, thresholds={"bcell": 1.0},
                       metrics=("aplasia_onset", "reconstitution", "aplasia_days"))
    np.testing.assert_allclose(ap["aplasia_onset_model_day"], e.values[("bcell", "aplasia_onset")], rtol=1e-6)
    np.testing.assert_allclose(ap["reconstitution_model_day"], e.values[("bcell", "reconstitution")],
                               rtol=1e-6)
    np.testing.assert_allclose(ap["aplasia_model_days"], e.values[("bcell", "aplasia_days")], rtol=1e-6)


def test_model_columns_agree_with_the_fitted_curve_on_a_dense_grid(written):
    """Second method: Model.predict on 0.002-day steps (max, its day, trapezoid AUC0-28,
    first crossings of the LLOQ); tolerances are that grid's accuracy."""
    from ctkinetics.modeling import load_model

    rv, out, _ = written
    model = load_model("cart_bcell_sle")
    subjects, params, covs = _fitted(out, model)
    ex = _read(out, "exposure_model_vs_nca.csv")
    ap = _read(out, "aplasia_model_vs_observed.csv").set_index("subject")
    t = np.arange(0.0, 28.0 + 1e-9, 0.002)
    late = np.arange(0.0, 365.0 + 1e-9, 0.01)
    for i, s in enumerate(subjects):
        p = {k: v[i] for k, v in params.items()}
        c = {"dose": covs["dose"][i]}
        pred = model.predict(p, t, covariates=c)
        for analyte, kind in (("transgene", "qpcr"), ("car_flow", "flow")):
            row = ex[(ex["analyte"] == analyte) & (ex["subject"] == s)].iloc[0]
            y = np.asarray(pred[kind], float)
            if row["tmax_model_day"] <= 28:
                assert row["cmax_model"] == pytest.approx(y.max(), rel=1e-5)
                assert row["tmax_model_day"] == pytest.approx(t[np.argmax(y)], abs=0.01)
            assert row["auc0_28_model"] == pytest.approx(np.trapezoid(y, t), rel=1e-5)
        b = np.asarray(model.predict(p, late, covariates=c)["bcell"], float)
        below = np.flatnonzero(b < 1.0)
        onset = late[below[0]]
        back = late[below[0] + np.flatnonzero(b[below[0]:] >= 1.0)[0]]
        assert ap.loc[s, "aplasia_onset_model_day"] == pytest.approx(onset, abs=0.011)
        assert ap.loc[s, "reconstitution_model_day"] == pytest.approx(back, abs=0.011)


def test_observed_columns_are_the_nca_and_the_sampled_aplasia_participant_by_participant(written):
    rv, out, _ = written
    ex = _read(out, "exposure_model_vs_nca.csv")
    nca = _read(out, "nca.csv")
    subjects = set(rv.dataset.subjects["subject"].astype(str))
    for analyte in ("transgene", "car_flow"):
        d = ex[ex["analyte"] == analyte]
        assert sorted(d["subject"]) == sorted(subjects)          # one row per participant
        for col, code, window in (("cmax_observed", "CMAX", None), ("tmax_observed_day", "TMAX", None),
                                  ("auc0_28_observed", "AUCINT_LAST", (0.0, 28.0))):
            n = nca[(nca["analyte"] == analyte) & (nca["parameter"] == code)]
            if window:
                n = n[(n["start"] == window[0]) & (n["end"] == window[1])]
            want = n.set_index("subject")["value"].where(n.set_index("subject")["exclude"].isna())
            got = d.set_index("subject")[col]
            np.testing.assert_allclose(got.loc[sorted(subjects)], want.loc[sorted(subjects)], rtol=1e-12)
        # the model's row of a participant is that participant's derived value
        der = _read(out, "fit_derived.csv")
        der = der[(der["analyte"] == analyte) & (der["quantity"] == "Cmax")].set_index("subject")["value"]
        np.testing.assert_allclose(d.set_index("subject")["cmax_model"].loc[der.index], der, rtol=1e-12)
    ap = _read(out, "aplasia_model_vs_observed.csv").set_index("subject")
    obs = _read(out, "bcell_aplasia.csv").set_index("subject")
    assert sorted(ap.index) == sorted(obs.index)
    np.testing.assert_array_equal(ap["aplasia_onset_observed_day"], obs.loc[ap.index, "aplasia_start"])
    np.testing.assert_array_equal(ap["reconstitution_observed_day"], obs.loc[ap.index, "aplasia_end"])
    back = obs.loc[ap.index, "aplasia_end"] - obs.loc[ap.index, "aplasia_start"]
    np.testing.assert_array_equal(ap["aplasia_observed_days"], back)
    # SLE-201's aplasia was ongoing at its last sample (day 90): no observed return, and a
    # model return after day 90 is said to be a prediction
    assert np.isnan(ap.loc["SLE-201", "reconstitution_observed_day"])
    if ap.loc["SLE-201", "reconstitution_model_day"] > 90:
        assert "predicted after the last sample (day 90)" in ap.loc["SLE-201", "model_note"]


def test_flags_of_the_fits_are_on_every_row_and_name_the_flagged_estimates(written):
    rv, out, files = written
    ex = pd.read_csv(out / "exposure_model_vs_nca.csv", dtype=str, keep_default_na=False)
    by = {f.subject: f for f in rv.fit.fits}
    pars = rv.fit.to_frame()
    for _, r in ex.iterrows():
        f = by[r["subject"]]
        assert r["fit_flags"] == ";".join(f.flags)
        assert r["fit_status"] == ("converged" if f.success else "not converged")
        flagged = pars[(pars["subject"] == r["subject"]) & (pars["flags"].fillna("") != "")]
        for p in flagged["parameter"]:
            assert f"{p}: " in r["flagged_parameters"]
    html = files.html.read_text(encoding="utf-8")
    assert "<h2 id='model-vs-observed'>3a. Model-based vs observed exposure" in html
    flagged = [f.subject for f in rv.fit.fits if f.flags]
    section = html.split("<h2 id='model-vs-observed'>", 1)[1].split("</section>", 1)[0]
    assert section.count("<tr class='flag'>") >= len(flagged)


def test_every_new_column_has_a_dictionary_row_with_its_unit(written):
    from ctkinetics.report.dictionary import unit_is_stated

    rv, out, _ = written
    dictionary = _read(out, "data_dictionary.csv").fillna("")
    rows = dictionary.set_index("code")
    for name in ("exposure_model_vs_nca.csv", "aplasia_model_vs_observed.csv"):
        df = pd.read_csv(out / name)
        for col in df.columns:
            assert col in rows.index, (name, col)
            if pd.api.types.is_numeric_dtype(df[col]):
                ok, why = unit_is_stated(name, col, df)
                assert ok, (name, col, why)
    assert rows.loc["cmax_model", "unit"] == "in column unit"
    assert rows.loc["auc0_28_model", "unit"] == "in column auc_unit"
    assert rows.loc["tmax_model_day", "unit"] == "day"
    ex = pd.read_csv(out / "exposure_model_vs_nca.csv")
    assert set(ex.loc[ex["analyte"] == "transgene", "auc_unit"]) == {"copies/ug*day"}


def _qpcr_only(tmp_path):
    dst = tmp_path / "qpcr_only"
    shutil.copytree(MINI, dst)
    obs = pd.read_csv(dst / "observations.csv", dtype=str)
    obs[obs["analyte"] == "transgene"].to_csv(dst / "observations.csv", index=False)
    toml = (dst / "study.toml").read_text()
    (dst / "study.toml").write_text(toml.split("[analytes.car_flow]")[0])
    return dst


def test_a_qpcr_only_study_keeps_stein2019_and_maximum_likelihood(tmp_path):
    from ctkinetics.data import load_study
    from ctkinetics.report import ReportSettings
    from ctkinetics.report.review import resolve_settings

    s, model, why = resolve_settings(ReportSettings(), load_study(_qpcr_only(tmp_path)))
    assert (s.model, model.name, s.population_method, s.fit_prior) == ("stein2019", "stein2019", None, "none")
    assert "no flow or B-cell samples" in why
    # the mini study's one flow sample after infusion is enough to observe flow
    s, model, why = resolve_settings(ReportSettings(), load_study(MINI))
    assert (s.model, s.fit_prior) == ("cart_bcell_sle", "model") and "flow (car_flow)" in why
    # a model given by name is kept as given, and [fit] analytes decide what "auto" looks at
    s, _, why = resolve_settings(ReportSettings(model="stein2019"), load_study(MINI))
    assert (s.model, s.fit_prior, why) == ("stein2019", "none", "as set")
    s, _, _ = resolve_settings(ReportSettings(fit_analytes=("transgene",)), load_study(MINI))
    assert s.model == "stein2019"
    # a population fit makes the individual fits empirical Bayes estimates
    s, _, _ = resolve_settings(ReportSettings(model="stein2019", population_method="focei"), load_study(MINI))
    assert s.fit_prior == "population"


def test_prior_of_the_fits_follows_the_population_fit():
    from ctkinetics.errors import SettingsError
    from ctkinetics.report import ReportSettings
    from ctkinetics.report.review import _prior, resolve_settings

    s = ReportSettings(model="stein2019", population_method="focei", fit_prior="population")
    good = SimpleNamespace(converged=True, failed=False, method="focei")
    assert _prior(s, good)[0] is good and "FOCEI population fit" in _prior(s, good)[1]
    for bad in (None, SimpleNamespace(converged=False, failed=False, method="focei")):
        prior, note = _prior(s, bad)
        assert prior == "model" and "not used as the prior" in note
    assert _prior(ReportSettings(fit_prior="none"), None) == (None, "maximum-likelihood fits (no prior).")
    from ctkinetics.data import load_study

    with pytest.raises(SettingsError, match="needs a population fit"):
        resolve_settings(ReportSettings(model="stein2019", fit_prior="population"), load_study(MINI))


def test_no_aplasia_comparison_without_a_fitted_b_cell_curve_and_reinfusions_are_named():
    from ctkinetics.data import load_study
    from ctkinetics.report.model_vs_observed import APLASIA_COLUMNS, _model_note, aplasia_vs_observed
    from ctkinetics.report.summaries import bcell_aplasia

    ds = load_study(SAMPLE)
    stein = SimpleNamespace(analytes=("transgene",), fits=())      # a qPCR-only fit
    got = aplasia_vs_observed(ds, bcell_aplasia(ds, "bcell"), stein, None, "bcell")
    assert got.empty and list(got.columns) == APLASIA_COLUMNS
    row = {"fit_status": "converged", "model_flag": "", "reconstitution_model_day": 50.0,
           "last_sample_day": 90.0}
    assert _model_note(row) == ""
    assert "the curve is the first infusion's" in _model_note(row, reinfused=True)
    assert _model_note({**row, "fit_status": "failed"}) == "no fitted curve"


def test_the_model_aplasia_follows_each_participants_later_infusions():
    # sle_cohort_allo: SLE-101 and SLE-102 are infused again on day 120 (data/sample/
    # generate_allogeneic.py); a model with [dosing] gets exactly those doses for those two,
    # a model without one gets none (it was fitted up to the re-infusion)
    import numpy as np

    from ctkinetics.data import load_study
    from ctkinetics.modeling import load_model
    from ctkinetics.report.model_vs_observed import _events

    ds = load_study(SAMPLE.parent / "sle_cohort_allo")
    subjects = [str(s) for s in ds.subjects["subject"]]
    covs = {"dose": ds.subjects["dose"].to_numpy(float)}
    _, doses = _events(ds, load_model("cart_bcell_sle"), subjects, covs)
    again = {s: d for s, d in zip(subjects, doses) if len(d)}
    assert sorted(again) == ["SLE-101", "SLE-102"]
    for s, d in again.items():
        np.testing.assert_array_equal(d, ds.later_doses(s))
        assert d[0, 0] == 120.0
    assert _events(ds, load_model("stein2019"), subjects, covs)[1] is None
