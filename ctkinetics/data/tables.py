"""Parsing the format-independent tables: subjects and safety (CSV, strings -> typed)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ctkinetics.data.cells import parse_flag, parse_number
from ctkinetics.data.csvfile import ROW_COL, CsvTable, read_csv_text
from ctkinetics.data.problems import ProblemCollector
from ctkinetics.data.subjects import covariate_value_column, read_subjects_csv  # noqa: F401 (moved there)

PHASES = ("escalation", "expansion")


def numeric_column(table: CsvTable, column: str, pc: ProblemCollector, *, what="a number",
                   allow_missing=True, minimum=None) -> np.ndarray:
    """Parse one column to floats, recording a problem for every unreadable cell (one
    vectorised pass: :meth:`CsvTable.numbers`)."""
    return table.numbers(column, pc, what=what, required=not allow_missing, minimum=minimum)


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
