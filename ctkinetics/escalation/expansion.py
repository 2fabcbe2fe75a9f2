"""Safety of the expansion phase, tabulated per expansion group (no DLT counting).

The protocol's expansion phase treats one or more dose groups of up to
``[expansion] max_per_group`` participants (9) each; DLTs are not used for dose decisions
there, but safety is still watched per group. :func:`expansion_table` gives, per group: its
dose level, participants, infusion days, CRS and ICANS (any grade / at the sentinel gate's
thresholds), events meeting DLT criteria (for monitoring only), deaths, windows that ended
early, and the places left before the cap.
"""
from __future__ import annotations

import pandas as pd

from ctkinetics.data.safety import expansion_group

COLUMNS = ["group", "dose_level", "dose", "n", "cap", "places_left", "first_infusion_day",
           "last_infusion_day", "crs_any", "crs_severe", "icans_any", "icans_severe",
           "dlt_criteria_met_monitoring", "deaths", "ended_early"]


def expansion_table(dataset) -> pd.DataFrame:
    """One row per expansion group (empty when nobody is in the expansion phase)."""
    s = dataset.safety
    if s is None or not (s["phase"] == "expansion").any():
        return pd.DataFrame(columns=COLUMNS)
    subjects = dataset.subjects
    s = s.assign(group=expansion_group(s, subjects).to_numpy())
    s = s[s["phase"] == "expansion"]
    if s.empty:
        return pd.DataFrame(columns=COLUMNS)
    proto = dataset.study.protocol
    level = dict(zip(subjects["subject"].astype(str), subjects["dose_level"].astype(str)))
    gate = proto.sentinel
    rows = []
    for g, d in s.groupby("group", sort=True):
        lv = level.get(str(d["subject"].iat[0]), "")
        cap = proto.expansion.max_per_group
        rows.append({
            "group": g, "dose_level": lv, "dose": dataset.study.dose_levels.get(lv, float("nan")),
            "n": len(d), "cap": cap, "places_left": max(cap - len(d), 0),
            "first_infusion_day": d["infusion_day"].min(), "last_infusion_day": d["infusion_day"].max(),
            "crs_any": int((d["crs_grade"] >= 1).sum()), "crs_severe": int((d["crs_grade"] >= gate.crs_grade).sum()),
            "icans_any": int((d["icans_grade"] >= 1).sum()),
            "icans_severe": int((d["icans_grade"] >= gate.icans_grade).sum()),
            "dlt_criteria_met_monitoring": int((d["dlt"] == 1).sum()),
            "deaths": int((d["window_end_reason"] == "death").sum()),
            "ended_early": int(d["window_end_reason"].isin(["withdrawn", "lost_to_followup", "no_expansion",
                                                            "unrelated_ae", "death"]).sum()),
        })
    return pd.DataFrame(rows, columns=COLUMNS)
