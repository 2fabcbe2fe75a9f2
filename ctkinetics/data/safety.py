"""``safety.csv``: each infused participant's DLT outcome, window and events — read strictly.

Columns (only ``subject`` and ``infusion_day`` are required; days after infusion unless said):

==================  ===============================================================
subject             as in subjects.csv
infusion_day        study day of the (first) infusion
dlt                 1 DLT, 0 none (known at the end of the window), empty while pending
dlt_day             onset of the DLT
last_followup_day   last day the participant was seen so far
crs_grade, crs_day  highest CRS grade (0-5) and its onset
icans_grade, ...    highest ICANS grade (0-5), ``icans_day`` its onset
phase               escalation (default) | expansion
group               expansion group (default: "DL<level>"); at most ``[expansion] max_per_group``
window_end_day      day the DLT window ended, when it ended early (or ``dlt_window_days``)
window_end_reason   completed | dlt | withdrawn | lost_to_followup | no_expansion |
                    unrelated_ae | death (empty while the window is open)
evaluable           the committee's explicit call 1 / 0 (empty: by the [evaluability] rules)
==================  ===============================================================

:func:`check_safety` adds the rules across files, called for every input format: every
participant of subjects.csv who has samples after infusion has a safety row (a missing row
would silently drop a DLT from the dose decision), a participant without one and without
post-infusion samples is named in a warning ("no safety data for ..."), every event lies
inside its window, expansion groups stay within their cap and dose level, and a study with
safety data gives the ``[design]`` keys the escalation needs.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.data.cells import parse_flags
from ctkinetics.data.csvfile import ROW_COL, read_csv_text
from ctkinetics.data.problems import ProblemCollector
from ctkinetics.data.protocol import EARLY_END_REASONS, REQUIRED_DESIGN_KEYS, WINDOW_END_REASONS

PHASES = ("escalation", "expansion")
KNOWN_COLUMNS = ("subject", "infusion_day", "dlt", "dlt_day", "last_followup_day", "crs_grade",
                 "crs_day", "icans_grade", "icans_day", "phase", "group", "window_end_day",
                 "window_end_reason", "evaluable")
NO_SAFETY_DATA = "no safety data for"  # how the warning of a participant without a safety row starts


def _flag_column(t, column, pc, what) -> np.ndarray:
    """1 / 0 / NaN (empty) from a flag column, a problem for every other cell."""
    out = np.full(len(t.frame), np.nan)
    if column not in t.frame.columns:
        return out
    flag, stated, bad = parse_flags(t.text(column))
    out[stated] = flag[stated].astype(float)
    for i in np.flatnonzero(bad):
        pc.add(t.name, int(t.rows[i]), column, f"expected {what}, got '{t.text(column).iat[i]}'")
    return out


def _grades(t, column, pc) -> np.ndarray:
    if column not in t.frame.columns:
        return np.full(len(t.frame), np.nan)
    g = t.numbers(column, pc, what="a grade 0-5", minimum=0)
    for i in np.flatnonzero(~np.isnan(g) & ((g > 5) | (g != np.round(g)))):
        pc.add(t.name, int(t.rows[i]), column, f"expected a grade 0-5, got {g[i]:g}")
        g[i] = np.nan
    return g


def _choice(t, column, pc, choices, default) -> np.ndarray:
    if column not in t.frame.columns:
        return np.full(len(t.frame), default, dtype=object)
    low = t.text(column).astype(str).str.strip().str.lower()
    low = low.where(low != "", default)
    for i in np.flatnonzero(~low.isin(choices).to_numpy()):
        pc.add(t.name, int(t.rows[i]), column,
               f"expected one of {', '.join(c for c in choices if c) or 'the known values'}, got '{t.text(column).iat[i]}'")
    return low.where(low.isin(choices), default).to_numpy(dtype=object)


def open_table(path, required, known, pc: ProblemCollector, notes: list | None):
    """A protocol CSV as a :class:`CsvTable` with its notes kept, or None when a required
    column is missing (reported); unknown columns are reported too."""
    t = read_csv_text(path)
    if notes is not None:
        notes += [f"{t.name}: {n}" for n in t.notes]
    if not t.require(list(required), pc):
        return None
    t.refuse_unknown(known, pc)
    return t


def read_safety_csv(path, pc: ProblemCollector, notes: list | None = None) -> pd.DataFrame | None:
    """``safety.csv`` (module doc): typed columns in :data:`KNOWN_COLUMNS` order plus ``_row``."""
    t = open_table(path, ("subject", "infusion_day"), KNOWN_COLUMNS, pc, notes)
    if t is None:
        return None
    f = t.frame
    n = len(f)
    out = pd.DataFrame({"subject": f["subject"].astype(str).str.strip()})
    out["infusion_day"] = t.numbers("infusion_day", pc, what="a study day", required=True)
    out["dlt"] = _flag_column(t, "dlt", pc, "1 (DLT), 0 (no DLT) or empty (pending)")
    for c in ("dlt_day", "last_followup_day", "window_end_day"):
        out[c] = t.numbers(c, pc, what="a day after infusion", minimum=0) if c in f.columns else np.nan
    for c in ("crs", "icans"):
        out[f"{c}_grade"] = _grades(t, f"{c}_grade", pc)
        out[f"{c}_day"] = (t.numbers(f"{c}_day", pc, what="a day after infusion", minimum=0)
                           if f"{c}_day" in f.columns else np.nan)
    out["phase"] = _choice(t, "phase", pc, PHASES, "escalation")
    out["group"] = f["group"].astype(str).str.strip().to_numpy() if "group" in f.columns else np.full(n, "")
    out["window_end_reason"] = _choice(t, "window_end_reason", pc, WINDOW_END_REASONS, "")
    out["evaluable"] = _flag_column(t, "evaluable", pc, "1 (evaluable), 0 (not evaluable) or empty (by the rules)")
    for i in np.flatnonzero((out["subject"] == "").to_numpy()):
        pc.add(t.name, int(t.rows[i]), "subject", "expected a subject ID, got an empty cell")
    dup = out["subject"].duplicated().to_numpy()
    for i in np.flatnonzero(dup):
        pc.add(t.name, int(t.rows[i]), "subject", f"subject '{out['subject'].iat[i]}' is listed twice")
    _check_rows(t.name, out, t.rows, pc)
    out[ROW_COL] = t.rows
    return out


def _check_rows(name, s: pd.DataFrame, rows, pc) -> None:
    """Rules inside one row (the window length is checked with the study in check_safety)."""
    dlt, dday, lf = s["dlt"].to_numpy(), s["dlt_day"].to_numpy(), s["last_followup_day"].to_numpy()
    we, reason, ev = s["window_end_day"].to_numpy(), s["window_end_reason"].to_numpy(), s["evaluable"].to_numpy()
    early = np.isin(reason, EARLY_END_REASONS)

    def bad(mask, column, message):
        for i in np.flatnonzero(mask):
            pc.add(name, int(rows[i]), column, message(i))

    with np.errstate(invalid="ignore"):
        bad((dlt == 0) & ~np.isnan(dday), "dlt_day", lambda i: "a DLT day is given but dlt is 0")
        bad(dday > lf, "dlt_day", lambda i: f"DLT on day {dday[i]:g} is after the last follow-up (day {lf[i]:g})")
        bad(we > lf, "window_end_day",
            lambda i: f"the window ended on day {we[i]:g}, after the last follow-up (day {lf[i]:g})")
        bad((dlt == 1) & early, "window_end_reason",
            lambda i: f"dlt is 1 but the window ended for '{reason[i]}': a DLT ends the window with reason 'dlt'")
        bad((reason == "dlt") & (dlt != 1), "window_end_reason", lambda i: "reason 'dlt' but dlt is not 1")
        bad((reason == "dlt") & ~np.isnan(we) & ~np.isnan(dday) & (we != dday), "window_end_day",
            lambda i: f"the window ended with the DLT, on day {dday[i]:g}, not day {we[i]:g}")
        bad(early & np.isnan(we), "window_end_day",
            lambda i: f"window_end_reason '{reason[i]}' needs the day the window ended (window_end_day)")
        bad(~np.isnan(we) & (reason == ""), "window_end_reason",
            lambda i: f"window_end_day {we[i]:g} is given without a window_end_reason "
                      f"({', '.join(r for r in WINDOW_END_REASONS if r)})")
        bad((ev == 0) & (dlt == 1), "evaluable", lambda i: "a participant with a DLT is evaluable (evaluable 0, dlt 1)")
        for c in ("crs", "icans"):
            g, d = s[f"{c}_grade"].to_numpy(), s[f"{c}_day"].to_numpy()
            bad(~np.isnan(d) & ~(g > 0), f"{c}_day", lambda i, c=c: f"{c}_day is given without a {c}_grade above 0")


def _post_infusion_days(records: pd.DataFrame) -> dict:
    """subject -> (first, last) day of its samples after infusion."""
    r = records
    if r is None or not len(r):
        return {}
    post = r.loc[r["time"].to_numpy(float) >= 0]
    if "missing_reason" in post.columns:
        post = post.loc[post["missing_reason"].astype(str) == ""]
    g = post.groupby("subject", sort=False)["time"]
    return {s: (lo, hi) for s, lo, hi in zip(g.min().index, g.min().to_numpy(), g.max().to_numpy())}


def check_safety(study, subjects: pd.DataFrame, records: pd.DataFrame, safety: pd.DataFrame,
                 *, subjects_file: str, safety_file: str, pc: ProblemCollector, warnings: list) -> None:
    """The rules across files (module doc); problems go to ``pc``, findings to ``warnings``."""
    if study is not None:
        missing_keys = [k for k in REQUIRED_DESIGN_KEYS if k not in study.design.given]
        for k in missing_keys:
            pc.add(str(safety_file).replace("safety.csv", "study.toml"), None, f"design.{k}",
                   f"not given: a study with safety data ({safety_file}) needs [design] {k} for its dose "
                   "decisions (no silent default)")
    in_safety = set(safety["subject"].tolist())
    post = _post_infusion_days(records)
    rows = subjects["_row"].tolist() if "_row" in subjects.columns else list(range(2, len(subjects) + 2))
    for sid, row in zip(subjects["subject"].tolist(), rows):
        if sid in in_safety:
            continue
        if sid in post:
            lo, hi = post[sid]
            pc.add(subjects_file, row, "subject",
                   f"participant '{sid}' has samples after infusion (days {lo:g} to {hi:g}) but no row in "
                   f"{safety_file}: every infused participant needs a safety row (infusion_day, DLT "
                   "outcome), or the dose decision would silently miss them")
        else:
            warnings.append(f"{NO_SAFETY_DATA} '{sid}' (in {subjects_file}, not in {safety_file}): "
                            "counted as not yet infused, left out of the dose decision")
    if study is None:
        return
    _check_windows(study, safety, safety_file, pc)
    _check_groups(study, subjects, safety, safety_file, pc)


def _check_windows(study, s, safety_file, pc) -> None:
    T = float(study.design.dlt_window_days)
    rows = s["_row"].to_numpy()
    reason = s["window_end_reason"].to_numpy()
    for col in ("dlt_day", "window_end_day"):
        v = s[col].to_numpy(float)
        with np.errstate(invalid="ignore"):
            late = v > T
        for i in np.flatnonzero(late):
            what = "a DLT" if col == "dlt_day" else "the window's end"
            pc.add(safety_file, int(rows[i]), col,
                   f"{what} on day {v[i]:g} is outside the {T:g}-day DLT window ([design] dlt_window_days): "
                   + ("a DLT is an event inside the window; correct the day or record the event as an AE "
                      "(dlt 0)" if col == "dlt_day" else "give the day the window ended, at most the window"))
    we = s["window_end_day"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        short = (reason == "completed") & (we < T)
    for i in np.flatnonzero(short):
        pc.add(safety_file, int(rows[i]), "window_end_day",
               f"reason 'completed' but the window ended on day {we[i]:g} of {T:g}: give the reason it ended early")


def _check_groups(study, subjects, s, safety_file, pc) -> None:
    """Expansion groups: one dose level each, at most ``[expansion] max_per_group``."""
    level_of = dict(zip(subjects["subject"].astype(str), subjects["dose_level"].astype(str)))
    cap = study.protocol.expansion.max_per_group
    rows = s["_row"].to_numpy()
    exp = (s["phase"] == "expansion").to_numpy()
    group = s["group"].astype(str).to_numpy()
    for i in np.flatnonzero(~exp & (group != "")):
        pc.add(safety_file, int(rows[i]), "group",
               f"group '{group[i]}' is given for an escalation participant: groups are for the expansion phase")
    seen: dict = {}
    for i in np.flatnonzero(exp):
        sid = str(s["subject"].iat[i])
        lv = level_of.get(sid, "")
        g = group[i] or f"DL{lv}"
        first = seen.setdefault(g, {"level": lv, "rows": []})
        first["rows"].append(int(rows[i]))
        if lv != first["level"]:
            pc.add(safety_file, int(rows[i]), "group",
                   f"expansion group '{g}' mixes dose levels {first['level']} and {lv}: a group is one dose group")
        if len(first["rows"]) == cap + 1:
            pc.add(safety_file, int(rows[i]), "group",
                   f"expansion group '{g}' has more than {cap} participants (rows {first['rows'][0]} to "
                   f"{rows[i]}); the protocol caps a group at {cap} ([expansion] max_per_group)")


def expansion_group(safety: pd.DataFrame, subjects: pd.DataFrame) -> pd.Series:
    """The expansion group of each safety row ("" for escalation; default "DL<level>")."""
    level_of = dict(zip(subjects["subject"].astype(str), subjects["dose_level"].astype(str)))
    g = safety["group"].fillna("").astype(str)
    default = "DL" + safety["subject"].astype(str).map(level_of).fillna("")
    return g.where(g != "", default).where(safety["phase"] == "expansion", "")


def protocol_tables(study, subjects, records, safety, *, subjects_file: str, safety_file: str | None,
                    pc: ProblemCollector, warnings: list, sources: list) -> tuple:
    """The cross-file rules of ``safety.csv`` and the optional ``decisions.csv`` /
    ``efficacy.csv`` beside it: ``(decisions, efficacy)`` tables (None when absent); the
    files read are appended to ``sources``. Called by every reader through ``build_dataset``."""
    from pathlib import Path

    from ctkinetics.data.decisions import check_decisions, read_decisions_csv
    from ctkinetics.data.efficacy import read_efficacy_csv

    if safety is not None and subjects is not None:
        check_safety(study, subjects, records, safety, subjects_file=subjects_file,
                     safety_file=safety_file, pc=pc, warnings=warnings)
    folder = Path(safety_file).parent if safety_file else None
    decisions = efficacy = None
    if folder is not None and (folder / "decisions.csv").exists():
        path = folder / "decisions.csv"
        decisions = read_decisions_csv(path, study, subjects, pc, warnings)
        if decisions is not None:
            sources.append(path)
            if safety is None:
                pc.add(path, None, None, "a committee record needs the safety data (safety.csv) it speaks of")
            elif subjects is not None and study is not None:
                check_decisions(decisions, study, subjects, safety, file=str(path), safety_file=str(safety_file),
                                pc=pc, warnings=warnings)
    if folder is not None and (folder / "efficacy.csv").exists():
        path = folder / "efficacy.csv"
        efficacy = read_efficacy_csv(path, study, subjects, pc, warnings)
        if efficacy is not None:
            sources.append(path)
    drop = lambda t: None if t is None else t.drop(columns=[ROW_COL]).reset_index(drop=True)  # noqa: E731
    return drop(decisions), drop(efficacy)


def write_protocol_tables(dataset, folder) -> list:
    """Write ``decisions.csv`` and ``efficacy.csv`` of ``dataset`` into ``folder`` (the
    writers of every format call this beside ``safety.csv``); returns the paths written."""
    from pathlib import Path

    from ctkinetics.data.decisions import DECISION_COLUMNS
    from ctkinetics.data.efficacy import EFFICACY_COLUMNS

    def num(x):
        if x is None or (isinstance(x, float) and np.isnan(x)):
            return ""
        x = float(x)
        return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)

    out = []
    for name, table, columns, numeric in (("decisions.csv", dataset.decisions, DECISION_COLUMNS, ("day",)),
                                          ("efficacy.csv", dataset.efficacy, EFFICACY_COLUMNS,
                                           ("day", "value", "response"))):
        if table is None:
            continue
        t = table[list(columns)].copy()
        for c in numeric:
            t[c] = t[c].map(num)
        path = Path(folder) / name
        t.to_csv(path, index=False, lineterminator="\n")
        out.append(path)
    return out
