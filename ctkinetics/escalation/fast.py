"""The decision without the committee's tables: :func:`decide_arrays` for many situations
given as arrays (what the vectorised simulators call), :func:`decide_situations` for a list of
:class:`Situation` and :func:`decide_fast` for one state.

:func:`ctkinetics.escalation.decide` is built on the same steps, so all of them agree:

1. :func:`situation` reads a state as of a day — per level n, DLTs, pending, partial, STFT,
   the smallest pending follow-up, the sentinel day and whether its safety gate is held, the
   current level, earlier elimination and the committee's closures (per-participant Python,
   through the vectorised status rule :func:`ctkinetics.escalation.state.classify`);
2. :func:`decide_arrays` applies :func:`ctkinetics.escalation.rules.next_step` to m
   situations in one vectorised call and adds the stagger gate: the earliest infusion day is
   ``max(as_of, sentinel day of the next level + stagger_days)`` (``as_of`` for a level
   without a sentinel), None when accrual is held, the next level's gate is held for the
   committee (:mod:`ctkinetics.escalation.sentinel`) or the trial stops.

A simulator that advances many trials in lock-step collects their counts and decides them
together, so the fixed cost of the rules (~0.1 ms) is paid once per round, not per trial.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ctkinetics.escalation.boundaries import BoinDesign
from ctkinetics.escalation.rules import (ACTIONS, ESCALATE, RULES, STOP, action_of, eliminated_from,
                                         next_step, suspends)
from ctkinetics.escalation.sentinel import gate_holds, sentinel_days, stagger_gate  # noqa: F401
from ctkinetics.escalation.state import EscalationState, LevelCounts, level_counts

_ACTION_OF = {code: ACTIONS[r.action] for code, r in RULES.items()}


@dataclass(frozen=True)
class Situation:
    """What the rules read as of a day. Arrays have one entry per dose level."""

    as_of: float
    level: int  # current level: that of the most recent escalation infusion
    n: np.ndarray  # evaluable (escalation phase), incl. pending
    y: np.ndarray  # DLTs known
    c: np.ndarray  # pending
    stft: np.ndarray  # Σ u/T over pending and partial
    min_followup: np.ndarray  # smallest follow-up (days) among pending; inf when none
    sentinel: np.ndarray  # infusion day of the level's first escalation participant; NaN if none
    previous_elimination: int  # number of levels when none
    c_partial: np.ndarray | None = None  # counted with partial follow-up (never hold accrual)
    closed_from: int | None = None  # first level closed by the committee (None: none)
    gate_held: np.ndarray | None = None  # bool per level: the sentinel's safety gate is held
    c_awaiting: np.ndarray | None = None  # of c: awaiting the committee's confirmation (no expansion)


@dataclass(frozen=True)
class Step:
    """A decision without tables (fields as :class:`ctkinetics.escalation.Decision`, levels
    as 0-based indices)."""

    rule_id: int
    decision: str  # escalate | stay | de-escalate | eliminate | stop
    current_level: int
    next_level: int  # meaningless when stopped
    suspended: bool  # accrual held (no infusion now)
    stopped: bool
    eliminated_from: int  # number of levels when none is eliminated
    p_hat: float  # TITE estimate at the current level (NaN when nobody is treated there)
    earliest_next_infusion_day: float | None  # None when suspended, gate held or stopped
    gate_held: bool = False  # the next level's stagger gate is held for the committee


@dataclass(frozen=True)
class StepArrays:
    """The engine's answer for m situations (arrays (m,))."""

    rule: np.ndarray  # rule code (ctkinetics.escalation.rules.RULES)
    next_level: np.ndarray  # meaningless when stopped
    eliminated_from: np.ndarray  # first eliminated level; n_levels when none
    stopped: np.ndarray
    suspended: np.ndarray  # accrual held: decide again when data arrive
    escalate: np.ndarray  # the action is "escalate" (what the simulators' guards may veto)
    gate_held: np.ndarray  # the next level's stagger gate is held for the committee
    earliest: np.ndarray  # earliest next infusion day; NaN when none (stopped, held)
    p_hat: np.ndarray


def decide_arrays(design: BoinDesign, n_levels: int, level, n_all, y_all, c_all, stft_all,
                  previous_elimination, *, as_of=None, min_followup_all=None, c_partial_all=None,
                  closed_from=None, sentinel=None, gate_held=None, c_awaiting_all=None) -> StepArrays:
    """The decision in m situations given per-level counts (arrays (m, D)) as of a day.

    ``level`` (m,) is the current level (that of the most recent escalation infusion);
    ``n_all`` evaluable incl. pending, ``y_all`` DLTs known, ``c_all`` pending, ``stft_all``
    Σ u/T over pending and partial, ``c_partial_all`` counted with partial follow-up,
    ``min_followup_all`` the smallest pending follow-up (inf when none),
    ``previous_elimination`` (m,) the elimination persisted so far (``n_levels`` if none),
    ``closed_from`` (m,) the committee's closure (``n_levels`` if none), ``c_awaiting_all`` the
    pending participants awaiting the committee's confirmation. With ``as_of`` (m,)
    and ``sentinel`` (m, D) (infusion day of each level's sentinel, NaN none) the earliest next
    infusion day is computed; ``gate_held`` (m, D) marks levels whose sentinel safety gate is
    held for the committee.
    """
    level = np.asarray(level, dtype=int)
    m = level.size
    ii = np.arange(m)
    n_all, y_all, c_all = (np.asarray(a, dtype=int).reshape(m, n_levels) for a in (n_all, y_all, c_all))
    stft_all = np.asarray(stft_all, dtype=float).reshape(m, n_levels)
    pick = lambda a: None if a is None else np.asarray(a).reshape(m, n_levels)[ii, level]  # noqa: E731
    elim = eliminated_from(design, n_all, y_all, previous_elimination)
    rule, nxt, p_hat = next_step(design, n_levels, level, n_all[ii, level], y_all[ii, level],
                                 c_all[ii, level], stft_all[ii, level], elim, n_all.sum(axis=1),
                                 min_followup=pick(min_followup_all), c_partial=pick(c_partial_all),
                                 closed_from=closed_from, c_awaiting=pick(c_awaiting_all))
    action = action_of(rule)
    stopped, held = action == STOP, suspends(rule)
    j = np.clip(nxt, 0, n_levels - 1)
    gate = np.zeros(m, dtype=bool) if gate_held is None else np.asarray(gate_held, dtype=bool).reshape(m, n_levels)[ii, j]
    gate &= ~stopped & ~held
    earliest = np.full(m, np.nan)
    if as_of is not None:
        as_of = np.broadcast_to(np.asarray(as_of, dtype=float), (m,))
        s = (np.full(m, np.nan) if sentinel is None
             else np.asarray(sentinel, dtype=float).reshape(m, n_levels)[ii, j])
        day = np.where(np.isnan(s), as_of, np.maximum(as_of, s + design.stagger_days))
        earliest = np.where(stopped | held | gate, np.nan, day)
    return StepArrays(rule, nxt, elim, stopped, held, action == ESCALATE, gate, earliest, p_hat)


def current_level(state: EscalationState, design: BoinDesign, as_of_day: float) -> int:
    """Level of the most recent escalation-phase infusion by ``as_of_day`` (ties: last listed);
    the level it was planned at when a dose shortfall counts the participant elsewhere."""
    best, best_day = None, -math.inf
    for p in state.participants:
        if p.phase == "escalation" and p.infusion_day <= as_of_day and p.infusion_day >= best_day:
            best, best_day = (p.planned_level if p.planned_level >= 0 else p.level), p.infusion_day
    if best is None:
        return min(design.start_level, len(state.levels) - 1)
    return best


def situation_from_counts(state: EscalationState, design: BoinDesign, as_of_day: float,
                          counts: LevelCounts, held=None) -> Situation:
    """The situation from counts already made (``held``: the gates, when already known)."""
    k = len(state.levels)
    prev = k if state.eliminated_from is None else int(state.eliminated_from)
    closed, _ = state.closed_from(as_of_day)
    if held is None:
        held, _ = gate_holds(state, design, as_of_day)
    return Situation(float(as_of_day), current_level(state, design, as_of_day), counts.n, counts.y,
                     counts.c, counts.stft, counts.min_followup,
                     np.asarray(sentinel_days(state, as_of_day), dtype=float), prev,
                     counts.c_partial, closed, held, counts.c_awaiting)


def situation(state: EscalationState, design: BoinDesign, as_of_day: float) -> Situation:
    """Read ``state`` as of ``as_of_day`` (see :func:`ctkinetics.escalation.state.level_counts`)."""
    counts = level_counts(state, float(as_of_day), design.dlt_window_days, design.protocol.evaluability)
    return situation_from_counts(state, design, as_of_day, counts)


def decide_situations(design: BoinDesign, n_levels: int, situations) -> list:
    """The decision for each situation: one vectorised call of the rules. Returns Steps."""
    if not situations:
        return []

    def stack(attr, fill=0, optional=False):
        values = [getattr(s, attr) for s in situations]
        if optional and all(v is None for v in values):
            return None  # the common case of the simulators: nothing to stack
        return np.stack([np.full(n_levels, fill) if v is None else v for v in values])

    closed = [s.closed_from for s in situations]
    arr = decide_arrays(
        design, n_levels, [s.level for s in situations], stack("n"), stack("y"), stack("c"),
        stack("stft"), [s.previous_elimination for s in situations],
        as_of=[s.as_of for s in situations], min_followup_all=stack("min_followup", np.inf),
        c_partial_all=stack("c_partial", optional=True), sentinel=stack("sentinel", np.nan),
        closed_from=None if all(c is None for c in closed) else [n_levels if c is None else c for c in closed],
        gate_held=stack("gate_held", False, optional=True), c_awaiting_all=stack("c_awaiting", optional=True))
    out = []
    for i, s in enumerate(situations):
        r = int(arr.rule[i])
        e = arr.earliest[i]
        out.append(Step(r, _ACTION_OF[r], int(s.level), int(arr.next_level[i]), bool(arr.suspended[i]),
                        bool(arr.stopped[i]), int(arr.eliminated_from[i]), float(arr.p_hat[i]),
                        None if math.isnan(e) else float(e), bool(arr.gate_held[i])))
    return out


def decide_fast(state: EscalationState, design: BoinDesign, as_of_day: float) -> Step:
    """:func:`ctkinetics.escalation.decide` without the tables and the wording (about 10× less
    work); same rule, next level, suspension, elimination and earliest infusion day.

    Examples
    --------
    >>> from ctkinetics.escalation import BoinDesign, EscalationState, Participant
    >>> s = EscalationState(("L1", "L2"), [Participant(f"P{i}", 0, 0.0, 0.0) for i in range(3)])
    >>> step = decide_fast(s, BoinDesign(), as_of_day=30)
    >>> step.decision, step.next_level, step.earliest_next_infusion_day
    ('escalate', 1, 30.0)
    """
    return decide_situations(design, len(state.levels), [situation(state, design, as_of_day)])[0]
