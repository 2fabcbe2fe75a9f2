"""Validation shared by every reader: the rules that hold whatever the file format.

Each reader turns its format into canonical records (subject, time, analyte, value, unit,
lloq, blq, pre_infusion, source_file, source_row), a subjects table and an optional safety
table, then calls :func:`build_dataset`. Problems are collected and raised together;
suspicious but legal data become warnings; every record excluded, changed or labelled goes
into the audit table.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ctkinetics.data.dataset import AUDIT_COLUMNS, OBSERVATION_COLUMNS, SAFETY_COLUMNS, Dataset
from ctkinetics.data.problems import ProblemCollector
from ctkinetics.data.study import Study


class Audit:
    """Rows of the audit table: every record excluded, changed or labelled, with its reason."""

    def __init__(self):
        self.rows = []

    def add(self, file, row, column, subject, time, analyte, action, reason):
        self.rows.append(dict(zip(AUDIT_COLUMNS, (str(file), row, column, subject, time, analyte, action, reason))))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(AUDIT_COLUMNS))


def build_dataset(
    study: Study,
    subjects: pd.DataFrame,
    records: pd.DataFrame,
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
) -> Dataset:
    """Apply the common validation rules and return the immutable :class:`Dataset`.

    ``columns`` maps canonical names (subject, time, analyte, value, unit) to the column
    names of the source file, so messages name the column as the user sees it.
    """
    pc = problems or ProblemCollector()
    col = lambda c: columns.get(c, c)  # noqa: E731
    known = set(subjects["subject"])
    declared = study.analytes
    rec = records.reset_index(drop=True)

    # Per-record rules.
    for r in rec.itertuples(index=False):
        f, row = r.source_file, r.source_row
        if r.subject not in known:
            pc.add(f, row, col("subject"), f"subject '{r.subject}' is not in {subjects_file}")
        a = declared.get(r.analyte)
        if a is None:
            pc.add(f, row, col("analyte"),
                   f"analyte '{r.analyte}' is not declared in study.toml (declared: {', '.join(declared)})")
        elif r.unit and r.unit != a.unit:
            pc.add(f, row, col("unit"),
                   f"unit '{r.unit}' differs from the unit of analyte '{r.analyte}' in study.toml ('{a.unit}'); "
                   "one analyte must have one unit")
        if not math.isfinite(r.time):
            pc.add(f, row, col("time"), f"expected a finite time in days, got {r.time}")
        if not r.blq and not math.isnan(r.value):
            if not math.isfinite(r.value):
                pc.add(f, row, col("value"), f"expected a finite value, got {r.value}")
            elif r.value < 0:
                pc.add(f, row, col("value"), f"expected a value >= 0, got {r.value:g}")
        if not math.isnan(r.lloq) and (not math.isfinite(r.lloq) or r.lloq <= 0):
            pc.add(f, row, col("lloq"), f"expected a positive LLOQ, got {r.lloq:g}")

    # Fill each sample's LLOQ from the analyte's default.
    default_lloq = rec["analyte"].map(lambda a: declared[a].lloq if a in declared else math.nan).astype(float)
    rec["lloq"] = rec["lloq"].astype(float).fillna(default_lloq)
    rec["unit"] = rec["analyte"].map(lambda a: declared[a].unit if a in declared else "")
    for r in rec.loc[rec["blq"] & rec["lloq"].isna()].itertuples(index=False):
        pc.add(r.source_file, r.source_row, col("value"),
               f"below-LLOQ sample of '{r.analyte}' without an LLOQ: give the row an lloq or declare "
               f"[analytes.{r.analyte}] lloq in study.toml")

    # Duplicates.
    dup = rec.duplicated(["subject", "time", "analyte"], keep=False)
    if dup.any():
        for _, grp in rec.loc[dup].groupby(["subject", "time", "analyte"], sort=False):
            rows = list(grp["source_row"])
            pc.add(grp["source_file"].iloc[0], rows[1], col("time"),
                   f"duplicate sample: subject '{grp['subject'].iloc[0]}', time {grp['time'].iloc[0]:g}, "
                   f"analyte '{grp['analyte'].iloc[0]}' also on row {rows[0]}")

    # Subjects and dose levels.
    subjects = subjects.reset_index(drop=True)
    for i, s in subjects.iterrows():
        row = s.get("_row", i + 2)
        if s["dose_level"] not in study.dose_levels:
            pc.add(subjects_file, row, "dose_level",
                   f"dose level '{s['dose_level']}' is not in study.toml [dose_levels] "
                   f"(known: {', '.join(study.dose_levels)})")
        elif not math.isnan(s["dose"]) and not math.isclose(s["dose"], study.dose_levels[s["dose_level"]], rel_tol=1e-6):
            warnings.append(f"{subjects_file} row {row}: subject '{s['subject']}' received {s['dose']:.4g} cells, "
                            f"not the {study.dose_levels[s['dose_level']]:.4g} of dose level {s['dose_level']}")
    if safety is not None:
        for sid, row in zip(safety["subject"], safety["_row"]):
            if sid not in known:
                pc.add(safety_file, row, "subject", f"subject '{sid}' is not in {subjects_file}")
    pc.raise_if_any()

    # Labels and warnings (legal but worth a look).
    rec["pre_infusion"] = rec["pre_infusion"].astype(bool)
    for r in rec.loc[rec["pre_infusion"] & rec["blq"]].itertuples(index=False):
        audit.add(r.source_file, r.source_row, col("value"), r.subject, r.time, r.analyte, "labelled",
                  "pre-infusion below-LLOQ sample: structural zero (no CAR-T yet); excluded from fits and NCA")
    below = ~rec["blq"] & (rec["value"] < rec["lloq"])
    for r in rec.loc[below].itertuples(index=False):
        warnings.append(f"{r.source_file} row {r.source_row}: quantified value {r.value:g} of '{r.analyte}' is "
                        f"below its LLOQ {r.lloq:g} (kept as reported)")
    kinds_needing_baseline = {"qpcr", "flow", "bcell"}
    for subj in subjects["subject"]:
        sub = rec.loc[rec["subject"] == subj]
        if sub.empty:
            warnings.append(f"subject '{subj}' has no observations")
            continue
        for a in sorted(set(sub["analyte"])):
            if declared[a].kind in kinds_needing_baseline and not sub.loc[sub["analyte"] == a, "pre_infusion"].any():
                warnings.append(f"subject '{subj}' has no pre-infusion sample of '{a}'")

    obs = rec[list(OBSERVATION_COLUMNS)].copy()
    obs["value"] = np.where(obs["blq"], np.nan, obs["value"].astype(float))
    obs = obs.astype({"subject": str, "time": float, "analyte": str, "unit": str, "lloq": float,
                      "blq": bool, "pre_infusion": bool, "source_file": str, "source_row": int})
    obs = obs.sort_values(["subject", "analyte", "time"], kind="stable").reset_index(drop=True)
    subj = subjects.drop(columns=["_row"], errors="ignore").reset_index(drop=True)
    saf = None if safety is None else safety.drop(columns=["_row"], errors="ignore")[list(SAFETY_COLUMNS)].reset_index(drop=True)
    return Dataset(
        study=study, _subjects=subj, _observations=obs, _safety=saf, _audit=audit.frame(),
        warnings=tuple(warnings), sources=tuple(sources), format=fmt,
    )
