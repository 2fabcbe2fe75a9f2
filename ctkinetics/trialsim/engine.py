"""A thin, fast adapter over the escalation engine's decision for the day-by-day simulator.

:func:`ctkinetics.escalation.decide` answers a committee and builds two tables and the rule
text on every call (about 18 ms); a virtual trial asks it tens of times, a run asks it
millions of times. This module makes exactly the same computation with the same engine
functions — :func:`~ctkinetics.escalation.state.level_counts`,
:func:`~ctkinetics.escalation.decision.current_level`,
:func:`~ctkinetics.escalation.rules.eliminated_from`,
:func:`~ctkinetics.escalation.rules.next_step` and
:func:`~ctkinetics.escalation.decision.sentinel_days` — split in two halves so that many
trials share one vectorised call of the rules:

- :func:`situation` reads one trial's state as of a day (per-trial Python);
- :func:`decide_many` applies the engine's vectorised rules to many situations at once.

:func:`engine_step` chains them for one state. Nothing here decides anything itself;
``tests/trialsim/test_engine.py`` checks it against :func:`decide` on random states.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ctkinetics.escalation.boundaries import BoinDesign
from ctkinetics.escalation.decision import current_level, sentinel_days
from ctkinetics.escalation.rules import ACTIONS, RULES, SUSPEND, eliminated_from, next_step
from ctkinetics.escalation.state import EscalationState, level_counts

_ACTION_OF = tuple(ACTIONS[RULES[i].action] for i in range(len(RULES)))


@dataclass(frozen=True)
class Situation:
    """What the rules read, as of a day: counts per level and the current level."""

    level: int
    n: np.ndarray  # (D,) treated (escalation phase), incl. pending
    y: np.ndarray  # (D,) DLTs known
    c: np.ndarray  # (D,) pending
    stft: np.ndarray  # (D,) Σ u/T over pending
    previous_elimination: int  # D when none


@dataclass(frozen=True)
class Step:
    """The engine's decision as of a day (see :class:`ctkinetics.escalation.Decision`)."""

    rule_id: int
    decision: str  # escalate | stay | de-escalate | eliminate | stop
    current_level: int
    next_level: int
    suspended: bool
    stopped: bool
    eliminated_from: int  # number of levels when none is eliminated


def situation(state: EscalationState, design: BoinDesign, as_of_day: float) -> Situation:
    counts = level_counts(state, float(as_of_day), design.dlt_window_days)
    k = len(state.levels)
    prev = k if state.eliminated_from is None else state.eliminated_from
    return Situation(current_level(state, design, as_of_day), counts.n, counts.y, counts.c,
                     counts.stft, prev)


def decide_many(design: BoinDesign, n_levels: int, situations) -> list:
    """The engine's decision for each situation (one vectorised call of the rules)."""
    m = len(situations)
    if m == 0:
        return []
    n_all = np.stack([s.n for s in situations])
    y_all = np.stack([s.y for s in situations])
    c_all = np.stack([s.c for s in situations])
    stft_all = np.stack([s.stft for s in situations])
    level = np.fromiter((s.level for s in situations), dtype=int, count=m)
    prev = np.fromiter((s.previous_elimination for s in situations), dtype=int, count=m)
    elim = eliminated_from(design, n_all, y_all, prev)
    ii = np.arange(m)
    rule, nxt, _ = next_step(design, n_levels, level, n_all[ii, level], y_all[ii, level],
                             c_all[ii, level], stft_all[ii, level], elim, n_all.sum(axis=1))
    out = []
    for i in range(m):
        r = int(rule[i])
        decision = _ACTION_OF[r]
        out.append(Step(r, decision, int(level[i]), int(nxt[i]), r == SUSPEND, decision == "stop",
                        int(elim[i])))
    return out


def stagger_gate(state: EscalationState, design: BoinDesign, level: int, as_of: float) -> float:
    """First day a non-sentinel participant may be infused at ``level`` (NaN: no sentinel yet)."""
    s = sentinel_days(state, as_of)[level]
    return s + design.stagger_days if not math.isnan(s) else math.nan


def engine_step(state: EscalationState, design: BoinDesign, as_of_day: float) -> tuple:
    """``(Step, earliest_next_infusion_day)`` as :func:`ctkinetics.escalation.decide` gives them
    (the day is None when accrual is suspended or the trial stops)."""
    step = decide_many(design, len(state.levels), [situation(state, design, as_of_day)])[0]
    earliest = None
    if not (step.stopped or step.suspended):
        gate = stagger_gate(state, design, step.next_level, float(as_of_day))
        earliest = float(as_of_day) if math.isnan(gate) else max(float(as_of_day), gate)
    return step, earliest
