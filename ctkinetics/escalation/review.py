"""The escalation review of a study as of a day: the one home that ``ctk escalate``, the cohort
report, ``summary.json`` and ``mtd.csv`` all read.

:func:`review_escalation` cuts the data to the day (a true replay, :meth:`Dataset.as_of`),
applies the protocol's rules (evaluability, dose shortfall, the sentinel gate, the committee's
record) and returns, in one :class:`EscalationReview`:

- the decision for the next participant (:func:`ctkinetics.escalation.decide`) and the MTD now
  with its pending policy and basis (:func:`ctkinetics.escalation.mtd.estimate_mtd`);
- the dose-transition pathways of the next cohorts (:mod:`.paths`);
- the participants with their status and why, the expansion groups' safety, the kinetic
  "no obvious expansion" check, the committee's record with the design's recommendation on
  each decision day and whether the committee followed it;
- the recommended dose by BOIN12 when the study has efficacy data (:mod:`.efficacy`);
- the warnings a committee must see first and the audit rows of every participant the rules
  left out or moved.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from ctkinetics.data.dataset import AUDIT_COLUMNS
from ctkinetics.data.safety import NO_SAFETY_DATA
from ctkinetics.escalation.adapter import design_of, latest_day, state_from_dataset
from ctkinetics.escalation.decision import Decision, decide
from ctkinetics.escalation.efficacy import DoseRecommendation, recommend_dose
from ctkinetics.escalation.expansion import expansion_table
from ctkinetics.escalation.mtd import MtdEstimate, estimate_mtd
from ctkinetics.escalation.no_expansion import expansion_check, expansion_notes
from ctkinetics.escalation.paths import DosePaths, paths_from_decision

COMMITTEE_COLUMNS = ["day", "action", "level", "subject", "decision", "rationale", "design_decision",
                     "design_next_level", "design_rule", "followed"]


@dataclass(frozen=True)
class EscalationReview:
    """Everything the committee reads about dose escalation as of one day (module doc)."""

    dataset: object  # the Dataset as of the day
    design: object  # BoinDesign
    state: object  # EscalationState
    decision: Decision
    mtd: MtdEstimate
    paths: DosePaths | None
    participants: pd.DataFrame
    expansion: pd.DataFrame
    no_expansion: pd.DataFrame
    committee: pd.DataFrame
    recommendation: DoseRecommendation | None
    warnings: tuple = ()
    audit: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(AUDIT_COLUMNS)))

    @property
    def as_of_day(self) -> float:
        return self.decision.as_of_day

    def design_dict(self) -> dict:
        d = self.design
        return {"target": d.target, "phi1": d.phi1, "phi2": d.phi2, "lambda_e": d.lambda_e,
                "lambda_d": d.lambda_d, "cohort_size": d.cohort_size, "max_subjects": d.max_subjects,
                "dlt_window_days": d.dlt_window_days, "stagger_days": d.stagger_days, "tite": d.tite,
                "cutoff_eli": d.cutoff_eli, "n_earlystop": d.n_earlystop, "extrasafe": d.extrasafe,
                "offset": d.offset, "bound_mtd": d.bound_mtd, "mtd_pending": d.mtd_pending,
                "min_completers": d.min_completers, "min_pending_followup": d.min_pending_followup,
                "evaluability": d.protocol.evaluability.describe(),
                "sentinel_gate": d.protocol.sentinel.describe(),
                "dose_shortfall": d.protocol.shortfall.describe()}

    def protocol_dict(self) -> dict:
        """What the protocol adds to the decision: the MTD now, warnings, the committee, the
        expansion groups and the RD (summary.json takes these beside the decision)."""
        from ctkinetics.jsonable import jsonable, records

        return jsonable({
            "mtd": self.mtd.to_dict(), "warnings": list(self.warnings),
            "expansion_groups": records(self.expansion), "committee": records(self.committee),
            "recommended_dose": None if self.recommendation is None else self.recommendation.to_dict(),
        })

    def to_dict(self) -> dict:
        """JSON-ready (``ctk escalate --json``)."""
        from ctkinetics.jsonable import jsonable, records

        out = self.decision.to_dict()
        out.update(self.protocol_dict())
        out.update({
            "design": self.design_dict(),
            "dose_paths": (None if self.paths is None else
                           {"assumptions": self.paths.assumptions, "paths": self.paths.lines(),
                            "table": records(self.paths.to_frame())}),
            "no_expansion_check": records(self.no_expansion),
        })
        return jsonable(out)


def review_escalation(dataset, as_of: float | None = None, *, paths: int = 2, cut: bool = True,
                      **design_overrides) -> EscalationReview:
    """The escalation review of ``dataset`` as of study day ``as_of`` (default: the latest day
    of the data). ``paths``: cohorts in the dose-transition pathways (0: none). ``cut`` False:
    the dataset is already :meth:`~ctkinetics.data.Dataset.as_of` that day (the report cuts
    once for all its sections). ``design_overrides`` replace settings of the study's design
    (e.g. ``tite=False``)."""
    cut = dataset.as_of(as_of) if as_of is not None and cut else dataset
    design = design_of(cut.study, **design_overrides)
    audit: list = []
    state = state_from_dataset(cut, audit)
    day = latest_day(state) if as_of is None else float(as_of)
    decision = decide(state, design, day)
    mtd = estimate_mtd(decision, design)
    participants = _participants(decision, state, cut)
    check = expansion_check(cut)
    committee = committee_log(cut, design_overrides)
    warnings = _warnings(cut, decision, design, participants, check, committee)
    audit += _not_evaluable_audit(participants)
    return EscalationReview(
        dataset=cut, design=design, state=state, decision=decision, mtd=mtd,
        paths=paths_from_decision(decision, design, paths) if paths else None,
        participants=participants, expansion=expansion_table(cut), no_expansion=check,
        committee=committee, recommendation=recommend_dose(decision, cut, design, cut.study.protocol.efficacy),
        warnings=tuple(warnings), audit=pd.DataFrame(audit, columns=list(AUDIT_COLUMNS)))


def _participants(decision, state, dataset) -> pd.DataFrame:
    """The decision's participants with what the committee reads beside their status."""
    pp = decision.participants
    by = {p.subject: p for p in state.participants}
    levels = state.levels
    extra = pd.DataFrame([{
        "subject": s, "planned_level": levels[by[s].planned_level] if by[s].planned_level >= 0 else levels[by[s].level],
        "group": by[s].group, "crs_grade": by[s].crs_grade, "icans_grade": by[s].icans_grade,
        "window_end_reason": by[s].window_end_reason,
    } for s in pp["subject"]], columns=["subject", "planned_level", "group", "crs_grade", "icans_grade",
                                        "window_end_reason"])
    dose = dict(zip(dataset.subjects["subject"].astype(str), dataset.subjects["dose"].astype(float)))
    out = pp.merge(extra, on="subject", how="left")
    out.insert(3, "dose_received", out["subject"].map(dose))
    return out


def _warnings(dataset, decision, design, participants, check, committee) -> list:
    T = design.dlt_window_days
    out = [w for w in dataset.warnings if w.startswith(NO_SAFETY_DATA)]
    held = decision.levels["gate_held"].to_numpy()
    out += [decision.gate_notes[j] for j in range(len(held)) if held[j]]
    pp = participants
    late = pp[(pp["status"] == "pending") & (decision.as_of_day - pp["infusion_day"] > T)]
    out += [f"'{r.subject}' is still pending {decision.as_of_day - r.infusion_day:g} days after infusion "
            f"(window {T:g} days): record the outcome, or window_end_day and window_end_reason"
            for r in late.itertuples(index=False)]
    out += [f"'{r.subject}': {r.reason}" for r in pp[pp["status"] == "awaiting committee"].itertuples(index=False)]
    out += expansion_notes(check, dataset.study.protocol.no_expansion)
    if len(committee):
        bad = committee[(committee["followed"] == False) & (committee["rationale"].astype(str).str.strip() == "")]  # noqa: E712
        out += [f"committee decision of day {r.day:g} departs from the design ({r.design_decision} -> "
                f"{r.design_next_level}) without a rationale" for r in bad.itertuples(index=False)]
    return out


def _not_evaluable_audit(pp: pd.DataFrame) -> list:
    rows = []
    for r in pp[pp["status"] == "not evaluable"].itertuples(index=False):
        rows.append(dict(zip(AUDIT_COLUMNS, ("safety.csv", None, "window_end_reason", r.subject, math.nan, "",
                                             "excluded from DLT decisions", r.reason or "not evaluable"))))
    return rows


def committee_log(dataset, design_overrides: dict | None = None) -> pd.DataFrame:
    """The committee's record with, for each decision, the design's recommendation on that
    day (the data cut to that day) and whether the committee followed it."""
    d = dataset.decisions
    if d is None or not len(d):
        return pd.DataFrame(columns=COMMITTEE_COLUMNS)
    rows = []
    for r in d.to_dict("records"):
        row = {k: r.get(k, "") for k in ("day", "action", "level", "subject", "decision", "rationale")}
        row.update(design_decision="", design_next_level="", design_rule="", followed=None)
        if r["action"] == "committee_decision":
            rec = _recommendation(dataset, float(r["day"]), design_overrides or {})
            if rec is not None:
                row.update(design_decision="suspend" if rec.suspended else rec.decision,
                           design_next_level=rec.next_level or "", design_rule=rec.rule,
                           followed=_followed(r, rec))
        rows.append(row)
    return pd.DataFrame(rows, columns=COMMITTEE_COLUMNS)


def _recommendation(dataset, day: float, overrides: dict):
    try:
        cut = dataset.as_of(day)
        return decide(state_from_dataset(cut), design_of(cut.study, **overrides), day)
    except Exception:  # noqa: BLE001 - a record before any infusion has no recommendation
        return None


def _followed(row: dict, rec) -> bool:
    said = str(row.get("decision", ""))
    if rec.decision == "stop":
        return said == "stop"
    if rec.suspended or rec.gate_held:
        return said == "suspend"
    return said not in ("stop", "suspend") and str(row.get("level", "")) == str(rec.next_level)
