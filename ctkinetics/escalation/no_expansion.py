"""'No obvious CAR-T expansion', computed from the kinetics for the committee to confirm.

The protocol lets the DLT window end early "when no obvious CAR-T expansion is detected" and
the committee decides whether such a participant is evaluable. The criterion is stated and
configurable (``[no_expansion]`` in study.toml, :class:`ctkinetics.data.protocol.NoExpansionCriterion`):
**no sample of the checked analyte kinds (default flow and qPCR) above ``fold_lloq`` × LLOQ
between infusion and day ``by_day`` (default 1 × LLOQ by day 14)**. A below-LLOQ sample counts
as not above. A participant whose samples do not reach ``by_day`` yet and shows no expansion so
far is "not yet assessable".

The check never changes a decision by itself: a participant counts as ``no_expansion`` only
when ``safety.csv`` records it as the reason the window ended (and, by default, once the
committee confirmed it in ``decisions.csv``). The table shows where data and record disagree.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

NOT_YET = "not yet assessable"


def no_expansion_flag(peak, lloq, fold_lloq: float):
    """Vectorised criterion: True where the peak (NaN: nothing quantified) is not above
    ``fold_lloq`` × LLOQ. The simulators call it on simulated peaks."""
    peak = np.asarray(peak, dtype=float)
    with np.errstate(invalid="ignore"):
        return ~(peak > fold_lloq * np.asarray(lloq, dtype=float))


def expansion_check(dataset, criterion=None) -> pd.DataFrame:
    """Per infused participant: the peak of each checked analyte by ``by_day`` relative to its
    LLOQ, the verdict, and what ``safety.csv`` records.

    Returns
    -------
    DataFrame
        subject, dose_level, analyte, peak (NaN: nothing quantified), lloq, fold_of_lloq,
        last_sample_day, verdict (``expansion`` / ``no obvious expansion`` / ``not yet
        assessable``), recorded (window_end_reason is no_expansion), agrees.
    """
    c = criterion or dataset.study.protocol.no_expansion
    kinds = set(c.kinds)
    analytes = [a for a, info in dataset.study.analytes.items() if info.kind in kinds]
    obs = dataset.observations
    obs = obs[obs["analyte"].isin(analytes) & ~obs["pre_infusion"].astype(bool) & (obs["time"] >= 0)]
    safety = dataset.safety
    columns = ["subject", "dose_level", "analyte", "peak", "lloq", "fold_of_lloq", "last_sample_day",
               "verdict", "recorded", "agrees"]
    if safety is None or not analytes:
        return pd.DataFrame(columns=columns)
    recorded = dict(zip(safety["subject"].astype(str), safety["window_end_reason"].astype(str) == "no_expansion"))
    level = dict(zip(dataset.subjects["subject"].astype(str), dataset.subjects["dose_level"].astype(str)))
    early = obs[obs["time"] <= c.by_day]
    quant = early[~early["blq"].astype(bool)]
    peak = quant.groupby(["subject", "analyte"])["value"].max()
    lloq = obs.groupby(["subject", "analyte"])["lloq"].min()
    last = obs.groupby(["subject", "analyte"])["time"].max()
    rows = []
    for s in safety["subject"].astype(str):
        for a in analytes:
            if (s, a) not in lloq.index:
                continue
            pk, lq, ls = peak.get((s, a), np.nan), float(lloq[(s, a)]), float(last[(s, a)])
            flag = bool(no_expansion_flag(pk, lq, c.fold_lloq))
            verdict = "expansion" if not flag else ("no obvious expansion" if ls >= c.by_day else NOT_YET)
            rows.append({"subject": s, "dose_level": level.get(s, ""), "analyte": a, "peak": pk, "lloq": lq,
                         "fold_of_lloq": pk / lq if np.isfinite(pk) else np.nan, "last_sample_day": ls,
                         "verdict": verdict, "recorded": recorded.get(s, False)})
    out = pd.DataFrame(rows, columns=columns[:-1])
    if out.empty:
        return pd.DataFrame(columns=columns)
    # a participant shows expansion when any checked analyte does
    per = out.groupby("subject")["verdict"].agg(lambda v: "expansion" if (v == "expansion").any()
                                               else (NOT_YET if (v == NOT_YET).any() else "no obvious expansion"))
    out["agrees"] = [(per[s] == "no obvious expansion") == rec or per[s] == NOT_YET
                     for s, rec in zip(out["subject"], out["recorded"])]
    return out


def expansion_notes(check: pd.DataFrame, criterion) -> list[str]:
    """Warnings for the committee: a participant the criterion flags but the record does not,
    and a recorded no_expansion the data contradict."""
    notes = []
    if check.empty:
        return notes
    for s, g in check.groupby("subject", sort=False):
        shows = (g["verdict"] == "expansion").any()
        flagged = (g["verdict"] == "no obvious expansion").all()
        rec = bool(g["recorded"].iat[0])
        if flagged and not rec:
            notes.append(f"'{s}': no obvious expansion by day {criterion.by_day:g} ({criterion.describe()}); "
                         "for the committee to confirm (window_end_reason no_expansion, decisions.csv "
                         "confirm_no_expansion)")
        if rec and shows:
            best = g.loc[g["fold_of_lloq"].idxmax()] if g["fold_of_lloq"].notna().any() else g.iloc[0]
            notes.append(f"'{s}': recorded as no_expansion, but {best['analyte']} reached {best['peak']:.3g} "
                         f"({best['fold_of_lloq']:.1f} x LLOQ) by day {criterion.by_day:g}")
    return notes
