"""Time-varying covariates (tocilizumab or steroid exposure, lymphocyte counts, ...): one
long table, :attr:`Dataset.time_varying`, whatever the input format.

==========  ====================================================================
subject     as in subjects.csv
time        days since the participant's first infusion (negative: before it)
covariate   name, as a model file reads it (a letter, then letters, digits, _)
value       a number, in force from ``time`` until the covariate's next record
==========  ====================================================================

A record's value holds from its time until the next record of that covariate (last value
carried forward, as rxode2/nlmixr2 and Monolix regressors read them); a model that declares
the covariate ``interpolation = "linear"`` interpolates between the records instead. Before
a participant's first record the covariate is unknown and a model uses its declared default
(give a record at or before time 0 — a pre-infusion lymphocyte count, ``tocilizumab = 0`` —
to set it). Categorical covariates that do not change (product lot, lymphodepletion regimen)
stay columns of ``subjects.csv``.

Where the records come from:

- tidy study folder: ``covariates_tv.csv`` (``subject,time,covariate,value``);
- NONMEM: a numeric column whose value changes within a participant (or one listed in
  ``[formats.nonmem] time_varying``): a record sets a value at its time when the value
  differs from the one in force (the first one sets it); empty and ``.`` cells set nothing.
  The writer puts every record on an ``EVID 2`` row and the value in force on every other
  row, so NONMEM, nlmixr2 and Monolix all see the same step function; a text column
  ``COVREC`` on those rows names the columns they record (``ALC;TOCI``), so a record that
  repeats the value in force (it matters to linear interpolation) is not lost (drop
  ``COVREC`` in NONMEM's ``$INPUT``);
- SDTM: ``LB`` (``--TESTCD``, ``--STRESN``, time as for CP/PC) and ``CM`` (``CMTRT``,
  ``CMSTDTC``, ``CMDOSE``) records mapped in ``[formats.sdtm.time_varying]``:
  ``lymphocytes = "LB:LYM"``, ``tocilizumab = "CM:TOCILIZUMAB"`` (the value is ``CMDOSE``,
  or 1 when it is empty; ``"CM:TOCILIZUMAB:indicator"`` gives 1 from each start on whatever
  the dose). LB tests and CM treatments not mapped are not read, and a warning names them.

Rules (each problem names the file, row and column): a known participant, a finite time and
value, a name a model can read, not also a column of ``subjects.csv``, and one value per
(participant, covariate, time).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ctkinetics.data.problems import ProblemCollector

TV_COLUMNS = ("subject", "time", "covariate", "value", "source_file", "source_row")
TV_FILE = "covariates_tv.csv"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$", re.ASCII)
RESERVED = {"subject", "dose", "dose_level", "time", "t", "tau", "amt"}


def empty_time_varying() -> pd.DataFrame:
    return pd.DataFrame({"subject": pd.Series(dtype=str), "time": pd.Series(dtype=float),
                         "covariate": pd.Series(dtype=str), "value": pd.Series(dtype=float),
                         "source_file": pd.Series(dtype=str), "source_row": pd.Series(dtype=int)})


def tv_records(subject, time, covariate, value, file, rows) -> pd.DataFrame:
    """Records from arrays (the NONMEM and SDTM readers)."""
    n = len(np.atleast_1d(time))
    return pd.DataFrame({"subject": np.asarray(subject, dtype=object).astype(str),
                         "time": np.asarray(time, dtype=float),
                         "covariate": np.broadcast_to(np.asarray(covariate, dtype=object), (n,)).astype(str),
                         "value": np.asarray(value, dtype=float), "source_file": str(file),
                         "source_row": np.asarray(rows, dtype=int)})


def read_covariates_tv_csv(path, pc: ProblemCollector, notes: list | None = None) -> pd.DataFrame | None:
    """``covariates_tv.csv`` of a study folder (module doc) as records (``TV_COLUMNS``)."""
    from ctkinetics.data.safety import open_table

    cols = ("subject", "time", "covariate", "value")
    t = open_table(path, cols, cols, pc, notes)
    if t is None:
        return None
    f = t.frame
    out = pd.DataFrame({
        "subject": f["subject"].astype(str).str.strip().to_numpy(),
        "time": t.numbers("time", pc, what="a time in days since the first infusion", required=True),
        "covariate": f["covariate"].astype(str).str.strip().to_numpy(),
        "value": t.numbers("value", pc, what="a number (the covariate's value from this time on)", required=True),
        "source_file": str(t.path), "source_row": t.rows})
    for c in ("subject", "covariate"):
        for i in np.flatnonzero((out[c] == "").to_numpy()):
            pc.add(t.name, int(t.rows[i]), c, f"expected a {c} name, got an empty cell")
    return out


def finish_time_varying(records: pd.DataFrame | None, subjects: pd.DataFrame, subjects_file: str,
                        pc: ProblemCollector, columns: dict | None = None) -> pd.DataFrame | None:
    """The canonical table (module doc), checked and sorted by subject, covariate and time;
    None when there are no records. ``columns`` maps ``covariate`` to the source column of
    each name (NONMEM column names) for the messages."""
    if records is None or not len(records):
        return None
    rec = records.reset_index(drop=True)
    rec = rec.loc[~rec["time"].isna() & ~rec["value"].isna() & (rec["covariate"] != "")].reset_index(drop=True)
    known = set(subjects["subject"].astype(str))
    static = {str(c) for c in subjects.columns} | RESERVED
    where = columns or {}
    bad = np.zeros(len(rec), bool)
    named = {}
    for i, (s, c, t, v, f, r) in enumerate(zip(rec["subject"], rec["covariate"], rec["time"], rec["value"],
                                               rec["source_file"], rec["source_row"])):
        column = where.get(c, "covariate")
        if s not in known:
            pc.add(f, int(r), "subject", f"subject '{s}' is not in {subjects_file}")
        elif not np.isfinite(t):
            pc.add(f, int(r), "time", f"expected a finite time, got {t:g}")
        elif not np.isfinite(v):
            pc.add(f, int(r), "value", f"expected a finite value, got {v:g}")
        elif c not in named and not _NAME.match(c):
            named[c] = False
            pc.add(f, int(r), column, f"covariate name '{c}' is not one a model can read (a letter, then letters, "
                                      "digits or _, at most 32)")
        elif c not in named and c in static:
            named[c] = False
            pc.add(f, int(r), column, f"covariate '{c}' is also a column of {subjects_file} (or a reserved name); "
                                      "a covariate is either constant per participant or time-varying")
        else:
            named.setdefault(c, True)
            bad[i] = not named[c]
            continue
        bad[i] = True
    rec = rec.loc[~bad]
    dup = rec.duplicated(["subject", "covariate", "time"], keep=False).to_numpy()
    if dup.any():
        for _, g in rec.loc[dup].groupby(["subject", "covariate", "time"], sort=False):
            a, b = g.iloc[0], g.iloc[1]
            pc.add(b["source_file"], int(b["source_row"]), "time",
                   f"covariate '{b['covariate']}' of subject '{b['subject']}' has two values at time {b['time']:g} "
                   f"(also on row {int(a['source_row'])}); one value per time")
    out = rec[list(TV_COLUMNS)].astype({"subject": str, "time": float, "covariate": str, "value": float,
                                        "source_file": str, "source_row": int})
    return out.sort_values(["subject", "covariate", "time"], kind="stable").reset_index(drop=True)


def course(table: pd.DataFrame | None, subject: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(times, values) of one covariate of one participant, sorted by time (empty arrays when
    it has no record)."""
    if table is None:
        return np.zeros(0), np.zeros(0)
    d = table.loc[(table["subject"] == str(subject)) & (table["covariate"] == name)]
    return d["time"].to_numpy(float), d["value"].to_numpy(float)


def value_in_force(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The step function's value at each time of ``at`` (NaN before the first record)."""
    k = np.searchsorted(times, at, side="right") - 1
    out = np.where(k >= 0, values[np.clip(k, 0, None)] if len(values) else np.nan, np.nan)
    return out.astype(float)


def write_covariates_tv_csv(dataset, folder) -> list:
    """``covariates_tv.csv`` of ``dataset`` (none written when it has no such covariate)."""
    from pathlib import Path

    from ctkinetics.data.tidy import _fmt

    tv = dataset.time_varying
    if not len(tv):
        return []
    path = Path(folder) / TV_FILE
    pd.DataFrame({"subject": tv["subject"], "time": tv["time"].map(_fmt), "covariate": tv["covariate"],
                  "value": tv["value"].map(_fmt)}).to_csv(path, index=False, lineterminator="\n")
    return [path]


# ---------------------------------------------------------------------------------------------
# NONMEM


#: NONMEM column naming the time-varying covariate columns an EVID 2 row records (module doc)
RECORD_COLUMN = "COVREC"


def nonmem_time_varying(frame: pd.DataFrame, columns: dict, sid: pd.Series, evid: np.ndarray,
                        time_days: np.ndarray, t0: pd.Series, rows: np.ndarray, file) -> pd.DataFrame:
    """Records of the time-varying columns of a NONMEM table (module doc): ``columns`` maps
    column -> covariate name; ``time_days`` is each record's TIME in days, ``t0`` each
    subject's first infusion (days). Values must already be numbers (NaN: no value)."""
    from ctkinetics.data.cells import parse_numbers

    parts = []
    s = sid.to_numpy()
    base = t0.reindex(s).to_numpy(float)
    marked = (frame[RECORD_COLUMN].astype(str).str.upper().str.split(";") if RECORD_COLUMN in frame
              else pd.Series([[]] * len(frame), index=frame.index))
    for col, name in columns.items():
        values, _ = parse_numbers(frame[col].astype(str).str.strip().replace(".", ""))
        ok = ~np.isnan(values) & ~np.isnan(time_days) & ~np.isnan(base)
        idx = np.flatnonzero(ok)
        if not len(idx):
            continue
        # in force before each record (per subject, file order): the previous value of the subject
        v, subj = values[idx], s[idx]
        same_subject = np.r_[False, subj[1:] == subj[:-1]]
        prev = np.r_[np.nan, v[:-1]]
        listed = np.array([col.upper() in m for m in marked.iloc[idx]], dtype=bool) & (evid[idx] == 2)
        new = ~same_subject | (v != prev) | listed
        keep = idx[new]
        parts.append(tv_records(s[keep], time_days[keep] - base[keep], name, values[keep], file, rows[keep]))
    if not parts:
        return empty_time_varying()
    out = pd.concat(parts, ignore_index=True)
    # an EVID 2 record and a sample at the same time carrying the same value are one record
    return out.drop_duplicates(["subject", "covariate", "time", "value"]).reset_index(drop=True)


def nonmem_columns(dataset, rows: pd.DataFrame, colnames: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For the NONMEM writer: (``rows`` with one column per time-varying covariate holding the
    value in force at each row's time, '.' before the first record; the EVID 2 rows that carry
    every record). ``rows`` has ``subject`` and ``_t`` (days since the first infusion)."""
    from ctkinetics.data.tidy import _fmt

    tv = dataset.time_varying
    names = list(dict.fromkeys(tv["covariate"]))
    rows = rows.copy()
    events = tv[["subject", "time"]].drop_duplicates().rename(columns={"time": "_t"}).reset_index(drop=True)
    rec = tv.assign(_c=tv["covariate"].map(colnames)).groupby(["subject", "time"], sort=False)["_c"].agg(";".join)
    events[RECORD_COLUMN] = [rec[(s, t)] for s, t in zip(events["subject"], events["_t"])]
    rows[RECORD_COLUMN] = "."
    for name in names:
        col = colnames[name]
        rows[col] = "."
        events[col] = "."
        d = tv.loc[tv["covariate"] == name]
        for subject, g in d.groupby("subject", sort=False):
            t, v = g["time"].to_numpy(float), g["value"].to_numpy(float)
            for frame in (rows, events):
                m = (frame["subject"] == subject).to_numpy()
                val = value_in_force(t, v, frame.loc[m, "_t"].to_numpy(float))
                frame.loc[m, col] = [_fmt(x) or "." for x in val]
    return rows, events


# ---------------------------------------------------------------------------------------------
# SDTM

_SPEC = re.compile(r"^(LB|CM):([^:]+)(?::(result|dose|indicator))?$", re.IGNORECASE)


def sdtm_mapping(opts: dict, toml_path, pc: ProblemCollector) -> dict:
    """``[formats.sdtm.time_varying]``: name -> (domain, code, value rule)."""
    out = {}
    for name, spec in dict(opts.get("time_varying", {}) or {}).items():
        m = _SPEC.match(str(spec).strip())
        if not m:
            pc.add(toml_path, None, f"formats.sdtm.time_varying.{name}",
                   f"expected \"LB:TESTCD\" or \"CM:TREATMENT\" (optionally \":indicator\"), got {spec!r}")
            continue
        dom, code, rule = m.group(1).upper(), m.group(2).strip(), (m.group(3) or "").lower()
        out[str(name)] = (dom, code, rule or ("result" if dom == "LB" else "dose"))
    return out


def read_sdtm_time_varying(folder, tables: dict, mapping: dict, infusion: pd.DataFrame,
                           pc: ProblemCollector, notes: list) -> pd.DataFrame | None:
    """Records from the LB and CM domains of an SDTM folder (``tables``: domain -> CsvTable)."""
    from ctkinetics.data.sdtm import _finding_times, _parse_dtc, _parse_each

    parts = []
    by_domain = {d: {code.upper(): (name, rule) for name, (dd, code, rule) in mapping.items() if dd == d}
                 for d in ("LB", "CM")}
    lb = tables.get("lb")
    if lb is not None and lb.require(["USUBJID", "LBTESTCD"], pc):
        f = lb.frame
        code = f["LBTESTCD"].astype(str).str.strip().str.upper()
        hit = code.isin(list(by_domain["LB"])).to_numpy()
        _note_unmapped(lb.name, code[~hit], "LB test", notes)
        if hit.any():
            v = lambda name: f"LB{name}"  # noqa: E731
            col = lambda name: f[v(name)] if v(name) in f else pd.Series("", index=f.index, dtype=object)  # noqa: E731
            times = _finding_times(lb, v, col, infusion, pc)
            value = lb.numbers("LBSTRESN", pc, what="a number") if "LBSTRESN" in f else np.full(len(f), np.nan)
            for i in np.flatnonzero(hit & np.isnan(value)):
                pc.add(lb.name, int(lb.rows[i]), "LBSTRESN", "expected the covariate's value, got an empty cell")
            idx = np.flatnonzero(hit)
            names = [by_domain["LB"][c][0] for c in code.iloc[idx]]
            parts.append(tv_records(f["USUBJID"].to_numpy()[idx], times[idx], names, value[idx], lb.path,
                                    lb.rows[idx]))
    cm = tables.get("cm")
    if cm is not None and cm.require(["USUBJID", "CMTRT", "CMSTDTC"], pc):
        f = cm.frame
        code = f["CMTRT"].astype(str).str.strip().str.upper()
        hit = code.isin(list(by_domain["CM"])).to_numpy()
        _note_unmapped(cm.name, code[~hit], "CM treatment", notes)
        if hit.any():
            start = pd.to_datetime(infusion["start"].reindex(f["USUBJID"].to_numpy()).to_numpy())
            when = pd.to_datetime(_parse_each(f["CMSTDTC"], _parse_dtc).to_numpy())
            for i in np.flatnonzero(hit & pd.isna(when)):
                pc.add(cm.name, int(cm.rows[i]), "CMSTDTC", f"expected an ISO 8601 date/time, got '{f['CMSTDTC'].iat[i]}'")
            times = ((when - start) / pd.Timedelta(days=1)).to_numpy(dtype=float, na_value=np.nan)
            dose = cm.numbers("CMDOSE", pc, what="a dose") if "CMDOSE" in f else np.full(len(f), np.nan)
            idx = np.flatnonzero(hit)
            names, values = [], []
            for i in idx:
                name, rule = by_domain["CM"][code.iat[i]]
                names.append(name)
                values.append(1.0 if rule == "indicator" or np.isnan(dose[i]) else dose[i])
            parts.append(tv_records(f["USUBJID"].to_numpy()[idx], times[idx], names, values, cm.path, cm.rows[idx]))
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else None


def _note_unmapped(name, codes: pd.Series, what: str, notes: list) -> None:
    left = sorted(set(codes) - {""})
    if left:
        notes.append(f"{name}: {what}(s) {', '.join(left[:10])}{' ...' if len(left) > 10 else ''} not read "
                     "(map one to a covariate in study.toml [formats.sdtm.time_varying])")


def sdtm_domains(dataset, starts: dict, sid_name: str, mapping: dict, used_codes: set) -> tuple[dict, dict]:
    """For the SDTM writer: the LB and CM domains holding the time-varying covariates and the
    ``[formats.sdtm.time_varying]`` mapping that reads them back. A covariate already mapped to
    CM in study.toml goes to CM (``CMDOSE`` = value), every other one to LB."""
    from datetime import timedelta

    from ctkinetics.data.sdtm import _dtc, _testcd, format_duration

    tv = dataset.time_varying
    if not len(tv):
        return {}, {}
    names = list(dict.fromkeys(tv["covariate"]))
    spec, out_map = {}, {}
    for name in names:
        dom, code, _ = mapping.get(name, ("LB", None, "result"))
        if dom == "CM":
            code = code or name.upper()
            spec[name] = ("CM", code)
            out_map[name] = f"CM:{code}:dose"
        else:
            code = code if code and code.upper() not in used_codes else _testcd(name, used_codes)
            used_codes.add(code.upper())
            spec[name] = ("LB", code)
            out_map[name] = f"LB:{code}"
    order = {s: k for k, s in enumerate(dataset.subject_ids)}
    tv = tv.assign(_k=tv["subject"].map(order)).sort_values(["_k", "time", "covariate"], kind="stable")
    dtc = np.array([_dtc(starts[s] + timedelta(days=float(t))) for s, t in zip(tv["subject"], tv["time"])],
                   dtype=object)
    dom_of = tv["covariate"].map(lambda c: spec[c][0]).to_numpy()
    domains = {}
    for dom in ("LB", "CM"):
        k = dom_of == dom
        d = tv.loc[k]
        if not len(d):
            continue
        code = d["covariate"].map(lambda c: spec[c][1]).to_numpy()
        value = d["value"].to_numpy(float)
        rows = {"STUDYID": sid_name, "DOMAIN": dom, "USUBJID": d["subject"].to_numpy(),
                f"{dom}SEQ": (d.groupby("subject", sort=False).cumcount().to_numpy() + 1).astype(float)}
        if dom == "LB":
            text = d["value"].map(repr).to_numpy()
            rows.update({"LBTESTCD": code, "LBTEST": d["covariate"].to_numpy(), "LBORRES": text, "LBSTRESC": text,
                         "LBSTRESN": value, "LBDTC": dtc[k],
                         "LBELTM": [format_duration(t) for t in d["time"].to_numpy(float)], "LBTPTREF": "CAR-T INFUSION"})
        else:
            rows.update({"CMTRT": code, "CMDOSE": value, "CMSTDTC": dtc[k]})
        domains[dom] = pd.DataFrame(rows)
    return domains, out_map
