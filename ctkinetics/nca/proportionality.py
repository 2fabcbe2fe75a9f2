"""Dose proportionality by the power model ln(P) = a + b·ln(dose).

Ordinary least squares over participants with a positive value and a positive dose:
b = Sxy/Sxx, a = ȳ − b·x̄, s² = Σ(y − a − b·x)²/(n − 2), SE(b) = s/sqrt(Sxx), and the
two-sided CI b ± t(1 − α/2; n − 2)·SE(b) (90 % by default). b = 1 is exact proportionality.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.stats import t_quantile

PROPORTIONALITY_COLUMNS = ["analyte", "parameter", "start", "end", "n", "n_doses", "intercept",
                           "slope", "slope_se", "ci_level", "ci_low", "ci_high",
                           "ci_contains_1", "note"]


def power_model(dose, value, level=0.90) -> dict:
    """Fit ln(value) = a + b·ln(dose); returns n, n_doses, a, b, SE(b) and the CI of b."""
    dose, value = np.asarray(dose, float), np.asarray(value, float)
    ok = np.isfinite(dose) & np.isfinite(value) & (dose > 0) & (value > 0)
    x, y = np.log(dose[ok]), np.log(value[ok])
    n, n_doses = int(ok.sum()), int(np.unique(dose[ok]).size)
    res = {"n": n, "n_doses": n_doses, "intercept": np.nan, "slope": np.nan, "slope_se": np.nan,
           "ci_level": level, "ci_low": np.nan, "ci_high": np.nan, "ci_contains_1": pd.NA,
           "note": ""}
    dropped = int((~ok).sum())
    if n < 3 or n_doses < 2:
        res["note"] = "needs >= 3 positive values over >= 2 doses"
        return res
    xc = x - x.mean()
    sxx = float(xc @ xc)
    b = float(xc @ (y - y.mean())) / sxx
    a = float(y.mean() - b * x.mean())
    s2 = float(np.sum((y - a - b * x) ** 2)) / (n - 2)
    se = np.sqrt(s2 / sxx)
    q = t_quantile(0.5 + level / 2.0, n - 2)
    res.update(intercept=a, slope=b, slope_se=se, ci_low=b - q * se, ci_high=b + q * se,
               ci_contains_1=bool(b - q * se <= 1.0 <= b + q * se))
    if dropped:
        res["note"] = f"{dropped} value(s) missing or <= 0 left out"
    return res


def dose_proportionality(long: pd.DataFrame, doses: pd.Series, which, level=0.90) -> pd.DataFrame:
    """Power-model fits per analyte for each (parameter, start, end) in ``which``.

    ``doses`` maps subject -> dose; ``long`` is the long NCA table.
    """
    rows = []
    usable = (long["exclude"] == "").to_numpy(bool)
    name, lo, hi = (long[k].to_numpy() for k in ("parameter", "start", "end"))
    for parameter, start, end in which:
        sel = long[usable & (name == parameter) & (lo == start) & (hi == end)]
        for analyte, grp in sel.groupby("analyte", sort=True):
            fit = power_model(grp["subject"].map(doses).to_numpy(float), grp["value"].to_numpy(float), level)
            rows.append({"analyte": analyte, "parameter": parameter, "start": start, "end": end, **fit})
    return pd.DataFrame(rows, columns=PROPORTIONALITY_COLUMNS)
