"""Summaries across fits: two-stage statistics per dose level and model comparison."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError
from ctkinetics.stats import geometric_cv_pct


def geometric_stats(values):
    """n, geometric mean exp(mean ln x) and geometric CV % = 100·sqrt(exp(s²) − 1), s the SD
    of ln x (ddof 1). NaN when fewer than one (mean) or two (CV) positive values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0 or np.any(x <= 0):
        return x.size, np.nan, np.nan
    lx = np.log(x)
    gm = float(np.exp(lx.mean()))
    cv = float(geometric_cv_pct(lx.std(ddof=1))) if x.size > 1 else np.nan
    return x.size, gm, cv


def two_stage_summary(result, by_dose_level: bool = True) -> pd.DataFrame:
    """Two-stage population summary of successful individual fits.

    Per dose level (or overall) and parameter: n, geometric mean, geometric CV %, and the
    arithmetic mean, SD, median, min and max (for parameters that can be ≤ 0 only those).
    Failed fits are left out and counted in ``n_failed``; estimates flagged
    ``not_estimable`` (at a bound, no finite SE or an interval wider than 10⁶-fold) are left
    out and counted in ``n_not_estimable``: a bound is not a measurement, and one such value
    makes a geometric CV of 10¹⁰ %. A residual SD held fixed (``ci_method`` ``fixed``) is
    no estimate and has no row.
    """
    table = result.to_frame()
    table = table[table["ci_method"] != "fixed"]
    ok = {f.subject for f in result.fits if f.success}
    levels = result.dose_levels if by_dose_level else {}
    rows = []
    table = table.assign(dose_level=table["subject"].map(lambda s: levels.get(s, "") or "all"),
                         not_estimable=table["flags"].fillna("").astype(str)
                         .str.contains("not_estimable", regex=False))
    for (level, param), d in table.groupby(["dose_level", "parameter"], sort=False):
        fitted = d[d["subject"].isin(ok)]
        usable = fitted[~fitted["not_estimable"]]["estimate"].to_numpy(float)
        good = usable[np.isfinite(usable)]
        n, gm, cv = geometric_stats(good)
        rows.append({
            "dose_level": level, "parameter": param, "n": int(good.size),
            "n_failed": int(len(d) - len(fitted)),
            "n_not_estimable": int(fitted["not_estimable"].sum()),
            "geo_mean": gm, "geo_cv_pct": cv,
            "mean": float(good.mean()) if good.size else np.nan,
            "sd": float(good.std(ddof=1)) if good.size > 1 else np.nan,
            "median": float(np.median(good)) if good.size else np.nan,
            "min": float(good.min()) if good.size else np.nan,
            "max": float(good.max()) if good.size else np.nan,
            "unit": d["unit"].iloc[0], "model": result.model,
            "blq_method": result.blq_method, "error_model": result.error_model})
    return pd.DataFrame(rows)


def compare_models(*results) -> pd.DataFrame:
    """Per subject and fit: ofv, n_params, AIC, BIC and ΔAIC/ΔBIC to that subject's best.

    Fits compared must use the same data in the likelihood: the same BLQ method and the same
    number of observations per subject (error models may differ — all constants are kept).
    """
    if len(results) == 1 and isinstance(results[0], (list, tuple)):
        results = tuple(results[0])
    if len({r.blq_method for r in results}) > 1:
        raise SettingsError("models fitted with different BLQ methods use different data; "
                            "their likelihoods cannot be compared")
    frames = []
    for r in results:
        f = r.fits_frame()[["subject", "model", "error_model", "blq_method", "success",
                            "n_obs", "n_params", "ofv", "aic", "bic"]]
        frames.append(f)
    t = pd.concat(frames, ignore_index=True)
    if (t.groupby("subject")["n_obs"].nunique() > 1).any():
        raise SettingsError("the fits do not use the same observations for every subject "
                            "(different analytes?); AIC would not compare")
    t["delta_aic"] = t["aic"] - t.groupby("subject")["aic"].transform("min")
    t["delta_bic"] = t["bic"] - t.groupby("subject")["bic"].transform("min")
    t["best_aic"] = t["delta_aic"] == 0
    return t.sort_values(["subject", "aic"], kind="stable").reset_index(drop=True)
