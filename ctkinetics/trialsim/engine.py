"""The escalation engine's decision, as the day-by-day simulator calls it.

A thin layer over the engine's public fast path, :mod:`ctkinetics.escalation.fast` (the same
functions :func:`ctkinetics.escalation.decide` is built on, without its tables and wording):

- :func:`situation` reads one trial's state as of a day (per-trial Python);
- :func:`decide_many` applies the engine's vectorised rules to many situations at once, so
  trials advancing in lock-step share one call of the rules;
- :func:`stagger_gate` the first day a non-sentinel participant may be infused at a level;
- :func:`engine_step` chains them for one state (``decide_fast`` plus the earliest day).

Nothing here decides anything itself; ``tests/trialsim/test_engine.py`` checks it against
:func:`decide` on random states.
"""
from __future__ import annotations

from ctkinetics.escalation.fast import Situation, Step, decide_fast, situation, stagger_gate
from ctkinetics.escalation.fast import decide_situations as decide_many

__all__ = ["Situation", "Step", "situation", "decide_many", "stagger_gate", "engine_step"]


def engine_step(state, design, as_of_day: float) -> tuple:
    """``(Step, earliest_next_infusion_day)`` as :func:`ctkinetics.escalation.decide` gives them
    (the day is None when accrual is suspended or the trial stops)."""
    step = decide_fast(state, design, as_of_day)
    return step, step.earliest_next_infusion_day
