"""Each participant's efficacy outcome (responder or not) and the recommended dose by BOIN12.

The outcome comes from ``efficacy.csv`` rows of the ``[efficacy] endpoint``: a row's response
is its ``response`` cell, else ``value >= threshold`` (``direction = "le"``: ``value <=
threshold``). A participant is a **responder** once any assessment up to ``assessment_day``
responds; a **non-responder** once assessed at or after ``assessment_day`` without a response;
otherwise the outcome is pending. Without ``assessment_day`` the latest assessment decides
(any response: responder).

:func:`recommend_dose` combines it with the DLT outcomes of the escalation participants whose
DLT window is complete (DLT or none) into BOIN12 counts (:mod:`.boin12`) and selects the
optimal biological dose; participants with a pending outcome are left out and named.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ctkinetics.escalation.boin12 import Boin12Counts, Boin12Design, ObdSelection, next_dose, select_obd

OUTCOME_COLUMNS = ["subject", "endpoint", "response", "assessed_day", "basis"]


def efficacy_outcomes(efficacy: pd.DataFrame | None, settings) -> pd.DataFrame:
    """Responder (1), non-responder (0) or pending (NaN) per participant with assessments."""
    if efficacy is None or settings.endpoint is None:
        return pd.DataFrame(columns=OUTCOME_COLUMNS)
    e = efficacy[efficacy["endpoint"] == settings.endpoint].sort_values(["subject", "day"], kind="stable")
    resp = e["response"].to_numpy(float).copy()
    if settings.threshold is not None:
        v = e["value"].to_numpy(float)
        with np.errstate(invalid="ignore"):
            by_value = (v >= settings.threshold) if settings.direction == "ge" else (v <= settings.threshold)
        resp = np.where(np.isnan(resp) & ~np.isnan(v), by_value.astype(float), resp)
    e = e.assign(r=resp)
    rows = []
    a = settings.assessment_day
    for s, g in e.groupby("subject", sort=False):
        hit = g[(g["r"] == 1) & ((g["day"] <= a) if a is not None else True)]
        if len(hit):
            d = float(hit["day"].iat[0])
            rows.append((s, settings.endpoint, 1.0, d, f"response on day {d:g}"))
        elif a is not None and (g["day"] >= a).any():
            d = float(g.loc[g["day"] >= a, "day"].iat[0])
            rows.append((s, settings.endpoint, 0.0, d, f"no response by the day-{a:g} assessment (day {d:g})"))
        elif a is None and len(g):
            d = float(g["day"].iat[-1])
            rows.append((s, settings.endpoint, 0.0, d, f"no response at the latest assessment (day {d:g})"))
        else:
            rows.append((s, settings.endpoint, math.nan, math.nan,
                         f"pending: last assessment day {g['day'].max():g}, outcome known at day {a:g}"))
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS)


@dataclass(frozen=True)
class DoseRecommendation:
    """The recommended dose (the OBD by BOIN12) with its basis."""

    obd: ObdSelection
    design: Boin12Design
    outcomes: pd.DataFrame  # subject, level, dlt, response, used
    next_level: str | None  # BOIN12's next cohort from the current level (None: stop)
    next_rule: str
    left_out: tuple = field(default=())

    @property
    def level(self):
        return self.obd.obd_level

    @property
    def basis(self) -> str:
        who = (f"; left out, outcome pending: {', '.join(self.left_out)}" if self.left_out else "")
        return (f"RD by BOIN12 (phi_T {self.design.phi_t:g}, phi_E {self.design.phi_e:g}, utilities "
                f"{'/'.join(f'{u:g}' for u in self.design.utilities)}): "
                + (f"dose level {self.level} — {self.obd.reason}" if self.level else self.obd.reason) + who)

    def to_dict(self) -> dict:
        from ctkinetics.jsonable import records

        return {"level": self.level, "basis": self.basis, "mtd_level": self.obd.mtd_level,
                "boin12_next_level": self.next_level, "boin12_next_rule": self.next_rule,
                "left_out": list(self.left_out), "table": records(self.obd.to_frame())}


def recommend_dose(decision, dataset, design, eff_settings) -> DoseRecommendation | None:
    """BOIN12's RD from today's decision (DLT statuses) and the efficacy outcomes; None when
    the study has no ``[efficacy] endpoint`` or no ``efficacy.csv``."""
    if eff_settings.endpoint is None or dataset.efficacy is None:
        return None
    outcomes = efficacy_outcomes(dataset.efficacy, eff_settings)
    resp = dict(zip(outcomes["subject"].astype(str), outcomes["response"]))
    pp = decision.participants
    pp = pp[pp["phase"] == "escalation"]
    levels = list(decision.levels["level"])
    rows, left = [], []
    for r in pp.to_dict("records"):
        complete = r["status"] in ("dlt", "no dlt")
        e = resp.get(str(r["subject"]), math.nan)
        used = complete and not math.isnan(e)
        if r["status"] in ("pending", "partial", "awaiting committee") or (complete and math.isnan(e)):
            left.append(str(r["subject"]))
        rows.append({"subject": r["subject"], "level": r["level"], "dlt": 1.0 if r["status"] == "dlt" else
                     (0.0 if r["status"] == "no dlt" else math.nan), "response": e, "used": used})
    table = pd.DataFrame(rows, columns=["subject", "level", "dlt", "response", "used"])
    u = table[table["used"]]
    counts = Boin12Counts.from_outcomes([levels.index(x) for x in u["level"]], u["response"].astype(int),
                                        u["dlt"].astype(int), len(levels))
    b12 = Boin12Design.from_settings(eff_settings, design.target, design.cohort_size)
    obd = select_obd(b12, counts, levels)
    cur = levels.index(decision.current_level)
    step = next_dose(b12, counts, cur)
    nxt = levels[step.next_level] if step.next_level >= 0 else None
    return DoseRecommendation(obd, b12, table, nxt, step.rule, tuple(left))
