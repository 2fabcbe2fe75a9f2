"""NONMEM / nlmixr2 / Monolix data sets (one CSV, one row per event).

Columns: ID, TIME, DV, MDV, EVID (0 observation, 1 dose, 2 other, 3 reset, 4 reset+dose),
AMT, CMT or DVID (which output), CENS (1 = left-censored: DV holds the LLOQ), LIMIT, and
where present BLQ / LLOQ columns, USUBJID (subject ID when ID is a number), DOSELVL.
The dosing record gives the infusion time; observation times become days since it.
CMT/DVID values map to analytes through ``[formats.nonmem.dvid]`` in study.toml
(e.g. ``1 = "transgene"``) or the ``analyte_map`` option. Other columns constant within a
subject are kept as covariates.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ctkinetics.data.assemble import Audit, build_dataset
from ctkinetics.data.cells import parse_flag, parse_number
from ctkinetics.data.csvfile import ROW_COL, read_csv_text
from ctkinetics.data.dataset import SUBJECT_COLUMNS, Dataset
from ctkinetics.data.problems import ProblemCollector
from ctkinetics.data.study import read_study_toml
from ctkinetics.data.tables import read_safety_csv
from ctkinetics.errors import DataValidationError

STANDARD = {"ID", "TIME", "DV", "MDV", "EVID", "AMT", "CMT", "DVID", "CENS", "LIMIT", "BLQ", "LLOQ",
            "USUBJID", "DOSELVL", "RATE", "II", "ADDL", "SS", ROW_COL}
DATA_FILE = "nonmem.csv"
TIME_UNITS = {"days": 1.0, "day": 1.0, "d": 1.0, "hours": 1 / 24, "hour": 1 / 24, "h": 1 / 24}


def detect(p: Path) -> bool:
    f = _data_file(p) if p.is_dir() else p
    if f is None or f.suffix.lower() != ".csv" or not f.exists():
        return False
    head = f.read_text(encoding="utf-8-sig", errors="replace").splitlines()[:1]
    cols = {c.strip().upper() for c in (head[0].replace(";", ",").split(",") if head else [])}
    return {"ID", "TIME", "DV"} <= cols


def _data_file(folder: Path) -> Path | None:
    if (folder / DATA_FILE).exists():
        return folder / DATA_FILE
    cands = [c for c in sorted(folder.glob("*.csv")) if c.name not in ("safety.csv", "subjects.csv", "observations.csv")]
    return cands[0] if len(cands) == 1 else None


def read_nonmem(path, study_toml=None, analyte_map=None, time_unit=None, **_) -> Dataset:
    """Read a NONMEM-style CSV (or a folder holding it beside study.toml and safety.csv)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    data_path = _data_file(path) if path.is_dir() else path
    if data_path is None:
        raise DataValidationError.at(path, None, None, f"expected one NONMEM CSV in the folder (or {DATA_FILE})")
    toml_path = Path(study_toml) if study_toml else folder / "study.toml"
    study = read_study_toml(toml_path)
    opts = dict(study.formats.get("nonmem", {}))
    mapping = {str(k): str(v) for k, v in (analyte_map or opts.get("dvid") or opts.get("cmt") or {}).items()}
    time_unit = time_unit or opts.get("time_unit", "days")
    if time_unit not in TIME_UNITS:
        raise DataValidationError.at(toml_path, None, "formats.nonmem.time_unit",
                                     f"expected one of {', '.join(TIME_UNITS)}, got '{time_unit}'")
    to_days = TIME_UNITS[time_unit]

    pc = ProblemCollector()
    t = read_csv_text(data_path, lower_header=False)
    t.frame.columns = [c if c == ROW_COL else c.upper() for c in t.frame.columns]
    f = t.frame
    name = t.name
    t.require(["ID", "TIME", "DV"], pc)
    if "EVID" not in f.columns and "AMT" not in f.columns:
        pc.add(name, 1, "EVID", "expected an EVID or AMT column to find the infusion (dosing record)")
    out_col = "DVID" if "DVID" in f.columns else ("CMT" if "CMT" in f.columns else None)
    if len(mapping) > 1 and out_col is None:
        pc.add(name, 1, "DVID", "several analytes are mapped but the file has no DVID or CMT column")
    pc.raise_if_any()

    def num(col, i, what, required=True):
        cell = f[col].iat[i] if col in f.columns else ""
        x = parse_number(cell)
        if x is None or (required and math.isnan(x)):
            pc.add(name, int(f[ROW_COL].iat[i]), col, f"expected {what}, got '{cell}'")
            return math.nan
        return x

    ids = f["USUBJID"] if "USUBJID" in f.columns else f["ID"].map(_id_text)
    audit, warnings = Audit(), [f"{data_path}: {n}" for n in t.notes]
    evid = np.zeros(len(f), dtype=int)
    for i in range(len(f)):
        if "EVID" in f.columns:
            e = num("EVID", i, "an EVID of 0, 1, 2, 3 or 4")
            if not math.isnan(e):
                if e not in (0, 1, 2, 3, 4):
                    pc.add(name, int(f[ROW_COL].iat[i]), "EVID", f"expected 0, 1, 2, 3 or 4, got {e:g}")
                evid[i] = int(e)
        else:
            amt = parse_number(f["AMT"].iat[i])
            evid[i] = 1 if amt and amt > 0 else 0

    records, subjects, varying = [], [], set()
    for sid, idx in pd.Series(range(len(f))).groupby(ids.to_numpy(), sort=False):
        idx = list(idx)
        doses = [i for i in idx if evid[i] in (1, 4)]
        first_row = int(f[ROW_COL].iat[idx[0]])
        for i in idx:
            if evid[i] == 3:
                pc.add(name, int(f[ROW_COL].iat[i]), "EVID", "reset events (EVID 3) are not supported for CAR-T kinetics")
        if not doses:
            pc.add(name, first_row, "EVID", f"subject '{sid}' has no dosing record (EVID 1 with AMT): the infusion time is unknown")
            continue
        if len(doses) > 1:
            pc.add(name, int(f[ROW_COL].iat[doses[1]]), "EVID",
                   f"subject '{sid}' has {len(doses)} dosing records; one CAR-T infusion per subject is supported")
        d = doses[0]
        t0 = num("TIME", d, "a time")
        amt = num("AMT", d, "the infused dose in cells (AMT)") if "AMT" in f.columns else math.nan
        level = str(f["DOSELVL"].iat[d]).strip() if "DOSELVL" in f.columns else None
        if level is None or level == "":
            level = study.level_of_dose(amt) if not math.isnan(amt) else None
            if level is None:
                pc.add(name, int(f[ROW_COL].iat[d]), "AMT",
                       f"dose {amt:g} of subject '{sid}' matches no dose level in study.toml and there is no DOSELVL column")
                level = ""
        subj = {"subject": str(sid), "dose_level": _id_text(level), "dose": amt, ROW_COL: first_row}
        for c in f.columns:
            if c in STANDARD:
                continue
            vals = {str(f[c].iat[i]) for i in idx}
            if len(vals) == 1:
                subj[c.lower()] = f[c].iat[idx[0]]
            else:
                varying.add(c)
        subjects.append(subj)
        for i in idx:
            row = int(f[ROW_COL].iat[i])
            if evid[i] != 0:
                if evid[i] == 2:
                    audit.add(data_path, row, "EVID", str(sid), None, None, "excluded", "EVID 2 (other event) row")
                continue
            key = str(f[out_col].iat[i]).strip() if out_col else ""
            key = _id_text(key)
            analyte = mapping.get(key) if mapping else (next(iter(study.analytes)) if len(study.analytes) == 1 else None)
            if analyte is None:
                pc.add(name, row, out_col or "DVID",
                       f"{out_col or 'DVID'} value '{key}' is not mapped to an analyte; add [formats.nonmem.dvid] "
                       f"{key} = \"ANALYTE\" to study.toml (mapped: {mapping or 'none'})")
                continue
            time_raw = num("TIME", i, "a time")
            time = (time_raw - t0) * to_days
            mdv = parse_flag(f["MDV"].iat[i]) if "MDV" in f.columns else False
            if mdv is None:
                pc.add(name, row, "MDV", f"expected 0 or 1, got '{f['MDV'].iat[i]}'")
                continue
            if mdv:
                audit.add(data_path, row, "MDV", str(sid), time, analyte, "excluded", "MDV=1: no observation on this row")
                continue
            cens = num("CENS", i, "a CENS of -1, 0 or 1", required=False) if "CENS" in f.columns else 0.0
            blq_flag = parse_flag(f["BLQ"].iat[i]) if "BLQ" in f.columns else False
            lloq = num("LLOQ", i, "an LLOQ", required=False) if "LLOQ" in f.columns else math.nan
            dv = num("DV", i, "a DV value", required=False)
            if cens == -1:
                pc.add(name, row, "CENS", "right-censored samples (CENS=-1) are not supported")
                continue
            blq = cens == 1 or bool(blq_flag)
            if cens == 1:
                lloq = dv  # NONMEM convention: DV holds the LLOQ of a censored sample
            if not blq and math.isnan(dv):
                audit.add(data_path, row, "DV", str(sid), time, analyte, "excluded", "missing DV on an observation row")
                continue
            pre = time_raw < t0 or (time_raw == t0 and i < d)
            records.append(dict(subject=str(sid), time=time, analyte=analyte, value=math.nan if blq else dv,
                                unit="", lloq=lloq, blq=blq, pre_infusion=pre, source_file=str(data_path),
                                source_row=row))
    pc.raise_if_any()
    for c in sorted(varying):
        warnings.append(f"{data_path}: column {c} varies within a subject; not kept as a covariate")
    subjects_df = pd.DataFrame(subjects)
    for c in varying:
        subjects_df = subjects_df.drop(columns=[c.lower()], errors="ignore")
    rec = pd.DataFrame(records, columns=["subject", "time", "analyte", "value", "unit", "lloq", "blq",
                                         "pre_infusion", "source_file", "source_row"])
    rec["blq"] = rec["blq"].astype(bool)
    safety_path = folder / "safety.csv"
    safety = read_safety_csv(safety_path, pc, warnings) if safety_path.exists() else None
    from ctkinetics.data.tables import covariate_value_column

    for c in subjects_df.columns:
        if c not in SUBJECT_COLUMNS and c != ROW_COL:
            subjects_df[c] = covariate_value_column(subjects_df[c].astype(str))
    sources = [toml_path, data_path] + ([safety_path] if safety is not None else [])
    return build_dataset(study, subjects_df, rec, safety, audit=audit, warnings=warnings, sources=sources,
                         columns={"subject": "ID", "time": "TIME", "analyte": out_col or "DVID", "value": "DV",
                                  "lloq": "LLOQ"},
                         subjects_file=str(data_path), safety_file=str(safety_path), problems=pc, fmt="nonmem")


def _cell(x):
    from ctkinetics.data.tidy import _fmt

    return _fmt(x) if isinstance(x, (int, float)) else x


def _id_text(x) -> str:
    """'3.0' -> '3' so numeric IDs and DVIDs read the same from any writer."""
    s = str(x).strip()
    try:
        v = float(s)
        if v.is_integer():
            return str(int(v))
    except ValueError:
        pass
    return s


def write_nonmem(dataset: Dataset, path) -> list[Path]:
    """Write a NONMEM data set (days since infusion, CENS=1 rows carry the LLOQ in DV)."""
    from ctkinetics.data.tidy import _fmt, write_safety_csv

    path = Path(path)
    folder, data_path = (path.parent, path) if path.suffix.lower() == ".csv" else (path, path / DATA_FILE)
    folder.mkdir(parents=True, exist_ok=True)
    analytes = list(dataset.study.analytes)
    dvid = {str(i + 1): a for i, a in enumerate(analytes)}
    inv = {a: k for k, a in dvid.items()}
    subjects = dataset.subjects
    numeric_ids = all(_id_text(s).lstrip("-").isdigit() for s in subjects["subject"])
    covs = [c for c in subjects.columns if c not in SUBJECT_COLUMNS]
    obs = dataset.observations
    rows = []
    for k, s in enumerate(subjects.itertuples(index=False), start=1):
        sid = s.subject
        base = {"ID": sid if numeric_ids else k}
        if not numeric_ids:
            base["USUBJID"] = sid
        extra = {"DOSELVL": s.dose_level, **{c.upper(): _cell(getattr(s, c)) for c in covs}}
        rows.append((0.0, 1, {**base, "TIME": 0.0, "DV": ".", "MDV": 1, "EVID": 1, "AMT": _fmt(s.dose),
                              "DVID": ".", "CENS": 0, "LLOQ": ".", **extra}))
        for o in obs.loc[obs["subject"] == sid].itertuples(index=False):
            order = 0 if o.pre_infusion else 2
            dv = o.lloq if o.blq else o.value
            rows.append((o.time, order, {**base, "TIME": _fmt(o.time), "DV": _fmt(dv), "MDV": 0, "EVID": 0,
                                         "AMT": ".", "DVID": inv[o.analyte], "CENS": int(o.blq),
                                         "LLOQ": _fmt(o.lloq) or ".", **extra}))
    rows.sort(key=lambda r: (r[2]["ID"], r[0], r[1]))
    df = pd.DataFrame([r[2] for r in rows])
    df["TIME"] = df["TIME"].map(lambda x: _fmt(x) if isinstance(x, float) else x)
    df.to_csv(data_path, index=False)
    study = dataset.study
    formats = {k: dict(v) for k, v in study.formats.items()}
    formats["nonmem"] = {**formats.get("nonmem", {}), "dvid": dvid}
    from ctkinetics.data.study import Study

    st = Study.build(study.name, study.dose_levels, study.design, study.analytes, formats, study.start_date)
    (folder / "study.toml").write_text(st.to_toml(), encoding="utf-8")
    files = [folder / "study.toml", data_path]
    if dataset.safety is not None:
        write_safety_csv(dataset.safety, folder / "safety.csv")
        files.append(folder / "safety.csv")
    return files
