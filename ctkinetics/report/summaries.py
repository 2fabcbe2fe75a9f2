"""Small descriptive tables the review shows beside the NCA and the fits.

* :func:`data_counts` — per analyte: participants, samples, pre-infusion, BLQ after infusion.
* :func:`geometric_mean_profile` — the geometric-mean curve of the spaghetti plot.
* :func:`bcell_aplasia` — when B cells fell below their LLOQ after infusion and when they came
  back.

Geometric statistics come from their one home, :func:`ctkinetics.estimation.summary.geometric_stats`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.estimation.summary import geometric_stats


def data_counts(dataset) -> pd.DataFrame:
    """Per analyte: the data layer's one data-description table (participants, samples,
    pre-/post-infusion, BLQ before and after infusion, BLQ %, missing samples), the table
    ``ctk validate`` prints: :func:`ctkinetics.data.describe.describe_samples`."""
    return dataset.counts()


def geometric_mean_profile(dataset, analyte, *, min_quantified_fraction: float = 0.5) -> pd.DataFrame:
    """Geometric mean of quantified samples per dose level and sampling time.

    At each dose level and sampling time (times as recorded, days after infusion; data with
    actual times should be given nominal times first): n samples, n_quantified, and
    exp(mean ln x) of the quantified values. The mean is NaN when fewer than
    ``min_quantified_fraction`` of the samples were quantified — a mean of the few
    quantifiable values among BLQ ones would overstate the level.

    Returns
    -------
    DataFrame
        dose_level, time, n, n_quantified, geo_mean, geo_cv_pct
    """
    obs = dataset.observations
    d = obs[(obs["analyte"] == analyte) & ~obs["pre_infusion"].astype(bool)]
    level_of = dict(zip(dataset.subjects["subject"].astype(str),
                        dataset.subjects["dose_level"].astype(str)))
    d = d.assign(dose_level=d["subject"].astype(str).map(level_of).fillna(""),
                 time=d["time"].round(6))
    rows = []
    for (lv, t), g in d.groupby(["dose_level", "time"], sort=True):
        q = g.loc[~g["blq"].astype(bool), "value"].to_numpy(float)
        q = q[np.isfinite(q)]
        n_all = int(len(g))
        _, gm, cv = geometric_stats(q) if q.size else (0, np.nan, np.nan)
        if q.size < min_quantified_fraction * n_all:
            gm = cv = np.nan
        rows.append({"dose_level": lv, "time": float(t), "n": n_all, "n_quantified": int(q.size),
                     "geo_mean": gm, "geo_cv_pct": cv})
    return pd.DataFrame(rows, columns=["dose_level", "time", "n", "n_quantified", "geo_mean",
                                       "geo_cv_pct"])


def bcell_aplasia(dataset, analyte) -> pd.DataFrame:
    """B-cell aplasia per participant from the B-cell samples after infusion.

    Aplasia starts at the first post-infusion sample below the LLOQ; B cells have *returned*
    at the first quantified sample after that. Between samples the exact days are unknown:
    the table gives the sampling days that bound them.

    Returns
    -------
    DataFrame
        subject, dose_level, baseline (last quantified pre-infusion value), nadir (lowest
        quantified post-infusion value, NaN if none), aplasia_start, aplasia_end (NaN while
        ongoing), last_sample, status
    """
    obs = dataset.observations
    d = obs[obs["analyte"] == analyte].sort_values(["subject", "time"], kind="stable")
    level_of = dict(zip(dataset.subjects["subject"].astype(str),
                        dataset.subjects["dose_level"].astype(str)))
    rows = []
    for s, g in d.groupby("subject", sort=False):
        pre = g[g["pre_infusion"].astype(bool) | (g["time"] < 0)]
        post = g[~(g["pre_infusion"].astype(bool) | (g["time"] < 0))]
        preq = pre[~pre["blq"].astype(bool) & np.isfinite(pre["value"])]
        postq = post[~post["blq"].astype(bool) & np.isfinite(post["value"])]
        blq = post[post["blq"].astype(bool)]
        start = float(blq["time"].iloc[0]) if len(blq) else np.nan
        back = postq[postq["time"] > start] if np.isfinite(start) else postq.iloc[0:0]
        end = float(back["time"].iloc[0]) if len(back) else np.nan
        last = float(post["time"].iloc[-1]) if len(post) else np.nan
        if not np.isfinite(start):
            status = "no aplasia observed" if len(post) else "no post-infusion sample"
        elif np.isfinite(end):
            status = f"aplasia from day {start:g}; B cells back by day {end:g}"
        else:
            status = f"aplasia from day {start:g}, ongoing at last sample (day {last:g})"
        rows.append({"subject": str(s), "dose_level": level_of.get(str(s), ""),
                     "baseline": float(preq["value"].iloc[-1]) if len(preq) else np.nan,
                     "nadir": float(postq["value"].min()) if len(postq) else np.nan,
                     "aplasia_start": start, "aplasia_end": end, "last_sample": last,
                     "status": status})
    return pd.DataFrame(rows, columns=["subject", "dose_level", "baseline", "nadir",
                                       "aplasia_start", "aplasia_end", "last_sample", "status"])
