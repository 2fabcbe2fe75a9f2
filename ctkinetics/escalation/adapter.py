"""From a study's tables to an :class:`EscalationState` (the only place that knows column names).

Inputs are the pinned ``ctkinetics.data`` shapes (DEVELOPERS.md): ``dose_levels`` (label ->
dose, ordered by dose), ``subjects`` (subject, dose_level, dose, ...) and ``safety`` (subject,
infusion_day, dlt 1/0/NaN, dlt_day, last_followup_day — both days after infusion —, crs_grade,
icans_grade, phase). Subjects without a safety row are not yet infused and are left out.
"""
from __future__ import annotations

import math

from ctkinetics.errors import DataValidationError, Problem, SettingsError
from ctkinetics.escalation.boundaries import BoinDesign
from ctkinetics.escalation.decision import Decision, decide
from ctkinetics.escalation.state import EscalationState, Participant


def _f(v) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x


def state_from_frames(dose_levels: dict, subjects, safety, eliminated_from: int | None = None,
                      file: str = "safety.csv") -> EscalationState:
    """Build the escalation state from the subjects and safety tables.

    Raises
    ------
    DataValidationError
        A safety row for an unknown subject, or a subject on an unknown dose level.
    """
    labels = list(dose_levels)
    index = {lab: i for i, lab in enumerate(labels)}
    level_of = dict(zip(subjects["subject"].astype(str), subjects["dose_level"].astype(str)))
    problems = []
    participants = []
    if safety is not None:
        for row, s in enumerate(safety.itertuples(index=False), start=2):
            subj = str(s.subject)
            if subj not in level_of:
                problems.append(Problem(file, row, "subject", f"subject '{subj}' has no dose level in subjects"))
                continue
            lab = level_of[subj]
            if lab not in index:
                problems.append(Problem(file, row, "subject",
                                        f"subject '{subj}' is on dose level '{lab}', not one of {labels}"))
                continue
            phase = str(getattr(s, "phase", "escalation") or "escalation").strip().lower()
            participants.append(Participant(
                subject=subj, level=index[lab], infusion_day=_f(s.infusion_day),
                dlt=_f(getattr(s, "dlt", math.nan)), dlt_day=_f(getattr(s, "dlt_day", math.nan)),
                last_followup_day=_f(getattr(s, "last_followup_day", math.nan)), phase=phase,
                crs_grade=_f(getattr(s, "crs_grade", math.nan)),
                icans_grade=_f(getattr(s, "icans_grade", math.nan)),
            ))
    if problems:
        raise DataValidationError(problems)
    return EscalationState(levels=tuple(labels), participants=tuple(participants),
                           doses=tuple(float(v) for v in dose_levels.values()),
                           eliminated_from=eliminated_from)


def latest_day(state: EscalationState) -> float:
    """The latest study day the data speak of (an infusion, a DLT, a follow-up visit)."""
    days = []
    for p in state.participants:
        days.append(p.infusion_day)
        for rel in (p.dlt_day, p.last_followup_day):
            if not math.isnan(rel):
                days.append(p.infusion_day + rel)
    if not days:
        raise SettingsError("no participant has been infused: give --as-of to ask for the first decision")
    return float(max(days))


def decide_study(dataset, as_of_day: float | None = None, **design_overrides) -> tuple:
    """Decision for a loaded study (``ctkinetics.data.Dataset``); ``as_of_day`` defaults to
    :func:`latest_day`. Returns ``(decision, state, design)``."""
    study = dataset.study
    design = BoinDesign.from_study(study.design, **design_overrides)
    safety = dataset.safety
    if safety is None:
        raise SettingsError(f"study '{study.name}' has no safety data (safety.csv): nothing to decide")
    state = state_from_frames(study.dose_levels, dataset.subjects, safety)
    day = latest_day(state) if as_of_day is None else float(as_of_day)
    return decide(state, design, day), state, design


__all__ = ["state_from_frames", "decide_study", "latest_day", "Decision"]
