"""Per-dose-level summaries of NCA parameters (statistics from :mod:`ctkinetics.stats`).

Statistics over the participants of a dose level, with PKNCA's business rules (see
:mod:`ctkinetics.stats`): an excluded value (non-empty ``exclude``) or a missing one counts as
missing; when more than ``max_missing`` (default 0.5) of the values are missing the statistic
is not calculated (NaN, shown "NC"); for the geometric mean and CV values ≤ 0 also count as
missing. ``n`` is the number of values used, ``n_missing`` the number left out.

How each parameter is summarised comes from the registry (``NCAParameter.summary``):
'geometric' (geometric mean and CV %, plus the arithmetic statistics), 'arithmetic' (mean,
SD, median, range) or 'median_range' (Tmax and other times: median [min, max] only).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics import formatting
from ctkinetics.nca.parameters import PARAMETERS
from ctkinetics.stats import MAX_MISSING, grouped_statistics

SUMMARY_COLUMNS = ["dose_level", "analyte", "parameter", "start", "end", "n", "geo_mean",
                   "geo_cv_pct", "mean", "sd", "median", "min", "max", "display", "n_missing",
                   "unit"]

#: Shown for a statistic that is not calculated (PKNCA's ``not_calculated``).
NOT_CALCULATED = "NC"


def _display(kind, r) -> str:
    if kind == "median_range":
        text = formatting.median_range(r.median, r.min, r.max, html=False)
    elif kind == "geometric" and np.isfinite(r.geo_mean):
        text = formatting.geo_mean_cv(r.geo_mean, r.geo_cv_pct, html=False)
    elif np.isfinite(r.mean):
        sd = formatting.number(r.sd, html=False)
        text = f"{formatting.number(r.mean, html=False)} ({sd or NOT_CALCULATED})"
    else:
        text = ""
    return text or NOT_CALCULATED


def summarise(long: pd.DataFrame, dose_order=None, *, max_missing: float = MAX_MISSING) -> pd.DataFrame:
    """Summary table from the long NCA table (columns as :data:`SUMMARY_COLUMNS`)."""
    keys = ["dose_level", "analyte", "parameter", "start", "end"]
    if long.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    value = long["value"].where(long["exclude"].fillna("") == "")
    d = long[keys].assign(value=value.astype(float))
    out = grouped_statistics(d, keys, "value", max_missing=max_missing)
    units = long.groupby(keys, sort=False, dropna=False)["unit"].first().reset_index(drop=True)
    out["unit"] = units.to_numpy()
    kind = out["parameter"].map(lambda p: PARAMETERS[p].summary if p in PARAMETERS else "arithmetic")
    out.loc[kind == "median_range", ["geo_mean", "geo_cv_pct", "mean", "sd"]] = np.nan
    out.loc[kind == "arithmetic", ["geo_mean", "geo_cv_pct"]] = np.nan
    out["display"] = [_display(k, r) for r, k in zip(out.itertuples(), kind)]
    if dose_order is not None:
        rank = {lvl: i for i, lvl in enumerate(dose_order)}
        out["_r"] = out["dose_level"].map(rank).fillna(len(rank))
        out = out.sort_values(["_r", "analyte"], kind="stable").drop(columns="_r")
    return out[SUMMARY_COLUMNS].reset_index(drop=True)
