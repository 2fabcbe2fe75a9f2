"""Infusions of each participant: the first one (``subjects.csv``'s dose at time 0) and any
later ones (re-infusions), read from every format into one table, :attr:`Dataset.doses`.

==========  ====================================================================
subject     as in subjects.csv
time        days since the participant's first infusion (> 0 for a later one)
amount      cells infused (the unit of ``subjects.csv`` ``dose``)
==========  ====================================================================

Where the infusions come from:

- tidy study folder: ``subjects.csv`` gives the first, the optional ``doses.csv``
  (``subject,time,amount``) the later ones; a ``time = 0`` row may repeat the first one (its
  amount must then equal the subject's dose);
- NONMEM: every dosing record (``EVID`` 1 or 4 with ``AMT``; ``ADDL``/``II`` expanded into
  their additional doses), the first one setting time 0;
- SDTM: every ``EX`` record, the earliest ``EXSTDTC`` setting time 0.

Rules (each problem names the file, row and column): a later infusion belongs to a known
participant, has a finite time > 0 and an amount >= 0; two infusions of one participant at
the same time are refused; a ``time = 0`` row that disagrees with the subject's dose is
refused. What a later dose does to a model's states is the model file's ``[dosing]`` table;
samples taken at a dose time are pre-dose.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.data.csvfile import ROW_COL
from ctkinetics.data.problems import ProblemCollector

DOSE_COLUMNS = ("subject", "time", "amount", "source_file", "source_row")
DOSES_FILE = "doses.csv"


def empty_doses() -> pd.DataFrame:
    return pd.DataFrame({"subject": pd.Series(dtype=str), "time": pd.Series(dtype=float),
                         "amount": pd.Series(dtype=float), "source_file": pd.Series(dtype=str),
                         "source_row": pd.Series(dtype=int)})


def read_doses_csv(path, pc: ProblemCollector, notes: list | None = None) -> pd.DataFrame | None:
    """``doses.csv`` of a study folder (module doc) as dose records (``DOSE_COLUMNS``);
    None when it cannot be read or lacks a required column (problems in ``pc``)."""
    from ctkinetics.data.safety import open_table

    t = open_table(path, ("subject", "time", "amount"), ("subject", "time", "amount"), pc, notes)
    if t is None:
        return None
    f = t.frame
    out = pd.DataFrame({
        "subject": f["subject"].astype(str).str.strip().to_numpy(),
        "time": t.numbers("time", pc, what="a time in days since the first infusion", required=True),
        "amount": t.numbers("amount", pc, what="an amount of cells", required=True, minimum=0),
        "source_file": str(t.path), "source_row": t.rows})
    for i in np.flatnonzero((out["subject"] == "").to_numpy()):
        pc.add(t.name, int(t.rows[i]), "subject", "expected a subject ID, got an empty cell")
    return out


def dose_records(subject, time, amount, file, rows) -> pd.DataFrame:
    """Dose records from arrays (the readers of NONMEM and SDTM files)."""
    return pd.DataFrame({"subject": np.asarray(subject, dtype=object).astype(str),
                         "time": np.asarray(time, dtype=float), "amount": np.asarray(amount, dtype=float),
                         "source_file": str(file), "source_row": np.asarray(rows, dtype=int)})


def finish_doses(records: pd.DataFrame | None, subjects: pd.DataFrame, subjects_file: str,
                 pc: ProblemCollector, columns: dict | None = None) -> pd.DataFrame:
    """The canonical dose table: every participant's first infusion (time 0, amount = its
    dose, from ``subjects``) and its later ones from ``records``, checked (module doc) and
    sorted by subject and time. ``columns`` names the source columns in messages
    (``{"time": "TIME", "amount": "AMT"}``)."""
    col = (columns or {}).get
    subj = subjects.reset_index(drop=True)
    first = pd.DataFrame({
        "subject": subj["subject"].astype(str).to_numpy(), "time": 0.0,
        "amount": pd.to_numeric(subj["dose"], errors="coerce").to_numpy(float),
        "source_file": str(subjects_file),
        "source_row": subj[ROW_COL].to_numpy(int) if ROW_COL in subj else np.arange(2, len(subj) + 2)})
    if records is None or not len(records):
        return first.sort_values(["subject"], kind="stable").reset_index(drop=True)
    rec = records.reset_index(drop=True)
    rec = rec.loc[~rec["time"].isna() & ~rec["amount"].isna()].reset_index(drop=True)  # reported by the reader
    dose_of = dict(zip(first["subject"], first["amount"]))
    known = rec["subject"].isin(list(dose_of)).to_numpy()
    time, amount = rec["time"].to_numpy(float), rec["amount"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        zero_ok = np.array([t == 0 and np.isclose(a, dose_of.get(s, np.nan), rtol=1e-12, atol=0)
                            for s, t, a in zip(rec["subject"], time, amount)], dtype=bool)
    bad = np.zeros(len(rec), bool)
    for i in range(len(rec)):
        s, f, r = rec["subject"].iat[i], rec["source_file"].iat[i], int(rec["source_row"].iat[i])
        if not known[i]:
            pc.add(f, r, col("subject") or "subject", f"subject '{s}' is not in {subjects_file}")
        elif not np.isfinite(time[i]) or time[i] < 0:
            pc.add(f, r, col("time") or "time", f"expected a time >= 0 in days since the first infusion, got {time[i]:g}")
        elif time[i] == 0 and not zero_ok[i]:
            pc.add(f, r, col("amount") or "amount",
                   f"an infusion at time 0 is the first one, whose dose is {dose_of[s]:g} cells in {subjects_file}; "
                   f"this row says {amount[i]:g}")
        elif not np.isfinite(amount[i]) or amount[i] < 0:
            pc.add(f, r, col("amount") or "amount", f"expected an amount of cells >= 0, got {amount[i]:g}")
        else:
            continue
        bad[i] = True
    later = rec.loc[~bad & ~zero_ok]
    dup = later.duplicated(["subject", "time"], keep=False).to_numpy()
    if dup.any():
        for _, g in later.loc[dup].groupby(["subject", "time"], sort=False):
            a, b = g.iloc[0], g.iloc[1]
            pc.add(b["source_file"], int(b["source_row"]), col("time") or "time",
                   f"subject '{b['subject']}' has two infusions at time {b['time']:g} (also on row "
                   f"{int(a['source_row'])}); give one row per infusion")
    # a time-0 row repeating the first infusion is that infusion's record
    zero = rec.loc[zero_ok].drop_duplicates("subject").set_index("subject")
    if len(zero):
        src = first["subject"].map(zero["source_file"])
        first["source_row"] = first["subject"].map(zero["source_row"]).fillna(first["source_row"]).astype(int)
        first["source_file"] = src.fillna(first["source_file"])
    out = pd.concat([first, later[list(DOSE_COLUMNS)]], ignore_index=True)
    out = out.astype({"subject": str, "time": float, "amount": float, "source_file": str, "source_row": int})
    return out.sort_values(["subject", "time"], kind="stable").reset_index(drop=True)


def later_doses(doses: pd.DataFrame, subject: str) -> np.ndarray:
    """Rows ``(time, amount)`` of the infusions of ``subject`` after the first, shape (m, 2)."""
    d = doses.loc[(doses["subject"] == str(subject)) & (doses["time"] > 0)]
    return np.column_stack([d["time"].to_numpy(float), d["amount"].to_numpy(float)]).reshape(-1, 2)


def write_doses_csv(dataset, folder) -> list:
    """``doses.csv`` with the later infusions of ``dataset`` (none written when there are
    none, so a single-infusion study keeps its three files)."""
    from pathlib import Path

    from ctkinetics.data.tidy import _fmt

    d = dataset.doses
    d = d.loc[d["time"] > 0]
    if not len(d):
        return []
    path = Path(folder) / DOSES_FILE
    pd.DataFrame({"subject": d["subject"], "time": d["time"].map(_fmt), "amount": d["amount"].map(_fmt)}).to_csv(
        path, index=False, lineterminator="\n")
    return [path]


def expand_additional(time, amount, addl, ii, rows, file, pc: ProblemCollector, to_days: float = 1.0):
    """NONMEM ``ADDL``/``II``: a dose record with ``ADDL = k`` and ``II = d`` stands for k more
    doses, every d time units after it. Returns (times, amounts, rows) of the additional doses;
    an ``ADDL > 0`` without a positive ``II`` is a problem."""
    t_out, a_out, r_out = [], [], []
    for t, a, k, d, r in zip(time, amount, addl, ii, rows):
        if not (k > 0):
            continue
        if not (d > 0) or k != int(k):
            pc.add(file, int(r), "ADDL" if k != int(k) else "II",
                   f"ADDL = {k:g} additional doses need a whole ADDL and an interval II > 0, got II = {d:g}")
            continue
        for j in range(1, int(k) + 1):
            t_out.append(t + j * d * to_days)
            a_out.append(a)
            r_out.append(r)
    return np.asarray(t_out, float), np.asarray(a_out, float), np.asarray(r_out, int)
