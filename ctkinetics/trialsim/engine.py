"""The escalation engine as the vectorised calendar calls it: the escalation package's own
array entry points, nothing decided here.

- :func:`counts` — per-level counts of many trials as of a day, by the engine's participant
  status rule :func:`ctkinetics.escalation.state.classify` and
  :func:`~ctkinetics.escalation.state.count_levels` (the rule the committee's replay uses);
- :func:`decide` — :func:`ctkinetics.escalation.fast.decide_arrays`: rules, elimination,
  holds, the action (what :func:`ctkinetics.escalation.decide` is built on);
- :func:`time_gate` — the time half of the stagger gate
  (:func:`ctkinetics.escalation.sentinel.stagger_gate`) for a level that a kinetic guard
  chose instead of the engine's next level;
- :func:`select_mtd_batch` — BOIN's ``select.mtd`` on complete data.

``tests/trialsim/test_engine.py`` checks counts + decisions against
:func:`ctkinetics.escalation.decide` on random states.
"""
from __future__ import annotations

import numpy as np

from ctkinetics.escalation.fast import decide_arrays
from ctkinetics.escalation.mtd import select_mtd_batch
from ctkinetics.escalation.rules import STOP_LOWEST
from ctkinetics.escalation.state import classify, count_levels

__all__ = ["counts", "decide", "time_gate", "select_mtd_batch", "STOP_LOWEST"]


def counts(design, n_levels: int, as_of, infusion_day, level, dlt, onset):
    """Per-level counts (:class:`~ctkinetics.escalation.state.CountArrays`, arrays (q, D)) of q
    trials as of ``as_of`` (q,), from their escalation participants (arrays (q, k): infusion
    day, level, DLT at that level, DLT onset in days after infusion, NaN without DLT)."""
    status, u = classify(as_of[:, None], infusion_day, design.dlt_window_days, dlt=dlt, dlt_day=onset,
                         evaluability=design.protocol.evaluability)
    return count_levels(status, u, level, design.dlt_window_days, n_levels)


def decide(design, n_levels: int, current, c, previous_elimination):
    """The engine's decision for q trials from their :func:`counts` ``c``
    (:class:`~ctkinetics.escalation.fast.StepArrays`)."""
    return decide_arrays(design, n_levels, current, c.n, c.y, c.c, c.stft, previous_elimination,
                         min_followup_all=c.min_followup, c_partial_all=c.c_partial)


def time_gate(design, sentinel, level):
    """First day (q,) a non-sentinel participant may be infused at ``level`` (q,) by time:
    the level's sentinel day (``sentinel`` (q, D), NaN none) + ``stagger_days``; NaN without
    a sentinel (no wait)."""
    return sentinel[np.arange(len(level)), level] + design.stagger_days
