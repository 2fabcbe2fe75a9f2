"""The study as it was known on a study day: the one home of the ``--as-of`` replay.

:func:`cut_as_of` turns a :class:`~ctkinetics.data.Dataset` into the dataset a committee had
on day D, so that every section built from it (NCA, fits, figures, the decision) sees the same
data. Each participant's ``infusion_day`` (``safety.csv``) maps that participant's sample times
(days since infusion) to study days. Left out, each listed in the audit with the reason
"after the as-of day":

- participants infused after D (with their samples, safety row and efficacy rows), and
  participants without a safety row (no infusion day: they cannot be placed on the calendar);
- samples (and missing samples) taken after D;
- outcomes known after D: a DLT whose onset is after D (pending again), ``dlt = 0`` before the
  window ended, a window end / reason / committee's evaluable call after D, a CRS or ICANS
  grade whose onset is after D; ``last_followup_day`` is cut at D;
- efficacy assessments after D; committee decisions after D, and dose levels inserted after D
  (the ladder as it was);
- re-infusions given and time-varying covariate records taken after D.

A CRS/ICANS grade without its onset day cannot be placed: it is kept, with a warning.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from ctkinetics.data.dataset import AUDIT_COLUMNS
from ctkinetics.errors import SettingsError

AFTER = "after the as-of day"


def check_as_of(day) -> float:
    """A study day for ``--as-of``: a finite number >= 0, else a SettingsError saying so."""
    try:
        d = float(day)
    except (TypeError, ValueError):
        raise SettingsError(f"--as-of must be a study day (a number of days), got {day!r}") from None
    if not math.isfinite(d) or d < 0:
        raise SettingsError(f"--as-of must be a finite study day >= 0, got {day!r}")
    return d


def _audit(file, subject, time, what, column="", row=None) -> dict:
    return dict(zip(AUDIT_COLUMNS, (str(file), row, column, subject, time, "", "excluded", f"{AFTER}: {what}")))


def cut_as_of(dataset, day) -> "Dataset":  # noqa: F821 (the Dataset of ctkinetics.data)
    """The dataset as known on study ``day`` (module doc).

    Raises
    ------
    SettingsError
        ``day`` is not a finite study day >= 0, or the study has no safety data (no infusion
        days to place the samples on the calendar).
    """
    day = check_as_of(day)
    safety = dataset.safety
    if safety is None:
        raise SettingsError("--as-of needs each participant's infusion day: the study has no safety data (safety.csv)")
    src = {p.name: str(p) for p in map(_path, dataset.sources)}
    saf_file = src.get("safety.csv", "safety.csv")
    audit_rows: list[dict] = []
    inf = dict(zip(safety["subject"].astype(str), safety["infusion_day"].astype(float)))
    subjects = dataset.subjects
    keep = set()
    for s in subjects["subject"].astype(str):
        t0 = inf.get(s)
        if t0 is None:
            audit_rows.append(_audit(src.get("subjects.csv", "subjects.csv"), s, math.nan,
                                     "no safety row, so no infusion day to place the participant"))
        elif t0 > day:
            audit_rows.append(_audit(saf_file, s, math.nan, f"infused on study day {t0:g}", "infusion_day"))
        else:
            keep.add(s)
    study = _ladder_as_of(dataset.study, dataset.decisions, day)
    obs = _cut_samples(dataset.observations, inf, keep, day, audit_rows)
    missing = dataset.missing_samples
    if len(missing):
        missing = _cut_samples(missing, inf, keep, day, audit_rows, note=False)
    cut_safety = _cut_safety(safety[safety["subject"].astype(str).isin(keep)].reset_index(drop=True),
                             dataset.study.design.dlt_window_days, day, saf_file, audit_rows)
    efficacy = dataset.efficacy
    if efficacy is not None:
        e_day = efficacy["subject"].astype(str).map(inf).astype(float) + efficacy["day"].astype(float)
        late = ~efficacy["subject"].astype(str).isin(keep) | (e_day > day)
        for r in efficacy.loc[late & efficacy["subject"].astype(str).isin(keep)].itertuples(index=False):
            audit_rows.append(_audit(src.get("efficacy.csv", "efficacy.csv"), r.subject, r.day,
                                     f"{r.endpoint} assessed on study day {inf[r.subject] + r.day:g}", "day"))
        efficacy = efficacy.loc[~late].reset_index(drop=True)
    decisions = dataset.decisions
    if decisions is not None:
        for r in decisions.loc[decisions["day"] > day].itertuples(index=False):
            audit_rows.append(_audit(src.get("decisions.csv", "decisions.csv"), r.subject, math.nan,
                                     f"committee record ({r.action}) of study day {r.day:g}", "day"))
        decisions = decisions.loc[decisions["day"] <= day].reset_index(drop=True)
    # issue 17: re-infusions and time-varying covariate records after the day
    doses = _cut_events(dataset._doses, inf, keep, day, audit_rows,
                        lambda r, d: f"infusion of {r.amount:g} cells on study day {d:g}")
    time_varying = _cut_events(dataset._time_varying, inf, keep, day, audit_rows,
                               lambda r, d: f"covariate {r.covariate} = {r.value:g} recorded on study day {d:g}")
    if time_varying is not None and not len(time_varying):
        time_varying = None
    removed = set(subjects["subject"].astype(str)) - keep
    return dataclasses.replace(
        dataset, study=study,
        _subjects=subjects[subjects["subject"].astype(str).isin(keep)].reset_index(drop=True),
        _observations=obs, _safety=cut_safety, _missing=missing, _efficacy=efficacy, _decisions=decisions,
        _doses=doses, _time_varying=time_varying,
        _audit=_cut_audit(dataset.audit, inf, keep, day, audit_rows),
        warnings=tuple(w for w in dataset.warnings if not any(f"'{s}'" in w for s in removed))
        + tuple(_grade_warnings(cut_safety)),
    )


def _path(p):
    from pathlib import Path

    return Path(p)


def _ladder_as_of(study, decisions, day):
    if decisions is None:
        return study
    later = decisions.loc[(decisions["action"] == "insert_level") & (decisions["day"] > day), "level"]
    if not len(later):
        return study
    return study.with_dose_levels({k: v for k, v in study.dose_levels.items() if k not in set(later)})


def _cut_samples(obs: pd.DataFrame, inf: dict, keep: set, day: float, audit_rows: list, note=True) -> pd.DataFrame:
    subj = obs["subject"].astype(str)
    study_day = subj.map(inf).astype(float) + obs["time"].astype(float)
    kept = subj.isin(keep).to_numpy()
    late = kept & (study_day > day).to_numpy()
    if late.any():
        what = "sampled" if note else "missing sample planned"
        o = obs.loc[late]
        audit_rows.append(pd.DataFrame({
            "file": o["source_file"].astype(str).to_numpy() if "source_file" in o else "",
            "row": o["source_row"].to_numpy() if "source_row" in o else None, "column": "time",
            "subject": o["subject"].to_numpy(), "time": o["time"].to_numpy(), "analyte": o["analyte"].to_numpy(),
            "action": "excluded",
            "reason": [f"{AFTER}: {what} on study day {d:g}" for d in study_day[late].tolist()]},
            columns=list(AUDIT_COLUMNS)))
    return obs.loc[kept & ~late].reset_index(drop=True)


def _cut_events(table, inf: dict, keep: set, day: float, audit_rows: list, what):
    """Rows of a per-subject event table (``subject, time, source_file, source_row``: the doses,
    the time-varying covariate records) known on ``day``; those after it audited with
    ``what(row, study_day)`` (issue 17)."""
    if table is None:
        return None
    subj = table["subject"].astype(str)
    study_day = subj.map(inf).astype(float) + table["time"].astype(float)
    kept = subj.isin(keep).to_numpy()
    late = kept & (study_day > day).to_numpy()
    for r, d in zip(table.loc[late].itertuples(index=False), study_day[late]):
        audit_rows.append(dict(zip(AUDIT_COLUMNS, (str(r.source_file), int(r.source_row), "time", r.subject,
                                                   float(r.time), "", "excluded", f"{AFTER}: {what(r, d)}"))))
    return table.loc[kept & ~late].reset_index(drop=True)


def _cut_safety(s: pd.DataFrame, window: float, day: float, file: str, audit_rows: list) -> pd.DataFrame:
    """The safety rows as known on ``day`` (module doc); one audit row per outcome left out."""
    col = {c: s[c].to_numpy(dtype=float).copy() for c in
           ("infusion_day", "dlt", "dlt_day", "window_end_day", "evaluable", "last_followup_day",
            "crs_grade", "crs_day", "icans_grade", "icans_day")}
    reason = s["window_end_reason"].to_numpy(dtype=object).copy()
    subjects = s["subject"].to_numpy()
    t0, dday, we = col["infusion_day"], col["dlt_day"], col["window_end_day"]
    elapsed = day - t0
    with np.errstate(invalid="ignore"):
        dlt_late = (col["dlt"] == 1) & (dday > elapsed)
        zero_early = (col["dlt"] == 0) & ~((we <= elapsed) | (elapsed >= window))
        end_late = we > elapsed
        known_at = {"dlt": t0 + dday, "zero": t0 + np.where(np.isnan(we), window, we), "end": t0 + we}
        late_grades = {c: col[f"{c}_day"] > elapsed for c in ("crs", "icans")}
    for mask, key, what, column in (
            (dlt_late, "dlt", "DLT with onset on study day {d:g}", "dlt"),
            (zero_early, "zero", "no DLT, known when the window ends (study day {d:g})", "dlt"),
            (end_late, "end", "window ended on study day {d:g}", "window_end_day")):
        audit_rows += [_audit(file, subjects[i], math.nan, what.format(d=known_at[key][i]), column)
                       for i in np.flatnonzero(mask)]
    for c, late in late_grades.items():
        audit_rows += [_audit(file, subjects[i], math.nan, f"{c.upper()} grade {col[f'{c}_grade'][i]:g} with onset on "
                              f"study day {t0[i] + col[f'{c}_day'][i]:g}", f"{c}_grade") for i in np.flatnonzero(late)]
        col[f"{c}_grade"][late] = np.nan
        col[f"{c}_day"][late] = np.nan
    col["dlt"][dlt_late | zero_early] = np.nan
    col["dlt_day"][dlt_late | zero_early] = np.nan
    col["window_end_day"][end_late] = np.nan
    reason[end_late] = ""
    col["evaluable"][end_late] = np.nan
    lf = col["last_followup_day"]
    col["last_followup_day"] = np.where(np.isnan(lf), lf, np.minimum(lf, elapsed))
    out = s.copy()
    for c, v in col.items():
        out[c] = v
    out["window_end_reason"] = reason
    return out


def _grade_warnings(s: pd.DataFrame) -> list:
    out = []
    for c in ("crs", "icans"):
        undated = (s[f"{c}_grade"] > 0) & s[f"{c}_day"].isna()
        for sid in s.loc[undated, "subject"]:
            out.append(f"'{sid}': {c}_grade has no {c}_day, so the as-of replay cannot tell when it was known "
                       "(kept as known)")
    return out


def _cut_audit(audit: pd.DataFrame, inf: dict, keep: set, day: float, rows: list) -> pd.DataFrame:
    subj = audit["subject"].astype(str)
    known = subj.isin(keep)
    time = pd.to_numeric(audit["time"], errors="coerce")
    study_day = subj.map(inf).astype(float) + time
    earlier_cut = audit["reason"].astype(str).str.startswith(AFTER)  # cutting twice changes nothing
    keep_row = ((known | audit["subject"].isna()) & ~(study_day > day)) | earlier_cut
    parts = [audit.loc[keep_row]] + [r if isinstance(r, pd.DataFrame) else pd.DataFrame([r], columns=list(AUDIT_COLUMNS))
                                     for r in rows]
    parts = [p for p in parts if len(p)]
    if not parts:
        return audit.iloc[:0]
    out = pd.concat(parts, ignore_index=True)
    return out.astype({"file": str})
