"""CDISC SDTM: DM (subjects, arm), EX (infusion) and CP or PC (cell kinetics), as .xpt or .csv.

Times come from --ELTM (ISO 8601 duration from the infusion, e.g. ``P14D``, ``-P1D``,
``PT2H``; ``-P0D`` is a sample taken at the infusion time but before it), else from --DTC
minus EXSTDTC, else from --DY (SDTM has no day 0). Values from --STRESN; when it is empty,
--STRESC (or --ORRES) is read for a number or a below-LLOQ marker (``<LLOQ``, ``<20``); a row
with no result (or ``--STAT = NOT DONE``) is a missing sample, kept and audited. TESTCD
values map to analytes through ``[formats.sdtm.testcd]`` in study.toml (default: the analyte
whose name equals the TESTCD, ignoring case); ARMCD to dose levels through
``[formats.sdtm.armcd]``, else ARMCD equal to a level (optionally prefixed ``DL``), else the EX
dose. DM variables other than the standard ones are covariates, named as
``[formats.sdtm.covariates]`` says (written by :func:`write_sdtm`, so names longer than 8
characters or reserved by SDTM survive a round trip), else in lower case.

Every EX record is an infusion: the earliest EXSTDTC of a subject is its first (time 0), the
others re-infusions (:mod:`ctkinetics.data.doses`); LB and CM records mapped in
``[formats.sdtm.time_varying]`` are time-varying covariates (:mod:`ctkinetics.data.timevarying`).

Contradictions are refused: a USUBJID twice in DM, --STRESN and --STRESC giving
different results (or a number and a below-LLOQ marker), a ``<N`` marker and --LLOQ stating
different LLOQs, a result on a NOT DONE row, and record counts that differ from those
study.toml records for files ctkinetics wrote (a truncated .xpt).
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ctkinetics.data.assemble import Audit, build_dataset, empty_records
from ctkinetics.data.cells import (BAD_KIND, BLQ_KIND, MISSING_KIND, NUMBER_KIND, parse_numbers, parse_values,
                                   per_unique)
from ctkinetics.data.csvfile import ROW_COL, CsvTable, anagram_of, read_csv_text
from ctkinetics.data.dataset import SUBJECT_COLUMNS, Dataset
from ctkinetics.data.problems import ProblemCollector
from ctkinetics.data.study import Study, read_study_toml
from ctkinetics.data.subjects import covariate_columns, covariate_value_column
from ctkinetics.data.tables import read_safety_csv
from ctkinetics.data.xpt import read_xpt, write_xpt, xpt_problems
from ctkinetics.errors import DataValidationError, Problem

DM_NOT_COVARIATES = {"STUDYID", "DOMAIN", "USUBJID", "SUBJID", "RFSTDTC", "RFENDTC", "RFXSTDTC", "RFXENDTC",
                     "RFICDTC", "RFPENDTC", "DTHDTC", "DTHFL", "SITEID", "BRTHDTC", "AGEU", "ARMCD", "ARM",
                     "ACTARMCD", "ACTARM", "COUNTRY", "DMDTC", "DMDY", "INVID", "INVNAM", ROW_COL}
_DURATION = re.compile(
    r"^(-)?P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.ASCII)
DOMAINS = ("dm", "ex", "cp", "pc", "lb", "cm")  # lb, cm: time-varying covariates (issue 17)


def detect(p: Path) -> bool:
    return p.is_dir() and _find(p, "dm") is not None and (_find(p, "cp") or _find(p, "pc")) is not None


def _find(folder: Path, domain: str) -> Path | None:
    for ext in (".xpt", ".csv"):
        for name in (domain, domain.upper()):
            if (folder / f"{name}{ext}").exists():
                return folder / f"{name}{ext}"
    return None


def _read_domain(path: Path, pc: ProblemCollector) -> CsvTable | None:
    """A domain as strings with row numbers: spreadsheet rows for CSV (header = 1), record
    numbers for XPT (first record = 1, as SAS viewers number them). None when unreadable."""
    with pc.collecting():
        if path.suffix.lower() == ".csv":
            t = read_csv_text(path, lower_header=False)
        else:
            f = read_xpt(path)
            for c in f.columns:
                if not (f[c].dtype == object or pd.api.types.is_string_dtype(f[c])):
                    # str(float) is repr: it reads back to the same double
                    f[c] = f[c].astype(object).where(f[c].notna(), "").astype(str)
            f[ROW_COL] = np.arange(1, len(f) + 1)
            t = CsvTable(path, f)
        upper = {}
        for c in t.columns:
            if c.upper() in upper:
                pc.add(path, 1, c, f"variables '{upper[c.upper()]}' and '{c}' are the same SDTM variable; keep one")
            upper[c.upper()] = c
        t.frame.columns = [c if c == ROW_COL else c.upper() for c in t.frame.columns]
        return t
    return None


def parse_duration(text: str) -> float | None:
    """ISO 8601 duration -> days (``P1W2DT3H`` = 9.125); None when unreadable.

    ``-P0D`` gives -0.0: at the infusion time, before it (a pre-infusion sample).

    >>> parse_duration("-P1D"), parse_duration("PT12H")
    (-1.0, 0.5)
    """
    m = _DURATION.match(text.strip())
    if not m or not any(m.groups()[1:]):
        return None
    sign, w, d, h, mi, s = m.groups()
    days = sum(float(x or 0) * k for x, k in ((w, 7), (d, 1), (h, 1 / 24), (mi, 1 / 1440), (s, 1 / 86400)))
    return -days if sign else days


def format_duration(days: float, pre_infusion: bool = False) -> str:
    """Days -> ISO 8601 duration, exact to the microsecond (``1.5`` -> ``P1DT43200S``);
    a pre-infusion sample at time 0 is ``-P0D``."""
    sign = "-" if days < 0 or (days == 0 and pre_infusion) else ""
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


def _parse_each(series: pd.Series, fn) -> pd.Series:
    """``fn`` applied once per distinct value (dates and durations repeat a lot)."""
    return pd.Series(per_unique(series, fn), index=series.index)


#: Where each Dataset column comes from in SDTM (for the messages of build_dataset).
_COLUMNS = {"subject": "USUBJID", "dose_level": "ARMCD", "time": "--ELTM", "analyte": "--TESTCD",
            "value": "--STRESN", "unit": "--STRESU", "lloq": "--LLOQ",
            "doses": {"time": "EXSTDTC", "amount": "EXDOSE"}}


def read_sdtm(path, study_toml=None, **_) -> Dataset:
    """Read an SDTM folder: dm, ex and cp and/or pc (each .xpt or .csv), study.toml beside."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataValidationError.at(folder, None, None, "expected a folder with dm, ex and cp/pc domains")
    toml_path = Path(study_toml) if study_toml else folder / "study.toml"
    pc = ProblemCollector()
    study = read_study_toml(toml_path, pc)
    opts = dict(study.formats.get("sdtm", {})) if study is not None else {}
    paths, tables = _read_domains(folder, opts, toml_path, pc)
    infusion, later = _infusions(tables["ex"], pc) if "ex" in tables else (None, None)
    subjects = None
    if "dm" in tables and infusion is not None:
        subjects = _subjects(tables["dm"], infusion, study, opts, pc, paths["ex"].name)
    sources = [toml_path] + [paths[d] for d in ("dm", "ex") if paths[d] is not None]
    rec = _sample_records(tables, paths, study, opts, infusion, pc, sources)
    notes: list[str] = []
    safety_path = folder / "safety.csv"
    safety = _safety(safety_path, pc, notes, sources)
    tv = None  # issue 17: time-varying covariates from LB / CM ([formats.sdtm.time_varying])
    if infusion is not None and ("lb" in tables or "cm" in tables):
        from ctkinetics.data.timevarying import read_sdtm_time_varying, sdtm_mapping

        tv = read_sdtm_time_varying(folder, tables, sdtm_mapping(opts, toml_path, pc), infusion, pc, notes)
        sources += [paths[d] for d in ("lb", "cm") if d in tables]
    return build_dataset(study, subjects, rec, safety, audit=Audit(), warnings=notes, sources=sources,
                         columns=_COLUMNS, subjects_file=str(paths["dm"]), safety_file=str(safety_path),
                         problems=pc, fmt="sdtm", doses=later, time_varying=tv)


def _read_domains(folder: Path, opts: dict, toml_path, pc) -> tuple[dict, dict]:
    """The domain files found (``paths``) and the tables read (DM and EX dropped when they
    lack a required variable); record counts checked against study.toml."""
    paths = {d: _find(folder, d) for d in DOMAINS}
    for d in ("dm", "ex"):
        if paths[d] is None:
            pc.add(folder / f"{d}.xpt", None, None, f"the {d.upper()} domain is missing ({d}.xpt or {d}.csv)")
    tables = {d: _read_domain(p, pc) for d, p in paths.items() if p is not None}
    tables = {d: t for d, t in tables.items() if t is not None}
    _check_record_counts(tables, opts.get("records", {}), toml_path, pc)
    for d, cols in (("dm", ["USUBJID"]), ("ex", ["USUBJID", "EXSTDTC", "EXDOSE"])):
        if d in tables and not tables[d].require(cols, pc):
            tables.pop(d)
    return paths, tables


def _sample_records(tables, paths, study, opts, infusion, pc, sources):
    """The samples of the CP and PC domains (None when there is no study to read them by)."""
    records = []
    for dom in ("cp", "pc"):
        if dom in tables:
            sources.append(paths[dom])
            if infusion is not None and study is not None:
                records.append(_read_findings(tables[dom], dom.upper(), study, opts, infusion, pc))
    return pd.concat(records, ignore_index=True) if records else (empty_records() if study is not None else None)


def _safety(path: Path, pc, notes: list, sources: list):
    """safety.csv beside the domains, when there is one."""
    if not path.exists():
        return None
    safety = None
    with pc.collecting():
        safety = read_safety_csv(path, pc, notes)
    sources.append(path)
    return safety


def _check_record_counts(tables: dict, counts: dict, toml_path, pc) -> None:
    """Files ctkinetics wrote carry their record counts in study.toml: a truncated .xpt whose
    cut fell on a record boundary is caught here."""
    for dom, n in dict(counts).items():
        t = tables.get(str(dom).lower())
        try:
            n = int(n)
        except (TypeError, ValueError):
            pc.add(toml_path, None, f"formats.sdtm.records.{dom}", f"expected a number of records, got {n!r}")
            continue
        if t is not None and len(t.frame) != n:
            pc.add(t.name, None, None, f"holds {len(t.frame)} records but study.toml [formats.sdtm.records] says "
                                       f"{dom} = {n}: the file is truncated or was changed after it was written")


def _infusions(ex: CsvTable, pc) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first infusion per subject from EX (USUBJID -> start (datetime or None), dose: the
    earliest EXSTDTC) and the later ones as dose records (issue 17: :mod:`ctkinetics.data.doses`)."""
    from ctkinetics.data.doses import dose_records

    f, rows = ex.frame, ex.rows
    sid = f["USUBJID"]
    start = _parse_each(f["EXSTDTC"], _parse_dtc)
    for i in np.flatnonzero(start.isna().to_numpy()):
        pc.add(ex.name, int(rows[i]), "EXSTDTC", f"expected an ISO 8601 date/time, got '{f['EXSTDTC'].iat[i]}'")
    dose = ex.numbers("EXDOSE", pc, what="the dose in cells", required=True, minimum=0)
    out = pd.DataFrame({"start": pd.to_datetime(start.to_numpy()), "dose": dose, "_row": rows}, index=sid.to_numpy())
    out = out.iloc[np.lexsort((np.arange(len(out)), out["start"].isna().to_numpy(),
                               out["start"].to_numpy(dtype="datetime64[ns]").astype("int64")))]
    first = out[~out.index.duplicated()]
    rest = out[out.index.duplicated()]
    t0 = first["start"].reindex(rest.index)
    later = dose_records(rest.index, ((rest["start"] - t0) / pd.Timedelta(days=1)).to_numpy(dtype=float),
                         rest["dose"].to_numpy(float), ex.name, rest["_row"].to_numpy())
    first = first.drop(columns=["_row"])
    first["start"] = first["start"].astype(object).where(first["start"].notna(), None)
    return first.loc[list(dict.fromkeys(sid))] if len(first) else first, later


def _subjects(dm: CsvTable, infusion: pd.DataFrame, study: Study | None, opts: dict, pc, ex_name) -> pd.DataFrame:
    f, rows = dm.frame, dm.rows
    sid = f["USUBJID"]
    for i in np.flatnonzero((sid == "").to_numpy()):
        pc.add(dm.name, int(rows[i]), "USUBJID", "expected a subject ID, got an empty cell")
    for i in np.flatnonzero(~sid.isin(infusion.index).to_numpy() & (sid != "").to_numpy()):
        pc.add(dm.name, int(rows[i]), "USUBJID", f"subject '{sid.iat[i]}' has no infusion record in {ex_name}")
    dose = infusion["dose"].reindex(sid.to_numpy()).to_numpy(float)
    arm = f["ARMCD"] if "ARMCD" in f else pd.Series("", index=f.index)
    armcd_map = {str(k): str(v) for k, v in opts.get("armcd", {}).items()}
    level = [_level(a, d, study, armcd_map) for a, d in zip(arm, dose)]
    for i in np.flatnonzero([lv is None for lv in level]):
        if study is not None:
            pc.add(dm.name, int(rows[i]), "ARMCD",
                   f"ARMCD '{arm.iat[i]}' of subject '{sid.iat[i]}' matches no dose level in study.toml")
    out = pd.DataFrame({"subject": sid.to_numpy(), "dose_level": [lv if lv is not None else "" for lv in level],
                        "dose": dose, ROW_COL: rows})
    names = {str(k).upper(): str(v) for k, v in opts.get("covariates", {}).items()}
    for c in dm.columns:
        if c in DM_NOT_COVARIATES and c not in names:
            continue
        name = names.get(c, c.lower())
        if name in SUBJECT_COLUMNS or name in out.columns:
            pc.add(dm.name, 1, c, f"variable {c} would be read as the covariate '{name}', which is already the "
                                  f"participants' {name} column; name it in study.toml [formats.sdtm.covariates]")
            continue
        out[name] = covariate_value_column(f[c], dm.decimal_comma)
    return out


def _level(arm: str, dose: float, study: Study | None, armcd_map: dict) -> str | None:
    if study is None:
        return arm
    arm = str(arm).strip()
    level = armcd_map.get(arm) or (arm if arm in study.dose_levels else None)
    if level is None and arm.upper().startswith("DL") and arm[2:] in study.dose_levels:
        level = arm[2:]
    if level is None and not math.isnan(dose):
        level = study.level_of_dose(dose)
    return level


def _read_findings(t: CsvTable, pfx: str, study: Study, opts: dict, infusion: pd.DataFrame, pc) -> pd.DataFrame:
    f, rows = t.frame, t.rows
    v = lambda name: f"{pfx}{name}"  # noqa: E731
    ok = t.require(["USUBJID", v("TESTCD")], pc)
    if v("STRESN") not in f and v("STRESC") not in f and v("ORRES") not in f:
        pc.add(t.name, 1, v("STRESN"), f"expected {v('STRESN')} or {v('STRESC')} with the results")
        ok = False
    if not {v("ELTM"), v("DTC"), v("DY")} & set(f.columns):
        pc.add(t.name, 1, v("ELTM"), f"expected {v('ELTM')}, {v('DTC')} or {v('DY')} for the sample time")
        ok = False
    read = {v(x) for x in ("TESTCD", "STRESN", "STRESC", "ORRES", "ORRESU", "STRESU", "LLOQ", "ELTM", "DTC", "DY", "STAT")}
    for c in t.columns:
        typo = anagram_of(c, read) if c not in read else None
        if typo:
            pc.add(t.name, 1, c, f"unknown variable {c} (did you mean {typo}?): its values would not be read")
            ok = False
    if not ok:
        return empty_records()
    col = lambda name: f[v(name)] if v(name) in f else pd.Series("", index=f.index, dtype=object)  # noqa: E731
    testcd = {str(k).upper(): str(x) for k, x in opts.get("testcd", {}).items()}
    by_name = {a.upper(): a for a in study.analytes}
    code = f[v("TESTCD")]
    analyte = pd.Series(per_unique(code, lambda x: testcd.get(x.upper()) or by_name.get(x.upper())), index=f.index)
    for i in np.flatnonzero(analyte.isna().to_numpy()):
        pc.add(t.name, int(rows[i]), v("TESTCD"), f"test code '{code.iat[i]}' maps to no analyte; add "
                                                  f"[formats.sdtm.testcd] {code.iat[i]} = \"ANALYTE\" to study.toml")
    time = _finding_times(t, v, col, infusion, pc)
    value, blq, lloq, missing_reason, bad = _results(t, v, col, pc)
    keep = analyte.notna().to_numpy() & ~np.isnan(time) & ~bad
    unit = col("STRESU").where(col("STRESU") != "", col("ORRESU"))
    out = pd.DataFrame({
        "subject": f["USUBJID"].to_numpy(), "time": time, "analyte": analyte.to_numpy(), "value": value,
        "unit": unit.to_numpy(), "lloq": lloq, "blq": blq, "pre_infusion": (time < 0) | ((time == 0) & np.signbit(time)),
        "source_file": str(t.path), "source_row": rows, "missing_reason": missing_reason,
    })
    return out.loc[keep].reset_index(drop=True)


def _finding_times(t, v, col, infusion, pc) -> np.ndarray:
    """Days since the infusion from --ELTM, else --DTC - EXSTDTC, else --DY; NaN (reported)
    when a row has no usable time."""
    rows = t.rows
    eltm = col("ELTM")
    time = _parse_each(eltm, parse_duration).to_numpy(dtype=float, na_value=np.nan)
    for i in np.flatnonzero((eltm != "").to_numpy() & np.isnan(time)):
        pc.add(t.name, int(rows[i]), v("ELTM"), f"expected an ISO 8601 duration such as P14D or -P1D, got '{eltm.iat[i]}'")
    todo = (eltm == "").to_numpy()
    dtc = col("DTC")
    start = pd.to_datetime(infusion["start"].reindex(t.frame["USUBJID"].to_numpy()).to_numpy())
    use_dtc = todo & (dtc != "").to_numpy() & ~pd.isna(start)
    if use_dtc.any():
        when = pd.to_datetime(_parse_each(dtc[use_dtc], _parse_dtc).to_numpy())
        idx = np.flatnonzero(use_dtc)
        for i in idx[pd.isna(when)]:
            pc.add(t.name, int(rows[i]), v("DTC"), f"expected an ISO 8601 date/time, got '{dtc.iat[i]}'")
        time[idx] = (when - start[idx]) / pd.Timedelta(days=1)
    use_dy = todo & ~use_dtc
    if use_dy.any():
        dy, bad = parse_numbers(col("DY")[use_dy])
        idx = np.flatnonzero(use_dy)
        for i in idx[bad | np.isnan(dy)]:
            pc.add(t.name, int(rows[i]), v("DY"),
                   f"no usable time: expected {v('ELTM')}, {v('DTC')} or a study day, got '{col('DY').iat[i]}'")
        time[idx] = np.where(dy > 0, dy - 1, dy)  # SDTM study days have no day 0
    return time


def _results(t, v, col, pc):
    """(value, blq, lloq, missing_reason, bad) of every row, contradictions reported."""
    rows, n = t.rows, len(t.frame)
    stresn, bad_n = parse_numbers(col("STRESN"))
    stresc = col("STRESC").where(col("STRESC") != "", col("ORRES"))
    kind, cvalue, marker = parse_values(stresc)
    lloq_col = t.numbers(v("LLOQ"), pc, what="an LLOQ") if v("LLOQ") in t.frame else np.full(n, np.nan)
    not_done = pd.Series(per_unique(col("STAT"), lambda x: x.upper() == "NOT DONE", dtype=bool), index=t.frame.index)
    for i in np.flatnonzero(bad_n):
        pc.add(t.name, int(rows[i]), v("STRESN"), f"expected a number, got '{col('STRESN').iat[i]}'")
    has_n = ~np.isnan(stresn)
    for i in np.flatnonzero(~has_n & (kind == BAD_KIND)):
        pc.add(t.name, int(rows[i]), v("STRESC"), f"expected a number or a below-LLOQ marker, got '{stresc.iat[i]}'")
    with np.errstate(invalid="ignore"):
        differ = has_n & (kind == NUMBER_KIND) & ~np.isclose(stresn, cvalue, rtol=1e-9, atol=0)
    for i in np.flatnonzero(differ):
        pc.add(t.name, int(rows[i]), v("STRESC"),
               f"{v('STRESN')} is {float(stresn[i])!r} but {v('STRESC')} says '{stresc.iat[i]}'; correct one of them")
    for i in np.flatnonzero(has_n & (kind == BLQ_KIND)):
        pc.add(t.name, int(rows[i]), v("STRESC"),
               f"{v('STRESN')} is {float(stresn[i])!r} but {v('STRESC')} says '{stresc.iat[i]}' (below the LLOQ); "
               "correct one of them")
    blq = ~has_n & (kind == BLQ_KIND)
    with np.errstate(invalid="ignore"):
        lloq_differ = blq & ~np.isnan(marker) & ~np.isnan(lloq_col) & ~np.isclose(marker, lloq_col, rtol=1e-12, atol=0)
    for i in np.flatnonzero(lloq_differ):
        pc.add(t.name, int(rows[i]), v("LLOQ"),
               f"'{stresc.iat[i]}' states an LLOQ of {marker[i]:g} but {v('LLOQ')} says {lloq_col[i]:g}; correct one of them")
    value = np.where(has_n, stresn, np.where(kind == NUMBER_KIND, cvalue, np.nan))
    missing = ~has_n & (kind == MISSING_KIND)
    for i in np.flatnonzero(not_done.to_numpy() & ~missing):
        pc.add(t.name, int(rows[i]), v("STAT"), f"{v('STAT')} is NOT DONE but the row has a result; correct one of them")
    reason = np.where(missing, np.where(not_done, "not done", "no result reported"), "")
    bad = bad_n | (~has_n & (kind == BAD_KIND)) | differ | lloq_differ
    return value, blq, np.where(np.isnan(marker), lloq_col, marker), reason, bad


# ---------------------------------------------------------------------------------------------
# Writing


def _testcd(name: str, used: set) -> str:
    base = re.sub(r"[^A-Z0-9]", "", name.upper())[:8] or "TEST"
    if base[0].isdigit():
        base = ("T" + base)[:8]
    code, k = base, 1
    while code in used:
        k += 1
        code = f"{base[:8 - len(str(k))]}{k}"
    used.add(code)
    return code


DM_WRITTEN = ("STUDYID", "DOMAIN", "USUBJID", "RFSTDTC", "ARMCD", "ARM")


def write_sdtm(dataset: Dataset, path, as_csv: bool = False, warnings: list | None = None) -> list[Path]:
    """Write DM, EX and CP (qpcr/flow/bcell analytes) or PC (conc) as .xpt, plus study.toml.

    Every domain is checked against the limits of SAS transport files before anything is
    written (names of 8 characters, character values of 200 bytes, IBM float range): a value
    that does not fit is a :class:`DataValidationError` naming the variable and the value.
    Covariate names that are reserved by SDTM or longer than 8 characters get another variable
    name, mapped back in study.toml ``[formats.sdtm.covariates]`` (a warning for each is
    appended to ``warnings``). Missing samples are written as ``--STAT = NOT DONE`` rows.
    Record counts go to study.toml ``[formats.sdtm.records]``.
    """
    from ctkinetics.data.tidy import write_safety_csv

    folder = Path(path)
    study = dataset.study
    sid_name = re.sub(r"[^A-Za-z0-9-]", "", study.name)[:20] or "STUDY"
    start0 = datetime.strptime(study.start_date, "%Y-%m-%d")
    safety = dataset.safety
    subjects = dataset.subjects
    inf_day = {} if safety is None else dict(zip(safety["subject"], safety["infusion_day"]))
    starts = {s: start0 + timedelta(days=0.0 if pd.isna(inf_day.get(s, 0.0)) else float(inf_day.get(s, 0.0)))
              for s in subjects["subject"]}
    covs = dataset.covariate_names
    colnames, notes = covariate_columns(covs, DM_NOT_COVARIATES | set(DM_WRITTEN), max_len=8)
    if warnings is not None:
        warnings += notes
    armcd = {lv: _armcd(lv) for lv in study.dose_levels}
    dm = pd.DataFrame({
        "STUDYID": sid_name, "DOMAIN": "DM", "USUBJID": subjects["subject"].to_numpy(),
        "RFSTDTC": [starts[s].strftime("%Y-%m-%dT%H:%M:%S") for s in subjects["subject"]],
        "ARMCD": subjects["dose_level"].map(armcd).fillna(subjects["dose_level"]).to_numpy(),
        "ARM": ("Dose level " + subjects["dose_level"].astype(str)).to_numpy(),
    })
    for c in covs:
        dm[colnames[c]] = subjects[c].to_numpy()
    inf = dataset.doses  # issue 17: one EX record per infusion, the first at RFSTDTC
    ex = pd.DataFrame({
        "STUDYID": sid_name, "DOMAIN": "EX", "USUBJID": inf["subject"].to_numpy(),
        "EXSEQ": (inf.groupby("subject", sort=False).cumcount().to_numpy() + 1).astype(float),
        "EXTRT": "CAR-T", "EXDOSE": inf["amount"].astype(float).to_numpy(), "EXDOSU": "cells",
        "EXSTDTC": [_dtc(starts[s] + timedelta(days=float(t))) for s, t in zip(inf["subject"], inf["time"])],
    })
    used: set = set()
    testcd = {a: _testcd(a, used) for a in study.analytes}
    domains = {"DM": dm, "EX": ex}
    from ctkinetics.data.timevarying import sdtm_domains, sdtm_mapping

    tv_domains, tv_map = sdtm_domains(dataset, starts, sid_name, sdtm_mapping(study.formats.get("sdtm", {}),
                                                                               "study.toml", ProblemCollector()),
                                      {c.upper() for c in testcd.values()})
    domains.update(tv_domains)
    for dom, kinds in (("CP", {"qpcr", "flow", "bcell"}), ("PC", {"conc"})):
        d = _findings(dataset, dom, kinds, testcd, starts, sid_name)
        if d is not None:
            domains[dom] = d
    _check_limits(domains, folder, as_csv)
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / "study.toml"]
    files += [_write_domain(d, folder, dom, as_csv) for dom, d in domains.items()]
    formats = {k: dict(x) for k, x in study.formats.items()}
    sd = {k: x for k, x in formats.get("sdtm", {}).items()
          if k not in ("testcd", "armcd", "covariates", "records", "time_varying")}
    if tv_map:
        sd["time_varying"] = tv_map
    sd.update({"testcd": {x: a for a, x in testcd.items()}, "armcd": {x: lv for lv, x in armcd.items()},
               "records": {dom.lower(): len(d) for dom, d in domains.items()}})
    if covs:
        sd["covariates"] = {colnames[c]: c for c in covs}
    formats["sdtm"] = sd
    (folder / "study.toml").write_text(study.with_formats(formats).to_toml(), encoding="utf-8")
    if safety is not None:
        write_safety_csv(safety, folder / "safety.csv")
        files.append(folder / "safety.csv")
        from ctkinetics.data.safety import write_protocol_tables

        files += write_protocol_tables(dataset, folder)  # decisions.csv, efficacy.csv
    return files


def _dtc(when: datetime) -> str:
    """ISO 8601 date/time, with microseconds only when there are any."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f" if when.microsecond else "%Y-%m-%dT%H:%M:%S")


def _armcd(level: str) -> str:
    return "DL" + str(level)


def _findings(dataset: Dataset, dom: str, kinds: set, testcd: dict, starts: dict, sid_name: str):
    study = dataset.study
    obs = dataset.observations
    miss = dataset.missing_samples
    in_dom = lambda frame: frame["analyte"].map(lambda a: study.analytes[a].kind in kinds).to_numpy(bool)  # noqa: E731
    o, m = obs.loc[in_dom(obs)], miss.loc[in_dom(miss)] if len(miss) else miss
    if o.empty and m.empty:
        return None
    blq = o["blq"].to_numpy(bool)
    res = np.where(blq, "<LLOQ", o["value"].map(repr).to_numpy())
    rows = pd.DataFrame({
        "USUBJID": o["subject"].to_numpy(), "analyte": o["analyte"].to_numpy(), "time": o["time"].to_numpy(float),
        "pre": o["pre_infusion"].to_numpy(bool), "ORRES": res, "STRESN": np.where(blq, np.nan, o["value"].astype(float)),
        "UNIT": o["unit"].to_numpy(), "LLOQ": o["lloq"].astype(float).to_numpy(), "STAT": ""})
    if len(m):
        unit = {a: x.unit for a, x in study.analytes.items()}
        rows = pd.concat([rows, pd.DataFrame({
            "USUBJID": m["subject"].to_numpy(), "analyte": m["analyte"].to_numpy(), "time": m["time"].to_numpy(float),
            "pre": m["time"].to_numpy(float) < 0, "ORRES": "", "STRESN": np.nan, "UNIT": m["analyte"].map(unit).to_numpy(),
            "LLOQ": np.nan, "STAT": "NOT DONE"})], ignore_index=True)
    order = {s: k for k, s in enumerate(dataset.subject_ids)}
    rows = rows.assign(_k=rows["USUBJID"].map(order)).sort_values(["_k", "time", "analyte"], kind="stable")
    times = rows["time"].to_numpy(float)
    dtc = [(starts[s] + timedelta(days=t)).strftime("%Y-%m-%dT%H:%M:%S") for s, t in zip(rows["USUBJID"], times)]
    seq = rows.groupby("USUBJID", sort=False).cumcount().to_numpy() + 1
    return pd.DataFrame({
        "STUDYID": sid_name, "DOMAIN": dom, "USUBJID": rows["USUBJID"].to_numpy(), f"{dom}SEQ": seq.astype(float),
        f"{dom}TESTCD": rows["analyte"].map(testcd).to_numpy(), f"{dom}TEST": rows["analyte"].to_numpy(),
        f"{dom}ORRES": rows["ORRES"].to_numpy(), f"{dom}ORRESU": rows["UNIT"].to_numpy(),
        f"{dom}STRESC": rows["ORRES"].to_numpy(), f"{dom}STRESN": rows["STRESN"].to_numpy(),
        f"{dom}STRESU": rows["UNIT"].to_numpy(), f"{dom}STAT": rows["STAT"].to_numpy(),
        f"{dom}LLOQ": rows["LLOQ"].to_numpy(), f"{dom}DTC": dtc,
        f"{dom}ELTM": [format_duration(t, p) for t, p in zip(times, rows["pre"])],
        f"{dom}TPTREF": "CAR-T INFUSION",
        f"{dom}DY": [float(math.floor(t) + 1 if t >= 0 else math.floor(t)) for t in times],
    })


def _check_limits(domains: dict, folder: Path, as_csv: bool) -> None:
    """Everything that would not fit an .xpt file, for all domains, before any is written."""
    if as_csv:
        return
    problems = [Problem(str(folder / f"{dom.lower()}.xpt"), r, c, msg)
                for dom, d in domains.items() for c, r, msg in xpt_problems(d, folder)]
    if problems:
        raise DataValidationError(problems)


def _write_domain(frame: pd.DataFrame, folder: Path, dom: str, as_csv: bool) -> Path:
    if as_csv:
        p = folder / f"{dom.lower()}.csv"
        frame.to_csv(p, index=False)
    else:
        p = folder / f"{dom.lower()}.xpt"
        write_xpt(frame, p, dom)
    return p
