"""CDISC SDTM: DM (subjects, arm), EX (infusion) and CP or PC (cell kinetics), as .xpt or .csv.

Times come from --ELTM (ISO 8601 duration from the infusion, e.g. ``P14D``, ``-P1D``,
``PT2H``), else from --DTC minus EXSTDTC, else from --DY (SDTM has no day 0). Values from
--STRESN; when it is empty, --STRESC is read for a below-LLOQ marker (``<LLOQ``, ``<20``).
TESTCD values map to analytes through ``[formats.sdtm.testcd]`` in study.toml (default: the
analyte whose name equals the TESTCD, ignoring case); ARMCD to dose levels through
``[formats.sdtm.armcd]``, else ARMCD equal to a level (optionally prefixed ``DL``), else the
EX dose.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ctkinetics.data.assemble import Audit, build_dataset
from ctkinetics.data.cells import parse_value
from ctkinetics.data.csvfile import ROW_COL, read_csv_text
from ctkinetics.data.dataset import SUBJECT_COLUMNS, Dataset
from ctkinetics.data.problems import ProblemCollector
from ctkinetics.data.study import Study, read_study_toml
from ctkinetics.data.tables import covariate_value_column, read_safety_csv
from ctkinetics.data.xpt import read_xpt, write_xpt
from ctkinetics.errors import DataValidationError

DM_NOT_COVARIATES = {"STUDYID", "DOMAIN", "USUBJID", "SUBJID", "RFSTDTC", "RFENDTC", "RFXSTDTC", "RFXENDTC",
                     "RFICDTC", "RFPENDTC", "DTHDTC", "DTHFL", "SITEID", "BRTHDTC", "AGEU", "ARMCD", "ARM",
                     "ACTARMCD", "ACTARM", "COUNTRY", "DMDTC", "DMDY", "INVID", "INVNAM", ROW_COL}
_DURATION = re.compile(
    r"^(-)?P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def detect(p: Path) -> bool:
    return p.is_dir() and _find(p, "dm") is not None and (_find(p, "cp") or _find(p, "pc")) is not None


def _find(folder: Path, domain: str) -> Path | None:
    for ext in (".xpt", ".csv"):
        for name in (domain, domain.upper()):
            if (folder / f"{name}{ext}").exists():
                return folder / f"{name}{ext}"
    return None


def _read_domain(path: Path) -> pd.DataFrame:
    """A domain as strings with spreadsheet-style row numbers (XPT rows numbered like CSV)."""
    if path.suffix.lower() == ".csv":
        f = read_csv_text(path, lower_header=False).frame
    else:
        f = read_xpt(path)
        f = f.astype(object).where(f.notna(), "")
        f = f.map(lambda v: repr(v) if isinstance(v, float) else str(v))
        f[ROW_COL] = np.arange(2, len(f) + 2)
    f.columns = [c if c == ROW_COL else c.upper() for c in f.columns]
    return f


def parse_duration(text: str) -> float | None:
    """ISO 8601 duration -> days (``P1W2DT3H`` = 9.125); None when unreadable.

    >>> parse_duration("-P1D"), parse_duration("PT12H")
    (-1.0, 0.5)
    """
    m = _DURATION.match(text.strip())
    if not m or not any(m.groups()[1:]):
        return None
    sign, w, d, h, mi, s = m.groups()
    days = sum(float(x or 0) * k for x, k in ((w, 7), (d, 1), (h, 1 / 24), (mi, 1 / 1440), (s, 1 / 86400)))
    return -days if sign else days


def format_duration(days: float) -> str:
    """Days -> ISO 8601 duration, exact to the microsecond (``1.5`` -> ``P1DT43200S``)."""
    sign = "-" if days < 0 else ""
    a = abs(days)
    whole = math.floor(a)
    secs = round((a - whole) * 86400, 6)
    if secs >= 86400:
        whole, secs = whole + 1, 0.0
    s = f"{sign}P{whole}D"
    if secs:
        s += f"T{secs:.6f}".rstrip("0").rstrip(".") + "S"
    return s


def _parse_dtc(text: str):
    text = text.strip()
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def read_sdtm(path, study_toml=None, **_) -> Dataset:
    """Read an SDTM folder: dm, ex and cp and/or pc (each .xpt or .csv), study.toml beside."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataValidationError.at(folder, None, None, "expected a folder with dm, ex and cp/pc domains")
    toml_path = Path(study_toml) if study_toml else folder / "study.toml"
    study = read_study_toml(toml_path)
    opts = dict(study.formats.get("sdtm", {}))
    testcd_map = {str(k).upper(): str(v) for k, v in opts.get("testcd", {}).items()}
    armcd_map = {str(k): str(v) for k, v in opts.get("armcd", {}).items()}
    pc = ProblemCollector()
    paths = {d: _find(folder, d) for d in ("dm", "ex", "cp", "pc")}
    for d in ("dm", "ex"):
        if paths[d] is None:
            pc.add(folder / f"{d}.xpt", None, None, f"the {d.upper()} domain is missing ({d}.xpt or {d}.csv)")
    pc.raise_if_any()

    dm = _read_domain(paths["dm"])
    ex = _read_domain(paths["ex"])
    for dom, frame, cols in (("dm", dm, ["USUBJID"]), ("ex", ex, ["USUBJID", "EXSTDTC", "EXDOSE"])):
        for c in cols:
            if c not in frame.columns:
                pc.add(paths[dom], 1, c, f"required variable {c} is missing")
    pc.raise_if_any()

    # Infusion per subject from EX.
    infusion = {}
    for r in ex.to_dict("records"):
        row = r[ROW_COL]
        sid = r["USUBJID"]
        if sid in infusion:
            pc.add(paths["ex"], row, "USUBJID", f"subject '{sid}' has more than one EX record; one infusion is supported")
            continue
        start = _parse_dtc(r["EXSTDTC"])
        if start is None:
            pc.add(paths["ex"], row, "EXSTDTC", f"expected an ISO 8601 date/time, got '{r['EXSTDTC']}'")
        try:
            dose = float(r["EXDOSE"])
        except ValueError:
            pc.add(paths["ex"], row, "EXDOSE", f"expected the dose in cells, got '{r['EXDOSE']}'")
            dose = math.nan
        infusion[sid] = (start, dose)

    subjects = []
    for r in dm.to_dict("records"):
        sid, row = r["USUBJID"], r[ROW_COL]
        start, dose = infusion.get(sid, (None, math.nan))
        if sid not in infusion:
            pc.add(paths["dm"], row, "USUBJID", f"subject '{sid}' has no infusion record in {paths['ex'].name}")
        arm = str(r.get("ARMCD", "")).strip()
        level = armcd_map.get(arm) or (arm if arm in study.dose_levels else None)
        if level is None and arm.upper().startswith("DL") and arm[2:] in study.dose_levels:
            level = arm[2:]
        if level is None and not math.isnan(dose):
            level = study.level_of_dose(dose)
        if level is None:
            pc.add(paths["dm"], row, "ARMCD", f"ARMCD '{arm}' of subject '{sid}' matches no dose level in study.toml")
            level = arm
        subj = {"subject": sid, "dose_level": level, "dose": dose, ROW_COL: row}
        subj.update({k.lower(): v for k, v in r.items() if k not in DM_NOT_COVARIATES})
        subjects.append(subj)
    subjects_df = pd.DataFrame(subjects)
    for c in subjects_df.columns:
        if c not in SUBJECT_COLUMNS and c != ROW_COL:
            subjects_df[c] = covariate_value_column(subjects_df[c].astype(str))

    records, audit, sources = [], Audit(), [toml_path, paths["dm"], paths["ex"]]
    for dom in ("cp", "pc"):
        p = paths[dom]
        if p is None:
            continue
        sources.append(p)
        records += _read_findings(p, dom.upper(), study, testcd_map, infusion, pc, audit)
    pc.raise_if_any()
    rec = pd.DataFrame(records, columns=["subject", "time", "analyte", "value", "unit", "lloq", "blq",
                                         "pre_infusion", "source_file", "source_row"])
    rec["blq"] = rec["blq"].astype(bool)
    safety_path = folder / "safety.csv"
    notes: list[str] = []
    safety = read_safety_csv(safety_path, pc, notes) if safety_path.exists() else None
    if safety is not None:
        sources.append(safety_path)
    return build_dataset(study, subjects_df, rec, safety, audit=audit, warnings=notes, sources=sources,
                         columns={"subject": "USUBJID", "time": "--ELTM", "analyte": "--TESTCD",
                                  "value": "--STRESN", "unit": "--STRESU", "lloq": "--LLOQ"},
                         subjects_file=str(paths["dm"]), safety_file=str(safety_path), problems=pc, fmt="sdtm")


def _read_findings(path, pfx, study: Study, testcd_map, infusion, pc, audit) -> list[dict]:
    f = _read_domain(path)
    v = lambda name: f"{pfx}{name}"  # noqa: E731
    for c in ("USUBJID", v("TESTCD")):
        if c not in f.columns:
            pc.add(path, 1, c, f"required variable {c} is missing")
    if v("STRESN") not in f.columns and v("STRESC") not in f.columns:
        pc.add(path, 1, v("STRESN"), f"expected {v('STRESN')} or {v('STRESC')} with the results")
    if not {v("ELTM"), v("DTC"), v("DY")} & set(f.columns):
        pc.add(path, 1, v("ELTM"), f"expected {v('ELTM')}, {v('DTC')} or {v('DY')} for the sample time")
    if pc:
        return []
    by_name = {a.upper(): a for a in study.analytes}
    out = []
    for r in f.to_dict("records"):
        row, sid = r[ROW_COL], r["USUBJID"]
        code = str(r[v("TESTCD")]).strip()
        analyte = testcd_map.get(code.upper()) or by_name.get(code.upper())
        if analyte is None:
            pc.add(path, row, v("TESTCD"), f"test code '{code}' maps to no analyte; add [formats.sdtm.testcd] "
                                           f"{code} = \"ANALYTE\" to study.toml")
            continue
        time = _finding_time(r, v, infusion.get(sid, (None, None))[0], path, row, pc)
        if time is None:
            continue
        stresn, stresc = str(r.get(v("STRESN"), "")).strip(), str(r.get(v("STRESC"), "")).strip()
        lloq_txt = str(r.get(v("LLOQ"), "")).strip()
        lloq = math.nan
        if lloq_txt not in ("", "nan"):
            try:
                lloq = float(lloq_txt)
            except ValueError:
                pc.add(path, row, v("LLOQ"), f"expected a number, got '{lloq_txt}'")
        value, blq = math.nan, False
        if stresn not in ("", "nan"):
            try:
                value = float(stresn)
            except ValueError:
                pc.add(path, row, v("STRESN"), f"expected a number, got '{stresn}'")
                continue
        else:
            p = parse_value(stresc or r.get(v("ORRES"), ""))
            if p is None:
                pc.add(path, row, v("STRESC"), f"expected a number or a below-LLOQ marker, got '{stresc}'")
                continue
            if p.kind == "missing":
                audit.add(path, row, v("STRESC"), sid, time, analyte, "excluded", "missing result (not done)")
                continue
            if p.kind == "blq":
                blq = True
                lloq = p.lloq if not math.isnan(p.lloq) else lloq
            else:
                value = p.value
        out.append(dict(subject=sid, time=time, analyte=analyte, value=value, unit=str(r.get(v("STRESU"), "")),
                        lloq=lloq, blq=blq, pre_infusion=time < 0, source_file=str(path), source_row=row))
    return out


def _finding_time(r, v, start, path, row, pc):
    eltm = str(r.get(v("ELTM"), "")).strip()
    if eltm:
        d = parse_duration(eltm)
        if d is None:
            pc.add(path, row, v("ELTM"), f"expected an ISO 8601 duration such as P14D or -P1D, got '{eltm}'")
        return d
    dtc = str(r.get(v("DTC"), "")).strip()
    if dtc and start is not None:
        t = _parse_dtc(dtc)
        if t is None:
            pc.add(path, row, v("DTC"), f"expected an ISO 8601 date/time, got '{dtc}'")
            return None
        return (t - start).total_seconds() / 86400
    dy = str(r.get(v("DY"), "")).strip()
    try:
        dy = float(dy)
    except ValueError:
        pc.add(path, row, v("DY"), f"no usable time: expected {v('ELTM')}, {v('DTC')} or a study day, got '{dy}'")
        return None
    return dy - 1 if dy > 0 else dy  # SDTM study days have no day 0


def _testcd(name: str, used: set) -> str:
    base = re.sub(r"[^A-Z0-9]", "", name.upper())[:8] or "TEST"
    code, k = base, 1
    while code in used:
        k += 1
        code = f"{base[:8 - len(str(k))]}{k}"
    used.add(code)
    return code


def write_sdtm(dataset: Dataset, path, as_csv: bool = False) -> list[Path]:
    """Write DM, EX and CP (qpcr/flow/bcell analytes) or PC (conc) as .xpt, plus study.toml."""
    from ctkinetics.data.tidy import write_safety_csv

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    study = dataset.study
    sid_name = re.sub(r"[^A-Za-z0-9-]", "", study.name)[:20] or "STUDY"
    start0 = datetime.strptime(study.start_date, "%Y-%m-%d")
    safety = dataset.safety
    inf_day = {} if safety is None else dict(zip(safety["subject"], safety["infusion_day"]))
    subjects = dataset.subjects
    covs = [c for c in subjects.columns if c not in SUBJECT_COLUMNS]
    starts = {}
    for s in subjects["subject"]:
        d = inf_day.get(s, 0.0)
        starts[s] = start0 + timedelta(days=0.0 if pd.isna(d) else float(d))
    dm = pd.DataFrame({
        "STUDYID": sid_name, "DOMAIN": "DM", "USUBJID": subjects["subject"],
        "RFSTDTC": [starts[s].strftime("%Y-%m-%dT%H:%M:%S") for s in subjects["subject"]],
        "ARMCD": "DL" + subjects["dose_level"].astype(str), "ARM": "Dose level " + subjects["dose_level"].astype(str),
    })
    for c in covs:
        dm[c.upper()[:8]] = subjects[c].to_numpy()
    ex = pd.DataFrame({
        "STUDYID": sid_name, "DOMAIN": "EX", "USUBJID": subjects["subject"], "EXSEQ": 1.0,
        "EXTRT": "CAR-T", "EXDOSE": subjects["dose"].astype(float), "EXDOSU": "cells",
        "EXSTDTC": dm["RFSTDTC"],
    })
    used: set = set()
    testcd = {a: _testcd(a, used) for a in study.analytes}
    obs = dataset.observations
    files = [folder / "study.toml"]
    for dom, kinds in (("CP", {"qpcr", "flow", "bcell"}), ("PC", {"conc"})):
        o = obs.loc[obs["analyte"].map(lambda a: study.analytes[a].kind in kinds)]
        if o.empty:
            continue
        times = o["time"].to_numpy(float)
        dtc = [(starts[s] + timedelta(days=t)).strftime("%Y-%m-%dT%H:%M:%S") for s, t in zip(o["subject"], times)]
        stresc = [("<LLOQ" if b else repr(float(x))) for b, x in zip(o["blq"], o["value"])]
        d = pd.DataFrame({
            "STUDYID": sid_name, "DOMAIN": dom, "USUBJID": o["subject"].to_numpy(),
            f"{dom}SEQ": np.arange(1, len(o) + 1, dtype=float),
            f"{dom}TESTCD": o["analyte"].map(testcd).to_numpy(), f"{dom}TEST": o["analyte"].to_numpy(),
            f"{dom}ORRES": stresc, f"{dom}ORRESU": o["unit"].to_numpy(), f"{dom}STRESC": stresc,
            f"{dom}STRESN": np.where(o["blq"], np.nan, o["value"].astype(float)),
            f"{dom}STRESU": o["unit"].to_numpy(), f"{dom}LLOQ": o["lloq"].astype(float).to_numpy(),
            f"{dom}DTC": dtc, f"{dom}ELTM": [format_duration(t) for t in times],
            f"{dom}TPTREF": "CAR-T INFUSION",
            f"{dom}DY": [float(math.floor(t) + 1 if t >= 0 else math.floor(t)) for t in times],
        })
        files.append(_write_domain(d, folder, dom, as_csv))
    files += [_write_domain(dm, folder, "DM", as_csv), _write_domain(ex, folder, "EX", as_csv)]
    formats = {k: dict(v) for k, v in study.formats.items()}
    formats["sdtm"] = {**formats.get("sdtm", {}), "testcd": {v: k for k, v in testcd.items()}}
    st = Study.build(study.name, study.dose_levels, study.design, study.analytes, formats, study.start_date)
    (folder / "study.toml").write_text(st.to_toml(), encoding="utf-8")
    if safety is not None:
        write_safety_csv(safety, folder / "safety.csv")
        files.append(folder / "safety.csv")
    return files


def _write_domain(frame: pd.DataFrame, folder: Path, dom: str, as_csv: bool) -> Path:
    if as_csv:
        p = folder / f"{dom.lower()}.csv"
        frame.to_csv(p, index=False)
    else:
        p = folder / f"{dom.lower()}.xpt"
        write_xpt(frame, p, dom)
    return p
