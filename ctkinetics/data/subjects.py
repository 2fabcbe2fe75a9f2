"""``subjects.csv``: one row per participant (subject, dose_level, dose) and covariates.

Subject IDs and dose levels are text, kept exactly as written (spaces around a cell aside):
``007`` and ``7`` are two participants, and ``101,5`` in a semicolon-separated file is the ID
``101,5``, never the number 101.5. Every other column is a covariate: numbers where every
non-empty cell is a number, else text.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ctkinetics.data.cells import decimal_commas, parse_numbers
from ctkinetics.data.csvfile import ROW_COL, CsvTable, read_csv_text
from ctkinetics.data.problems import ProblemCollector

REQUIRED = ("subject", "dose_level", "dose")


def covariate_value_column(series: pd.Series, decimal_comma: bool = False):
    """Covariates stay numbers where every non-empty cell is a number, else strings.

    With ``decimal_comma`` (semicolon-separated files) ``70,5`` is read as 70.5, but only when
    the whole column then reads as numbers.
    """
    return _covariate(series, decimal_comma)[0]


def _covariate(series: pd.Series, decimal_comma: bool):
    """(values, number of decimal commas read) of one covariate column."""
    text = pd.Series(series, copy=False).astype(str).str.strip()
    n = 0
    if decimal_comma:
        text2, n = decimal_commas(text)
        values, bad = parse_numbers(text2)
    else:
        values, bad = parse_numbers(text)
    if not bad.any():
        return values, n
    return text.to_numpy(dtype=object), 0


def read_subjects_csv(path, pc: ProblemCollector, notes: list | None = None) -> pd.DataFrame | None:
    """``subjects.csv``: subject, dose_level, dose, then covariates (kept).

    Problems go to ``pc``; the table is returned for the cross-file checks (None when the file
    cannot be read at all or lacks a required column).
    """
    t: CsvTable | None = None
    with pc.collecting():
        t = read_csv_text(path)
    if t is None:
        return None
    if not t.require(REQUIRED, pc):
        _add_notes(t, notes)
        return None
    f = t.frame
    out = pd.DataFrame({
        "subject": f["subject"].astype(str).to_numpy(),
        "dose_level": f["dose_level"].astype(str).to_numpy(),
        "dose": t.numbers("dose", pc, what="a dose in cells", required=True, minimum=0),
    })
    rows = t.rows
    for i in np.flatnonzero((out["subject"] == "").to_numpy()):
        pc.add(t.name, int(rows[i]), "subject", "expected a subject ID, got an empty cell")
    for i in np.flatnonzero((out["dose_level"] == "").to_numpy()):
        pc.add(t.name, int(rows[i]), "dose_level", "expected a dose level, got an empty cell")
    for c in t.columns:
        if c not in REQUIRED:
            out[c], n = _covariate(f[c], t.decimal_comma)
            t._note_commas(n)
    out[ROW_COL] = rows
    _add_notes(t, notes)
    return out


def _add_notes(t: CsvTable, notes) -> None:
    if notes is not None:
        notes += [f"{t.name}: {n}" for n in t.notes]


def covariate_columns(names, reserved, max_len: int | None = None) -> tuple[dict, list[str]]:
    """Column names for covariates in a format with reserved names and a name length limit.

    Returns ``{covariate: column}`` and one warning per covariate whose column is not simply
    its name in upper case: the name is reserved by the format (``dv`` in NONMEM, ``usubjid``
    in SDTM), not a valid name, too long, or equal to another one once shortened. The writers
    put the mapping in study.toml, so the reader restores every covariate's own name.

    >>> covariate_columns(["dv", "age"], {"DV", "ID"})[0]
    {'dv': 'COV_DV', 'age': 'AGE'}
    """
    reserved = {str(r).upper() for r in reserved}
    out, warnings, used = {}, [], set(reserved)
    for c in names:
        base = re.sub(r"[^A-Z0-9_]", "_", str(c).upper())
        if not base or not base[0].isalpha():
            base = "C_" + base
        cands = [base] + (["COV_" + base] if base in reserved else []) + [f"_{k}" for k in range(2, 10_000)]
        for cand in cands:
            if cand.startswith("_"):  # a numbered suffix on the shortened base
                cand = (base[: max_len - len(cand)] if max_len else base) + cand
            elif max_len:
                cand = cand[:max_len]
            if cand not in used:
                break
        used.add(cand)
        out[c] = cand
        if cand != str(c).upper():
            why = ("is reserved by the format" if base in reserved else
                   f"is longer than {max_len} characters" if max_len and len(base) > max_len else
                   "is not a valid column name" if base != str(c).upper() else "is taken by another covariate")
            warnings.append(f"covariate '{c}' is written as column {cand} (its name {why}); study.toml maps it back")
    return out, warnings
