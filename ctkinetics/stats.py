"""Descriptive statistics across participants: the one home of their formulas and rules.

Layer 0 (numpy and pandas only): NCA summaries, two-stage fit summaries, population Ω CV %,
virtual-trial summaries and the report's geometric-mean curves all call these functions, so
"geometric CV" means one formula everywhere.

Formulas
--------
- geometric mean: exp(mean(ln x))
- geometric CV %: 100·sqrt(exp(s²) − 1), s the SD (n − 1) of ln x
- arithmetic mean, SD (n − 1), CV % = 100·SD/mean, median, min, max
- quantiles: linear interpolation between order statistics (R's ``quantile`` type 7, numpy's
  default), so ``quantile(x, 0.5)`` is the median.

Business rules (PKNCA's ``pk.business``, ``PKNCA.options("max.missing")``)
-------------------------------------------------------------------------
- A value is *missing* when it is NaN (an NCA value that was excluded is given as NaN).
- If more than ``max_missing`` (default 0.5) of the values are missing, the statistic is NaN:
  a summary of the few participants left would misrepresent the group.
- For the geometric statistics a value ≤ 0 also counts as missing (PKNCA counts zeros as
  missing for ``geomean``/``geocv``; a negative value has no logarithm).
- The geometric CV needs two values, the SD and CV two, every other statistic one.

>>> round(geometric_mean([1.0, 4.0, 16.0]), 12)
4.0
>>> round(float(geometric_cv_pct(np.log(2.0))), 2)   # SD of ln x = ln 2
78.54
>>> s = summary_statistics([1.0, 4.0, np.nan, 16.0])
>>> (s["n"], s["n_missing"], round(s["geo_mean"], 12), s["median"])
(3, 1, 4.0, 4.0)
>>> bool(np.isnan(summary_statistics([1.0, np.nan, np.nan])["mean"]))   # 2/3 missing > 0.5
True
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: PKNCA's default ``max.missing``: the largest share of missing values a summary accepts.
MAX_MISSING = 0.5

#: Columns of :func:`summary_statistics` / :func:`grouped_statistics`, in order.
STATISTICS = ("n", "n_missing", "geo_mean", "geo_cv_pct", "mean", "sd", "cv_pct", "median",
              "min", "max")


def geometric_cv_pct(sd_log):
    """Geometric CV % from the SD of log values: 100·sqrt(exp(s²) − 1).

    Parameters
    ----------
    sd_log : float or array
        SD of ln x (for a log-normal random effect: its ω, the square root of its variance).

    Returns
    -------
    float or ndarray
        Percent; NaN where ``sd_log`` is NaN.

    Examples
    --------
    >>> round(float(geometric_cv_pct(0.3)), 4)   # ω = 0.3 on the log scale
    30.6878
    """
    return 100.0 * np.sqrt(np.expm1(np.asarray(sd_log, float) ** 2))


def geometric_mean(values) -> float:
    """exp(mean(ln x)) of the finite values; NaN if one of them is ≤ 0 or none is left.

    The business rules (zeros as missing, ``max_missing``) are applied by
    :func:`summary_statistics`, not here.
    """
    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    if x.size == 0 or np.any(x <= 0):
        return float("nan")
    return float(np.exp(np.log(x).mean()))


def quantile(values, q):
    """Quantile(s) ``q`` of the finite values (R type 7 / numpy linear); NaN when none."""
    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.full(np.shape(q), np.nan) if np.ndim(q) else float("nan")
    out = np.quantile(x, q)
    return out if np.ndim(q) else float(out)


def summary_statistics(values, *, max_missing: float = MAX_MISSING) -> dict:
    """Every statistic of :data:`STATISTICS` for one group of values, with the business rules.

    Parameters
    ----------
    values : array-like of float
        One value per participant; NaN for a missing or excluded value.
    max_missing : float
        Largest accepted share of missing values (PKNCA ``max.missing``, default 0.5); above
        it every statistic is NaN. For the geometric statistics values ≤ 0 count as missing.

    Returns
    -------
    dict
        ``n`` (values used by the arithmetic statistics), ``n_missing``, ``geo_mean``,
        ``geo_cv_pct``, ``mean``, ``sd``, ``cv_pct``, ``median``, ``min``, ``max``.
    """
    x = np.asarray(values, float).ravel()
    frame = pd.DataFrame({"g": np.zeros(x.size, int), "v": x})
    row = grouped_statistics(frame, ["g"], "v", max_missing=max_missing)
    if row.empty:
        return {"n": 0, "n_missing": 0, **{k: float("nan") for k in STATISTICS[2:]}}
    r = row.iloc[0]
    return {"n": int(r["n"]), "n_missing": int(r["n_missing"]),
            **{k: float(r[k]) for k in STATISTICS[2:]}}


def grouped_statistics(frame: pd.DataFrame, by, column: str, *,
                       max_missing: float = MAX_MISSING) -> pd.DataFrame:
    """:func:`summary_statistics` of ``frame[column]`` for every group of ``by``, vectorised.

    Returns one row per group: the ``by`` columns, then :data:`STATISTICS`. Groups keep their
    order of first appearance.

    Examples
    --------
    >>> d = pd.DataFrame({"level": ["a", "a", "b", "b"], "x": [1.0, 4.0, 2.0, 0.0]})
    >>> g = grouped_statistics(d, ["level"], "x")
    >>> g["geo_mean"].round(12).tolist()   # level b: the 0 is missing for the geometric mean
    [2.0, 2.0]
    """
    by = list(by)
    x = pd.to_numeric(frame[column], errors="coerce").astype(float)
    pos = x.where(x > 0)
    d = frame[by].assign(_x=x, _ln=np.log(pos), _pos=pos.notna(), _fin=x.notna())
    g = d.groupby(by, sort=False, dropna=False)
    out = g["_x"].agg(n="count", mean="mean", sd="std", median="median", min="min", max="max")
    total = g["_x"].size()
    n_pos = g["_pos"].sum()
    lg = g["_ln"].agg(["mean", "std"])
    out["n_missing"] = total - out["n"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cv_pct"] = 100.0 * out["sd"] / out["mean"]
        out["geo_mean"] = np.exp(lg["mean"])
        out["geo_cv_pct"] = geometric_cv_pct(lg["std"])
    too_many = out["n_missing"] > max_missing * total
    out.loc[too_many, ["mean", "sd", "cv_pct", "median", "min", "max"]] = np.nan
    geo_missing = total - n_pos
    out.loc[geo_missing > max_missing * total, ["geo_mean", "geo_cv_pct"]] = np.nan
    out.loc[n_pos < 1, "geo_mean"] = np.nan
    out["n"] = out["n"].astype(int)
    out["n_missing"] = out["n_missing"].astype(int)
    return out.reset_index()[by + list(STATISTICS)]
