"""From a study's tables to an :class:`EscalationState` (the only place that knows column names).

Inputs are the pinned ``ctkinetics.data`` shapes (DEVELOPERS.md): ``dose_levels`` (label ->
dose, ordered by dose), ``subjects`` (subject, dose_level, dose, ...), ``safety`` (subject,
infusion_day, dlt 1/0/NaN, dlt_day, last_followup_day — days after infusion —, crs/icans
grades and days, phase, group, window_end_day, window_end_reason, evaluable) and the optional
committee record ``decisions``. Subjects without a safety row are not yet infused and are left
out (the data layer warns about them, or refuses them when they have samples after infusion).

Two protocol rules are applied here, each recorded in the returned audit rows:

- **dose shortfall** (:class:`ctkinetics.data.protocol.DoseShortfall`): a participant whose
  product reached less than ``min_fraction`` of the planned level's dose is counted at the
  highest level whose dose was reached (``level_received``; below the lowest level: not
  evaluable), or is not evaluable, or stays at the planned level;
- **the committee's record**: levels retired and sentinel holds released become dated
  :class:`CommitteeEvent`; a confirmation of "no obvious expansion" dates the participant's
  ``confirmed_day``.
"""
from __future__ import annotations

import math

from ctkinetics.data.dataset import AUDIT_COLUMNS
from ctkinetics.data.protocol import DoseShortfall
from ctkinetics.errors import DataValidationError, Problem, SettingsError
from ctkinetics.escalation.boundaries import BoinDesign
from ctkinetics.escalation.decision import Decision, decide
from ctkinetics.escalation.state import CommitteeEvent, EscalationState, Participant


def _f(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _s(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def shortfall_level(planned: int, received: float, doses, rule: DoseShortfall) -> tuple:
    """``(level counted, evaluable override, note)`` for a participant planned at ``planned``
    who received ``received`` cells (NaN: as planned). ``evaluable`` is NaN (by the rules) or 0."""
    planned_dose = doses[planned]
    if not math.isfinite(received) or received >= rule.min_fraction * planned_dose * (1 - 1e-12):
        return planned, math.nan, ""
    frac = received / planned_dose
    head = f"received {received:.3g} cells = {100 * frac:.0f} % of level dose {planned_dose:.3g}"
    if rule.rule == "planned_level":
        return planned, math.nan, f"{head}: counted at the planned level (rule planned_level)"
    if rule.rule == "not_evaluable":
        return planned, 0.0, f"{head}: not evaluable for DLT decisions (rule not_evaluable)"
    reached = [j for j, d in enumerate(doses) if d <= received * (1 + 1e-9)]
    if not reached:
        return planned, 0.0, f"{head}, below the lowest level: not evaluable (rule level_received)"
    return max(reached), math.nan, f"{head}: counted at the level reached (rule level_received)"


def _committee(decisions, index) -> tuple:
    events, confirmed = [], {}
    if decisions is None:
        return (), confirmed
    for r in decisions.itertuples(index=False):
        if r.action in ("retire_level", "release_sentinel_hold") and _s(r.level) in index:
            events.append(CommitteeEvent(float(r.day), r.action, index[_s(r.level)], _s(r.subject), _s(r.rationale)))
        elif r.action == "confirm_no_expansion":
            confirmed[_s(r.subject)] = min(float(r.day), confirmed.get(_s(r.subject), math.inf))
    return tuple(events), confirmed


def state_from_frames(dose_levels: dict, subjects, safety, eliminated_from: int | None = None,
                      file: str = "safety.csv", *, decisions=None, shortfall: DoseShortfall | None = None,
                      audit: list | None = None) -> EscalationState:
    """Build the escalation state from the subjects and safety tables (module doc).

    ``audit`` (a list) receives one row (AUDIT_COLUMNS) per participant the shortfall rule
    touched.

    Raises
    ------
    DataValidationError
        A safety row for an unknown subject, or a subject on an unknown dose level.
    """
    labels = list(dose_levels)
    doses = [float(v) for v in dose_levels.values()]
    index = {lab: i for i, lab in enumerate(labels)}
    level_of = dict(zip(subjects["subject"].astype(str), subjects["dose_level"].astype(str)))
    dose_of = dict(zip(subjects["subject"].astype(str), subjects["dose"].astype(float))) \
        if "dose" in subjects.columns else {}
    events, confirmed = _committee(decisions, index)
    rule = shortfall or DoseShortfall()
    problems, participants = [], []
    if safety is not None:
        for row, s in enumerate(safety.to_dict("records"), start=2):
            subj = str(s["subject"])
            lab = level_of.get(subj)
            if lab is None or lab not in index:
                problems.append(Problem(file, row, "subject", f"subject '{subj}' has no dose level in subjects"
                                        if lab is None else f"subject '{subj}' is on dose level '{lab}', not "
                                                           f"one of {labels}"))
                continue
            planned = index[lab]
            level, evaluable, note = shortfall_level(planned, dose_of.get(subj, math.nan), doses, rule)
            given = _f(s.get("evaluable", math.nan))
            if note and audit is not None:
                action = "not evaluable" if evaluable == 0 else ("reassigned" if level != planned else "kept")
                audit.append(dict(zip(AUDIT_COLUMNS, ("subjects.csv", None, "dose", subj, math.nan, "",
                                                      action, f"dose shortfall: {note}"))))
            participants.append(Participant(
                subject=subj, level=level, infusion_day=_f(s["infusion_day"]),
                dlt=_f(s.get("dlt", math.nan)), dlt_day=_f(s.get("dlt_day", math.nan)),
                last_followup_day=_f(s.get("last_followup_day", math.nan)),
                phase=str(s.get("phase", "escalation") or "escalation").strip().lower(),
                crs_grade=_f(s.get("crs_grade", math.nan)), icans_grade=_f(s.get("icans_grade", math.nan)),
                window_end_day=_f(s.get("window_end_day", math.nan)),
                window_end_reason=_s(s.get("window_end_reason", "")),
                evaluable=given if not math.isnan(given) else evaluable,
                confirmed_day=confirmed.get(subj, math.nan),
                crs_day=_f(s.get("crs_day", math.nan)), icans_day=_f(s.get("icans_day", math.nan)),
                group=_s(s.get("group", "")), planned_level=planned if level != planned else -1,
            ))
    if problems:
        raise DataValidationError(problems)
    return EscalationState(levels=tuple(labels), participants=tuple(participants), doses=tuple(doses),
                           eliminated_from=eliminated_from, committee=events)


def latest_day(state: EscalationState) -> float:
    """The latest study day the data speak of (an infusion, a DLT, a follow-up visit, a window's
    end or a committee event)."""
    days = [e.day for e in state.committee]
    for p in state.participants:
        days.append(p.infusion_day)
        for rel in (p.dlt_day, p.last_followup_day, p.window_end_day):
            if not math.isnan(rel):
                days.append(p.infusion_day + rel)
    if not state.participants:
        raise SettingsError("no participant has been infused: give --as-of to ask for the first decision")
    return float(max(days))


def state_from_dataset(dataset, audit: list | None = None) -> EscalationState:
    """The escalation state of a loaded study (``ctkinetics.data.Dataset``)."""
    study = dataset.study
    if dataset.safety is None:
        raise SettingsError(f"study '{study.name}' has no safety data (safety.csv): nothing to decide")
    return state_from_frames(study.dose_levels, dataset.subjects, dataset.safety, decisions=dataset.decisions,
                             shortfall=study.protocol.shortfall, audit=audit)


def design_of(study, **overrides) -> BoinDesign:
    """The BOIN design of a study: its ``[design]`` and protocol settings, then ``overrides``."""
    return BoinDesign.from_study(study.design, protocol=study.protocol, **overrides)


def decide_study(dataset, as_of_day: float | None = None, **design_overrides) -> tuple:
    """Decision for a loaded study; with ``as_of_day`` the data are first cut to that day
    (:meth:`ctkinetics.data.Dataset.as_of`, a true replay), else the latest day of the data.
    Returns ``(decision, state, design)``."""
    if as_of_day is not None:
        dataset = dataset.as_of(as_of_day)
    design = design_of(dataset.study, **design_overrides)
    state = state_from_dataset(dataset)
    day = latest_day(state) if as_of_day is None else float(as_of_day)
    return decide(state, design, day), state, design


__all__ = ["state_from_frames", "state_from_dataset", "decide_study", "design_of", "latest_day",
           "shortfall_level", "Decision"]
