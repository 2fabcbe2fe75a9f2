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
    codes = frame.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
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
        d = self.results[self.results["parameter"].isin(dependents("LAMZ"))]
        of = self.results.groupby("analyte")["subject"].nunique()
        finite = np.isfinite(d["value"].to_numpy(float))
        # excluded: any λz-dependent value failing a rule; not estimable: λz itself is missing
        d = d[(d["exclude"] != "") & (finite | (d["parameter"] == "LAMZ").to_numpy())]
        if d.empty:
            return pd.DataFrame(columns=cols)
        status = np.where(np.isfinite(d["value"].to_numpy(float)), "excluded", "not estimable")
        d = d[["analyte", "exclude", "subject"]].assign(status=status).drop_duplicates()
        n_status = d.groupby(["analyte", "status"])["subject"].nunique()
        texts = d["exclude"].drop_duplicates()
        single = pd.DataFrame({"exclude": texts, "reason": texts.str.split("; ")}).explode("reason")
        d = d.merge(single, on="exclude").drop_duplicates(["analyte", "status", "reason", "subject"])
        out = d.groupby(["analyte", "status", "reason"]).size().rename("n").reset_index()
        out["n_status"] = [n_status[(a, st)] for a, st in zip(out["analyte"], out["status"])]
        out["of"] = out["analyte"].map(of).astype(int)
        return out.sort_values(["analyte", "status", "n"], ascending=[True, True, False],
                               kind="stable").reset_index(drop=True)[cols]

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
        key = ["parameter", "start", "end"]
        codes = d.groupby(key, sort=False).ngroup().to_numpy()
        names = [p if (a == 0 and np.isinf(b)) else f"{p}[{a:g}-{b:g}]"
                 for p, a, b in d[key].drop_duplicates().itertuples(index=False)]
        col = np.asarray(names, dtype=object)[codes] if len(d) else np.empty(0, object)
        d = d.assign(column=col).drop_duplicates(["subject", "analyte", "column"])
        if excluded == "blank":
            d = d.assign(value=d["value"].where(d["exclude"] == ""))
        idx = ["subject", "dose_level", "analyte"]
        w = d.pivot(index=idx, columns="column", values="value")
        w = w.reindex(columns=list(dict.fromkeys(names)))
        why = joined(d[d["exclude"] != ""], idx + ["exclude"], "column", ", ")
        why = joined(why.assign(t=why["column"] + ": " + why["exclude"]), idx, "t", " | ")
        text = why.set_index(idx)["t"]
        w["exclude"] = text.reindex(w.index).fillna("").to_numpy() if len(w) else []
        return w.reset_index().rename_axis(columns=None)

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
