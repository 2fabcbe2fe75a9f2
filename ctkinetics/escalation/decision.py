"""The committee's decision for today: :func:`decide` (pure) and its :class:`Decision`.

``decide(state, design, as_of_day)`` answers "escalate, stay or de-escalate — and may the next
participant be infused yet?" from the data known on ``as_of_day``:

- the *current* level is that of the most recent escalation-phase infusion (the start level
  when nobody is treated yet);
- the rules of :mod:`ctkinetics.escalation.rules` give the action and the rule that fired;
- the stagger then gives the earliest day the next participant may be infused.

Stagger semantics (the study's 14-day stagger, DOMAIN §1, §7; :mod:`.sentinel`): within a
dose group the first participant infused at that level is the sentinel; no other participant
of that level may be infused before ``sentinel infusion day + stagger_days``, nor while the
sentinel's safety gate is held for the committee (a DLT, CRS grade >= 3 or ICANS grade >= 2 in
its first days, by default). The sentinel of a new level may be infused as soon as the decision
allows it. When accrual is suspended, the gate is held or the trial stops there is no next
infusion day; ``suspension_lifts_by_day`` gives the day by which accrual resumes if no further
DLT occurs (found by re-applying the rules at the coming window ends and guard days, so several
holds combine correctly).

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
from ctkinetics.escalation.fast import Situation, decide_situations, situation, situation_from_counts
from ctkinetics.escalation.rules import ELIMINATE as ELIMINATE_ACTION
from ctkinetics.escalation.rules import RULE, RULES, tite_estimate
from ctkinetics.escalation.sentinel import gate_holds
from ctkinetics.escalation.state import EscalationState, level_counts


_PARTICIPANT_COLUMNS = ["subject", "level", "phase", "infusion_day", "status", "followup_days",
                        "window_end_day", "dlt_day", "reason"]


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
        max(as_of_day, stagger constraint at ``next_level``); None when suspended, the gate of
        ``next_level`` is held for the committee, or stopped.
    gate_held : bool
        The next level's stagger gate is held for committee review (``gate_note`` says why).
    levels : pandas.DataFrame
        Per level: n (evaluable), DLTs, pending, partial, complete, not evaluable, expansion
        participants, STFT, p̂, boundaries for its n, eliminated, closed by the committee,
        sentinel day, the stagger day and whether the sentinel's safety gate is held.
    participants : pandas.DataFrame
        Per participant infused by ``as_of_day``: level, phase, status, follow-up, and the
        reason when the window ended early or the participant is not evaluable.
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
    gate_held: bool = False
    gate_note: str = ""
    closed_levels: tuple = ()
    gate_notes: tuple = ()  # per level: why its stagger gate is held (or was released); "" none

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
            "gate_held": self.gate_held, "gate_note": self.gate_note or None,
            "closed_levels": list(self.closed_levels), "rule_name": RULES[self.rule_id].name,
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
        if st.status == "pending":  # followed on without a DLT (a cut at today's data ends no window)
            p = dataclasses.replace(p, dlt=math.nan, dlt_day=math.nan, last_followup_day=math.nan)
        future.append(p)
    hypo = EscalationState(state.levels, tuple(future), state.doses, sit.previous_elimination
                           if sit.previous_elimination < len(state.levels) else None, state.committee)
    k = len(state.levels)
    for day in sorted(d for d in cands if d > as_of):
        later = situation(hypo, design, day)
        later = dataclasses.replace(later, level=sit.level)  # nobody new is infused meanwhile
        if not decide_situations(design, k, [later])[0].suspended:
            return float(day)
    return None


def _context(state, design, counts, level, nxt, rule_id, p_hat, closed_note) -> dict:
    """The fields the rules' wording reads."""
    k = len(state.levels)
    n, y, c = int(counts.n[level]), int(counts.y[level]), int(counts.c[level])
    # scipy only when the elimination rule is worded (keeps decide cheap for simulators)
    p_over = float(design.prob_overdose(y, n)) if n and RULES[rule_id].action == ELIMINATE_ACTION else math.nan
    lowest_cutoff = design.cutoff_eli
    extrasafe_note = ""
    if design.extrasafe and int(counts.n[0]) >= 3 and int(counts.y[0]) < int(design.eliminate_min(int(counts.n[0]))):
        lowest_cutoff = design.cutoff_eli - design.offset
        extrasafe_note = f"; extra-safe rule, cutoff {design.cutoff_eli:g} - offset {design.offset:g}"
    return dict(level=state.levels[level], next_level=state.levels[nxt] if 0 <= nxt < k else None,
                n=n, y=y, c=c, n_full=-(-n // design.cohort_size) * design.cohort_size,
                target=design.target, cutoff=design.cutoff_eli, lambda_e=design.lambda_e,
                lambda_d=design.lambda_d, p_hat=p_hat, p_over=p_over, cohort_size=design.cohort_size,
                max_subjects=design.max_subjects, lowest=state.levels[0],
                y_lowest=int(counts.y[0]), n_lowest=int(counts.n[0]), lowest_cutoff=lowest_cutoff,
                extrasafe_note=extrasafe_note, closed_note=closed_note, n_earlystop=design.n_earlystop,
                pending_limit="more than half" if design.tite else "plain BOIN waits for complete data",
                r=n - c, min_completers=design.min_completers, min_pending_followup=design.min_pending_followup,
                min_followup=float(counts.min_followup[level]) if c else math.nan,
                elim_count=int(design.eliminate_min(n)),
                elim_consequence=" and stop the trial" if level == 0 else " and all higher doses",
                awaiting=int(counts.c_awaiting[level]) if counts.c_awaiting is not None else 0)


def _level_data(state, design, counts, sit, elim, closed, held, level) -> dict:
    k = len(state.levels)
    nn = counts.n
    cp = counts.c_partial if counts.c_partial is not None else np.zeros(k, dtype=int)
    with np.errstate(invalid="ignore", divide="ignore"):
        phat_all = tite_estimate(design.target, nn, counts.y, counts.c + cp, counts.stft)
    treated = nn > 0
    esc_b = design.escalate_max(nn)
    deesc_b = design.deescalate_min(np.maximum(nn, 1))
    elim_min = design.eliminate_min(nn)
    sentinels = [float(v) for v in sit.sentinel]
    return {
        "level": list(state.levels),
        "dose": list(state.doses) if len(state.doses) == k else [math.nan] * k,
        "n": nn.tolist(), "dlt": counts.y.tolist(), "pending": counts.c.tolist(),
        "partial": cp.tolist(), "complete": (nn - counts.c - cp).tolist(),
        "not_evaluable": (counts.n_not_evaluable if counts.n_not_evaluable is not None
                          else np.zeros(k, dtype=int)).tolist(),
        "n_expansion": counts.n_expansion.tolist(),
        "stft": counts.stft.tolist(), "p_hat": phat_all.tolist(),
        "escalate_if_le": [int(b) if t else None for b, t in zip(esc_b, treated)],
        "deescalate_if_ge": [int(b) if t else None for b, t in zip(deesc_b, treated)],
        "eliminate_if_ge": [int(b) if b <= m else None for b, m in zip(elim_min, nn)],
        "eliminated": [j >= elim for j in range(k)],
        "closed": [j >= closed for j in range(k)],
        "current": [j == level for j in range(k)],
        "sentinel_day": sentinels,
        "stagger_ok_from_day": [v + design.stagger_days if not math.isnan(v) else math.nan for v in sentinels],
        "gate_held": [bool(h) for h in held],
    }


def _stagger_note(state, design, step, sit, gate_notes) -> str:
    if step.stopped:
        return "no further infusion: the trial stops"
    if step.suspended:
        return "accrual suspended; no infusion until enough DLT data arrive"
    nxt = step.next_level
    if step.gate_held:
        return gate_notes[nxt]
    s = float(sit.sentinel[nxt])
    if math.isnan(s):
        return f"next participant is the first (sentinel) of {state.levels[nxt]}: no stagger wait"
    note = (f"sentinel of {state.levels[nxt]} infused on day {s:g}; others of that level from day "
            f"{s + design.stagger_days:g} (stagger {design.stagger_days:g} d)")
    return note + (f"; {gate_notes[nxt]}" if gate_notes[nxt] else "")


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
    k = len(state.levels)
    counts = level_counts(state, as_of, design.dlt_window_days, design.protocol.evaluability)
    held, gate_notes = gate_holds(state, design, as_of)
    sit = situation_from_counts(state, design, as_of, counts, held)
    step = decide_situations(design, k, [sit])[0]  # the same path as decide_fast
    level, rule_id, nxt, elim = step.current_level, step.rule_id, step.next_level, step.eliminated_from
    closed, closed_note = state.closed_from(as_of)

    n, y, c = int(counts.n[level]), int(counts.y[level]), int(counts.c[level])
    cp = int(counts.c_partial[level]) if counts.c_partial is not None else 0
    stft = float(counts.stft[level])
    p_tilde = (y + design.target / 2) / (n - c - cp + 1)
    pending_u = tuple((s.subject, s.followup_days) for s in counts.statuses
                      if s.level == level and s.status in ("pending", "partial", "awaiting committee"))
    tite = TiteDetails(n, y, c + cp, n - c - cp, stft, p_tilde, step.p_hat if n else math.nan, pending_u)

    lifts = _lift_day(state, design, sit, counts.statuses) if step.suspended else None
    ctx = _context(state, design, counts, level, nxt, rule_id, step.p_hat, closed_note)
    text = RULES[rule_id].text.format(**ctx)
    if elim < k and rule_id not in (RULE["stop_lowest"].code, RULE["eliminate"].code):
        text += f" Levels from {state.levels[elim]} up are eliminated."
    parts = tuple(dict(subject=s.subject, level=state.levels[s.level], phase=s.phase,
                       infusion_day=s.infusion_day, status=s.status, followup_days=s.followup_days,
                       window_end_day=s.window_end_day, dlt_day=s.dlt_day, reason=s.reason)
                  for s in counts.statuses)
    return Decision(
        as_of_day=as_of, decision=step.decision, rule=text, rule_id=rule_id,
        current_level=state.levels[level], next_level=None if step.stopped else state.levels[nxt],
        suspended=step.suspended, earliest_next_infusion_day=step.earliest_next_infusion_day,
        suspension_lifts_by_day=lifts, stagger_note=_stagger_note(state, design, step, sit, gate_notes),
        eliminated_from=elim if elim < k else None, eliminated_levels=tuple(state.levels[elim:]),
        tite=tite, level_data=_level_data(state, design, counts, sit, elim, closed, held, level),
        participant_rows=parts, gate_held=step.gate_held,
        gate_note=gate_notes[nxt] if step.gate_held else "", closed_levels=tuple(state.levels[closed:]),
        gate_notes=tuple(gate_notes),
    )
