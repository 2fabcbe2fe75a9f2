"""The data-description table: what was sampled, per analyte (one home for these counts).

``ctk validate`` prints it, :meth:`Dataset.counts` returns it and the cohort report shows it
(``data_counts.csv``). Definitions:

- ``participants``: participants with at least one sample of the analyte;
- ``samples``: samples with a result (quantified or below the LLOQ), pre-infusion included;
- ``pre_infusion`` / ``post_infusion``: of those, before / after the infusion;
- ``blq_pre_infusion``: pre-infusion samples below the LLOQ (structural zeros: no CAR-T yet);
- ``blq_post_infusion``: samples below the LLOQ after the infusion (the ones that matter for
  fits and NCA), and ``blq_pct`` = 100 × blq_post_infusion / post_infusion (1 decimal);
  there is no undivided "BLQ" count, so no surface can mix the two;
- ``missing``: planned samples without a result (excluded, listed in the audit).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

DESCRIPTION_COLUMNS = ("analyte", "kind", "unit", "lloq", "participants", "samples", "pre_infusion",
                       "post_infusion", "blq_pre_infusion", "blq_post_infusion", "blq_pct", "missing")


def describe_samples(dataset) -> pd.DataFrame:
    """One row per declared analyte (study order): see the module docstring for each column.

    Examples
    --------
    >>> describe_samples(load_study("data/sample/sle_cohort"))  # doctest: +SKIP
    """
    obs = dataset._observations
    miss = dataset._missing
    analytes = list(dataset.study.analytes)
    pre = obs["pre_infusion"].to_numpy(bool)
    blq = obs["blq"].to_numpy(bool)
    frame = pd.DataFrame({"analyte": obs["analyte"].to_numpy(), "subject": obs["subject"].to_numpy(),
                          "pre": pre, "post": ~pre, "blq_pre": blq & pre, "blq_post": blq & ~pre})
    g = frame.groupby("analyte", sort=False)
    sums = g[["pre", "post", "blq_pre", "blq_post"]].sum().reindex(analytes, fill_value=0).astype(int)
    n_missing = (miss["analyte"].value_counts() if miss is not None and len(miss) else pd.Series(dtype=int))
    out = pd.DataFrame({
        "analyte": analytes,
        "kind": [dataset.study.analytes[a].kind for a in analytes],
        "unit": [dataset.study.analytes[a].unit for a in analytes],
        "lloq": [dataset.study.analytes[a].lloq for a in analytes],
        "participants": g["subject"].nunique().reindex(analytes, fill_value=0).astype(int).to_numpy(),
        "samples": (sums["pre"] + sums["post"]).to_numpy(),
        "pre_infusion": sums["pre"].to_numpy(),
        "post_infusion": sums["post"].to_numpy(),
        "blq_pre_infusion": sums["blq_pre"].to_numpy(),
        "blq_post_infusion": sums["blq_post"].to_numpy(),
        "missing": n_missing.reindex(analytes, fill_value=0).astype(int).to_numpy(),
    })
    post = out["post_infusion"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["blq_pct"] = np.where(post > 0, np.round(100.0 * out["blq_post_infusion"] / post, 1), np.nan)
    return out[list(DESCRIPTION_COLUMNS)]
