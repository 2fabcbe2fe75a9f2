"""Per-dose-level summaries of NCA parameters.

Statistics over participants (values excluded or missing are left out; ``n`` counts the
rest): arithmetic mean, SD (n − 1), median, min, max; geometric mean exp(mean(ln x)) and
geometric CV % = 100·sqrt(exp(s²) − 1) with s the SD of ln x (only when every value is
> 0). Time-like parameters (registry ``summary='median_range'``, e.g. Tmax) are reported as
median [min, max] only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.nca.parameters import PARAMETERS

SUMMARY_COLUMNS = ["dose_level", "analyte", "parameter", "start", "end", "n", "geo_mean",
                   "geo_cv_pct", "mean", "sd", "median", "min", "max", "display"]


def geometric_cv_pct(sd_log):
    """Geometric CV % from the SD of log values: 100·sqrt(exp(s²) − 1)."""
    return 100.0 * np.sqrt(np.expm1(np.asarray(sd_log, float) ** 2))


def _fmt(x):
    return "NA" if not np.isfinite(x) else f"{x:.4g}"


def summarise(long: pd.DataFrame, dose_order=None) -> pd.DataFrame:
    """Summary table from the long NCA table (columns as :data:`SUMMARY_COLUMNS`)."""
    d = long[(long["exclude"] == "") & np.isfinite(long["value"])].copy()
    keys = ["dose_level", "analyte", "parameter", "start", "end"]
    if d.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    d["log"] = np.log(d["value"].where(d["value"] > 0))
    g = d.groupby(keys, sort=False, dropna=False)
    out = g["value"].agg(n="count", mean="mean", sd="std", median="median", min="min", max="max")
    all_pos = g["value"].agg(lambda v: bool((v > 0).all()))
    lg = g["log"].agg(["mean", "std"])
    out["geo_mean"] = np.where(all_pos, np.exp(lg["mean"]), np.nan)
    out["geo_cv_pct"] = np.where(all_pos, geometric_cv_pct(lg["std"]), np.nan)
    out = out.reset_index()
    kind = out["parameter"].map(lambda p: PARAMETERS[p].summary if p in PARAMETERS else "arithmetic")
    med_only = kind == "median_range"
    out.loc[med_only, ["geo_mean", "geo_cv_pct", "mean", "sd"]] = np.nan
    out.loc[kind == "arithmetic", ["geo_mean", "geo_cv_pct"]] = np.nan
    out["display"] = [
        f"{_fmt(r.median)} [{_fmt(r.min)}, {_fmt(r.max)}]" if k == "median_range"
        else f"{_fmt(r.geo_mean)} ({_fmt(r.geo_cv_pct)}%)" if k == "geometric" and np.isfinite(r.geo_mean)
        else f"{_fmt(r.mean)} ({_fmt(r.sd)})"
        for r, k in zip(out.itertuples(), kind)
    ]
    if dose_order is not None:
        rank = {lvl: i for i, lvl in enumerate(dose_order)}
        out["_r"] = out["dose_level"].map(rank).fillna(len(rank))
        out = out.sort_values(["_r", "analyte"], kind="stable").drop(columns="_r")
    return out[SUMMARY_COLUMNS].reset_index(drop=True)
