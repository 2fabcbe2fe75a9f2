"""NONMEM / nlmixr2 / Monolix data sets (one CSV, one row per event).

Columns: ID, TIME, DV, MDV, EVID (0 observation, 1 dose, 2 other, 3 reset, 4 reset+dose),
AMT, CMT or DVID (which output), CENS (1 = left-censored: DV holds the LLOQ), LIMIT, and
where present BLQ / LLOQ columns, USUBJID (subject ID when ID is a number), DOSELVL.
The dosing record gives the infusion time; observation times become days since it.
CMT/DVID values map to analytes through ``[formats.nonmem.dvid]`` in study.toml
(e.g. ``1 = "transgene"``) or the ``analyte_map`` option. Other columns constant within a
subject are kept as covariates, named as ``[formats.nonmem.covariates]`` says (``COV_DV =
"dv"``; written by :func:`write_nonmem` so covariate names survive a round trip), else in
lower case.

Subject IDs are text. NONMEM reads ID as a number, so IDs that are one number written two
ways (``007`` and ``7``) are refused rather than merged; a trailing ``.0`` written by tools
that store IDs as floats is dropped (``3.0`` -> ``3``). With a USUBJID column, USUBJID is the
subject ID and each must have exactly one ID (and each ID one USUBJID).

Contradictions are refused: ``CENS=1`` with ``BLQ=0``, ``BLQ=1`` with ``CENS=0`` or with a
DV that is neither empty, 0 nor the LLOQ, an LLOQ column that differs from the DV of a
censored row. A row with ``MDV=1`` and an analyte is a missing sample (kept, audited).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ctkinetics.data.assemble import Audit, build_dataset, empty_records
from ctkinetics.data.cells import parse_flags, parse_numbers, per_unique
from ctkinetics.data.csvfile import ROW_COL, CsvTable, anagram_of, read_csv_text, regular_file
from ctkinetics.data.dataset import SUBJECT_COLUMNS, Dataset
from ctkinetics.data.problems import ProblemCollector
from ctkinetics.data.study import read_study_toml
from ctkinetics.data.subjects import covariate_columns, covariate_value_column
from ctkinetics.data.tables import read_safety_csv
from ctkinetics.errors import DataValidationError

STANDARD = {"ID", "TIME", "DV", "MDV", "EVID", "AMT", "CMT", "DVID", "CENS", "LIMIT", "BLQ", "LLOQ",
            "USUBJID", "DOSELVL", "RATE", "II", "ADDL", "SS", "COVREC", ROW_COL}  # COVREC: issue 17
DATA_FILE = "nonmem.csv"
TIME_UNITS = {"days": 1.0, "day": 1.0, "d": 1.0, "hours": 1 / 24, "hour": 1 / 24, "h": 1 / 24}
_FLOAT_INT = re.compile(r"^([+-]?[0-9]+)\.0*$", re.ASCII)
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$", re.ASCII)


def detect(p: Path) -> bool:
    f = _data_file(p) if p.is_dir() else p
    if f is None or f.suffix.lower() != ".csv":
        return False
    try:
        regular_file(f)
        with open(f, encoding="utf-8-sig", errors="replace") as fh:
            head = fh.readline(65536)
    except (DataValidationError, OSError):
        return False
    cols = {c.strip().strip('"').upper() for c in head.replace(";", ",").split(",")}
    return {"ID", "TIME", "DV"} <= cols


def _data_file(folder: Path) -> Path | None:
    if (folder / DATA_FILE).exists():
        return folder / DATA_FILE
    cands = [c for c in sorted(folder.glob("*.csv")) if c.name not in ("safety.csv", "subjects.csv", "observations.csv")]
    return cands[0] if len(cands) == 1 else None


def id_text(x) -> str:
    """An ID or code as text: spaces stripped, a float-style ``3.0`` -> ``3``; nothing else
    changes (``007`` stays ``007``)."""
    s = str(x).strip()
    m = _FLOAT_INT.match(s)
    return m.group(1) if m else s


_id_text = id_text  # the former private name
_ID_NUMBER = re.compile(r"^[+-]?[0-9]*\.?[0-9]+$", re.ASCII)


def _id_number(text: str) -> float:
    """The number NONMEM reads from an ID cell (NaN when it is not a plain number)."""
    return float(text) if _ID_NUMBER.match(text) else np.nan


def read_nonmem(path, study_toml=None, analyte_map=None, time_unit=None, **_) -> Dataset:
    """Read a NONMEM-style CSV (or a folder holding it beside study.toml and safety.csv)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    data_path = _data_file(path) if path.is_dir() else path
    if data_path is None:
        raise DataValidationError.at(path, None, None, f"expected one NONMEM CSV in the folder (or {DATA_FILE})")
    toml_path = Path(study_toml) if study_toml else folder / "study.toml"
    pc = ProblemCollector()
    study = read_study_toml(toml_path, pc)
    opts = dict(study.formats.get("nonmem", {})) if study is not None else {}
    mapping = {id_text(k): str(v) for k, v in (analyte_map or opts.get("dvid") or opts.get("cmt") or {}).items()}
    time_unit = time_unit or opts.get("time_unit", "days")
    if time_unit not in TIME_UNITS:
        pc.add(toml_path, None, "formats.nonmem.time_unit", f"expected one of {', '.join(TIME_UNITS)}, got '{time_unit}'")
        time_unit = "days"
    t = None
    with pc.collecting():
        t = read_csv_text(data_path, lower_header=False)
    records = subjects_df = None
    audit, warnings = Audit(), []
    if t is not None and _header_ok(t, pc, mapping):
        warnings += [f"{data_path}: {n}" for n in t.notes]
        rd = _Reader(t, study, mapping, TIME_UNITS[time_unit], dict(opts.get("covariates", {})), pc, audit, warnings)
        rd.tv_forced = {str(c).upper() for c in opts.get("time_varying", [])}  # issue 17
        subjects_df, records = rd.read()
    safety_path = folder / "safety.csv"
    safety = None
    if safety_path.exists():
        with pc.collecting():
            safety = read_safety_csv(safety_path, pc, warnings)
    sources = [toml_path, data_path] + ([safety_path] if safety is not None else [])
    out_col = None if t is None else ("DVID" if "DVID" in t.frame else "CMT" if "CMT" in t.frame else None)
    events = getattr(rd, "events", (None, None, {})) if t is not None and subjects_df is not None else (None, None, {})
    return build_dataset(study, subjects_df, records, safety, audit=audit, warnings=warnings, sources=sources,
                         columns={"subject": "USUBJID" if t is not None and "USUBJID" in t.frame else "ID",
                                  "dose_level": "DOSELVL", "time": "TIME", "analyte": out_col or "DVID", "value": "DV",
                                  "lloq": "LLOQ", "doses": {"time": "TIME", "amount": "AMT"}, "time_varying": events[2]},
                         subjects_file=str(data_path), safety_file=str(safety_path), problems=pc, fmt="nonmem",
                         doses=events[0], time_varying=events[1])


def _header_ok(t: CsvTable, pc: ProblemCollector, mapping: dict) -> bool:
    upper = [c.upper() for c in t.columns]
    seen = {}
    ok = True
    for c, u in zip(t.columns, upper):
        if u in seen:
            pc.add(t.name, 1, c, f"column '{c}' and column '{seen[u]}' are the same NONMEM data item; keep one")
            ok = False
        seen[u] = c
    t.frame.columns = [c if c == ROW_COL else c.upper() for c in t.frame.columns]
    ok &= t.require(["ID", "TIME", "DV"], pc)
    if "EVID" not in t.frame and "AMT" not in t.frame:
        pc.add(t.name, 1, "EVID", "expected an EVID or AMT column to find the infusion (dosing record)")
        ok = False
    if len(mapping) > 1 and "DVID" not in t.frame and "CMT" not in t.frame:
        pc.add(t.name, 1, "DVID", "several analytes are mapped but the file has no DVID or CMT column")
        ok = False
    return ok


class _Reader:
    """One vectorised pass over a NONMEM table: events, subjects, covariates, samples."""

    def __init__(self, t, study, mapping, to_days, cov_names, pc, audit, warnings):
        self.t, self.f, self.study, self.mapping, self.to_days = t, t.frame, study, mapping, to_days
        self.cov_names = {str(k).upper(): str(v) for k, v in cov_names.items()}
        self.pc, self.audit, self.warnings = pc, audit, warnings
        self.rows = t.rows
        self.name = t.name
        self.tv_forced, self.tv_columns = set(), {}  # issue 17: time-varying covariate columns

    def col(self, c, default=""):
        return self.f[c] if c in self.f else pd.Series(default, index=self.f.index, dtype=object)

    def add(self, idx, column, message) -> None:
        for i in idx:
            self.pc.add(self.name, int(self.rows[i]), column, message(i) if callable(message) else message)

    def read(self):
        ids = self._subject_ids()
        evid = self._evid()
        time_raw = self.t.numbers("TIME", self.pc, what="a time", required=True)
        subjects, t0 = self._subjects(ids, evid, time_raw)
        records = self._samples(ids, evid, time_raw, t0)
        self.events = self._events(ids, evid, time_raw, t0)  # issue 17: later doses, time-varying covariates
        return subjects, records

    def _events(self, sid, evid, time_raw, t0_info):
        """(later doses, time-varying covariate records, column of each covariate): every dosing
        record after a subject's first (ADDL/II expanded; :mod:`ctkinetics.data.doses`) and the
        columns that vary within a subject (:mod:`ctkinetics.data.timevarying`)."""
        from ctkinetics.data.doses import dose_records, expand_additional
        from ctkinetics.data.timevarying import nonmem_time_varying

        t0, d_idx = t0_info
        s = sid.to_numpy()
        base = t0.reindex(s).to_numpy(float)
        days = (time_raw - base) * self.to_days
        amt = self._amt
        is_dose = np.isin(evid, [1, 4]) & ~np.isnan(base)
        is_dose[d_idx.to_numpy()] = False  # the first infusion of each subject
        self.add(np.flatnonzero(is_dose & (evid == 4)), "EVID",
                 "EVID 4 (reset and dose) after the first infusion: a reset of the kinetics is not supported; "
                 "give a re-infusion as EVID 1")
        later = np.flatnonzero(is_dose & (evid == 1))
        t, a, r = days[later], amt[later], self.rows[later]
        if "ADDL" in self.f:
            addl = self.t.numbers("ADDL", self.pc, what="a number of additional doses")
            ii = self.t.numbers("II", self.pc, what="a dosing interval") if "II" in self.f else np.full(len(self.f), np.nan)
            first = d_idx.to_numpy()
            idx = np.r_[first, later].astype(int)
            et, ea, er = expand_additional(days[idx], amt[idx], addl[idx], ii[idx], self.rows[idx], self.name, self.pc,
                                           self.to_days)
            rows_sid = dict(zip(self.rows[idx], s[idx]))
            s_extra = np.array([rows_sid[x] for x in er], dtype=object)
            t, a, r = np.r_[t, et], np.r_[a, ea], np.r_[r, er]
            s_later = np.r_[s[later], s_extra]
        else:
            s_later = s[later]
        doses = dose_records(s_later, t, a, self.name, r)
        tv = nonmem_time_varying(self.f, self.tv_columns, sid, evid, time_raw * self.to_days,
                                 t0 * self.to_days, self.rows, self.name)
        return doses, tv, {name: col for col, name in self.tv_columns.items()}

    def _subject_ids(self) -> pd.Series:
        idt = pd.Series(per_unique(self.f["ID"], id_text), index=self.f.index)
        self.add(np.flatnonzero((idt == "").to_numpy()), "ID", "expected a subject ID, got an empty cell")
        num = pd.Series(per_unique(idt, _id_number, dtype=float), index=self.f.index)
        key = num.astype(object).where(num.notna(), idt).astype(str)  # what NONMEM compares
        if "USUBJID" in self.f:
            sid = self.f["USUBJID"].astype(str)
            self.add(np.flatnonzero((sid == "").to_numpy()), "USUBJID", "expected a subject ID, got an empty cell")
            self._one_to_one(sid, key, idt, "USUBJID", "ID")
            self._one_to_one(key, sid, sid, "ID", "USUBJID")
        else:
            sid = idt
            self._one_to_one(key, idt, idt, "ID", "ID", same_number=True)
        self._contiguous(sid)
        return sid

    def _one_to_one(self, key: pd.Series, other: pd.Series, shown: pd.Series, kcol: str, ocol: str,
                    same_number=False) -> None:
        """Every ``key`` value goes with one ``other`` value; report the first row of each extra
        (``shown`` is how the other value is written in the file)."""
        pairs = pd.DataFrame({"k": key.to_numpy(), "o": other.astype(str).to_numpy(), "i": np.arange(len(key))})
        first = pairs.drop_duplicates(["k", "o"])
        many = first[first.duplicated("k", keep=False)]
        for _, g in many.groupby("k", sort=False):
            i0, i1 = int(g["i"].iat[0]), int(g["i"].iat[1])
            if same_number:
                msg = (f"ID '{shown.iat[i1]}' and ID '{shown.iat[i0]}' (row {self.rows[i0]}) are the same number "
                       "to NONMEM and would be merged into one participant; give distinct IDs, or the text IDs "
                       "in a USUBJID column")
            else:
                msg = (f"{kcol} '{self.f[kcol].iat[i1].strip()}' goes with {ocol} '{shown.iat[i1]}' here but with "
                       f"{ocol} '{shown.iat[i0]}' on row {self.rows[i0]}; one {ocol} per {kcol}")
            self.pc.add(self.name, int(self.rows[i1]), "ID" if same_number else ocol, msg)

    def _contiguous(self, sid: pd.Series) -> None:
        change = (sid != sid.shift()).to_numpy()
        blocks = pd.Series(sid.to_numpy()[change]).value_counts()
        for s in blocks.index[blocks.to_numpy() > 1]:
            self.warnings.append(f"{self.name}: the records of subject '{s}' are not contiguous; NONMEM would read "
                                 "each block as a new individual, they are read here as one participant")

    def _evid(self) -> np.ndarray:
        if "EVID" in self.f:
            e = self.t.numbers("EVID", self.pc, what="an EVID of 0, 1, 2, 3 or 4", required=True)
            bad = ~np.isnan(e) & ~np.isin(e, [0, 1, 2, 3, 4])
            self.add(np.flatnonzero(bad), "EVID", lambda i: f"expected 0, 1, 2, 3 or 4, got {e[i]:g}")
            self.add(np.flatnonzero(e == 3), "EVID", "reset events (EVID 3) are not supported for CAR-T kinetics")
            return np.where(np.isnan(e) | bad, -1, e).astype(int)
        amt = self.t.numbers("AMT", self.pc, what="an amount")
        return np.where(amt > 0, 1, 0)

    def _subjects(self, sid: pd.Series, evid: np.ndarray, time: np.ndarray):
        f = self.f
        order = pd.Series(np.arange(len(f)))
        first = order.groupby(sid.to_numpy(), sort=False).first()
        dose_rows = order[np.isin(evid, [1, 4])]
        dose_by = dose_rows.groupby(sid.to_numpy()[dose_rows.to_numpy()], sort=False)
        n_doses = dose_by.size().reindex(first.index, fill_value=0)
        for s in n_doses.index[n_doses.to_numpy() == 0]:
            self.pc.add(self.name, int(self.rows[first[s]]), "EVID",
                        f"subject '{s}' has no dosing record (EVID 1 with AMT): the infusion time is unknown")
        # dosing records after a subject's first are re-infusions (issue 17: _events)
        d = dose_by.first().reindex(first.index)
        has = d.notna().to_numpy()
        d_idx = d[has].astype(int).to_numpy()
        amt = (self.t.numbers("AMT", self.pc, what="the infused dose in cells (AMT)") if "AMT" in f
               else np.full(len(f), np.nan))
        self._amt = amt  # issue 17: the later doses read the same cells
        subj = pd.DataFrame({"subject": first.index[has].astype(str), "dose_level": "",
                             "dose": amt[d_idx], ROW_COL: self.rows[first[has].to_numpy()]})
        self._dose_levels(subj, d_idx)
        t0 = pd.Series(time[d_idx], index=subj["subject"].to_numpy())
        self._covariates(subj, sid)
        return subj, (t0, pd.Series(d_idx, index=subj["subject"].to_numpy()))

    def _dose_levels(self, subj: pd.DataFrame, d_idx: np.ndarray) -> None:
        level = self.col("DOSELVL").to_numpy(dtype=object)[d_idx] if "DOSELVL" in self.f else None
        out = []
        for k, (s, dose) in enumerate(zip(subj["subject"], subj["dose"])):
            lv = level[k] if level is not None else ""
            if lv == "" and self.study is not None and not np.isnan(dose):
                lv = self.study.level_of_dose(dose) or ""
            if lv == "" and self.study is not None:
                self.pc.add(self.name, int(self.rows[d_idx[k]]), "AMT",
                            f"dose {dose:g} of subject '{s}' matches no dose level in study.toml and there is no "
                            "DOSELVL column")
            out.append(lv)
        subj["dose_level"] = out

    def _covariates(self, subj: pd.DataFrame, sid: pd.Series) -> None:
        cols = [c for c in self.f.columns if c not in STANDARD]
        if not cols:
            return
        g = self.f[cols].groupby(sid.to_numpy(), sort=False)
        varying = g.nunique(dropna=False).reindex(subj["subject"]).max() > 1
        firsts = g.first().reindex(subj["subject"])
        for c in cols:
            name = self.cov_names.get(c, c.lower())
            typo = anagram_of(c, STANDARD - {ROW_COL}) if c not in self.cov_names else None
            if typo:
                self.pc.add(self.name, 1, c, f"unknown column {c} (did you mean {typo}?): it would be read as a "
                                             f"covariate and {typo} ignored; rename it, or name it in study.toml "
                                             "[formats.nonmem.covariates] if it is a covariate")
            elif name in SUBJECT_COLUMNS or name == ROW_COL:
                self.pc.add(self.name, 1, c, f"column {c} would be read as the covariate '{name}', which is the "
                                             f"participants' {name} column; rename it, or name it in study.toml "
                                             "[formats.nonmem.covariates]")
            elif name in subj.columns:
                self.pc.add(self.name, 1, c, f"two columns would both be read as the covariate '{name}'")
            elif varying[c] or c in self.tv_forced:  # issue 17: a time-varying covariate when numeric
                text = self.f[c].astype(str).str.strip()
                _, bad = parse_numbers(text.replace(".", ""))
                if bad.any():
                    self.warnings.append(f"{self.name}: column {c} varies within a subject and is not numeric; "
                                         "not kept as a covariate")
                else:
                    self.tv_columns[c] = name
            else:
                subj[name] = covariate_value_column(firsts[c].astype(str), self.t.decimal_comma)

    def _samples(self, sid, evid, time_raw, t0_info) -> pd.DataFrame:
        f, pc = self.f, self.pc
        t0, d_idx = t0_info
        mdv_true, _, mdv_bad = parse_flags(self.col("MDV"))
        self.add(np.flatnonzero(mdv_bad), "MDV", lambda i: f"expected 0 or 1, got '{f['MDV'].iat[i]}'")
        blq_true, blq_stated, blq_bad = parse_flags(self.col("BLQ"))
        self.add(np.flatnonzero(blq_bad), "BLQ", lambda i: f"expected 0 or 1, got '{f['BLQ'].iat[i]}'")
        cens = self.t.numbers("CENS", pc, what="a CENS of -1, 0 or 1") if "CENS" in f else np.zeros(len(f))
        self.add(np.flatnonzero(~np.isnan(cens) & ~np.isin(cens, [-1, 0, 1])), "CENS",
                 lambda i: f"expected -1, 0 or 1, got {cens[i]:g}")
        self.add(np.flatnonzero(cens == -1), "CENS", "right-censored samples (CENS=-1) are not supported")
        lloq = self.t.numbers("LLOQ", pc, what="an LLOQ") if "LLOQ" in f else np.full(len(f), np.nan)
        dv = self.t.numbers("DV", pc, what="a DV value")
        obs = evid == 0
        self.audit.add_frame(pd.DataFrame({
            "file": str(self.t.path), "row": self.rows[evid == 2], "column": "EVID", "subject": sid[evid == 2].to_numpy(),
            "time": None, "analyte": None, "action": "excluded",
            "reason": "EVID 2 (other event) row" + ("; its time-varying covariate values are read" if self.tv_columns
                                                     else "")}))
        analyte, has_key = self._analytes(obs, mdv_true)
        censored = cens == 1
        blq = censored | blq_true
        self._contradictions(obs & has_key, censored, blq_true, blq_stated, cens, dv, lloq)
        lloq = np.where(censored & ~np.isnan(dv), dv, lloq)
        missing_reason = np.where(mdv_true, np.where(np.isnan(dv), "MDV=1", "MDV=1; its DV is not used"),
                                  np.where(np.isnan(dv), "missing DV on an observation row", ""))
        missing_reason[blq] = ""  # a below-LLOQ sample (also with MDV=1, as the M1 method writes it)
        keep = obs & has_key & ~mdv_bad & ~blq_bad & (cens != -1) & sid.isin(t0.index).to_numpy()
        keep &= ~np.isnan(time_raw)
        idx = np.flatnonzero(keep)
        s = sid.to_numpy()[idx]
        base = t0.reindex(s).to_numpy(float)
        time = (time_raw[idx] - base) * self.to_days
        pre = (time_raw[idx] < base) | ((time_raw[idx] == base) & (idx < d_idx.reindex(s).to_numpy()))
        if not len(idx):
            return empty_records()
        return pd.DataFrame({
            "subject": s.astype(str), "time": time, "analyte": analyte[idx], "value": np.where(blq[idx], np.nan, dv[idx]),
            "unit": "", "lloq": lloq[idx], "blq": blq[idx], "pre_infusion": pre, "source_file": str(self.t.path),
            "source_row": self.rows[idx], "missing_reason": missing_reason[idx],
        })

    def _analytes(self, obs: np.ndarray, mdv_true: np.ndarray):
        out_col = "DVID" if "DVID" in self.f else ("CMT" if "CMT" in self.f else None)
        key = pd.Series(per_unique(self.col(out_col), id_text) if out_col else "", index=self.f.index)
        if self.mapping:
            analyte = per_unique(key, self.mapping.get)
        else:
            only = next(iter(self.study.analytes)) if self.study is not None and len(self.study.analytes) == 1 else None
            analyte = np.full(len(self.f), only, dtype=object)
        has = pd.notna(analyte)
        empty = key.isin(["", "."]).to_numpy()
        no_analyte = obs & mdv_true & ~has & empty
        self.audit.add_frame(pd.DataFrame({
            "file": str(self.t.path), "row": self.rows[no_analyte], "column": "MDV", "subject": None, "time": None,
            "analyte": None, "action": "excluded", "reason": "MDV=1 row without an analyte (no sample)"}))
        col = out_col or "DVID"
        self.add(np.flatnonzero(obs & ~has & ~no_analyte), col,
                 lambda i: f"{col} value '{key.iat[i]}' is not mapped to an analyte; add [formats.nonmem.dvid] "
                           f"{key.iat[i]} = \"ANALYTE\" to study.toml (mapped: {self.mapping or 'none'})")
        return analyte, has

    def _contradictions(self, obs, censored, blq_true, blq_stated, cens, dv, lloq) -> None:
        blq_zero = blq_stated & ~blq_true
        self.add(np.flatnonzero(obs & censored & blq_zero), "BLQ",
                 "CENS is 1 (censored: DV holds the LLOQ) but BLQ is 0; correct one of them")
        if "CENS" in self.f:
            self.add(np.flatnonzero(obs & blq_true & (cens == 0)), "CENS",
                     "BLQ is 1 but CENS is 0 (not censored); correct one of them")
        self.add(np.flatnonzero(obs & censored & ~np.isnan(dv) & ~(dv > 0)), "DV",
                 "CENS is 1, so DV must hold the sample's LLOQ (a positive number) or be empty")
        with np.errstate(invalid="ignore"):
            differ = obs & censored & ~np.isnan(lloq) & (dv > 0) & ~np.isclose(dv, lloq, rtol=1e-12, atol=0)
            self.add(np.flatnonzero(differ), "LLOQ",
                     lambda i: f"CENS is 1 and DV says the LLOQ is {dv[i]:g}, but the LLOQ column says {lloq[i]:g}")
            odd = (obs & blq_true & ~censored & ~np.isnan(dv) & (dv != 0)
                   & ~(~np.isnan(lloq) & np.isclose(dv, lloq, rtol=1e-12, atol=0)))
        self.add(np.flatnonzero(odd), "DV",
                 lambda i: f"BLQ is 1 but DV is {dv[i]:g}, neither empty, 0 nor the LLOQ: is the sample quantified?")


# ---------------------------------------------------------------------------------------------
# Writing


def nonmem_ids(subjects) -> tuple[list, bool]:
    """The ID column: the subject IDs themselves when every one is a plain integer written the
    way NONMEM reads it back (no sign, no leading zero), else 1..n with USUBJID for the text."""
    ids = [str(s) for s in subjects]
    plain = all(s.isascii() and s.isdigit() and str(int(s)) == s and len(s) < 10 for s in ids)
    return (ids, False) if plain else (list(range(1, len(ids) + 1)), True)


def write_nonmem(dataset: Dataset, path, warnings: list | None = None) -> list[Path]:
    """Write a NONMEM data set (days since infusion, CENS=1 rows carry the LLOQ in DV).

    Missing samples are written as ``MDV=1`` rows, so nothing planned is lost; covariates whose
    names collide with NONMEM data items (``dv``, ``time``, ...) are renamed, with the mapping
    in study.toml ``[formats.nonmem.covariates]`` and a warning appended to ``warnings``.
    """
    from ctkinetics.data.tidy import _fmt, write_safety_csv

    path = Path(path)
    folder, data_path = (path.parent, path) if path.suffix.lower() == ".csv" else (path, path / DATA_FILE)
    folder.mkdir(parents=True, exist_ok=True)
    study = dataset.study
    dvid = {str(i + 1): a for i, a in enumerate(study.analytes)}
    inv = {a: k for k, a in dvid.items()}
    subjects = dataset.subjects
    ids, with_usubjid = nonmem_ids(subjects["subject"])
    covs = dataset.covariate_names
    tv_names = dataset.time_varying_names  # issue 17: one column each, written on every row
    colnames, notes = covariate_columns(covs + tv_names, STANDARD | {"SUBJECT", "DOSE", "DOSE_LEVEL"})
    if warnings is not None:
        warnings += notes
    per = pd.DataFrame({"subject": subjects["subject"].to_numpy(), "ID": ids})
    if with_usubjid:
        per["USUBJID"] = subjects["subject"].to_numpy()
    per["DOSELVL"] = subjects["dose_level"].to_numpy()
    for c in covs:
        per[colnames[c]] = [_cell(v) for v in subjects[c]]
    per["_k"] = np.arange(len(per))
    obs = dataset.observations
    blq = obs["blq"].to_numpy(bool)
    events = pd.DataFrame({
        "subject": obs["subject"].to_numpy(), "_t": obs["time"].to_numpy(float),
        "_o": np.where(obs["pre_infusion"].to_numpy(bool), 0, 2),
        "TIME": obs["time"].map(_fmt).to_numpy(), "DV": np.where(blq, obs["lloq"].map(_fmt), obs["value"].map(_fmt)),
        "MDV": 0, "EVID": 0, "AMT": ".", "DVID": obs["analyte"].map(inv).to_numpy(), "CENS": blq.astype(int),
        "LLOQ": obs["lloq"].map(lambda x: _fmt(x) or ".").to_numpy()})
    miss = dataset.missing_samples
    missing = pd.DataFrame({
        "subject": miss["subject"].to_numpy(), "_t": miss["time"].to_numpy(float),
        "_o": np.where(miss["time"].to_numpy(float) < 0, 0, 2), "TIME": miss["time"].map(_fmt).to_numpy(),
        "DV": ".", "MDV": 1, "EVID": 0, "AMT": ".", "DVID": miss["analyte"].map(inv).to_numpy(), "CENS": 0,
        "LLOQ": "."})
    infusions = dataset.doses  # issue 17: the first infusion and every re-infusion
    doses = pd.DataFrame({"subject": infusions["subject"].to_numpy(), "_t": infusions["time"].to_numpy(float),
                          "_o": 1, "TIME": infusions["time"].map(_fmt).to_numpy(), "DV": ".",
                          "MDV": 1, "EVID": 1, "AMT": infusions["amount"].map(_fmt).to_numpy(), "DVID": ".",
                          "CENS": 0, "LLOQ": "."})
    rows = pd.concat([doses, events, missing], ignore_index=True)
    if tv_names:
        from ctkinetics.data.timevarying import nonmem_columns

        rows, other = nonmem_columns(dataset, rows, colnames)
        rows = pd.concat([rows, other.assign(_o=-1, TIME=other["_t"].map(_fmt), DV=".", MDV=1, EVID=2, AMT=".",
                                             DVID=".", CENS=0, LLOQ=".")], ignore_index=True)
    rows = rows.merge(per, on="subject", how="left")
    rows = rows.sort_values(["_k", "_t", "_o"], kind="stable")
    lead = ["ID"] + (["USUBJID"] if with_usubjid else [])
    cols = lead + ["TIME", "DV", "MDV", "EVID", "AMT", "DVID", "CENS", "LLOQ", "DOSELVL"] + [colnames[c] for c in covs]
    cols += [colnames[c] for c in tv_names] + (["COVREC"] if tv_names else [])
    rows[cols].to_csv(data_path, index=False)
    formats = {k: dict(v) for k, v in study.formats.items()}
    nm = {k: v for k, v in formats.get("nonmem", {}).items() if k not in ("cmt", "covariates", "time_varying")}
    formats["nonmem"] = {**nm, "time_unit": "days", "dvid": dvid,
                         **({"covariates": {colnames[c]: c for c in covs + tv_names}} if covs or tv_names else {}),
                         **({"time_varying": [colnames[c] for c in tv_names]} if tv_names else {})}
    (folder / "study.toml").write_text(study.with_formats(formats).to_toml(), encoding="utf-8")
    files = [folder / "study.toml", data_path]
    if dataset.safety is not None:
        write_safety_csv(dataset.safety, folder / "safety.csv")
        files.append(folder / "safety.csv")
        from ctkinetics.data.safety import write_protocol_tables

        files += write_protocol_tables(dataset, folder)  # decisions.csv, efficacy.csv
    return files


def _cell(x):
    from ctkinetics.data.tidy import _fmt

    return _fmt(x) if isinstance(x, (int, float, np.floating, np.integer)) else x
