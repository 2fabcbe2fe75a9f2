"""The NCA result: one long table, with wide, CDISC PP and summary views derived from it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ctkinetics.nca.options import NCAOptions
from ctkinetics.nca.parameters import PARAMETERS
from ctkinetics.nca.profiles import EXCLUSION_COLUMNS as SAMPLE_EXCLUSION_COLUMNS
from ctkinetics.nca.proportionality import dose_proportionality
from ctkinetics.nca.summary import summarise
from ctkinetics.stats import first_rows, group_codes

LONG_COLUMNS = ["subject", "dose_level", "analyte", "parameter", "start", "end", "value", "unit",
                "exclude"]
#: Columns of :attr:`NCAResult.exclusions`: the sample columns first, then the value columns.
EXCLUSION_COLUMNS = SAMPLE_EXCLUSION_COLUMNS + ["record", "parameter", "start", "end"]


def joined(frame: pd.DataFrame, keys: list, column: str, sep: str) -> pd.DataFrame:
    """One row per group of ``keys`` (in order of first appearance): the keys, and the
    group's ``column`` values joined by ``sep`` in row order. Vectorised grouping: no Python
    call per group beyond the join itself (a pandas ``agg(sep.join)`` is 20x slower)."""
    if frame.empty:
        return pd.DataFrame({**{k: frame[k] for k in keys}, column: pd.Series(dtype=object)})
    codes = group_codes(frame, keys)
    order = np.argsort(codes, kind="stable")
    cuts = np.flatnonzero(np.diff(codes[order])) + 1
    out = frame.iloc[order[np.r_[0, cuts]]][keys].reset_index(drop=True)
    values = frame[column].to_numpy(object)[order]
    out[column] = [sep.join(v) for v in np.split(values, cuts)]
    return out


def exclusion_table(samples: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """Samples left out (``record='sample'``) and excluded values (``record='value'``).

    A value is *excluded* when it was computed (finite) but its ``exclude`` is set; values
    that could not be computed keep their reason in the long table only.
    """
    bad = results[(results["exclude"] != "") & np.isfinite(results["value"].to_numpy(float))]
    keys = ["subject", "analyte", "start", "end", "exclude"]
    values = (joined(bad, keys, "parameter", ", ").rename(columns={"exclude": "reason"})
              .assign(record="value", time=np.nan, value=np.nan, blq=pd.NA, source_file="",
                      source_row=pd.NA))
    samples = samples.assign(record="sample", parameter="", start=np.nan, end=np.nan)
    if values.empty:
        out = samples[EXCLUSION_COLUMNS].reset_index(drop=True)
    elif samples.empty:
        out = values[EXCLUSION_COLUMNS].reset_index(drop=True)
    else:
        out = pd.concat([samples[EXCLUSION_COLUMNS], values[EXCLUSION_COLUMNS]], ignore_index=True)
    # one type per column whatever the mix of records (a nullable flag and row number)
    return out.astype({"blq": "boolean", "source_row": "Int64"})


def _why(d: pd.DataFrame, row: np.ndarray, column: np.ndarray, names: list) -> np.ndarray:
    """Per wide row (codes ``row``): which values are missing or excluded and why,
    ``"LAMZ, LAMZHL: R2ADJ < 0.9 (...) | TMAX: ..."``; '' when none."""
    text = np.full(int(row.max()) + 1 if len(row) else 0, "", dtype=object)
    bad = (d["exclude"] != "").to_numpy(bool)
    if bad.any():
        frame = pd.DataFrame({"row": row[bad], "exclude": d["exclude"].to_numpy(object)[bad],
                              "column": np.asarray(names, dtype=object)[column[bad]]})
        why = joined(frame, ["row", "exclude"], "column", ", ")
        why = joined(why.assign(t=why["column"] + ": " + why["exclude"]), ["row"], "t", " | ")
        text[why["row"].to_numpy()] = why["t"].to_numpy(object)
    return text


def _iso_duration(x: float, unit: str) -> str:
    if not np.isfinite(x):
        return ""
    u = unit.lower()
    if u in ("h", "hr", "hour", "hours"):
        return f"PT{x:g}H"
    if u in ("min", "minute", "minutes"):
        return f"PT{x:g}M"
    return f"P{x:g}D"


@dataclass(frozen=True)
class NCAResult:
    """Result of :func:`ctkinetics.nca.nca`.

    Attributes
    ----------
    results : DataFrame
        Long table: subject, dose_level, analyte, parameter, start, end, value, unit,
        exclude ('' or the reason the value is missing/unusable).
    exclusions : DataFrame
        Everything left out, with its reason (:data:`EXCLUSION_COLUMNS`): every sample left
        out of the NCA (``record='sample'``: subject, analyte, time, value, blq, source_file,
        source_row, reason) and every computed value a quality rule excluded
        (``record='value'``: one row per subject, analyte, interval and reason, ``parameter``
        listing the values concerned, e.g. "LAMZ, LAMZHL, AUCIFO").
    intervals : DataFrame
        The requested intervals (start, end, parameters).
    options : NCAOptions
        Every choice made (AUC rule, BLQ rule, interval AUC type, λz mode).
    subjects : DataFrame
        subject, dose_level, dose of the participants analysed.
    dose_levels : tuple
        Dose-level labels ordered by dose.
    """

    results: pd.DataFrame
    exclusions: pd.DataFrame
    intervals: pd.DataFrame
    options: NCAOptions
    subjects: pd.DataFrame
    dose_levels: tuple = ()

    def to_frame(self) -> pd.DataFrame:
        """The long table (a copy)."""
        return self.results.copy()

    def settings(self) -> pd.DataFrame:
        """The choices of this run as a two-column table (setting, value)."""
        return pd.DataFrame(list(self.options.describe().items()), columns=["setting", "value"])

    def get(self, parameter: str, subject=None, analyte=None, start=None, end=None) -> pd.Series:
        """Values of one parameter indexed by subject (convenience for tests and reports)."""
        d = self.results[self.results["parameter"] == parameter]
        for col, v in (("subject", subject), ("analyte", analyte), ("start", start), ("end", end)):
            if v is not None:
                d = d[d[col] == v]
        return d.set_index("subject")["value"]

    def quality_overview(self) -> pd.DataFrame:
        """How many participants' λz-dependent values were excluded or not estimable, and why.

        One row per analyte, status ('excluded': computed but failing a quality rule of
        :mod:`ctkinetics.nca.quality`; 'not estimable': no λz) and single reason: ``n``
        participants with that reason (one may have several), ``n_status`` participants with
        that status, ``of`` participants of the analyte. The CLI and the report print it so
        that no excluded value goes unnoticed.
        """
        from ctkinetics.nca.parameters import dependents

        cols = ["analyte", "status", "reason", "n", "n_status", "of"]
        r = self.results
        pairs = first_rows(group_codes(r, ["analyte", "subject"]))
        of = r["analyte"].iloc[pairs].value_counts()   # participants per analyte
        finite = np.isfinite(r["value"].to_numpy(float))
        # excluded: any λz-dependent value failing a rule; not estimable: λz itself is missing
        keep = (r["parameter"].isin(dependents("LAMZ")) & (r["exclude"] != "")).to_numpy(bool) & (
            finite | (r["parameter"] == "LAMZ").to_numpy(bool))
        if not keep.any():
            return pd.DataFrame(columns=cols)
        status = np.where(finite[keep], "excluded", "not estimable").tolist()
        analytes, texts, subjects = (r[k].to_numpy(object)[keep] for k in ("analyte", "exclude", "subject"))
        with_status, with_reason = {}, {}     # participants per (analyte, status[, reason])
        for a, st, text, subject in set(zip(analytes, status, texts, subjects)):
            with_status.setdefault((a, st), set()).add(subject)
            for reason in text.split("; ") if isinstance(text, str) else ():
                with_reason.setdefault((a, st, reason), set()).add(subject)
        # by analyte and status, most frequent reason first (ties: reasons in text order)
        keys = sorted(sorted(with_reason), key=lambda k: (k[0], k[1], -len(with_reason[k])))
        return pd.DataFrame({
            "analyte": [k[0] for k in keys], "status": [k[1] for k in keys],
            "reason": [k[2] for k in keys],
            "n": np.array([len(with_reason[k]) for k in keys], np.int64),
            "n_status": np.array([len(with_status[k[:2]]) for k in keys], np.int64),
            "of": np.array([of[k[0]] for k in keys], np.int64)}, columns=cols)

    def wide(self, excluded: str = "blank") -> pd.DataFrame:
        """One row per subject and analyte, one column per parameter (and interval).

        Columns are named by parameter, with ``[start-end]`` appended unless the interval is
        the whole profile (0 to inf). ``excluded='blank'`` (default) leaves a value out when
        its ``exclude`` is set (it fails a quality rule, :mod:`ctkinetics.nca.quality`);
        ``'keep'`` keeps the number. The last column, ``exclude``, says for each row which
        values are missing or excluded and why: ``"LAMZ, LAMZHL: R2ADJ < 0.9 (poor λz
        regression) | TMAX: ..."`` ('' when none).
        """
        if excluded not in ("blank", "keep"):
            raise ValueError(f"excluded must be 'blank' or 'keep', got {excluded!r}")
        d = self.results
        idx = ["subject", "dose_level", "analyte"]
        if d.empty:
            return d[idx].reset_index(drop=True).assign(exclude=np.empty(0))
        column, names = self._wide_columns(d)
        sa = group_codes(d, ["subject", "analyte"])
        keep = np.zeros(len(d), bool)     # the first value of each subject, analyte and column
        keep[first_rows(sa * len(names) + column)] = True
        d, column = d[keep], column[keep]
        value = d["value"].to_numpy(float)
        if excluded == "blank":
            value = np.where((d["exclude"] == "").to_numpy(bool), value, np.nan)
        row, _ = pd.factorize(group_codes(d, idx))
        firsts = first_rows(row)
        # rows sorted by subject, dose level, analyte (as DataFrame.pivot sorts its index)
        ranks = [pd.factorize(d[k].to_numpy()[firsts], sort=True)[0] for k in reversed(idx)]
        order = np.lexsort(ranks)
        position = np.empty(len(order), np.int64)
        position[order] = np.arange(len(order))
        grid = np.full((len(order), len(names)), np.nan)
        grid[position[row], column] = value
        w = d[idx].iloc[firsts[order]].reset_index(drop=True)
        w = pd.concat([w, pd.DataFrame(grid, columns=pd.Index(names, dtype=object))], axis=1)
        w["exclude"] = _why(d, row, column, names)[order]
        return w

    @staticmethod
    def _wide_columns(d: pd.DataFrame):
        """Each row's wide column (code) and the column names: the parameter, with
        ``[start-end]`` unless the interval is the whole profile, in order of appearance."""
        key = ["parameter", "start", "end"]
        codes = group_codes(d, key)
        firsts = first_rows(codes)
        names = [p if (a == 0 and np.isinf(b)) else f"{p}[{a:g}-{b:g}]"
                 for p, a, b in zip(*(d[k].to_numpy()[firsts] for k in key))]
        of_key, unique_names = pd.factorize(np.asarray(names, dtype=object))
        return of_key[codes], list(unique_names)

    def to_pp(self, studyid: str = "") -> pd.DataFrame:
        """CDISC SDTM PP view (PPTESTCD codes; PPSTINT/PPENINT as ISO 8601 durations)."""
        d = self.results
        reg = d["parameter"].map(PARAMETERS)
        tu = self.options.time_unit
        interval = reg.map(lambda p: p.interval)
        return pd.DataFrame({
            "STUDYID": studyid,
            "DOMAIN": "PP",
            "USUBJID": d["subject"],
            "PPCAT": d["analyte"],
            "PPTESTCD": reg.map(lambda p: p.pptestcd),
            "PPTEST": reg.map(lambda p: p.pptest),
            "PPORRES": d["value"].map(lambda v: "" if not np.isfinite(v) else f"{v:.10g}"),
            "PPORRESU": d["unit"],
            "PPSTRESN": d["value"],
            "PPSTRESU": d["unit"],
            "PPSTAT": np.where(np.isfinite(d["value"]), "", "NOT DONE"),
            "PPREASND": np.where(np.isfinite(d["value"]), "", d["exclude"]),
            "PPSTINT": np.where(interval, d["start"].map(lambda x: _iso_duration(x, tu)), ""),
            "PPENINT": np.where(interval, d["end"].map(lambda x: _iso_duration(x, tu)), ""),
            "PPMETHOD": self.options.method_label(),
        })

    def summary(self) -> pd.DataFrame:
        """Per dose level and analyte: n, geometric mean and CV %, mean, SD, median, range."""
        return summarise(self.results, self.dose_levels)

    def dose_proportionality(self, which=None, level: float = 0.90) -> pd.DataFrame:
        """Power model ln(P) = a + b·ln(dose), b with its ``level`` CI.

        ``which`` is a list of (parameter, start, end); default: CMAX over the whole
        profile and the first interval AUC requested (AUC0-28 by default).
        """
        if which is None:
            which = [("CMAX", 0.0, np.inf)]
            aucint = self.results[self.results["parameter"].str.startswith("AUCINT")]
            if not aucint.empty:
                first = aucint.iloc[0]
                which.append((first["parameter"], first["start"], first["end"]))
        doses = self.subjects.set_index("subject")["dose"]
        return dose_proportionality(self.results, doses, which, level)
