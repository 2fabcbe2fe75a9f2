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
- Student t quantile for confidence intervals (:func:`t_quantile`), from the closed-form
  CDF for integer degrees of freedom (no scipy import: it would cost more than an NCA).

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

import math
from statistics import NormalDist

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


def weighted_quantile(values, weights, q):
    """Quantile(s) ``q`` of the distribution putting weight ``weights`` on ``values`` (finite
    values with finite, non-negative weights; NaN when none or all weights are 0).

    The weighted empirical distribution function is interpolated linearly between the
    sorted values at the plotting positions (W_i − w_i/2)/W (W_i the cumulative weight up to
    value i, W the total): Hazen's positions (i − 1/2)/n, R type 5, when the weights are
    equal. Outside the first and last positions the extreme values are returned.

    >>> weighted_quantile([1.0, 2.0, 3.0, 4.0], [1, 1, 1, 1], 0.5)
    2.5
    >>> weighted_quantile([1.0, 2.0, 3.0], [1, 1, 2], 0.75)    # positions 1/8, 3/8, 3/4
    3.0
    """
    x, w = np.asarray(values, float), np.asarray(weights, float)
    ok = np.isfinite(x) & np.isfinite(w) & (w >= 0)
    x, w = x[ok], w[ok]
    if x.size == 0 or w.sum() <= 0:
        return np.full(np.shape(q), np.nan) if np.ndim(q) else float("nan")
    o = np.argsort(x, kind="stable")
    x, w = x[o], w[o]
    pos = (np.cumsum(w) - 0.5 * w) / w.sum()
    out = np.interp(q, pos, x)
    return out if np.ndim(q) else float(out)


def _t_cdf(t: float, df: int) -> float:
    """Student t CDF for integer ``df`` (Abramowitz & Stegun 26.7.3 and 26.7.4)."""
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:  # odd: 1/2 + (θ + sinθ·cosθ·(1 + 2/3·cos²θ + 2·4/(3·5)·cos⁴θ + ...))/π
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 3) // 2 + 1):
            term *= (2 * k) / (2 * k + 1) * c2
            total += term
        return 0.5 + (theta + s * math.cos(theta) * total) / math.pi
    term, total = 1.0, 1.0  # even: 1/2 + sinθ·(1 + 1/2·cos²θ + 1·3/(2·4)·cos⁴θ + ...)/2
    for k in range(1, (df - 2) // 2 + 1):
        term *= (2 * k - 1) / (2 * k) * c2
        total += term
    return 0.5 + 0.5 * s * total


#: Above this many degrees of freedom :func:`t_quantile` uses the Cornish-Fisher expansion.
LARGE_DF = 300


def _t_quantile_expansion(p: float, df: int) -> float:
    """Cornish-Fisher expansion of the t quantile in 1/df around the normal quantile z
    (Abramowitz & Stegun 26.7.5); the first omitted term is O(df⁻⁵)."""
    z = NormalDist().inv_cdf(p)
    z2 = z * z
    g1 = z * (z2 + 1) / 4
    g2 = z * ((5 * z2 + 16) * z2 + 3) / 96
    g3 = z * (((3 * z2 + 19) * z2 + 17) * z2 - 15) / 384
    g4 = z * ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def t_quantile(p: float, df: int) -> float:
    """Quantile ``p`` of Student's t with integer ``df`` ≥ 1 degrees of freedom.

    Newton's method on the closed-form CDF (:func:`_t_cdf`), kept inside a bisection
    bracket, from the normal quantile; above :data:`LARGE_DF` degrees of freedom the
    Cornish-Fisher expansion. Accurate to ~1e-10 relative for 1e-6 ≤ p ≤ 1 − 1e-6 (the
    closed-form CDF loses digits in the far tails).

    Examples
    --------
    >>> round(t_quantile(0.95, 2), 6)      # printed t tables: 2.919986
    2.919986
    >>> round(t_quantile(0.975, 10), 6)    # 2.228139
    2.228139
    """
    df = int(df)
    if df < 1 or not 0.0 < p < 1.0:
        return float("nan")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df > LARGE_DF:
        return _t_quantile_expansion(p, df)
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        lo, hi = hi, 2.0 * hi
    x = min(max(NormalDist().inv_cdf(p), lo), hi)
    for _ in range(100):
        f = _t_cdf(x, df) - p
        if f > 0:
            hi = x
        else:
            lo = x
        pdf = math.exp(log_norm - (df + 1) / 2 * math.log1p(x * x / df))
        step = x - f / pdf
        x_new = step if lo < step < hi else 0.5 * (lo + hi)
        if abs(x_new - x) <= 1e-14 * max(1.0, abs(x)):
            return x_new
        x = x_new
    return x


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
    codes = group_codes(frame, by)     # one integer key: groups numbered by first appearance
    d = pd.DataFrame({"_g": codes, "_x": x.to_numpy(), "_ln": np.log(pos.to_numpy()),
                      "_pos": pos.notna().to_numpy()})
    g = d.groupby("_g", sort=True)
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
    keys = frame[by].iloc[first_rows(codes)].reset_index(drop=True)
    return pd.concat([keys, out.reset_index(drop=True)[list(STATISTICS)]], axis=1)


def group_codes(frame: pd.DataFrame, keys) -> np.ndarray:
    """Group number of each row of ``frame`` for the columns ``keys``, numbered in order of
    first appearance (``groupby(keys, sort=False, dropna=False).ngroup()``).

    >>> d = pd.DataFrame({"a": ["x", "y", "x", "y"], "b": [1, 1, 1, 2]})
    >>> group_codes(d, ["a", "b"]).tolist()
    [0, 1, 0, 2]
    """
    codes = np.zeros(len(frame), np.int64)
    for key in keys:
        c, uniques = pd.factorize(frame[key], use_na_sentinel=False)
        codes, _ = pd.factorize(codes * len(uniques) + c)   # renumbered: stays < len(frame)
    return codes.astype(np.int64, copy=False)


def first_rows(codes: np.ndarray) -> np.ndarray:
    """Position of the first row of each group (codes numbered by first appearance).

    >>> first_rows(np.array([0, 1, 0, 2])).tolist()
    [0, 1, 3]
    """
    _, first = np.unique(codes, return_index=True)
    return first
