"""The committee's decision for today: :func:`decide` (pure) and its :class:`Decision`.

``decide(state, design, as_of_day)`` answers "escalate, stay or de-escalate — and may the next
participant be infused yet?" from the data known on ``as_of_day``:

- the *current* level is that of the most recent escalation-phase infusion (the start level
  when nobody is treated yet);
- the rules of :mod:`ctkinetics.escalation.rules` give the action and the rule that fired;
- the stagger then gives the earliest day the next participant may be infused.

Stagger semantics (the study's 14-day stagger, DOMAIN §1): within a dose group the first
participant infused at that level is the sentinel; no other participant of that level may be
infused before ``sentinel infusion day + stagger_days``. The sentinel of a new level may be
infused as soon as the decision allows it. The stagger does not chain (the third participant
does not wait for the second); it never applies across levels. When accrual is suspended or
the trial stops there is no next infusion day; ``suspension_lifts_by_day`` gives the day by
which accrual resumes if no further DLT occurs (found by re-applying the rules at the coming
window ends and guard days, so several holds combine correctly).

:func:`decide` is built on :mod:`ctkinetics.escalation.fast` (``situation`` then
``decide_situations``), the path :func:`~ctkinetics.escalation.fast.decide_fast` and the
simulators use, and only adds the tables and the wording.
"""
from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ctkinetics.jsonable import jsonable, records
from ctkinetics.escalation.boundaries import BoinDesign
from ctkinetics.escalation.fast import (Situation, current_level, decide_situations, sentinel_days,
                                       situation, situation_from_counts)
from ctkinetics.escalation.rules import ELIMINATE as ELIMINATE_ACTION
from ctkinetics.escalation.rules import RULES, tite_estimate
from ctkinetics.escalation.state import EscalationState, level_counts


_PARTICIPANT_COLUMNS = ["subject", "level", "phase", "infusion_day", "status", "followup_days",
                        "window_end_day", "dlt_day"]


@dataclass(frozen=True)
class TiteDetails:
    """TITE-BOIN imputation at the current level (p̂ = y/n when nothing is pending)."""

    n: int
    y: int
    pending: int
    complete: int
    stft: float
    p_tilde: float
    p_hat: float
    followup: tuple  # ((subject, u_days), ...) of pending participants


@dataclass(frozen=True)
class Decision:
    """A decision for the next participant, as of a study day.

    Attributes
    ----------
    decision : str
        ``escalate``, ``stay``, ``de-escalate``, ``eliminate`` or ``stop``.
    rule : str
        The rule that fired, in words.
    current_level, next_level : str or None
        Labels; ``next_level`` is None after a stop.
    suspended : bool
        Accrual held: more than half pending at the current level (any pending for plain
        BOIN), one pending DLT would eliminate the current dose, or a guard waits.
    earliest_next_infusion_day : float or None
        max(as_of_day, stagger constraint at ``next_level``); None when suspended or stopped.
    levels : pandas.DataFrame
        Per level: n, DLTs, pending, complete, expansion participants, STFT, p̂, boundaries for
        its n, eliminated, sentinel day and the stagger day.
    participants : pandas.DataFrame
        Per participant infused by ``as_of_day``: level, phase, status, follow-up.
    """

    as_of_day: float
    decision: str
    rule: str
    rule_id: int
    current_level: str
    next_level: str | None
    suspended: bool
    earliest_next_infusion_day: float | None
    suspension_lifts_by_day: float | None
    stagger_note: str
    eliminated_from: int | None
    eliminated_levels: tuple
    tite: TiteDetails
    level_data: dict = field(repr=False)
    participant_rows: tuple = field(repr=False)

    @cached_property
    def levels(self):
        """Per-level table (built on first use, so that simulators calling decide stay fast)."""
        import pandas as pd

        frame = pd.DataFrame(self.level_data)
        for col in ("escalate_if_le", "deescalate_if_ge", "eliminate_if_ge"):
            frame[col] = pd.array(frame[col].tolist(), dtype="Int64")
        return frame

    @cached_property
    def participants(self):
        import pandas as pd

        return pd.DataFrame(list(self.participant_rows), columns=_PARTICIPANT_COLUMNS)

    def to_frame(self):
        return self.levels.copy()

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        lv = records(self.levels)
        pp = records(self.participants)
        t = self.tite
        return {
            "as_of_day": jsonable(self.as_of_day), "decision": self.decision, "rule": self.rule,
            "current_level": self.current_level, "next_level": self.next_level,
            "suspended": self.suspended,
            "earliest_next_infusion_day": jsonable(self.earliest_next_infusion_day),
            "suspension_lifts_by_day": jsonable(self.suspension_lifts_by_day),
            "stagger": self.stagger_note, "eliminated_levels": list(self.eliminated_levels),
            "tite": {"n": t.n, "dlt": t.y, "pending": t.pending, "complete": t.complete,
                     "stft": jsonable(t.stft), "p_tilde": jsonable(t.p_tilde), "p_hat": jsonable(t.p_hat),
                     "followup_days": {s: jsonable(u) for s, u in t.followup}},
            "levels": lv, "participants": pp,
        }


def _lift_day(state: EscalationState, design: BoinDesign, sit: Situation, statuses) -> float | None:
    """First day a hold lifts if no further DLT occurs (None if it never does on its own).

    Candidates are the ends of the pending windows and, with the follow-up guard, the days the
    pending participants reach that follow-up. At each candidate the state is re-read with the
    outcomes still unknown today treated as no DLT, and the rules are applied again: the first
    day they no longer hold accrual is the answer. Using the rules themselves keeps this
    consistent however several holds combine.
    """
    as_of = sit.as_of
    pend = [s for s in statuses if s.status == "pending" and s.level == sit.level]
    cands = {s.window_end_day for s in pend}
    if design.min_pending_followup > 0:
        cands |= {s.infusion_day + design.min_pending_followup for s in pend}
    known = {s.subject: s for s in statuses}
    future = []  # today's participants, with anything not known today unknown
    for p in state.participants:
        st = known.get(p.subject)
        if st is None or p.infusion_day > as_of:
            continue
        if st.status == "pending":
            p = dataclasses.replace(p, dlt=math.nan, dlt_day=math.nan)
        future.append(p)
    hypo = EscalationState(state.levels, tuple(future), state.doses, sit.previous_elimination
                           if sit.previous_elimination < len(state.levels) else None)
    k = len(state.levels)
    for day in sorted(d for d in cands if d > as_of):
        later = situation(hypo, design, day)
        later = dataclasses.replace(later, level=sit.level)  # nobody new is infused meanwhile
        if not decide_situations(design, k, [later])[0].suspended:
            return float(day)
    return None


def decide(state: EscalationState, design: BoinDesign, as_of_day: float) -> Decision:
    """The decision for the next participant with the data known on ``as_of_day``.

    Examples
    --------
    >>> from ctkinetics.escalation import BoinDesign, EscalationState, Participant, decide
    >>> s = EscalationState(("L1", "L2"), [Participant(f"P{i}", 0, 0.0, 0.0) for i in range(3)])
    >>> decide(s, BoinDesign(), as_of_day=30).decision
    'escalate'
    """
    as_of = float(as_of_day)
    T = design.dlt_window_days
    k = len(state.levels)
    counts = level_counts(state, as_of, T)
    sit = situation_from_counts(state, design, as_of, counts)
    step = decide_situations(design, k, [sit])[0]  # the same path as decide_fast
    level, rule_id, nxt, p_hat, elim = step.current_level, step.rule_id, step.next_level, step.p_hat, step.eliminated_from
    stopped, suspended = step.stopped, step.suspended

    n, y, c = int(counts.n[level]), int(counts.y[level]), int(counts.c[level])
    stft = float(counts.stft[level])
    r = n - c
    p_tilde = (y + design.target / 2) / (r + 1)
    pending_u = tuple((s.subject, s.followup_days) for s in counts.statuses
                      if s.level == level and s.status == "pending")
    tite = TiteDetails(n, y, c, r, stft, p_tilde, p_hat if n else math.nan, pending_u)

    sentinels = [float(v) for v in sit.sentinel]
    stagger_day = [s + design.stagger_days if not math.isnan(s) else math.nan for s in sentinels]
    earliest, lifts, note = step.earliest_next_infusion_day, None, ""
    if stopped:
        note = "no further infusion: the trial stops"
    elif suspended:
        lifts = _lift_day(state, design, sit, counts.statuses)
        note = "accrual suspended; no infusion until enough DLT data arrive"
    else:
        gate = stagger_day[nxt]
        if math.isnan(gate):
            note = f"next participant is the first (sentinel) of {state.levels[nxt]}: no stagger wait"
        else:
            note = (f"sentinel of {state.levels[nxt]} infused on day {sentinels[nxt]:g}; "
                    f"others of that level from day {gate:g} (stagger {design.stagger_days:g} d)")

    # scipy only when the elimination rule is worded (keeps decide cheap for simulators)
    p_over = float(design.prob_overdose(y, n)) if n and RULES[rule_id].action == ELIMINATE_ACTION else math.nan
    ctx = dict(level=state.levels[level], next_level=state.levels[nxt] if 0 <= nxt < k else None,
               n=n, y=y, c=c, n_full=-(-n // design.cohort_size) * design.cohort_size,
               target=design.target, cutoff=design.cutoff_eli, lambda_e=design.lambda_e,
               lambda_d=design.lambda_d, p_hat=p_hat, p_over=p_over, cohort_size=design.cohort_size,
               max_subjects=design.max_subjects, lowest=state.levels[0],
               y_lowest=int(counts.y[0]), n_lowest=int(counts.n[0]),
               pending_limit="more than half" if design.tite else "plain BOIN waits for complete data",
               r=r, min_completers=design.min_completers, min_pending_followup=design.min_pending_followup,
               min_followup=float(counts.min_followup[level]) if c else math.nan,
               elim_count=int(design.eliminate_min(n)),
               elim_consequence=" and stop the trial" if level == 0 else " and all higher doses")
    text = RULES[rule_id].text.format(**ctx)
    if elim < k and rule_id not in (1, 3):
        text += f" Levels from {state.levels[elim]} up are eliminated."

    nn = counts.n
    with np.errstate(invalid="ignore", divide="ignore"):
        phat_all = tite_estimate(design.target, nn, counts.y, counts.c, counts.stft)
    treated = nn > 0
    esc_b = design.escalate_max(nn)
    deesc_b = design.deescalate_min(np.maximum(nn, 1))
    elim_min = design.eliminate_min(nn)
    level_data = {
        "level": list(state.levels),
        "dose": list(state.doses) if len(state.doses) == k else [math.nan] * k,
        "n": nn.tolist(), "dlt": counts.y.tolist(), "pending": counts.c.tolist(),
        "complete": (nn - counts.c).tolist(), "n_expansion": counts.n_expansion.tolist(),
        "stft": counts.stft.tolist(), "p_hat": phat_all.tolist(),
        "escalate_if_le": [int(b) if t else None for b, t in zip(esc_b, treated)],
        "deescalate_if_ge": [int(b) if t else None for b, t in zip(deesc_b, treated)],
        "eliminate_if_ge": [int(b) if b <= m else None for b, m in zip(elim_min, nn)],
        "eliminated": [j >= elim for j in range(k)],
        "current": [j == level for j in range(k)],
        "sentinel_day": sentinels,
        "stagger_ok_from_day": stagger_day,
    }
    parts = tuple(dict(subject=s.subject, level=state.levels[s.level], phase=s.phase,
                       infusion_day=s.infusion_day, status=s.status, followup_days=s.followup_days,
                       window_end_day=s.window_end_day, dlt_day=s.dlt_day) for s in counts.statuses)
    return Decision(
        as_of_day=as_of, decision=step.decision, rule=text, rule_id=rule_id,
        current_level=state.levels[level], next_level=None if stopped else state.levels[nxt],
        suspended=suspended, earliest_next_infusion_day=earliest, suspension_lifts_by_day=lifts,
        stagger_note=note, eliminated_from=elim if elim < k else None,
        eliminated_levels=tuple(state.levels[elim:]), tite=tite, level_data=level_data, participant_rows=parts,
    )
