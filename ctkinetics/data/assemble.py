"""Validation shared by every reader: the rules that hold whatever the file format.

Each reader turns its format into canonical records (subject, time, analyte, value, unit,
lloq, blq, pre_infusion, source_file, source_row, and ``missing_reason``: non-empty for a
sample that was planned but has no result), a subjects table and an optional safety table,
then calls :func:`build_dataset`. Problems are collected and raised together; suspicious but
legal data become warnings; every record excluded, changed or labelled goes into the audit
table. Missing samples pass through the same rules as measured ones (an unknown subject or
analyte on a missing-sample row is an error too) and are kept on the dataset
(:attr:`Dataset.missing_samples`) so that writers carry them over.

Every rule is one vectorised pass over the table (grouping once), so reading grows linearly
with the number of participants and samples.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.data.dataset import (AUDIT_COLUMNS, MISSING_COLUMNS, OBSERVATION_COLUMNS, SAFETY_COLUMNS,
                                     Dataset)
from ctkinetics.data.problems import ProblemCollector
from ctkinetics.data.safety import protocol_tables
from ctkinetics.data.study import Study

RECORD_COLUMNS = OBSERVATION_COLUMNS + ("missing_reason",)
PRE_INFUSION_LABEL = "pre-infusion below-LLOQ sample: structural zero (no CAR-T yet); excluded from fits and NCA"


class Audit:
    """Rows of the audit table: every record excluded, changed or labelled, with its reason."""

    def __init__(self):
        self.rows = []
        self.frames = []

    def add(self, file, row, column, subject, time, analyte, action, reason):
        self.rows.append(dict(zip(AUDIT_COLUMNS, (str(file), row, column, subject, time, analyte, action, reason))))

    def add_frame(self, frame: pd.DataFrame) -> None:
        """Many audit rows at once (columns as :data:`AUDIT_COLUMNS`)."""
        if len(frame):
            self.frames.append(frame[list(AUDIT_COLUMNS)])

    def frame(self) -> pd.DataFrame:
        parts = [pd.DataFrame(self.rows, columns=list(AUDIT_COLUMNS))] + self.frames
        parts = [p for p in parts if len(p)]
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in AUDIT_COLUMNS})
        out = pd.concat(parts, ignore_index=True)
        return out.astype({"file": str}) if len(out) else out


def empty_records() -> pd.DataFrame:
    """A records table with no rows and the canonical columns."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in RECORD_COLUMNS})


def build_dataset(
    study: Study | None,
    subjects: pd.DataFrame | None,
    records: pd.DataFrame | None,
    safety: pd.DataFrame | None,
    *,
    audit: Audit,
    warnings: list[str],
    sources,
    columns: dict,
    subjects_file: str,
    safety_file: str | None = None,
    problems: ProblemCollector | None = None,
    fmt: str = "tidy",
    doses: pd.DataFrame | None = None,
    time_varying: pd.DataFrame | None = None,
) -> Dataset:
    """Apply the common validation rules and return the immutable :class:`Dataset`.

    ``columns`` maps canonical names (subject, time, analyte, value, unit, lloq) to the column
    names of the source file, so messages name the column as the user sees it. ``study``,
    ``subjects`` or ``records`` may be None when their file could not be read; the rules that
    need them are then skipped and the problems already collected are raised with the others.
    """
    pc = problems or ProblemCollector()
    col = lambda c: columns.get(c, c)  # noqa: E731
    rec = _canonical(records)
    if subjects is not None:
        subjects = subjects.reset_index(drop=True)
        if "_row" not in subjects.columns:
            subjects["_row"] = np.arange(2, len(subjects) + 2)
        _check_subjects(study, subjects, subjects_file, pc, warnings, col("subject"), col("dose_level"))
    _check_records(study, subjects, rec, subjects_file, pc, col)
    if safety is not None and subjects is not None:
        known = set(subjects["subject"].tolist())
        for sid, row in zip(safety["subject"].tolist(), safety["_row"].tolist()):
            if sid not in known:
                pc.add(safety_file, row, "subject", f"subject '{sid}' is not in {subjects_file}")
    dose_table = tv_table = None
    if subjects is not None:  # issue 17: every infusion and the time-varying covariates
        from ctkinetics.data.doses import finish_doses
        from ctkinetics.data.timevarying import finish_time_varying

        dose_table = finish_doses(doses, subjects, subjects_file, pc, columns.get("doses"))
        tv_table = finish_time_varying(time_varying, subjects, subjects_file, pc, columns.get("time_varying"))
    decisions, efficacy = protocol_tables(study, subjects, rec, safety, subjects_file=subjects_file,
                                          safety_file=safety_file, pc=pc, warnings=warnings, sources=sources)
    if not pc and (study is None or subjects is None or records is None):
        pc.add(subjects_file, None, None, "the study could not be read")
    pc.raise_if_any()

    missing = rec["missing_reason"].astype(str) != ""
    miss = rec.loc[missing]
    rec = rec.loc[~missing].reset_index(drop=True)
    _audit_and_warn(study, subjects, rec, miss, audit, warnings, col)
    obs = rec[list(OBSERVATION_COLUMNS)].copy()
    obs["value"] = np.where(obs["blq"], np.nan, obs["value"].astype(float))
    obs = obs.astype({"subject": str, "time": float, "analyte": str, "unit": str, "lloq": float,
                      "blq": bool, "pre_infusion": bool, "source_file": str, "source_row": int})
    obs = obs.sort_values(["subject", "analyte", "time"], kind="stable").reset_index(drop=True)
    missing_table = pd.DataFrame({
        "subject": miss["subject"].astype(str).to_numpy(), "time": miss["time"].astype(float).to_numpy(),
        "analyte": miss["analyte"].astype(str).to_numpy(), "source_file": miss["source_file"].astype(str).to_numpy(),
        "source_row": miss["source_row"].astype(int).to_numpy(), "reason": miss["missing_reason"].astype(str).to_numpy(),
    }, columns=list(MISSING_COLUMNS)).sort_values(["subject", "analyte", "time"], kind="stable").reset_index(drop=True)
    subj = subjects.drop(columns=["_row"], errors="ignore").reset_index(drop=True)
    saf = None if safety is None else safety.drop(columns=["_row"], errors="ignore")[list(SAFETY_COLUMNS)].reset_index(drop=True)
    return Dataset(
        study=study, _subjects=subj, _observations=obs, _safety=saf, _audit=audit.frame(),
        warnings=tuple(warnings), sources=tuple(sources), format=fmt, _missing=missing_table,
        _decisions=decisions, _efficacy=efficacy, _doses=dose_table, _time_varying=tv_table,
    )


def _canonical(records: pd.DataFrame | None) -> pd.DataFrame:
    rec = empty_records() if records is None else records.reset_index(drop=True)
    if "missing_reason" not in rec.columns:
        rec["missing_reason"] = ""
    rec["missing_reason"] = rec["missing_reason"].fillna("").astype(str)
    rec["blq"] = rec["blq"].astype(bool)
    rec["pre_infusion"] = rec["pre_infusion"].astype(bool)
    for c in ("time", "value", "lloq"):
        rec[c] = rec[c].astype(float)
    for c in ("subject", "analyte", "unit", "source_file"):
        rec[c] = rec[c].astype(str)
    return rec


def _report(pc, rec, mask, column, message) -> None:
    """One problem per row of ``rec`` where ``mask`` holds; ``message(row)`` gives the text."""
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    for i in idx[: pc.cap + 1]:  # the collector keeps at most its cap; the rest are counted
        r = rec.iloc[i]
        pc.add(r["source_file"], int(r["source_row"]), column, message(r))
    if len(idx) > pc.cap + 1:
        pc.truncated += len(idx) - pc.cap - 1


def _check_subjects(study, subjects, subjects_file, pc, warnings, subject_col="subject",
                    level_col="dose_level") -> None:
    rows = subjects["_row"].to_numpy()
    sid = subjects["subject"].astype(str)
    dup = np.flatnonzero(sid.duplicated(keep="first").to_numpy())
    first_row = dict(zip(sid.tolist()[::-1], rows[::-1])) if len(dup) else {}
    for i in dup:
        pc.add(subjects_file, int(rows[i]), subject_col,
               f"subject '{sid.iat[i]}' is listed twice (also on row {first_row[sid.iat[i]]}); one row per participant")
    if study is None:
        return
    levels = subjects["dose_level"].astype(str)
    unknown = ~levels.isin(list(study.dose_levels)) & (levels != "")
    for i in np.flatnonzero(unknown.to_numpy()):
        pc.add(subjects_file, int(rows[i]), level_col,
               f"dose level '{levels.iat[i]}' is not in study.toml [dose_levels] (known: {', '.join(study.dose_levels)})")
    planned = levels.map(dict(study.dose_levels)).astype(float).to_numpy()
    dose = subjects["dose"].astype(float).to_numpy()
    with np.errstate(invalid="ignore"):
        off = ~np.isnan(planned) & ~np.isnan(dose) & (np.abs(dose - planned) > 1e-6 * np.abs(planned))
    for i in np.flatnonzero(off):
        warnings.append(f"{subjects_file} row {rows[i]}: subject '{sid.iat[i]}' received {dose[i]:.4g} cells, "
                        f"not the {planned[i]:.4g} of dose level {levels.iat[i]}")


def _check_records(study, subjects, rec, subjects_file, pc, col) -> None:
    if subjects is not None:
        _report(pc, rec, ~rec["subject"].isin(subjects["subject"].unique()), col("subject"),
                lambda r: f"subject '{r['subject']}' is not in {subjects_file}")
    if study is not None:
        declared = study.analytes
        known = rec["analyte"].isin(list(declared))
        _report(pc, rec, ~known, col("analyte"),
                lambda r: f"analyte '{r['analyte']}' is not declared in study.toml (declared: {', '.join(declared)})")
        unit = rec["analyte"].map({a: x.unit for a, x in declared.items()})
        _report(pc, rec, known & (rec["unit"] != "") & (rec["unit"] != unit), col("unit"),
                lambda r: f"unit '{r['unit']}' differs from the unit of analyte '{r['analyte']}' in study.toml "
                          f"('{declared[r['analyte']].unit}'); one analyte must have one unit")
        default = rec["analyte"].map({a: x.lloq for a, x in declared.items()}).astype(float)
        rec["lloq"] = rec["lloq"].fillna(default)
        rec.loc[known, "unit"] = unit[known]
    time, value, lloq = (rec[c].to_numpy(float) for c in ("time", "value", "lloq"))
    blq = rec["blq"].to_numpy(bool)
    measured = (rec["missing_reason"] == "").to_numpy()
    # NaN times come from cells already reported by the reader
    _report(pc, rec, np.isinf(time), col("time"), lambda r: f"expected a finite time in days, got {r['time']}")
    quant = measured & ~blq & ~np.isnan(value)
    _report(pc, rec, quant & np.isinf(value), col("value"), lambda r: f"expected a finite value, got {r['value']}")
    with np.errstate(invalid="ignore"):
        _report(pc, rec, quant & (value < 0), col("value"), lambda r: f"expected a value >= 0, got {r['value']:g}")
        _report(pc, rec, ~np.isnan(lloq) & (~np.isfinite(lloq) | (lloq <= 0)), col("lloq"),
                lambda r: f"expected a positive LLOQ, got {r['lloq']:g}")
    if study is not None:
        _report(pc, rec, measured & blq & np.isnan(rec["lloq"].to_numpy(float)) & rec["analyte"].isin(list(study.analytes)),
                col("value"), lambda r: f"below-LLOQ sample of '{r['analyte']}' without an LLOQ: give the row an lloq "
                                        f"or declare [analytes.{r['analyte']}] lloq in study.toml")
    _check_duplicates(rec, pc, col)


def _check_duplicates(rec, pc, col) -> None:
    keys = ["subject", "time", "analyte"]
    dup = rec.duplicated(keys, keep=False).to_numpy()
    if not dup.any():
        return
    d = rec.loc[dup].sort_values(["source_file", "source_row"], kind="stable")
    for _, grp in d.groupby(keys, sort=False):
        rows = list(grp["source_row"])
        r = grp.iloc[1]
        what = "missing-sample row" if r["missing_reason"] else "sample"
        pc.add(r["source_file"], int(rows[1]), col("time"),
               f"duplicate sample: subject '{r['subject']}', time {r['time']:g}, analyte '{r['analyte']}' "
               f"also on row {rows[0]} (this {what} contradicts it or repeats it)")


def _audit_and_warn(study, subjects, rec, miss, audit, warnings, col) -> None:
    """Labels and warnings: legal data worth a look, each with its file and row."""
    if len(miss):
        audit.add_frame(pd.DataFrame({
            "file": miss["source_file"].to_numpy(), "row": miss["source_row"].to_numpy(),
            "column": col("value"), "subject": miss["subject"].to_numpy(), "time": miss["time"].to_numpy(),
            "analyte": miss["analyte"].to_numpy(), "action": "excluded",
            "reason": ("missing sample (" + miss["missing_reason"] + ")").to_numpy()}))
    pre = rec.loc[rec["pre_infusion"] & rec["blq"]]
    if len(pre):
        audit.add_frame(pd.DataFrame({
            "file": pre["source_file"].to_numpy(), "row": pre["source_row"].to_numpy(), "column": col("value"),
            "subject": pre["subject"].to_numpy(), "time": pre["time"].to_numpy(), "analyte": pre["analyte"].to_numpy(),
            "action": "labelled", "reason": PRE_INFUSION_LABEL}))
    below = rec.loc[~rec["blq"] & (rec["value"] < rec["lloq"])]
    warnings += [f"{f} row {r}: quantified value {v:g} of '{a}' is below its LLOQ {q:g} (kept as reported)"
                 for f, r, v, a, q in zip(below["source_file"], below["source_row"], below["value"],
                                          below["analyte"], below["lloq"])]
    has = rec.groupby(["subject", "analyte"], sort=True)["pre_infusion"].any()
    for subj in subjects.loc[~subjects["subject"].isin(rec["subject"].unique()), "subject"].tolist():
        warnings.append(f"subject '{subj}' has no observations")
    kinds = {a: x.kind for a, x in study.analytes.items()}
    for subj, a in has.index[~has.to_numpy()]:
        if kinds.get(a) in ("qpcr", "flow", "bcell"):
            warnings.append(f"subject '{subj}' has no pre-infusion sample of '{a}'")
