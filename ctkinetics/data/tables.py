"""Parsing the format-independent tables: subjects and safety (CSV, strings -> typed)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ctkinetics.data.cells import parse_flag, parse_number
from ctkinetics.data.csvfile import ROW_COL, CsvTable, read_csv_text
from ctkinetics.data.problems import ProblemCollector

PHASES = ("escalation", "expansion")


def numeric_column(table: CsvTable, column: str, pc: ProblemCollector, *, what="a number",
                   allow_missing=True, minimum=None) -> np.ndarray:
    """Parse one column to floats, recording a problem for every unreadable cell."""
    out = np.full(len(table.frame), np.nan)
    for i, (cell, row) in enumerate(zip(table.frame[column], table.frame[ROW_COL])):
        x = parse_number(cell)
        if x is None:
            pc.add(table.name, row, column, f"expected {what}, got '{cell}'")
        elif math.isnan(x):
            if not allow_missing:
                pc.add(table.name, row, column, f"expected {what}, got an empty cell")
        elif not math.isfinite(x):
            pc.add(table.name, row, column, f"expected a finite number, got '{cell}'")
        elif minimum is not None and x < minimum:
            pc.add(table.name, row, column, f"expected {what} >= {minimum:g}, got '{cell}'")
        else:
            out[i] = x
    return out


def covariate_value_column(series: pd.Series):
    """Covariates stay numbers where every non-empty cell is a number, else strings."""
    parsed = [parse_number(c) for c in series]
    if all(p is not None for p in parsed):
        return np.array(parsed, dtype=float)
    return series.astype(str).to_numpy()


def read_subjects_csv(path, pc: ProblemCollector, notes: list | None = None) -> pd.DataFrame | None:
    """``subjects.csv``: subject, dose_level, dose, then covariates (kept)."""
    t = read_csv_text(path)
    if notes is not None:
        notes += [f"{t.name}: {n}" for n in t.notes]
    if not t.require(["subject", "dose_level", "dose"], pc):
        return None
    f = t.frame
    out = pd.DataFrame({
        "subject": f["subject"].astype(str),
        "dose_level": f["dose_level"].astype(str),
        "dose": numeric_column(t, "dose", pc, what="a dose in cells", allow_missing=False, minimum=0),
    })
    for row, s in zip(f[ROW_COL], f["subject"]):
        if not s:
            pc.add(t.name, row, "subject", "expected a subject ID, got an empty cell")
    dup = out["subject"].duplicated(keep="first")
    for row, s in zip(f.loc[dup, ROW_COL], out.loc[dup, "subject"]):
        pc.add(t.name, row, "subject", f"subject '{s}' is listed twice")
    for c in f.columns:
        if c not in ("subject", "dose_level", "dose", ROW_COL):
            out[c] = covariate_value_column(f[c])
    out[ROW_COL] = f[ROW_COL].to_numpy()
    return out


def read_safety_csv(path, pc: ProblemCollector, notes: list | None = None) -> pd.DataFrame | None:
    """``safety.csv``: subject, infusion_day, dlt (1/0, empty while pending), dlt_day,
    last_followup_day, crs_grade, icans_grade, phase (escalation | expansion)."""
    t = read_csv_text(path)
    if notes is not None:
        notes += [f"{t.name}: {n}" for n in t.notes]
    if not t.require(["subject", "infusion_day"], pc):
        return None
    f = t.frame
    n = len(f)
    out = pd.DataFrame({"subject": f["subject"].astype(str)})
    out["infusion_day"] = numeric_column(t, "infusion_day", pc, what="a study day", allow_missing=False)
    dlt = np.full(n, np.nan)
    if "dlt" in f.columns:
        for i, (cell, row) in enumerate(zip(f["dlt"], f[ROW_COL])):
            if str(cell).strip() == "":
                continue  # pending
            flag = parse_flag(cell)
            if flag is None:
                pc.add(t.name, row, "dlt", f"expected 1 (DLT), 0 (no DLT) or empty (pending), got '{cell}'")
            else:
                dlt[i] = float(flag)
    out["dlt"] = dlt
    for c in ("dlt_day", "last_followup_day"):
        out[c] = numeric_column(t, c, pc, what="a day after infusion", minimum=0) if c in f.columns else np.nan
    for c in ("crs_grade", "icans_grade"):
        if c in f.columns:
            g = numeric_column(t, c, pc, what="a grade 0-5", minimum=0)
            for row, x in zip(f[ROW_COL], g):
                if not math.isnan(x) and (x > 5 or x != int(x)):
                    pc.add(t.name, row, c, f"expected a grade 0-5, got {x:g}")
            out[c] = g
        else:
            out[c] = np.nan
    if "phase" in f.columns:
        phase = f["phase"].str.lower().replace("", "escalation")
        for row, p in zip(f[ROW_COL], phase):
            if p not in PHASES:
                pc.add(t.name, row, "phase", f"expected 'escalation' or 'expansion', got '{p}'")
        out["phase"] = phase.to_numpy()
    else:
        out["phase"] = "escalation"
    for row, d, dd in zip(f[ROW_COL], out["dlt"], out["dlt_day"]):
        if d == 1 and math.isnan(dd):
            pass  # a DLT without its day is legal; TITE needs only follow-up of pending ones
        if d == 0 and not math.isnan(dd):
            pc.add(t.name, row, "dlt_day", "a DLT day is given but dlt is 0")
    dup = out["subject"].duplicated()
    for row, s in zip(f.loc[dup, ROW_COL], out.loc[dup, "subject"]):
        pc.add(t.name, row, "subject", f"subject '{s}' is listed twice")
    out[ROW_COL] = f[ROW_COL].to_numpy()
    return out
