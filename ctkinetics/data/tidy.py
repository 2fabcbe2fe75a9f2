"""The canonical study folder: study.toml, subjects.csv, observations.csv, safety.csv."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ctkinetics.data.assemble import Audit, build_dataset
from ctkinetics.data.cells import parse_flag, parse_value
from ctkinetics.data.csvfile import ROW_COL, read_csv_text
from ctkinetics.data.dataset import Dataset
from ctkinetics.data.problems import ProblemCollector
from ctkinetics.data.study import read_study_toml
from ctkinetics.data.tables import numeric_column, read_safety_csv, read_subjects_csv

REQUIRED = ("subject", "time", "analyte", "value", "unit")


def read_study_folder(folder) -> Dataset:
    """Read a study folder (see README): study.toml, subjects.csv, observations.csv[, safety.csv]."""
    folder = Path(folder)
    study = read_study_toml(folder / "study.toml")
    pc = ProblemCollector()
    notes: list[str] = []
    subjects = read_subjects_csv(folder / "subjects.csv", pc, notes)
    records, obs_notes, obs_path = read_observations_csv(folder / "observations.csv", pc)
    notes += obs_notes
    audit = Audit()
    for r in records.pop("_missing"):
        audit.add(obs_path, r[0], "value", r[1], r[2], r[3], "excluded", "missing sample (empty value, blq not 1)")
    safety_path = folder / "safety.csv"
    safety = read_safety_csv(safety_path, pc, notes) if safety_path.exists() else None
    pc.raise_if_any()
    sources = [folder / "study.toml", folder / "subjects.csv", obs_path] + ([safety_path] if safety is not None else [])
    return build_dataset(
        study, subjects, records["frame"], safety, audit=audit, warnings=notes, sources=sources,
        columns={}, subjects_file=str(folder / "subjects.csv"),
        safety_file=str(safety_path), problems=pc, fmt="tidy",
    )


def read_observations_csv(path, pc: ProblemCollector):
    """Parse ``observations.csv`` into canonical records.

    Returns ``({'frame': records, '_missing': [(row, subject, time, analyte), ...]}, notes, path)``.
    """
    path = Path(path)
    t = read_csv_text(path)
    notes = [f"{path}: {n}" for n in t.notes]
    if not t.require(REQUIRED, pc):
        pc.raise_if_any()
    f = t.frame
    n = len(f)
    time = numeric_column(t, "time", pc, what="a time in days since infusion", allow_missing=False)
    value = np.full(n, np.nan)
    lloq = numeric_column(t, "lloq", pc, what="a positive LLOQ") if "lloq" in f.columns else np.full(n, np.nan)
    blq = np.zeros(n, dtype=bool)
    missing_idx = []
    for i, (cell, row) in enumerate(zip(f["value"], f[ROW_COL])):
        flag = False
        if "blq" in f.columns:
            flag = parse_flag(f["blq"].iat[i])
            if flag is None:
                pc.add(path, row, "blq", f"expected 1, 0 or empty, got '{f['blq'].iat[i]}'")
                flag = False
        p = parse_value(cell)
        if p is None:
            pc.add(path, row, "value",
                   f"expected a number or a below-LLOQ marker (BLQ, <LLOQ, <20, ND), got '{cell}'")
            continue
        if p.kind == "blq" or flag:
            blq[i] = True
            if not math.isnan(p.lloq):
                lloq[i] = p.lloq
        elif p.kind == "missing":
            missing_idx.append(i)
        else:
            value[i] = p.value
    frame = pd.DataFrame({
        "subject": f["subject"].astype(str), "time": time, "analyte": f["analyte"].astype(str),
        "value": value, "unit": f["unit"].astype(str), "lloq": lloq, "blq": blq,
        "pre_infusion": time < 0, "source_file": str(path), "source_row": f[ROW_COL].to_numpy(),
    })
    missing = [(int(f[ROW_COL].iat[i]), frame["subject"].iat[i], float(time[i]), frame["analyte"].iat[i])
               for i in missing_idx]
    frame = frame.drop(index=missing_idx).reset_index(drop=True)
    return {"frame": frame, "_missing": missing}, notes, path


def write_study_folder(dataset: Dataset, folder) -> list[Path]:
    """Write ``dataset`` as a study folder; BLQ samples as ``BLQ`` with their own LLOQ."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.toml").write_text(dataset.study.to_toml(), encoding="utf-8")
    dataset.subjects.to_csv(folder / "subjects.csv", index=False)
    obs = dataset.observations
    out = pd.DataFrame({
        "subject": obs["subject"], "time": obs["time"].map(_fmt), "analyte": obs["analyte"],
        "value": [("BLQ" if b else _fmt(v)) for b, v in zip(obs["blq"], obs["value"])],
        "unit": obs["unit"], "lloq": obs["lloq"].map(_fmt), "blq": obs["blq"].astype(int),
    })
    out.to_csv(folder / "observations.csv", index=False)
    files = [folder / "study.toml", folder / "subjects.csv", folder / "observations.csv"]
    if dataset.safety is not None:
        write_safety_csv(dataset.safety, folder / "safety.csv")
        files.append(folder / "safety.csv")
    return files


def write_safety_csv(safety: pd.DataFrame, path) -> None:
    s = safety.copy()
    for c in ("dlt", "crs_grade", "icans_grade"):
        s[c] = s[c].map(lambda x: "" if pd.isna(x) else str(int(x)))
    for c in ("infusion_day", "dlt_day", "last_followup_day"):
        s[c] = s[c].map(_fmt)
    s.to_csv(path, index=False)


def _fmt(x) -> str:
    """Numbers written so they read back exactly (repr), blanks for NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)
