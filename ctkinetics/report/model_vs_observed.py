"""Model-based exposure next to the observed (NCA) one, per participant (issue 12.5).

Two tables, written as ``exposure_model_vs_nca.csv`` and ``aplasia_model_vs_observed.csv``
and shown in section 3a:

* per participant and CAR-T analyte: Cmax, Tmax and AUC0-28 of the NCA (``CMAX``, ``TMAX``,
  ``AUCINT_LAST[0-28]``) beside those of the participant's fitted curve. The model values are
  the fit's derived rows (``fit_derived.csv``), computed by the one exposure registry
  :func:`ctkinetics.modeling.exposure.model_exposure` when the fit ran;
* per participant with B-cell samples: onset of aplasia, reconstitution day and duration of
  aplasia seen in the samples (:func:`ctkinetics.report.summaries.bcell_aplasia`: sampling
  days, the true days lie between samples) beside those of the fitted B-cell curve,
  :func:`~ctkinetics.modeling.exposure.model_exposure` with the B-cell LLOQ as threshold, up
  to the model's horizon (a reconstitution after the last sample is a prediction, and says so).

Each row carries its fit's status and flags (a flagged fit's numbers are read with caution).
The data dictionary reads :data:`COLUMNS` at import time: this module imports nothing of the
report at module level.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

_1 = "1"
#: column -> (label, unit, definition) for the data dictionary (merged by
#: :mod:`ctkinetics.report.dictionary`); units as its convention ("@col": in column col).
COLUMNS = {
    "cmax_observed": ("Cmax observed (NCA)", "@unit", "highest observed value after infusion (NCA CMAX)"),
    "cmax_model": ("Cmax model", "@unit", "maximum of the participant's fitted curve (exposure registry, "
                                         "ctkinetics.modeling.exposure; fit_derived.csv)"),
    "tmax_observed_day": ("Tmax observed (NCA)", "day", "sampling day of the observed maximum (NCA TMAX)"),
    "tmax_model_day": ("Tmax model", "day", "day the fitted curve peaks (exposure registry)"),
    "auc0_28_observed": ("AUC0-28 observed (NCA)", "@auc_unit",
                         "area under the observed profile from day 0 to 28 (NCA AUCINT_LAST[0-28], "
                         "the report's AUC method)"),
    "auc0_28_model": ("AUC0-28 model", "@auc_unit", "exact integral of the fitted curve from day 0 to 28 "
                                                     "(exposure registry)"),
    "observed_note": ("observed note", "", "why an observed value is missing, or how it is bounded"),
    "fit_status": ("fit status", "", "the participant's fit: converged, not converged or failed"),
    "fit_flags": ("fit flags", "", "flags of the participant's fit (see the flag codes), ';'-separated"),
    "flagged_parameters": ("flagged estimates", "", "the fit's estimates that carry a flag, as "
                                                    "'parameter: flags' (e.g. a residual SD at its bound)"),
    "model_note": ("model note", "", "what limits a model value (censored at the horizon, a "
                                     "prediction beyond the last sample, no fit)"),
    "threshold": ("aplasia threshold", "@unit", "B-cell level defining aplasia: the analyte's LLOQ"),
    "aplasia_onset_observed_day": ("aplasia onset observed", "day",
                                   "first B-cell sample below the LLOQ after infusion"),
    "aplasia_onset_model_day": ("aplasia onset model", "day",
                                "first day the fitted B-cell curve falls below the threshold"),
    "reconstitution_observed_day": ("reconstitution observed", "day",
                                    "first quantified B-cell sample after aplasia (empty: ongoing)"),
    "reconstitution_model_day": ("reconstitution model", "day",
                                 "first day after the onset the fitted B-cell curve is back at the "
                                 "threshold (empty: not by the model's horizon)"),
    "aplasia_observed_days": ("aplasia observed", "day",
                              "reconstitution minus onset in sampling days (empty: ongoing)"),
    "aplasia_model_days": ("aplasia model", "day", "reconstitution minus onset of the fitted curve; "
                                                   "censored at the horizon when not back (model note)"),
}
EXPOSURE_FILE, APLASIA_FILE = "exposure_model_vs_nca.csv", "aplasia_model_vs_observed.csv"
EXPOSURE_COLUMNS = ["subject", "dose_level", "analyte", "cmax_observed", "cmax_model",
                    "tmax_observed_day", "tmax_model_day", "auc0_28_observed", "auc0_28_model",
                    "unit", "auc_unit", "fit_status", "fit_flags", "flagged_parameters",
                    "observed_note"]
APLASIA_COLUMNS = ["subject", "dose_level", "aplasia_onset_observed_day", "aplasia_onset_model_day",
                   "reconstitution_observed_day", "reconstitution_model_day",
                   "aplasia_observed_days", "aplasia_model_days", "last_sample_day", "threshold",
                   "unit", "fit_status", "fit_flags", "flagged_parameters", "observed_note",
                   "model_note"]
#: NCA codes of the observed columns (AUC over [0, 28]).
NCA_CODES = {"cmax_observed": ("CMAX", None), "tmax_observed_day": ("TMAX", None),
             "auc0_28_observed": ("AUCINT_LAST", (0.0, 28.0))}


def _fit_status(fit_result) -> dict:
    """subject -> (status, flags, flagged parameters) of the individual fits; the flagged
    parameters as ``name: flag, flag`` joined by '; ' (which estimate is at a bound or not
    estimable: a residual SD at its bound is not a kinetic parameter at its bound)."""
    if fit_result is None:
        return {}
    pars = fit_result.to_frame()
    pars = pars[pars["flags"].fillna("").astype(str) != ""]
    which: dict = {}
    for s, p, fl in zip(pars["subject"].astype(str), pars["parameter"], pars["flags"].astype(str)):
        which.setdefault(s, []).append(f"{p}: {fl.replace(';', ', ')}")
    out = {}
    for f in fit_result.fits:
        status = "failed" if getattr(f, "failed", False) else ("converged" if f.success
                                                               else "not converged")
        out[f.subject] = (status, ";".join(f.flags), "; ".join(which.get(f.subject, [])))
    return out


def _status_columns(status, subjects) -> dict:
    none = ("no fit", "", "")
    return {"fit_status": [status.get(s, none)[0] for s in subjects],
            "fit_flags": [status.get(s, none)[1] for s in subjects],
            "flagged_parameters": [status.get(s, none)[2] for s in subjects]}


def _level_of(dataset) -> dict:
    return dict(zip(dataset.subjects["subject"].astype(str),
                    dataset.subjects["dose_level"].astype(str)))


def _observed(nca, analyte) -> pd.DataFrame:
    """subject -> the NCA's Cmax, Tmax, AUC0-28 (NaN where excluded, with the reason)."""
    r = nca.results
    r = r[r["analyte"] == analyte]
    cols = {}
    notes: dict = {}
    for col, (code, window) in NCA_CODES.items():
        d = r[r["parameter"] == code]
        if window is not None:
            d = d[(d["start"] == window[0]) & (d["end"] == window[1])]
        ok = d["exclude"].fillna("").astype(str) == ""
        cols[col] = pd.Series(np.where(ok, d["value"].astype(float), np.nan),
                              index=d["subject"].astype(str))
        for s, why in zip(d.loc[~ok, "subject"].astype(str), d.loc[~ok, "exclude"]):
            notes.setdefault(s, []).append(f"{code}: {why}")
    out = pd.DataFrame(cols)
    out["observed_note"] = ["; ".join(notes.get(s, [])) for s in out.index]
    return out


def _modelled(fit_result, analyte) -> pd.DataFrame:
    """subject -> the fit's derived Cmax, Tmax, AUC0-28 of the analyte (fit_derived.csv)."""
    d = fit_result.derived_frame()
    d = d[d["analyte"] == analyte]
    names = {"Cmax": "cmax_model", "Tmax": "tmax_model_day", "AUC0-28": "auc0_28_model"}
    w = d[d["quantity"].isin(names)].pivot_table(index="subject", columns="quantity",
                                                  values="value", aggfunc="first")
    return w.rename(columns=names).reindex(columns=list(names.values()))


def exposure_vs_nca(dataset, nca, fit_result, analytes) -> pd.DataFrame:
    """Per participant and CAR-T analyte (fitted and in the NCA): observed and model-based
    Cmax, Tmax, AUC0-28 side by side (columns :data:`EXPOSURE_COLUMNS`)."""
    if fit_result is None:
        return pd.DataFrame(columns=EXPOSURE_COLUMNS)
    status = _fit_status(fit_result)
    level = _level_of(dataset)
    order = dataset.subjects.sort_values("dose", kind="stable")["subject"].astype(str)
    frames = []
    for a in [a for a in analytes if a in set(fit_result.analytes)]:
        unit = dataset.study.analytes[a].unit
        obs, mod = _observed(nca, a), _modelled(fit_result, a)
        subjects = [s for s in order if s in obs.index or s in mod.index]
        w = obs.reindex(subjects).join(mod.reindex(subjects))
        w.insert(0, "subject", subjects)
        w = w.assign(dose_level=[level.get(s, "") for s in subjects], analyte=a, unit=unit,
                     auc_unit=f"{unit}*day", **_status_columns(status, subjects),
                     observed_note=w["observed_note"].fillna("no NCA"))
        frames.append(w)
    if not frames:
        return pd.DataFrame(columns=EXPOSURE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[EXPOSURE_COLUMNS]


def fitted_parameters(fit_result, dataset, model) -> tuple:
    """(subjects, params, covariates) of the fits with finite estimates: natural-scale
    arrays (n,) of every model parameter (estimated ones from the parameter table, the fixed
    ones at their value) and of the model's covariates from ``dataset.subjects``."""
    table = fit_result.to_frame()
    table = table[table["role"] == "model"]
    usable = [f.subject for f in fit_result.fits
              if not getattr(f, "failed", False) and f.success]
    est = table.pivot_table(index="subject", columns="parameter", values="estimate",
                            aggfunc="first").reindex(usable)
    est = est[np.isfinite(est.to_numpy(float)).all(axis=1)] if len(est.columns) else est
    subjects = [str(s) for s in est.index]
    names = {q.name for q in model.parameters}   # a residual SD held fixed is no model parameter
    fixed = {k: v for k, v in (fit_result.settings.get("fixed") or {}).items() if k in names}
    params = {p: est[p].to_numpy(float) for p in est.columns}
    params.update({k: np.full(len(subjects), float(v)) for k, v in fixed.items()})
    subj = dataset.subjects.assign(subject=dataset.subjects["subject"].astype(str)).set_index("subject")
    covs = {c: subj.reindex(subjects)[c].to_numpy(float)
            for c in (getattr(model, "covariates", None) or ()) if c in subj.columns}
    return subjects, params, covs


def _model_aplasia(fit_result, dataset, model, analyte, lloq) -> pd.DataFrame:
    """subject -> onset, reconstitution, duration of the fitted B-cell curve (registry)."""
    from ctkinetics.modeling.exposure import model_exposure

    names = ["aplasia_onset_model_day", "reconstitution_model_day", "aplasia_model_days", "model_flag"]
    kind = dataset.study.analytes[analyte].kind
    if fit_result is None or analyte not in set(fit_result.analytes) or \
            kind not in getattr(model, "observable_exprs", {}):
        return pd.DataFrame(columns=names)
    subjects, params, covs = fitted_parameters(fit_result, dataset, model)
    if not subjects:
        return pd.DataFrame(columns=names)
    covs, doses = _events(dataset, model, subjects, covs)
    with np.errstate(all="ignore"):
        e = model_exposure(model, params, covs or None, kinds=[kind], t_end=float(model.horizon),
                           thresholds={kind: float(lloq)}, doses=doses,
                           metrics=("aplasia_onset", "reconstitution", "aplasia_days"))
    v, fl = e.values, e.flags
    flag = [" ".join(x for x in (fl[(kind, "aplasia_days")][i], fl[(kind, "reconstitution")][i],
                                 e.messages[i] if e.status[i] else "") if x)
            for i in range(len(subjects))]
    return pd.DataFrame({names[0]: v[(kind, "aplasia_onset")], names[1]: v[(kind, "reconstitution")],
                         names[2]: v[(kind, "aplasia_days")], names[3]: flag}, index=subjects)


def _events(dataset, model, subjects, covs) -> tuple:
    """(covariates with each participant's time courses, later doses or None): the course
    the fits predicted (estimation.events: doses only for a model that says what a later
    infusion does)."""
    from ctkinetics.estimation.events import subject_inputs

    per = [subject_inputs(dataset, model, s, {c: v[i] for c, v in covs.items()})
           for i, s in enumerate(subjects)]
    out = dict(covs)
    for c in {c for cov, _ in per for c, v in cov.items() if hasattr(v, "times")}:
        out[c] = [cov[c] for cov, _ in per]
    doses = [kw.get("doses", np.zeros((0, 2))) for _, kw in per]
    return out, (doses if any(len(d) for d in doses) else None)


def _model_note(row, reinfused=False) -> str:
    if row["fit_status"] in ("no fit", "failed"):
        return "no fitted curve"
    notes = [str(row["model_flag"])] if str(row.get("model_flag", "") or "") else []
    if reinfused:  # a model without [dosing] was fitted up to the re-infusion
        notes.append("the model does not say what a later infusion does: the curve is the "
                     "first infusion's, fitted up to the re-infusion")
    r, last = row["reconstitution_model_day"], row["last_sample_day"]
    if np.isfinite(r) and np.isfinite(last) and r > last:
        notes.append(f"predicted after the last sample (day {last:g})")
    return "; ".join(dict.fromkeys(notes))


def aplasia_vs_observed(dataset, aplasia, fit_result, model, analyte) -> pd.DataFrame:
    """Per participant with B-cell samples: aplasia onset, reconstitution day and duration,
    observed (sampling days) beside the fitted curve's (columns :data:`APLASIA_COLUMNS`)."""
    if aplasia is None or analyte is None or fit_result is None \
            or analyte not in set(fit_result.analytes):   # no fitted B-cell curve to compare
        return pd.DataFrame(columns=APLASIA_COLUMNS)
    info = dataset.study.analytes[analyte]
    status = _fit_status(fit_result)
    obs = aplasia.assign(subject=aplasia["subject"].astype(str)).set_index("subject")
    mod = _model_aplasia(fit_result, dataset, model, analyte, info.lloq)
    w = pd.DataFrame({
        "subject": obs.index, "dose_level": obs["dose_level"].astype(str).to_numpy(),
        "aplasia_onset_observed_day": obs["aplasia_start"].to_numpy(float),
        "reconstitution_observed_day": obs["aplasia_end"].to_numpy(float),
        "aplasia_observed_days": (obs["aplasia_end"] - obs["aplasia_start"]).to_numpy(float),
        "last_sample_day": obs["last_sample"].to_numpy(float), "threshold": float(info.lloq),
        "unit": info.unit, "observed_note": obs["status"].astype(str).to_numpy()})
    w = w.join(mod, on="subject").assign(**_status_columns(status, list(obs.index)))
    w["model_flag"] = w["model_flag"].fillna("")
    later = getattr(dataset, "later_doses", None)
    no_dosing = not getattr(model, "dosing", None)
    w["model_note"] = [_model_note(r, no_dosing and later is not None and len(later(r["subject"])) > 0)
                       for _, r in w.iterrows()]
    for c in ("aplasia_onset_model_day", "reconstitution_model_day", "aplasia_model_days"):
        w[c] = w[c].astype(float)
    return w[APLASIA_COLUMNS]


def _row_class(r) -> str:
    if r["fit_status"] in ("failed", "no fit", "not converged"):
        return "fail"
    return "flag" if str(r["fit_flags"] or "") else ""


def _with_unit(label, unit) -> str:
    return f"{label} ({unit})" if unit else label


def section(rv) -> str:
    """3a. The model-based exposure of each participant beside the observed one."""
    from ctkinetics.report.html import collapsible, esc, table  # (the dictionary imports COLUMNS)

    out = ["<h2 id='model-vs-observed'>3a. Model-based vs observed exposure, per participant</h2>"]
    if rv.fit is None:
        out.append("<p class='note'>No individual fits: nothing to compare (see section 3).</p>")
        return "<section>" + "".join(out) + "</section>"
    choice = f" ({rv.model_choice})" if rv.model_choice and rv.model_choice != "as set" else ""
    out.append(f"<p class='note'>Model <b>{esc(rv.fit.model)}</b>{esc(choice)}; {esc(rv.fit_note)} "
               "Observed values are the NCA's (CMAX, TMAX, AUCINT_LAST over days 0–28) and the "
               "B-cell sampling days; model values come from the participant's fitted curve "
               "through the exposure registry (<code>ctkinetics.modeling.exposure</code>: "
               "Cmax/Tmax from the curve's peak, AUC0-28 its exact integral, aplasia from the "
               "crossings of the B-cell LLOQ). Orange rows: flagged fits (read with caution); "
               "red rows: failed or not converged fits.</p>")
    ex = rv.exposure_comparison
    for a in dict.fromkeys(ex["analyte"]) if ex is not None and len(ex) else ():
        d = ex[ex["analyte"] == a]
        unit = d["unit"].iloc[0]
        auc = d["auc_unit"].iloc[0]
        out.append(f"<h3>{esc(a)}: Cmax, Tmax, AUC0-28</h3>")
        out.append(table(d, ["subject", "dose_level", "cmax_observed", "cmax_model",
                             "tmax_observed_day", "tmax_model_day", "auc0_28_observed",
                             "auc0_28_model", "fit_status", "fit_flags", "flagged_parameters",
                             "observed_note"],
                         labels={"cmax_observed": _with_unit("Cmax observed", unit),
                                 "cmax_model": _with_unit("Cmax model", unit),
                                 "tmax_observed_day": "Tmax observed (day)",
                                 "tmax_model_day": "Tmax model (day)",
                                 "auc0_28_observed": _with_unit("AUC0-28 observed", auc),
                                 "auc0_28_model": _with_unit("AUC0-28 model", auc),
                                 "dose_level": "DL", "fit_status": "fit", "fit_flags": "fit flags",
                                 "flagged_parameters": "flagged estimates",
                                 "observed_note": "NCA note"},
                         row_class=_row_class,
                         text_columns=("subject", "dose_level", "fit_status", "fit_flags",
                                       "flagged_parameters", "observed_note")))
    ap = rv.aplasia_comparison
    if ap is not None and len(ap):
        lloq = f"{float(ap['threshold'].iloc[0]):g} {ap['unit'].iloc[0]}"
        out.append(f"<h3>{esc(rv.bcell_analyte)}: B-cell aplasia (below the LLOQ, "
                   f"{esc(lloq)})</h3>")
        out.append(table(ap, ["subject", "dose_level", "aplasia_onset_observed_day",
                              "aplasia_onset_model_day", "reconstitution_observed_day",
                              "reconstitution_model_day", "aplasia_observed_days",
                              "aplasia_model_days", "last_sample_day", "fit_status", "fit_flags",
                              "flagged_parameters", "model_note"],
                         labels={"aplasia_onset_observed_day": "onset observed (day)",
                                 "aplasia_onset_model_day": "onset model (day)",
                                 "reconstitution_observed_day": "back observed (day)",
                                 "reconstitution_model_day": "back model (day)",
                                 "aplasia_observed_days": "duration observed (days)",
                                 "aplasia_model_days": "duration model (days)",
                                 "last_sample_day": "last sample (day)", "dose_level": "DL",
                                 "fit_status": "fit", "fit_flags": "fit flags",
                                 "flagged_parameters": "flagged estimates", "model_note": "model note"},
                         row_class=_row_class,
                         text_columns=("subject", "dose_level", "fit_status", "fit_flags",
                                       "flagged_parameters", "model_note")))
        out.append("<p class='note'>Observed days are sampling days: the true onset lies between "
                   "the last quantified and the first BLQ sample, the true return between the last "
                   "BLQ and the first quantified one. The fitted curve's days are continuous; "
                   "a return after the last sample is the model's prediction.</p>")
    out.append(collapsible("Where these numbers are in the CSV files",
                           f"<p><code>{EXPOSURE_FILE}</code>, <code>{APLASIA_FILE}</code> (every "
                           "column in the data dictionary); the model values also in "
                           "<code>fit_derived.csv</code>, the fitted parameters in "
                           "<code>fit_parameters.csv</code>.</p>"))
    return "<section>" + "".join(out) + "</section>"
