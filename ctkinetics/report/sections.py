"""The sections of the cohort review page, each a function of the :class:`Review`.

Order follows what the committee asks in turn: the recommendation first (a summary box),
then the data and its audit, expansion (NCA), the model fits, B-cell aplasia, safety and the
escalation decision, and provenance. Two optional sections slot in when asked for: the
population fit (3b, after the individual fits) and the virtual trials (5b, after the decision
they inform).
"""
from __future__ import annotations

import pandas as pd

from ctkinetics import plots
from ctkinetics.plots.exposure import metric_label
from ctkinetics import formatting as F
from ctkinetics.estimation.flags import FLAGS
from ctkinetics.report.html import collapsible, esc, fmt, table
from ctkinetics.report.escalation import decision_box, safety_section  # noqa: F401 (their home)

# the flag registry's meanings (one definition per flag: ctkinetics.estimation.flags)
FLAG_MEANINGS = {f.id: f"{f.meaning} (raised when {f.threshold})" for f in FLAGS.values()
                 if set(f.scopes) & {"subject", "parameter", "sample"}}
NCA_KEYS = ("CMAX", "TMAX", "AUCINT", "AUCLST", "LAMZHL", "TLST")


def _fit_row_class(r) -> str:
    if not bool(r.get("success", True)):
        return "fail"
    return "flag" if str(r.get("flags", "") or "") else ""


def _reason_counts(df: pd.DataFrame, by=("reason",)) -> pd.DataFrame:
    if df is None or df.empty:
        return pd.DataFrame(columns=[*by, "records"])
    return df.groupby(list(by), sort=True).size().rename("records").reset_index()


def _with_samples(rv, analytes, quantified: bool) -> list:
    """Participants (by dose, as the figures order them) with post-infusion samples of any
    of ``analytes`` (quantified ones only when asked); B cells keep their baseline."""
    from ctkinetics.plots.profiles import post_infusion

    present = set()
    for a in analytes:
        kind = getattr(rv.dataset.study.analytes.get(a), "kind", "")
        d = post_infusion(rv.dataset, a, baseline=(kind == "bcell"))
        present |= set(d.loc[~d["blq"], "subject"].astype(str) if quantified else d["subject"].astype(str))
    order = rv.dataset.subjects.sort_values("dose", kind="stable")["subject"].astype(str)
    return [s for s in order if s in present]


class _Subset:
    """The dataset seen by a figure of some participants: their observations only, found in
    one grouping pass (each figure filtering the whole table would be quadratic)."""

    def __init__(self, dataset):
        self.full, self.study, self.subjects = dataset, dataset.study, dataset.subjects
        self._obs = obs = dataset.observations   # one copy (the property copies the table)
        self._rows = obs.groupby(obs["subject"].astype(str), sort=False).indices

    def of(self, subjects):
        import numpy as np
        from types import SimpleNamespace

        idx = [self._rows[s] for s in subjects if s in self._rows]
        rows = np.sort(np.concatenate(idx)) if idx else np.array([], dtype=int)
        return SimpleNamespace(observations=self._obs.iloc[rows], study=self.study,
                               subjects=self.subjects)


def _paged_panels(fig, rv, subjects, make, name, what) -> str:
    """A one-panel-per-participant figure; beyond :data:`figures.PER_PAGE` participants one
    figure per page of them (drawn when its page is shown)."""
    from ctkinetics.report.figures import PER_PAGE

    if len(subjects) <= PER_PAGE:
        return fig(lambda: make(rv.dataset, None), name)
    subset = _Subset(rv.dataset)
    pages = [subjects[i:i + PER_PAGE] for i in range(0, len(subjects), PER_PAGE)]
    cells = fig.many([lambda p=p: make(subset.of(p), p) for p in pages],
                     [f"{name}:page{k + 1}" for k in range(len(pages))])
    labels = [f"{p[0]} – {p[-1]}" for p in pages]
    return fig.paged(cells, labels, what, per_page=1)


# --------------------------------------------------------------------------------------
def summary_box(rv) -> str:
    """The top of the page: the design's recommendation and the state of the fits."""
    return decision_box(rv, anchor=True) + fit_status_box(rv) + population_status_box(rv)


def fit_status_box(rv) -> str:
    if rv.fit is None:
        return (f"<div class='box bad'><b>Model fits failed</b> ({esc(rv.settings.model)}): "
                f"{esc(rv.fit_error)}. NCA and safety below are unaffected.</div>")
    failed = [f for f in rv.fit.fits if not f.success]
    flagged = [f for f in rv.fit.fits if f.success and f.flags]
    n = len(rv.fit.fits)
    if not failed and not flagged:
        return (f"<div class='box good'>All {n} individual fits ({esc(rv.fit.model)}) converged "
                "without flags.</div>")
    items = "".join(f"<li><b>{esc(f.subject)}</b>: fit failed — {esc(f.message)}</li>" for f in failed)
    items += "".join(f"<li><b>{esc(f.subject)}</b>: {esc(', '.join(f.flags))}</li>" for f in flagged)
    cls = "bad" if failed else "warn"
    what = " and ".join(x for x in (f"{len(failed)} of {n} fits failed" if failed else "",
                                     f"{len(flagged)} of {n} fits are flagged" if flagged else "") if x)
    return (f"<div class='box {cls}'><b>{what}</b> ({esc(rv.fit.model)}); read their parameters "
            f"with caution "
            f"(see <a href='#fits'>Model fits</a>):<ul>{items}</ul></div>")


# --------------------------------------------------------------------------------------
def data_section(rv, fig) -> str:
    ds = rv.dataset
    st = ds.study
    subj = ds.subjects
    levels = pd.DataFrame({"dose_level": list(st.dose_levels),
                           "dose (cells)": list(st.dose_levels.values())})
    levels["participants"] = [int((subj["dose_level"].astype(str) == lv).sum()) for lv in levels["dose_level"]]
    design = pd.DataFrame([
        ("target DLT rate", st.design.target_dlt_rate), ("DLT window (days)", st.design.dlt_window_days),
        ("stagger (days)", st.design.stagger_days), ("cohort size", st.design.cohort_size),
        ("maximum participants", st.design.max_subjects)], columns=["design", "value"])
    audit = ds.audit
    warn = "".join(f"<li>{esc(w)}</li>" for w in ds.warnings)
    out = [f"<h2 id='data'>1. Study and data audit</h2><p><b>{esc(st.name)}</b>: "
           f"{len(subj)} participants, {len(ds.observations)} samples read from "
           f"{len(ds.sources)} files.</p><div class='grid'><div>"
           f"{table(levels, formats={'dose (cells)': 'dose'})}</div>"
           f"<div>{table(design, text_columns=('value',))}</div></div>",
           "<h3>Samples and below-LLOQ values per analyte</h3>",
           table(rv.counts, labels={"blq_post_infusion": "BLQ after infusion",
                                    "blq_pct": "BLQ %", "pre_infusion": "pre-infusion",
                                    "post_infusion": "after infusion"}),
           "<h3>Records excluded, changed or labelled on reading</h3>",
           table(_reason_counts(audit, ("action", "reason")), text_columns=("action", "reason")),
           collapsible(f"Every audited record ({len(audit)})",
                       table(audit, text_columns=tuple(audit.columns))),
           f"<h3>Warnings</h3><ul>{warn}</ul>" if warn else ""]
    return "<section>" + "".join(out) + "</section>"


def _with_unit(label: str, unit) -> str:
    return f"{label} ({unit})" if unit and str(unit) not in ("", "1", "nan") else label


def _nca_units(rv, analyte) -> dict:
    r = rv.nca.results
    r = r[r["analyte"] == analyte]
    return dict(zip(r["parameter"], r["unit"]))


def _nca_summary_table(rv, analyte) -> str:
    from ctkinetics.nca.parameters import PARAMETERS

    s = rv.nca.summary()
    s = s[s["analyte"] == analyte]
    s = s[s["parameter"].str.startswith(NCA_KEYS)]
    if s.empty:
        return "<p class='note'>(no usable NCA values)</p>"
    units = _nca_units(rv, analyte)
    s = s.assign(metric=[_with_unit(metric_label(p, a, b), units.get(p))
                         for p, a, b in zip(s["parameter"], s["start"], s["end"])],
                 shown=[_summary_text(r, PARAMETERS.get(r.parameter)) for r in s.itertuples()])
    cols = [lv for lv in rv.nca.dose_levels if lv in set(s["dose_level"])]
    rows = []
    for metric, g in s.groupby("metric", sort=False):
        by = {r.dose_level: r for r in g.itertuples()}
        rows.append({"metric": metric, **{f"DL {lv}": (f"{by[lv].shown} n={int(by[lv].n)}"
                                                       if lv in by and by[lv].shown else "")
                                          for lv in cols}})
    return table(pd.DataFrame(rows), text_columns=tuple(["metric"] + [f"DL {c}" for c in cols]))


def _summary_text(r, spec) -> str:
    """The NCA summary cell: geometric mean (geometric CV %), or median [min, max]."""
    kind = spec.summary if spec is not None else "arithmetic"
    if kind == "median_range":
        return F.median_range(r.median, r.min, r.max)
    if kind == "geometric" and pd.notna(r.geo_mean):
        return F.geo_mean_cv(r.geo_mean, r.geo_cv_pct)
    return F.number(r.mean) + (f" ({F.number(r.sd)})" if pd.notna(r.sd) else "")


def _nca_participants(rv, analyte) -> pd.DataFrame:
    r = rv.nca.results
    r = r[(r["analyte"] == analyte) & r["parameter"].str.startswith(NCA_KEYS + ("R2ADJ",))]
    r = r.assign(metric=[_with_unit(metric_label(p, a, b), u)
                         for p, a, b, u in zip(r["parameter"], r["start"], r["end"], r["unit"])],
                 shown=[fmt(v) if not e else f"— ({e})" for v, e in zip(r["value"], r["exclude"])])
    w = r.pivot_table(index=["dose_level", "subject"], columns="metric", values="shown",
                      aggfunc="first", sort=False)
    w = w.reindex(columns=list(dict.fromkeys(r["metric"])))
    return w.reset_index()


def expansion_section(rv, fig) -> str:
    out = ["<h2 id='expansion'>2. Expansion: concentration–time and NCA by dose level</h2>",
           f"<p class='note'>NCA choices: {esc(rv.nca.options.method_label())}. NCA covers the "
           "CAR-T analytes; B cells are summarised in section 4.</p>"]
    for a in rv.car_analytes:
        out.append(f"<h3>{esc(a)}</h3>")
        out.append(fig(lambda a=a: plots.spaghetti.spec(rv.dataset, a, rv.mean_profiles.get(a)),
                       f"spaghetti:{a}"))
        out.append(fig(lambda a=a: plots.exposure_by_dose.spec(rv.nca, a), f"exposure_by_dose:{a}"))
        out.append(f"<p><b>Per dose level</b> (geometric mean (geometric CV %), "
                   f"Tmax/Tlast median [min, max]):</p>{_nca_summary_table(rv, a)}")
        out.append(collapsible(f"Per participant ({esc(a)})",
                               table(_nca_participants(rv, a), text_columns=("dose_level", "subject"))))
        dp = rv.nca.dose_proportionality()
        dp = dp[dp["analyte"] == a] if "analyte" in dp.columns else dp
        out.append(collapsible("Dose proportionality (power model, 90 % CI of the slope b)", table(dp)))
        out.append(_paged_panels(
            fig, rv, _with_samples(rv, [a], quantified=True),
            lambda ds, subs, a=a: plots.lambda_z.spec(rv.nca, ds, a, subjects=subs),
            f"lambda_z:{a}", f"participants' λz panels ({esc(a)})"))
    ex = rv.nca.exclusions
    out.append("<h3>Samples left out of the NCA</h3>")
    out.append(table(_reason_counts(ex, ("analyte", "reason")), text_columns=("analyte", "reason")))
    out.append(collapsible(f"Every sample left out of the NCA ({len(ex)})",
                           table(ex, text_columns=("subject", "analyte", "reason", "source_file"))))
    return "<section>" + "".join(out) + "</section>"


def fits_section(rv, fig) -> str:
    m = rv.model
    out = ["<h2 id='fits'>3. Model fits</h2>"]
    title = esc(getattr(m, "title", "") or rv.settings.model)
    ref = esc(getattr(m, "reference", "") or "")
    out.append(f"<p>Model <b>{esc(rv.settings.model)}</b>: {title}"
               + (f"<br><span class='note'>{ref}</span>" if ref else "")
               + (f"<br><span class='note'>Model {esc(rv.model_choice)}.</span>"
                  if rv.model_choice and rv.model_choice != "as set" else "") + "</p>")
    out.append(fit_status_box(rv))
    if rv.fit is None:
        return "<section>" + "".join(out) + "</section>"
    f = rv.fit
    out.append(f"<p class='note'>Individual fits of {esc(', '.join(f.analytes))}: "
               f"{esc(rv.fit_note or 'maximum-likelihood fits (no prior).')} "
               "Model-based exposure beside the observed one: section "
               "<a href='#model-vs-observed'>3a</a>. "
               f"BLQ method {esc(f.blq_method)}, {esc(f.error_model)} error, "
               f"{esc(f.settings.get('starts'))} starts (seed {esc(f.settings.get('seed'))}). "
               "Orange rows: flagged fits; red rows: failed fits.</p>")
    meanings = "".join(f"<li><code>{esc(k)}</code>: {esc(v)}</li>" for k, v in FLAG_MEANINGS.items())
    out.append(table(f.fits_frame(), ["subject", "success", "flags", "n_obs", "n_blq", "ofv", "aic",
                                      "n_starts_at_best", "message"],
                     row_class=_fit_row_class, text_columns=("subject", "flags", "message")))
    out.append(collapsible("What the flags mean", f"<ul>{meanings}</ul>"))
    pars = _estimates_shown(f)
    out.append(collapsible(
        f"Parameter estimates with SE, RSE % and 95 % CI ({len(pars)} rows)",
        table(pars, ["subject", "parameter", "estimate", "se", "rse_pct", "ci", "unit",
                     "ci_method", "flags"], row_class=_fit_row_class,
              labels={"se": "SE", "rse_pct": "RSE %", "ci": "95 % CI"},
              text_columns=("subject", "parameter", "unit", "ci_method", "flags"))))
    out.append("<h3>Two-stage summary by dose level (converged fits)</h3>")
    summ = f.summary()
    flagged_by_level = {}
    for x in f.fits:
        if x.success and x.flags:
            lv = str(f.dose_levels.get(x.subject, "") or "all")
            flagged_by_level[lv] = flagged_by_level.get(lv, 0) + 1
    summ = summ.assign(n_flagged=summ["dose_level"].astype(str).map(flagged_by_level).fillna(0).astype(int))
    out.append("<p class='note'>n counts converged fits, <b>flagged ones included</b> "
               "(n_flagged of them): a geometric mean over flagged fits is only as good as they are.</p>")
    summ = summ.assign(geo_cv_pct=_cv_shown(f, summ))
    out.append(table(summ, ["dose_level", "parameter", "n", "n_flagged", "n_failed", "geo_mean", "geo_cv_pct",
                            "median", "min", "max", "unit"],
                     labels={"geo_mean": "geometric mean", "geo_cv_pct": "geometric CV %"},
                     text_columns=("dose_level", "parameter", "unit")))
    for a in f.analytes:
        out.append(fig(lambda a=a: plots.goodness_of_fit.spec(f, a), f"goodness_of_fit:{a}"))
    out.append("<h3>Individual profiles with the fitted curve and its 95 % band</h3>"
               "<p class='note'>The band is the spread of the curve from parameter uncertainty "
               f"({rv.settings.band_draws} seeded draws from the estimates' covariance, kept "
               "within the model's bounds). Flagged fits are drawn dashed in orange.</p>")
    by_subject = {x.subject: x for x in f.fits}
    order = rv.dataset.subjects.sort_values("dose", kind="stable")["subject"].astype(str)
    makers, names, labels = [], [], []
    # one pass over the curves and samples (a mask per participant is quadratic in participants)
    curves = dict(tuple(rv.curves.groupby(["subject", "analyte"], sort=False))) \
        if len(rv.curves) else {}
    subset = _Subset(rv.dataset)
    analytes = [a for a in rv.dataset.study.analytes if a in set(f.analytes)]  # study.toml's order
    for s in order:  # a participant's analytes together (qPCR, flow and B cells of a mechanistic fit)
        for a in analytes:
            sf = by_subject.get(s)
            if sf is None:
                continue
            c = curves.get((s, a), rv.curves.iloc[:0]) if len(rv.curves) else None
            makers.append(lambda s=s, a=a, c=c, sf=sf: plots.individual_profile.spec(
                subset.of([s]), s, a, c, curve_label=f"{esc(f.model)} fit", fit_flags=sf.flags,
                fit_failed=not sf.success, height=340))
            names.append(f"individual_profile:{s}:{a}")
            labels.append(f"{s} · {a}")
    out.append(fig.paged(fig.many(makers, names), labels, "individual profiles"))
    ex = f.excluded_frame()
    out.append("<h3>Samples left out of the fits</h3>")
    out.append(table(_reason_counts(ex, ("analyte", "reason")), text_columns=("analyte", "reason")))
    out.append(collapsible(f"Every sample left out of the fits ({len(ex)})",
                           table(ex, ["subject", "analyte", "time", "observed", "blq", "lloq", "reason"],
                                 text_columns=("subject", "analyte", "reason"))))
    return "<section>" + "".join(out) + "</section>"


#: Parameter-row flags under which an estimate's SE, CI and spread mean nothing.
UNDETERMINED = ("not_estimable", "at_bound", "non_identifiable")


def _undetermined(flags) -> bool:
    return any(x.split(":")[0] in UNDETERMINED for x in str(flags or "").split(";") if x)


def _estimates_shown(f) -> pd.DataFrame:
    """Parameter rows as shown: the 95 % CI as one interval, 'not estimable' (SE, RSE and CI)
    for a parameter the data do not determine (flagged, non-finite SE, or a CI wider than
    :data:`ctkinetics.formatting.MAX_INTERVAL_FOLD`)."""
    pars = f.to_frame()
    ok = {x.subject: x.success for x in f.fits}
    pars = pars.assign(success=pars["subject"].map(ok))
    bad = [_undetermined(fl) or not F.interval_estimable(lo, hi)
           for fl, lo, hi in zip(pars["flags"], pars["ci_low"], pars["ci_high"])]
    ci = [F.NOT_ESTIMABLE if b else F.interval(lo, hi)
          for b, lo, hi in zip(bad, pars["ci_low"], pars["ci_high"])]
    se = [F.NOT_ESTIMABLE if b else fmt(v) for b, v in zip(bad, pars["se"])]
    rse = [F.NOT_ESTIMABLE if b else fmt(v) for b, v in zip(bad, pars["rse_pct"])]
    held = (pars["ci_method"] == "fixed").to_numpy()   # a residual SD held fixed: not estimated
    ci, se, rse = ([("fixed" if h else v) for h, v in zip(held, col)] for col in (ci, se, rse))
    return pars.assign(ci=ci, se=se, rse_pct=rse)


def _cv_shown(f, summ) -> list:
    """Geometric CV % of the two-stage summary, 'not estimable' where a fit of that dose
    level has the parameter undetermined (at a bound: its spread is the bound's, 7.1e10 %)."""
    pars = f.to_frame()
    level = {s: str(f.dose_levels.get(s, "") or "all") for s in pars["subject"]}
    undetermined = {(level[s], p) for s, p, fl in zip(pars["subject"], pars["parameter"], pars["flags"])
                    if _undetermined(fl)}
    out = []
    for lv, p, cv in zip(summ["dose_level"].astype(str), summ["parameter"], summ["geo_cv_pct"]):
        text = F.geo_mean_cv(1.0, cv, estimable=(lv, p) not in undetermined)
        out.append(F.NOT_ESTIMABLE if "not estimable" in text else fmt(cv))
    return out


def bcell_section(rv, fig) -> str:
    out = ["<h2 id='bcells'>4. B-cell aplasia</h2>"]
    if rv.bcell_analyte is None or rv.car_analyte is None:
        out.append("<p class='note'>No B-cell analyte (kind <code>bcell</code>) in this study.</p>")
    else:
        out.append(_paged_panels(
            fig, rv, _with_samples(rv, [rv.car_analyte, rv.bcell_analyte], quantified=False),
            lambda ds, subs: plots.cart_vs_bcells.spec(ds, rv.car_analyte, rv.bcell_analyte,
                                                  rv.aplasia, subjects=subs),
            "cart_vs_bcells", "participants' CAR-T and B-cell panels"))
        unit = rv.dataset.study.analytes[rv.bcell_analyte].unit
        out.append(table(rv.aplasia, labels={"baseline": _with_unit("baseline (last pre-infusion)", unit),
                                             "nadir": _with_unit("nadir", unit),
                                             "aplasia_start": "aplasia from (day)",
                                             "aplasia_end": "B cells back by (day)",
                                             "last_sample": "last sample (day)"},
                         text_columns=("subject", "dose_level", "status")))
        out.append("<p class='note'>Aplasia starts at the first B-cell sample below the LLOQ after "
                   "infusion; B cells are back at the next quantified sample. The true days lie "
                   "between sampling days.</p>")
    return "<section>" + "".join(out) + "</section>"


def provenance_section(rv, files: pd.DataFrame, versions: dict, generated_at: str,
                       command: str | None) -> str:
    vt = pd.DataFrame(list(versions.items()), columns=["software", "version"])
    st = pd.DataFrame([(k, fmt(v) if not isinstance(v, (list, tuple)) else str(v))
                       for k, v in rv.settings.to_dict().items()], columns=["setting", "value"])
    nca_opts = pd.DataFrame(list(rv.nca.options.describe().items()), columns=["NCA choice", "value"])
    out = ["<h2 id='provenance'>6. Provenance</h2>",
           f"<p>Generated <span class='ctk-generated'>{esc(generated_at)}</span> by ctkinetics "
           f"{esc(versions.get('ctkinetics'))}."
           + (f" Command: <code>{esc(command)}</code>" if command else "") + "</p>",
           "<h3>Input files</h3>", table(files, text_columns=("file", "sha256")),
           "<div class='grid'><div><h3>Settings</h3>", table(st, text_columns=("setting", "value")),
           "</div><div><h3>Software</h3>", table(vt, text_columns=("software", "version")),
           "<h3>NCA choices</h3>", table(nca_opts, text_columns=("NCA choice", "value")),
           "</div></div>"]
    return "<section>" + "".join(out) + "</section>"


# --------------------------------------------------------------------------------------
POPULATION_FLAG_MEANINGS = {f.id: f"{f.meaning} (raised when {f.threshold})"
                            for f in FLAGS.values() if "population" in f.scopes}


def population_status_box(rv) -> str:
    """The state of the population fit, for the top of the page and its section."""
    if not rv.population_requested:
        return ""
    method = esc(str(rv.settings.population_method).upper())
    p = rv.population
    if p is None:
        return (f"<div class='box bad'><b>Population fit failed</b> ({method}, "
                f"{esc(rv.settings.model)}): {esc(rv.population_error)}. The individual fits "
                "are unaffected.</div>")
    from ctkinetics.estimation.population.diagnostics import flag_details

    detail = flag_details(p)
    flags = [f"{f} ({detail[f]})" if detail.get(f) else str(f)
             for f in p.diagnostics.get("flags", ())]
    extra = (f"<br>{esc(rv.population_error)}" if rv.population_error else "")
    link = " (see <a href='#population'>Population fit</a>)"
    if not p.converged:
        return (f"<div class='box bad'><b>The population fit ({method}) did not converge</b>: "
                f"{esc(p.message)}. Its estimates are unusable{link}."
                + (f"<br>Flags: {esc(', '.join(flags))}" if flags else "") + f"{extra}</div>")
    if flags:
        return (f"<div class='box warn'><b>The population fit ({method}) converged with flags: "
                f"{esc(', '.join(flags))}</b>; read its estimates with caution{link}.{extra}</div>")
    return (f"<div class='box {'warn' if extra else 'good'}'>The population fit ({method}, "
            f"{esc(p.model)}) converged without flags.{extra}</div>")


def _population_stats(p) -> pd.DataFrame:
    d = p.diagnostics
    rows = [("method", p.method.upper()), ("converged", "yes" if p.converged else "NO"),
            ("message", p.message), ("−2LL (FOCE-I)", F.objective(p.ofv)),
            ("AIC", F.objective(p.aic)), ("BIC", F.objective(p.bic)), ("participants", p.n_subjects), ("observations", p.n_obs),
            ("censored (BLQ)", p.n_censored), ("estimated quantities", p.n_params),
            ("iterations", d.get("iterations")), ("condition number", fmt(d.get("condition_number"))),
            ("flags", ", ".join(map(str, d.get("flags", ()))) or "none"),
            ("SE method", p.settings.get("se_method", ""))]
    return pd.DataFrame([(k, fmt(v) if not isinstance(v, str) else v) for k, v in rows],
                        columns=["quantity", "value"])


def population_section(rv, fig) -> str:
    from ctkinetics.plots.vpc import vpc_figure

    out = ["<h2 id='population'>3b. Population fit</h2>", population_status_box(rv)]
    p = rv.population
    if p is None:
        return "<section>" + "".join(out) + "</section>"
    pars = p.parameters
    re_ = ", ".join(map(str, p.settings.get("random_effects", ())))
    out.append(f"<p class='note'>Nonlinear mixed-effects fit of {esc(', '.join(map(str, p.settings.get('analytes', ()))))} "
               f"with model <b>{esc(p.model)}</b> by {esc(p.method.upper())}: P<sub>i</sub> = "
               "exp(ln θ + η<sub>i</sub>), η ~ N(0, Ω) on the log parameters; random effects on "
               f"{esc(re_)}; BLQ method {esc(p.blq_method)}, {esc(p.error_model)} residual error. "
               "95 % Wald CIs on the estimation scale; RSE % = 100·SE/|estimate|.</p>")
    out.append("<div class='grid'><div><h3>Typical values (θ)</h3><div id='population-theta'>")
    theta = pars[pars["kind"].isin(["theta", "covariate"])]
    out.append(table(theta, ["parameter", "kind", "estimate", "se", "rse_pct", "ci_low", "ci_high",
                             "unit"], labels={"rse_pct": "RSE %", "ci_low": "95 % CI low",
                                              "ci_high": "95 % CI high"},
                     text_columns=("parameter", "kind", "unit")))
    out.append("</div><h3>Residual error</h3>")
    out.append(table(pars[pars["kind"] == "sigma"], ["parameter", "estimate", "se", "rse_pct",
                                                     "description"],
                     labels={"rse_pct": "RSE %"}, text_columns=("parameter", "description")))
    out.append("</div><div><h3>Fit</h3>")
    out.append(table(_population_stats(p), text_columns=("quantity", "value")))
    out.append("</div></div><h3>Between-subject variability (Ω)</h3>"
               "<p class='note'>ω² is the variance of η (log scale); CV % = "
               "100·sqrt(exp(ω²) − 1); η-shrinkage % = 100·(1 − SD(EBE η)/ω). Shrinkage above "
               "30 % means the individual estimates of that parameter lean on the population.</p>"
               "<div id='population-omega'>")
    om = pars[pars["kind"] == "omega"]
    out.append(table(om, ["parameter", "estimate", "se", "rse_pct", "cv_pct", "shrinkage_pct"],
                     labels={"estimate": "ω² (variance)", "rse_pct": "RSE %", "cv_pct": "CV %",
                             "shrinkage_pct": "shrinkage %"},
                     row_class=lambda r: "flag" if float(r["shrinkage_pct"] or 0) > 30 else "",
                     text_columns=("parameter",)))
    out.append("</div>")
    meanings = "".join(f"<li><code>{esc(k)}</code>: {esc(v)}</li>"
                       for k, v in POPULATION_FLAG_MEANINGS.items())
    out.append(collapsible("What the population flags mean", f"<ul>{meanings}</ul>"))
    if rv.vpc is not None:
        v = rv.vpc
        out.append(f"<h3>Visual predictive check</h3><p class='note'>{v.n_replicates} replicates "
                   f"of the study simulated from the final model (seed {esc(v.settings.get('seed'))}); "
                   f"bands: {v.ci:g} % intervals of the simulated percentiles; lower panel: "
                   "fraction of samples below the LLOQ, observed and simulated.</p>")
        for a in dict.fromkeys(v.table["analyte"]):
            unit = getattr(rv.dataset.study.analytes.get(a), "unit", "")
            out.append(fig(lambda a=a, unit=unit: vpc_figure.spec(v, a, unit=unit), f"vpc:{a}"))
    ind = p.individual
    out.append(collapsible(f"Individual empirical Bayes estimates ({len(ind)} rows)",
                           table(ind, text_columns=("subject", "parameter"))))
    return "<section>" + "".join(out) + "</section>"


# --------------------------------------------------------------------------------------
TRIAL_SUMMARY_COLUMNS = ("rule", "level", "dose", "pct_selected", "mean_participants", "mean_dlts",
                         "mean_expansion", "mean_dlts_expansion", "mean_duration_escalation_days",
                         "mean_duration_total_days", "cmax_gmean", "cmax_gcv_pct", "auc0_28_gmean")
TRIAL_SUMMARY_LABELS = {"pct_selected": "% selected as MTD", "mean_participants": "mean participants",
                        "mean_dlts": "mean DLTs", "mean_expansion": "mean expansion",
                        "mean_dlts_expansion": "mean DLTs in expansion",
                        "mean_duration_escalation_days": "mean escalation (days)",
                        "mean_duration_total_days": "mean total (days)",
                        "cmax_gmean": "Cmax geo. mean", "cmax_gcv_pct": "Cmax geo. CV %",
                        "auc0_28_gmean": "AUC0-28 geo. mean"}


def trial_sim_section(rv, fig) -> str:
    from ctkinetics.plots.trialsim import duration_figure, expansion_figure, selection_figure

    from ctkinetics.report.dictionary import trial_unit

    v = rv.trial_sim
    r = v.result
    out = ["<h2 id='trials'>5b. Virtual trials</h2>",
           f"<p><b>{esc(r.name)}</b>: {r.n_trials:,} virtual trials (seed {r.seed}), "
           f"kinetics {'on' if r.kinetics else 'off'}, read from <code>{esc(v.folder.name)}</code> "
           "(a <code>ctk trial-sim</code> run; see the provenance for its files' SHA-256). "
           "Every rule sees the same virtual participants.</p>",
           "<p>Rules compared: " + ", ".join(f"<code>{esc(x)}</code>" for x in r.rules) + "</p>"]
    out.append(fig(lambda: selection_figure.spec(r), "trial_sim:selection"))
    out.append(fig(lambda: duration_figure.spec(r), "trial_sim:duration"))
    if r.kinetics and len(r.exposure):
        out.append(fig(lambda: expansion_figure.spec(r, unit=trial_unit(rv)), "trial_sim:expansion"))
    s = r.summary
    cols = [c for c in TRIAL_SUMMARY_COLUMNS if c in s.columns]
    out.append("<h3>By rule and dose level</h3><div id='trial-sim-summary'>")
    unit = trial_unit(rv)
    labels = dict(TRIAL_SUMMARY_LABELS, dose="dose (cells)",
                  cmax_gmean=_with_unit(TRIAL_SUMMARY_LABELS["cmax_gmean"], unit),
                  auc0_28_gmean=_with_unit(TRIAL_SUMMARY_LABELS["auc0_28_gmean"],
                                           f"{unit}*day" if unit else ""))
    out.append(table(s, cols, labels=labels, text_columns=("rule", "level")))
    out.append("</div><p class='note'>Level <code>none</code>: trials that selected no MTD. "
               "Every column is in <code>summary.csv</code> of the run.</p>")
    d = r.durations.drop(columns=["counts"], errors="ignore")
    out.append("<h3>Trial duration (days from the first infusion)</h3>")
    out.append(table(d, text_columns=("rule", "phase")))
    if v.notes:
        out.append("<ul class='note'>" + "".join(f"<li>{esc(n)}</li>" for n in v.notes) + "</ul>")
    return "<section>" + "".join(out) + "</section>"


# --------------------------------------------------------------------------------------
def dictionary_section(dictionary: pd.DataFrame) -> str:
    """7. Every code and column of the report and its CSV files: label, unit, definition
    (the same rows as ``data_dictionary.csv``, built by :mod:`ctkinetics.report.dictionary`)."""
    from ctkinetics.report.dictionary import KINDS

    cols = ["code", "label", "unit", "definition", "source"]
    out = ["<h2 id='dictionary'>7. Data dictionary</h2>",
           "<p class='note'>Every code a table or CSV file of this report uses, with its unit "
           "and definition (also in <code>data_dictionary.csv</code>). Units: times in days "
           "after infusion (study days for the escalation), doses in CAR+ cells, an AUC "
           "as concentration*time (copies/ug*day). Unit <code>1</code>: dimensionless "
           "(counts, fractions, probabilities). In the CSV files a number's unit is in the "
           "column name (<code>_day</code>, <code>_pct</code>) or in a unit column of the same "
           "row (<code>unit</code>, <code>time_unit</code>, <code>dose_unit</code>, "
           "<code>conc_unit</code>).</p>"]
    for kind in KINDS:
        part = dictionary[dictionary["kind"] == kind]
        if part.empty:
            continue
        body = table(part, cols, text_columns=tuple(cols))
        if kind == KINDS[-1]:
            out.append(collapsible(f"Columns of the CSV files ({len(part)})", body))
        else:
            out.append(f"<h3>{esc(kind[0].upper() + kind[1:])}s</h3>"
                       if not kind.endswith(")") else f"<h3>{esc(kind)}</h3>")
            out.append(body)
    return "<section id='dictionary-section'>" + "".join(out) + "</section>"
