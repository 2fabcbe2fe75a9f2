"""The report's data dictionary: every code and column a reader meets, with label, unit and
definition (a report section and ``data_dictionary.csv``).

Nothing here repeats a registry: codes are read from where they are declared —

* NCA parameters (CDISC PP codes): :data:`ctkinetics.nca.parameters.PARAMETERS` (label,
  unit type, definition), units resolved with the study's analyte units;
* model parameters and derived quantities: the model file (unit, description);
* fit and population flags: :data:`ctkinetics.estimation.flags.FLAGS`;
* escalation decisions: :data:`ctkinetics.escalation.rules.ACTIONS`.

What only the report's tables define — the names of their columns — lives here, in
:data:`COLUMNS`, once: a column name means the same thing in every table, unless
:data:`TABLE_COLUMNS` says otherwise for one table.

Units of CSV columns (one convention, checked by a test on every CSV the report writes):
a numeric column's unit is (1) in its name (``_day``/``_days``, ``_pct``; CDISC codes whose
name says %, e.g. AUCPEO), (2) in a unit
column of the same CSV (``unit``, ``time_unit``, ``dose_unit``, ``conc_unit``: the report
adds them where the table lacks them, :func:`with_units`), or (3) none (declared ``1``:
counts, fractions, probabilities, ratios, flags). Unit strings follow the NCA registry's
rule (:data:`ctkinetics.nca.parameters.UNIT_TYPES`): an AUC is concentration*time
(``copies/ug*day``), quotients with ``/``.
"""
from __future__ import annotations

import pandas as pd

#: Units as written in the dictionary: a literal unit, "1" (dimensionless), or "@col" /
#: "@col1*col2" — the unit is in column(s) ``col`` of the same row (a unit column).
DIMENSIONLESS = "1"
TIME_UNIT, DOSE_UNIT = "day", "cells"

# column -> (label, unit, definition). Units: see the module doc.
COLUMNS: dict[str, tuple[str, str, str]] = {
    # identifiers and text
    "subject": ("participant", "", "participant identifier as in subjects.csv"),
    "analyte": ("analyte", "", "measured quantity, as named in study.toml [analytes]"),
    "dose_level": ("dose level", "", "dose-level label from study.toml"),
    "level": ("dose level", "", "dose-level label"),
    "parameter": ("parameter", "", "code of the parameter (see the codes in this dictionary)"),
    "parameter2": ("second parameter", "", "second parameter of an Ω entry (equal to parameter on the diagonal)"),
    "quantity": ("quantity", "", "code of a derived quantity (see the codes in this dictionary)"),
    "unit": ("unit", "", "unit of the row's values"),
    "time_unit": ("time unit", "", "unit of the table's time columns"),
    "dose_unit": ("dose unit", "", "unit of the table's dose column (CAR+ cells infused)"),
    "conc_unit": ("concentration unit", "", "unit of the analyte's values; NCA units derive from it (see the NCA codes)"),
    "kind": ("kind", "", "analyte kind (qpcr, flow, bcell, conc) or parameter kind (theta, covariate, sigma, omega)"),
    "status": ("status", "", "state of the row (sample used / censored / excluded; DLT window; aplasia course)"),
    "reason": ("reason", "", "why the record was excluded, changed or labelled"),
    "action": ("action", "", "what was done to the record on reading"),
    "file": ("file", "", "input file"), "row": ("row", DIMENSIONLESS, "spreadsheet row in the file (header = 1)"),
    "column": ("column", "", "column of the file"), "source_file": ("source file", "", "input file of the sample"),
    "source_row": ("source row", DIMENSIONLESS, "spreadsheet row of the sample in its file"),
    "sha256": ("SHA-256", "", "SHA-256 hash of the file's bytes"),
    "bytes": ("bytes", DIMENSIONLESS, "file size (count of bytes)"),
    "record": ("record", "", "what was left out: a sample, or one NCA value of a participant"),
    "exclude": ("excluded because", "", "why the NCA value is not used ('' = used)"),
    "flags": ("flags", "", "fit flags (see the flag codes in this dictionary), ';'-separated"),
    "message": ("message", "", "the optimiser's own message"),
    "model": ("model", "", "kinetic model (models/*.toml)"), "engine": ("engine", "", "fitting engine"),
    "blq_method": ("BLQ method", "", "handling of samples below the LLOQ in the likelihood (M1/M3/M5/M6/M7, Beal 2001)"),
    "error_model": ("error model", "", "residual error model"),
    "ci_method": ("CI method", "", "how the 95 % interval was computed (wald-t, wald, profile; none: "
                                   "not estimable; fixed: a residual SD held fixed, not estimated)"),
    "scale": ("scale", "", "scale of estimation (log: the estimate is exp of the estimated value)"),
    "role": ("role", "", "model parameter or residual-error parameter"),
    "description": ("description", "", "what the parameter is"),
    "display": ("summary", "", "the summary as the report prints it"),
    "setting": ("setting", "", "NCA setting"), "value_text": ("value", "", "setting value"),
    "note": ("note", "", "remark on the row"), "phase": ("phase", "", "escalation or expansion"),
    "statistic": ("statistic", "", "VPC statistic: a percentile pNN of the samples, or blq_fraction"),
    "rule": ("rule", "", "escalation rule of the virtual trials"),
    # times (days after infusion; study days for the escalation)
    "time": ("time", "@time_unit", "time after infusion"),
    "start": ("interval start", "@time_unit", "start of the NCA interval, after infusion"),
    "end": ("interval end", "@time_unit", "end of the NCA interval (inf: whole profile)"),
    "aplasia_start": ("aplasia from", "@time_unit", "first B-cell sample below the LLOQ after infusion"),
    "aplasia_end": ("B cells back by", "@time_unit", "first quantified B-cell sample after aplasia (empty: ongoing)"),
    "last_sample": ("last sample", "@time_unit", "last B-cell sample after infusion"),
    "time_low": ("bin start", "@time_unit", "start of the VPC time bin"),
    "time_high": ("bin end", "@time_unit", "end of the VPC time bin"),
    "time_mid": ("bin time", "@time_unit", "time at which the VPC bin is drawn"),
    "infusion_day": ("infusion day", TIME_UNIT, "study day of the infusion"),
    "dlt_day": ("DLT day", TIME_UNIT, "study day of the DLT"),
    "followup_days": ("days in window", TIME_UNIT, "days of the DLT window followed so far"),
    "window_end_day": ("window ends", TIME_UNIT, "study day on which the DLT window closes"),
    "sentinel_day": ("sentinel day", TIME_UNIT, "study day from which the first participant of the level has been followed for the stagger"),
    "stagger_ok_from_day": ("others from day", TIME_UNIT, "study day from which the next participant at this level may be infused (stagger)"),
    "mean_duration_escalation_days": ("mean escalation duration", TIME_UNIT, "mean days from the first infusion to the end of escalation"),
    "mean_duration_total_days": ("mean total duration", TIME_UNIT, "mean days from the first infusion to the end of the trial"),
    "mean_days_suspended": ("mean days suspended", TIME_UNIT, "mean days of accrual suspended waiting for DLT data"),
    # doses
    "dose": ("dose", "@dose_unit", "CAR+ cells infused"),
    # analyte values (unit in the row's `unit`)
    "value": ("value", "@unit", "the value"),
    "lloq": ("LLOQ", "@unit", "lower limit of quantification"),
    "baseline": ("baseline", "@unit", "last quantified pre-infusion value"),
    "nadir": ("nadir", "@unit", "lowest quantified value after infusion"),
    "observed": ("observed", "@unit", "observed value (VPC: observed percentile or fraction)"),
    "ipred": ("IPRED", "@unit", "individual prediction"), "pred": ("PRED", "@unit", "prediction (typical or fitted curve)"),
    "lower": ("band low", "@unit", "lower end of the 95 % band of the fitted curve (parameter uncertainty)"),
    "upper": ("band high", "@unit", "upper end of the 95 % band of the fitted curve"),
    "sim_low": ("simulated low", "@unit", "lower end of the simulated interval of the statistic"),
    "sim_median": ("simulated median", "@unit", "median of the simulated statistic"),
    "sim_high": ("simulated high", "@unit", "upper end of the simulated interval of the statistic"),
    "estimate": ("estimate", "@unit", "estimate"), "se": ("SE", "@unit", "standard error"),
    "ci_low": ("95 % CI low", "@unit", "lower end of the 95 % confidence interval"),
    "ci_high": ("95 % CI high", "@unit", "upper end of the 95 % confidence interval"),
    "geo_mean": ("geometric mean", "@unit", "exp(mean ln x) over participants"),
    "mean": ("mean", "@unit", "arithmetic mean"), "sd": ("SD", "@unit", "standard deviation (n − 1)"),
    "median": ("median", "@unit", "median"), "min": ("min", "@unit", "minimum"), "max": ("max", "@unit", "maximum"),
    "individual": ("individual", "@unit", "the participant's parameter (empirical Bayes estimate)"),
    "typical": ("typical", "@unit", "typical value for the participant's covariates"),
    # percentages
    "rse_pct": ("RSE %", "%", "relative standard error 100·SE/|estimate|"),
    "geo_cv_pct": ("geometric CV %", "%", "100·sqrt(exp(s²) − 1), s the SD of ln x"),
    "cv_pct": ("CV %", "%", "between-subject CV 100·sqrt(exp(ω²) − 1)"),
    "shrinkage_pct": ("η-shrinkage %", "%", "100·(1 − SD(EBE η)/ω)"),
    "blq_pct": ("BLQ %", "%", "share of post-infusion samples below the LLOQ"),
    "pct_selected": ("% selected as MTD", "%", "share of virtual trials selecting the level as MTD"),
    # dimensionless: counts, probabilities, ratios, yes/no
    "n": ("n", DIMENSIONLESS, "number of participants (or samples) counted"),
    "n_quantified": ("n quantified", DIMENSIONLESS, "samples above the LLOQ"),
    "n_missing": ("n missing", DIMENSIONLESS, "participants whose value is missing or excluded (left out of the statistics)"),
    "partial": ("partial", DIMENSIONLESS, "participants whose DLT window closed early without a DLT (counted with their follow-up)"),
    "not_evaluable": ("not evaluable", DIMENSIONLESS, "participants not evaluable for DLT (left out of the counts)"),
    "participants": ("participants", DIMENSIONLESS, "participants with samples"),
    "samples": ("samples", DIMENSIONLESS, "samples read"),
    "pre_infusion": ("pre-infusion", DIMENSIONLESS, "samples before the infusion"),
    "post_infusion": ("after infusion", DIMENSIONLESS, "samples after the infusion"),
    "blq_post_infusion": ("BLQ after infusion", DIMENSIONLESS, "post-infusion samples below the LLOQ"),
    "blq_pre_infusion": ("BLQ before infusion", DIMENSIONLESS, "pre-infusion samples below the LLOQ (structural zeros)"),
    "missing": ("missing", DIMENSIONLESS, "planned samples without a result (excluded, listed in the audit)"),
    "blq": ("BLQ", DIMENSIONLESS, "below the LLOQ (yes/no)"),
    "n_doses": ("doses", DIMENSIONLESS, "distinct doses"),
    "intercept": ("intercept", DIMENSIONLESS, "a of the power model ln(metric) = a + b·ln(dose)"),
    "slope": ("slope b", DIMENSIONLESS, "b of the power model (1: dose-proportional)"),
    "slope_se": ("SE of b", DIMENSIONLESS, "standard error of the slope b"),
    "ci_level": ("CI level", DIMENSIONLESS, "coverage of the interval of b"),
    "ci_contains_1": ("CI contains 1", DIMENSIONLESS, "the interval of b contains 1 (dose-proportionality not rejected)"),
    "dlt": ("DLTs", DIMENSIONLESS, "participants with a dose-limiting toxicity"),
    "pending": ("pending", DIMENSIONLESS, "participants whose DLT window is still open"),
    "complete": ("complete", DIMENSIONLESS, "participants with a complete DLT window"),
    "n_expansion": ("in expansion", DIMENSIONLESS, "expansion participants at the level"),
    "stft": ("STFT", DIMENSIONLESS, "TITE-BOIN standardised total follow-up time Σ u/T over pending participants"),
    "p_hat": ("p̂", DIMENSIONLESS, "estimated DLT probability (TITE-BOIN: pending participants weighted by follow-up)"),
    "escalate_if_le": ("escalate if DLT ≤", DIMENSIONLESS, "BOIN: escalate when the DLT count is at most this (y/n ≤ λe)"),
    "deescalate_if_ge": ("de-escalate if DLT ≥", DIMENSIONLESS, "BOIN: de-escalate when the DLT count is at least this (y/n ≥ λd)"),
    "eliminate_if_ge": ("eliminate if DLT ≥", DIMENSIONLESS, "BOIN: eliminate the level (and higher) when the DLT count is at least this"),
    "eliminated": ("eliminated", DIMENSIONLESS, "the level is eliminated (too toxic) (yes/no)"),
    "current": ("current", DIMENSIONLESS, "the current dose level (yes/no)"),
    "closed": ("closed", DIMENSIONLESS, "the level was closed by the committee (yes/no)"),
    "gate_held": ("gate held", DIMENSIONLESS, "the level's stagger gate is held for committee review (yes/no)"),
    "estimate_raw": ("raw estimate", DIMENSIONLESS, "DLT probability y/n (Beta prior) before isotonic regression"),
    "p_overdose": ("P(overdose)", DIMENSIONLESS, "posterior probability that the DLT rate exceeds the target"),
    "admissible": ("admissible", DIMENSIONLESS, "may be selected as MTD (yes/no)"),
    "selected": ("selected", DIMENSIONLESS, "selected as MTD (yes/no)"),
    "success": ("converged", DIMENSIONLESS, "the fit converged (yes/no)"),
    "n_obs": ("observations", DIMENSIONLESS, "samples in the likelihood"),
    "n_blq": ("BLQ", DIMENSIONLESS, "BLQ samples in the likelihood"),
    "n_params": ("parameters", DIMENSIONLESS, "estimated parameters"),
    "n_failed": ("failed", DIMENSIONLESS, "fits that failed (left out)"),
    "n_flagged": ("flagged", DIMENSIONLESS, "fits with a flag (included)"),
    "n_not_estimable": ("not estimable", DIMENSIONLESS, "converged fits whose estimate of the parameter is flagged not_estimable (left out of the statistics)"),
    "ofv": ("−2LL", DIMENSIONLESS, "objective function value −2 log-likelihood"),
    "ofv_second": ("−2LL of the second optimum", DIMENSIONLESS, "−2LL of the best distinct other optimum found (empty: none)"),
    "failed": ("failed", DIMENSIONLESS, "the fit failed (yes/no)"),
    "aic": ("AIC", DIMENSIONLESS, "−2LL + 2k"), "bic": ("BIC", DIMENSIONLESS, "−2LL + k ln n"),
    "n_starts": ("starts", DIMENSIONLESS, "local optimisations run (starts, switch-interval screen, polish)"),
    "n_starts_at_best": ("starts at best", DIMENSIONLESS, "local optimisations that reached the best −2LL within 0.01"),
    "ci_df": ("CI df", DIMENSIONLESS, "degrees of freedom of the t-based interval"),
    "estimate_transformed": ("estimate (estimation scale)", DIMENSIONLESS, "estimate on the scale of estimation (ln of the estimate for log parameters)"),
    "se_transformed": ("SE (estimation scale)", DIMENSIONLESS, "SE on the scale of estimation (≈ CV for log parameters)"),
    "iwres": ("IWRES", DIMENSIONLESS, "individual weighted residual (observed − IPRED)/SD"),
    "cwres": ("CWRES", DIMENSIONLESS, "conditional weighted residual"),
    "p_blq": ("P(BLQ)", DIMENSIONLESS, "model probability of a value below the LLOQ"),
    "eta": ("η", DIMENSIONLESS, "random effect (log scale)"),
    "correlation": ("correlation", DIMENSIONLESS, "correlation of the two random effects"),
    "bin": ("bin", DIMENSIONLESS, "VPC time bin"),
    "mean_participants": ("mean participants", DIMENSIONLESS, "mean evaluable participants treated at the level per trial"),
    "mean_dlts": ("mean DLTs", DIMENSIONLESS, "mean DLTs at the level per trial"),
    "mean_expansion": ("mean expansion", DIMENSIONLESS, "mean expansion participants at the level"),
    "mean_dlts_expansion": ("mean DLTs in expansion", DIMENSIONLESS, "mean DLTs among expansion participants"),
    "mean_not_evaluable": ("mean not evaluable", DIMENSIONLESS, "mean escalation participants at the level not evaluable for DLT decisions (replaced)"),
    "mean_efficacy": ("mean responders", DIMENSIONLESS, "mean evaluable escalation participants at the level with an efficacy response (empty without an efficacy model)"),
}


def _trial_metric_columns() -> dict:
    """Columns of a trial-sim summary per exposure metric, from the trial-sim metric registry
    (:data:`ctkinetics.trialsim.kinetics.METRICS`: name, unit relative to the observable,
    description)."""
    from ctkinetics.trialsim.kinetics import METRICS

    out = {}
    unit_of = {"level": "@unit", "level*day": "@auc_unit", "day": TIME_UNIT}
    for m in METRICS.values():
        u = unit_of.get(m.unit, DIMENSIONLESS)
        out.update({
            f"{m.name}_n": (f"{m.name} n", DIMENSIONLESS, f"virtual participants with a value ({m.description})"),
            f"{m.name}_gmean": (f"{m.name} geo. mean", u, f"geometric mean over participants of the {m.description}"),
            f"{m.name}_gcv_pct": (f"{m.name} geo. CV %", "%", f"geometric CV of the {m.description}"),
            f"{m.name}_median": (f"{m.name} median", u, f"median of the {m.description}"),
            f"{m.name}_p05": (f"{m.name} 5th percentile", u, f"5th percentile of the {m.description}"),
            f"{m.name}_p95": (f"{m.name} 95th percentile", u, f"95th percentile of the {m.description}"),
        })
    return out


COLUMNS["auc_unit"] = ("AUC unit", "", "unit of the AUC columns")
COLUMNS.update({
    "code": ("code", "", "a code or column name used in the report's tables"),
    "label": ("label", "", "what the code stands for"),
    "definition": ("definition", "", "how the quantity is defined or computed"),
    "source": ("source", "", "where the code is declared, or the CSV files with that column"),
})

# The escalation tables' columns are defined beside them (report/escalation_columns.py).
from ctkinetics.report.escalation_columns import ESCALATION_COLUMNS  # noqa: E402

COLUMNS.update({k: v for k, v in ESCALATION_COLUMNS.items() if k not in COLUMNS})
# ... and the uncertainty tables' (report/uncertainty_columns.py, issue 16)
from ctkinetics.report.uncertainty_columns import (  # noqa: E402
    UNCERTAINTY_COLUMNS, UNCERTAINTY_TABLE_COLUMNS,
)

COLUMNS.update({k: v for k, v in UNCERTAINTY_COLUMNS.items() if k not in COLUMNS})
# ... and the model-vs-observed tables' (report/model_vs_observed.py, issue 12.5)
from ctkinetics.report.model_vs_observed import COLUMNS as MODEL_VS_OBSERVED_COLUMNS  # noqa: E402

COLUMNS.update({k: v for k, v in MODEL_VS_OBSERVED_COLUMNS.items() if k not in COLUMNS})

#: Tables written beside the others (not by the review's table list): their columns.
OTHER_TABLES = {"input_files.csv": ("file", "bytes", "sha256"),
                "data_dictionary.csv": ("code", "kind", "label", "unit", "definition", "source")}

#: Columns whose meaning differs in one table: (table file, column) -> (label, unit, definition).
TABLE_COLUMNS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("dose_proportionality.csv", "ci_low"): ("CI of b low", DIMENSIONLESS, "lower end of the interval of the slope b"),
    ("dose_proportionality.csv", "ci_high"): ("CI of b high", DIMENSIONLESS, "upper end of the interval of the slope b"),
    ("dose_proportionality.csv", "n"): ("n", DIMENSIONLESS, "participants with a usable value"),
    ("mtd.csv", "estimate"): ("DLT rate", DIMENSIONLESS, "isotonic estimate of the DLT probability"),
    ("mtd.csv", "ci_low"): ("95 % CI low", DIMENSIONLESS, "lower end of the credible interval of the DLT probability"),
    ("mtd.csv", "ci_high"): ("95 % CI high", DIMENSIONLESS, "upper end of the credible interval of the DLT probability"),
    ("nca_settings.csv", "value"): COLUMNS["value_text"],
    ("population_omega.csv", "estimate"): ("ω²", DIMENSIONLESS, "variance (or covariance) of η, log scale"),
    ("population_omega.csv", "se"): ("SE", DIMENSIONLESS, "standard error of ω²"),
    **UNCERTAINTY_TABLE_COLUMNS,
}

#: The kinds of code in the dictionary, in the order the report lists them.
KINDS = ("NCA parameter (CDISC PP)", "model parameter", "derived quantity", "fit flag",
         "escalation decision", "table column")

#: Columns the report tables print with a special format (see :func:`ctkinetics.formatting.cell`).
_FORMATS = {"dose": "dose", "p_hat": "probability", "p_overdose": "probability",
            "p_blq": "probability", "estimate_raw": "probability", "ofv": "objective",
            "aic": "objective", "bic": "objective"}


def column_format(column: str) -> str:
    """How a report table prints the column: ``dose`` | ``probability`` | ``number``."""
    return _FORMATS.get(column, "number")


def column_entry(table: str, column: str):
    """(label, unit, definition) of a CSV column, or None when unknown. NCA codes of the wide
    table (``CMAX``, ``AUCINT_LAST[0-28]``) resolve to their NCA entry, trial-sim summary
    columns (``cmax_gmean``) to the trial-sim metric registry."""
    hit = TABLE_COLUMNS.get((table, column)) or COLUMNS.get(column)
    if hit is None and table == "trial_sim_summary.csv":
        hit = _trial_metric_columns().get(column)
    if hit is not None:
        return hit
    p = _nca_parameter(column)
    if p is not None:
        cols = _NCA_UNIT_COLUMNS[p.unit_type]
        unit = "@" + cols if cols else ("%" if p.unit_type == "percent" else DIMENSIONLESS)
        return (p.pptest, unit, p.definition)
    return None


# --------------------------------------------------------------------------------------
#: NCA unit type -> the unit columns of nca_wide.csv it is built from.
_NCA_UNIT_COLUMNS = {"conc": "conc_unit", "time": "time_unit", "auc": "time_unit*conc_unit",
                     "inverse_time": "time_unit", "percent": "", "count": "", "fraction": "",
                     "conc_per_dose": "conc_unit/dose_unit", "auc_per_dose": "time_unit*conc_unit/dose_unit",
                     "clearance": "dose_unit/time_unit*conc_unit", "volume": "dose_unit/conc_unit"}


def _nca_parameter(code: str):
    from ctkinetics.nca.parameters import PARAMETERS

    return PARAMETERS.get(code.split("[", 1)[0])


def nca_unit(unit_type: str, conc_unit: str, time_unit: str = TIME_UNIT,
             dose_unit: str = DOSE_UNIT) -> str:
    """The unit of an NCA parameter type from the analyte's units (the registry's rule)."""
    from ctkinetics.nca.parameters import UNIT_TYPES

    return UNIT_TYPES[unit_type](conc_unit, time_unit, dose_unit) or DIMENSIONLESS


def _unit_text(units: dict) -> str:
    """'day*copies/ug (transgene); day*cells/uL (car_flow)' — one unit when all agree."""
    distinct = list(dict.fromkeys(units.values()))
    if len(distinct) <= 1:
        return distinct[0] if distinct else ""
    return "; ".join(f"{u} ({a})" for a, u in units.items())


def _codes(rv) -> list[dict]:
    from ctkinetics.escalation.rules import ACTIONS
    from ctkinetics.nca.parameters import PARAMETERS
    from ctkinetics.estimation.flags import FLAGS

    rows = []
    analytes = {a: rv.dataset.study.analytes[a].unit for a in rv.car_analytes}
    for p in PARAMETERS.values():
        code = p.name
        units = {a: nca_unit(p.unit_type, u) for a, u in analytes.items()}
        rows.append({"code": code, "kind": KINDS[0], "label": p.pptest, "unit": _unit_text(units),
                     "definition": p.definition, "source": "ctkinetics.nca.parameters"
                     + (f" (WinNonlin {p.winnonlin})" if p.winnonlin else "")})
    model = rv.model
    if model is not None:
        src = f"model file {model.name}"
        for p in model.parameters:
            rows.append({"code": p.name, "kind": KINDS[1], "label": p.name,
                         "unit": p.unit or DIMENSIONLESS, "definition": p.description, "source": src})
        for d in getattr(model, "derived_specs", ()) or ():
            rows.append({"code": d.name, "kind": KINDS[2], "label": d.name,
                         "unit": getattr(d, "unit", "") or DIMENSIONLESS,
                         "definition": getattr(d, "description", ""), "source": src})
    for name, unit, text in _exposure_metrics(rv):
        rows.append({"code": name, "kind": KINDS[2], "label": name, "unit": unit,
                     "definition": text, "source": "ctkinetics.estimation.derived"})
    for f in FLAGS.values():
        rows.append({"code": f.id, "kind": KINDS[3], "label": f"{f.id} ({f.severity})", "unit": "",
                     "definition": f"{f.meaning}. Raised when: {f.threshold}"
                     + (f". What to do: {f.advice}" if f.advice else ""),
                     "source": "ctkinetics.estimation.flags (" + ", ".join(f.scopes) + ")"})
    for action in ACTIONS.values():
        rows.append({"code": action, "kind": KINDS[4], "label": action, "unit": "",
                     "definition": _DECISIONS.get(action, ""), "source": "ctkinetics.escalation.rules"})
    return rows


_DECISIONS = {
    "escalate": "treat the next participants at the next higher dose level",
    "stay": "treat the next participants at the current dose level",
    "de-escalate": "treat the next participants at the next lower dose level",
    "eliminate": "close this dose level and all higher ones for good (too toxic)",
    "stop": "stop escalation (lowest level too toxic, or the maximum sample size reached)",
}


def _exposure_metrics(rv):
    """The model-based exposure metrics of the individual fits (estimation.derived, computed
    by modeling.exposure)."""
    if rv.fit is None:
        return []
    d = rv.fit.derived_frame()
    out = []
    from ctkinetics.modeling.exposure import METRICS  # the one exposure rule (issue 18)

    text = {"Cmax": METRICS["Cmax"].definition, "Tmax": METRICS["Tmax"].definition,
            "AUC0-28": METRICS["AUC"].definition.replace("e.g. AUC0-28", "0-28")}
    for q in dict.fromkeys(d.loc[d["analyte"] != "", "quantity"]):
        units = dict(zip(d.loc[d["quantity"] == q, "analyte"], d.loc[d["quantity"] == q, "unit"]))
        out.append((q, _unit_text(units), text.get(q, "")))
    return out


def build_dictionary(rv, tables: dict | None = None) -> pd.DataFrame:
    """The data dictionary of a review: code, kind, label, unit, definition, source.

    Codes (NCA, model, flags, decisions) first, then every column of the CSV tables written
    with the report (``tables``: file name -> DataFrame) with the files it appears in.
    """
    rows = _codes(rv)
    seen = {r["code"] for r in rows}
    where: dict[str, list] = {}
    columns = {name: pd.DataFrame(df).columns for name, df in (tables or {}).items()}
    for name, cols in {**columns, **OTHER_TABLES}.items():
        for c in cols:
            where.setdefault(str(c), []).append(name)
    for col, files in where.items():
        if col in seen:
            continue
        entry = next((column_entry(f, col) for f in files if column_entry(f, col)), None)
        label, unit, text = entry or (col, "", "")
        if unit.startswith("@"):
            unit = "in column " + " × ".join(unit[1:].replace("/", "*").split("*"))
        rows.append({"code": col, "kind": KINDS[-1], "label": label, "unit": unit,
                     "definition": text, "source": ", ".join(files)})
    return pd.DataFrame(rows, columns=["code", "kind", "label", "unit", "definition", "source"])


# --------------------------------------------------------------------------------------
def _analyte_units(rv) -> dict:
    return {a: x.unit for a, x in rv.dataset.study.analytes.items()}


def with_units(name: str, df: pd.DataFrame, rv) -> pd.DataFrame:
    """The table as the report writes it: unit columns added where a numeric column needs
    one (``time_unit``, ``dose_unit``, ``unit``, ``conc_unit``, ``auc_unit``) and the table
    lacks it. Values are untouched."""
    df = pd.DataFrame(df)
    if df.empty and not len(df.columns):
        return df
    needed = set()
    for c in df.columns:
        e = column_entry(name, str(c))
        if e and e[1].startswith("@") and pd.api.types.is_numeric_dtype(df[c]):
            needed.update(x for x in e[1][1:].replace("/", "*").split("*") if x)
    needed -= set(df.columns)
    if not needed:
        return df
    out = df.copy()
    au = _analyte_units(rv)
    if "time_unit" in needed:
        out["time_unit"] = TIME_UNIT
    if "dose_unit" in needed:
        out["dose_unit"] = DOSE_UNIT
    if "conc_unit" in needed:
        out["conc_unit"] = out["analyte"].astype(str).map(au).fillna("") if "analyte" in out else ""
    if "unit" in needed:
        out["unit"] = _row_units(name, out, rv, au)
    if "auc_unit" in needed:
        c = trial_unit(rv)
        out["auc_unit"] = f"{TIME_UNIT}*{c}" if c else ""
    return out


def _row_units(name, df, rv, au):
    """The unit of each row's values, from the analyte (or parameter) of the row."""
    n = len(df)
    if name == "nca_summary.csv":
        r = rv.nca.results
        key = dict(zip(zip(r["analyte"], r["parameter"]), r["unit"]))
        return [key.get((a, p), "") for a, p in zip(df["analyte"], df["parameter"])]
    if name in ("population_vpc.csv", "population_pcvpc.csv"):
        return [DIMENSIONLESS if s == "blq_fraction" else au.get(a, "")
                for a, s in zip(df["analyte"], df["statistic"])]
    if name == "population_individual.csv" and rv.model is not None:
        pu = {p.name: p.unit or DIMENSIONLESS for p in rv.model.parameters}
        return [pu.get(p, "") for p in df["parameter"]]
    if name == "bcell_aplasia.csv":
        return [au.get(rv.bcell_analyte, "")] * n
    if name.startswith("mean_profile_"):
        return [au.get(name[len("mean_profile_"):-len(".csv")], "")] * n
    if name == "trial_sim_summary.csv":
        return [trial_unit(rv)] * n
    if "analyte" in df:
        return list(df["analyte"].astype(str).map(au).fillna(""))
    return [""] * n


def trial_unit(rv) -> str:
    """Unit of the virtual trials' exposure: the study's analyte of the spec's observable kind."""
    if rv.trial_sim is None:
        return ""
    kin = rv.trial_sim.spec.get("kinetics") if isinstance(rv.trial_sim.spec, dict) else None
    kind = (kin or {}).get("observable", "") if isinstance(kin, dict) else ""
    for a in rv.dataset.study.analytes.values():
        if a.kind == kind:
            return a.unit
    return ""


def unit_is_stated(table: str, column: str, df: pd.DataFrame) -> tuple[bool, str]:
    """Whether a numeric CSV column's unit can be read from the CSV itself (the rule of the
    module doc); (ok, why)."""
    tokens = column.lower().split("_")
    if {"day", "days", "pct"} & set(tokens):
        return True, "unit in the name"
    e = column_entry(table, column)
    if e is None:
        return False, "not in the dictionary"
    unit = e[1]
    if unit == DIMENSIONLESS:
        return True, "dimensionless"
    if unit == "":
        return True, "a label (dose level '1' reads as a number, but it is a name)"
    if unit == "%" and "%" in e[0] and _nca_parameter(column) is not None:
        return True, "percent in the CDISC name (e.g. AUCPEO: AUC %Extrapolation Obs)"
    if unit.startswith("@"):
        cols = [x for x in unit[1:].replace("/", "*").split("*") if x]
        missing = [c for c in cols if c not in df.columns]
        return (not missing, f"unit column(s) {missing} missing" if missing else "unit column")
    return False, f"unit {unit} is neither in the name nor in a unit column"


__all__ = ["COLUMNS", "TABLE_COLUMNS", "KINDS", "build_dictionary", "with_units", "column_entry",
           "column_format", "nca_unit", "unit_is_stated"]
