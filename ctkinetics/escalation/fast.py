"""The decision without the committee's tables: :func:`decide_fast` for one state and
:func:`decide_situations` for many at once (what simulators call).

:func:`ctkinetics.escalation.decide` is built on the same two steps, so both always agree:

1. :func:`situation` reads a state as of a day — per level n, DLTs, pending, STFT, the
   smallest pending follow-up and the sentinel day, the current level and any earlier
   elimination (per-participant Python, a few µs per participant);
2. :func:`decide_situations` applies :func:`ctkinetics.escalation.rules.next_step` to m
   situations in one vectorised call and adds the stagger: the earliest infusion day is
   ``max(as_of, sentinel day of the next level + stagger_days)`` (``as_of`` for a level
   without a sentinel), None when accrual is held or the trial stops.

A simulator that advances many trials in lock-step collects their situations and decides them
together, so the fixed cost of the rules (~0.1 ms) is paid once per round, not per trial.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ctkinetics.escalation.boundaries import BoinDesign
from ctkinetics.escalation.rules import ACTIONS, RULES, eliminated_from, next_step
from ctkinetics.escalation.state import EscalationState, LevelCounts, level_counts

_ACTION_OF = tuple(ACTIONS[RULES[i].action] for i in range(len(RULES)))
_SUSPENDS = tuple(RULES[i].suspends for i in range(len(RULES)))


@dataclass(frozen=True)
class Situation:
    """What the rules read as of a day. Arrays have one entry per dose level."""

    as_of: float
    level: int  # current level: that of the most recent escalation infusion
    n: np.ndarray  # treated (escalation phase), incl. pending
    y: np.ndarray  # DLTs known
    c: np.ndarray  # pending
    stft: np.ndarray  # Σ u/T over pending
    min_followup: np.ndarray  # smallest follow-up (days) among pending; inf when none
    sentinel: np.ndarray  # infusion day of the level's first escalation participant; NaN if none
    previous_elimination: int  # number of levels when none


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
    earliest_next_infusion_day: float | None  # None when suspended or stopped


def current_level(state: EscalationState, design: BoinDesign, as_of_day: float) -> int:
    """Level of the most recent escalation-phase infusion by ``as_of_day`` (ties: last listed)."""
    best, best_day = None, -math.inf
    for p in state.participants:
        if p.phase == "escalation" and p.infusion_day <= as_of_day and p.infusion_day >= best_day:
            best, best_day = p.level, p.infusion_day
    if best is None:
        return min(design.start_level, len(state.levels) - 1)
    return best


def sentinel_days(state: EscalationState, as_of_day: float) -> list:
    """Infusion day of the first escalation participant at each level (NaN if none yet)."""
    out = [math.nan] * len(state.levels)
    for p in state.participants:
        if p.phase == "escalation" and p.infusion_day <= as_of_day:
            if math.isnan(out[p.level]) or p.infusion_day < out[p.level]:
                out[p.level] = float(p.infusion_day)
    return out


def stagger_gate(state: EscalationState, design: BoinDesign, level: int, as_of: float) -> float:
    """First day a non-sentinel participant may be infused at ``level`` (NaN: no sentinel yet)."""
    s = sentinel_days(state, as_of)[level]
    return s + design.stagger_days if not math.isnan(s) else math.nan


def situation_from_counts(state: EscalationState, design: BoinDesign, as_of_day: float,
                          counts: LevelCounts) -> Situation:
    k = len(state.levels)
    prev = k if state.eliminated_from is None else int(state.eliminated_from)
    return Situation(float(as_of_day), current_level(state, design, as_of_day), counts.n, counts.y,
                     counts.c, counts.stft, counts.min_followup,
                     np.asarray(sentinel_days(state, as_of_day), dtype=float), prev)


def situation(state: EscalationState, design: BoinDesign, as_of_day: float) -> Situation:
    """Read ``state`` as of ``as_of_day`` (see :func:`ctkinetics.escalation.state.level_counts`)."""
    counts = level_counts(state, float(as_of_day), design.dlt_window_days)
    return situation_from_counts(state, design, as_of_day, counts)


def decide_situations(design: BoinDesign, n_levels: int, situations) -> list:
    """The decision for each situation: one vectorised call of the rules. Returns Steps."""
    m = len(situations)
    if m == 0:
        return []
    n_all = np.stack([s.n for s in situations])
    y_all = np.stack([s.y for s in situations])
    level = np.fromiter((s.level for s in situations), dtype=int, count=m)
    prev = np.fromiter((s.previous_elimination for s in situations), dtype=int, count=m)
    elim = eliminated_from(design, n_all, y_all, prev)
    ii = np.arange(m)
    pick = lambda attr: np.fromiter((getattr(s, attr)[s.level] for s in situations), dtype=float, count=m)  # noqa: E731
    rule, nxt, p_hat = next_step(design, n_levels, level, n_all[ii, level], y_all[ii, level],
                                 pick("c").astype(int), pick("stft"), elim, n_all.sum(axis=1),
                                 min_followup=pick("min_followup"))
    out = []
    for i, s in enumerate(situations):
        r = int(rule[i])
        decision = _ACTION_OF[r]
        stopped, held = decision == "stop", _SUSPENDS[r]
        j = int(nxt[i])
        earliest = None
        if not (stopped or held):
            gate = float(s.sentinel[j]) + design.stagger_days
            earliest = s.as_of if math.isnan(gate) else max(s.as_of, gate)
        out.append(Step(r, decision, int(level[i]), j, held, stopped, int(elim[i]), float(p_hat[i]), earliest))
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
