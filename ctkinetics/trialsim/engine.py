"""The escalation engine's decision for many trials at once, as the vectorised calendar calls it.

A thin layer over the escalation package's rule functions — the same two calls that
:func:`ctkinetics.escalation.decide_situations` (and so :func:`ctkinetics.escalation.decide`)
makes — taking the per-level counts as arrays instead of a list of
:class:`~ctkinetics.escalation.Situation` objects (building those costs a few µs per trial and
decision, more than the rules themselves):

1. :func:`ctkinetics.escalation.rules.eliminated_from` (elimination persists);
2. :func:`ctkinetics.escalation.rules.next_step` at each trial's current level;
3. the rule's action and whether it holds accrual (:func:`~ctkinetics.escalation.rules.action_of`,
   :func:`~ctkinetics.escalation.rules.suspends`).

Nothing here decides anything itself; ``tests/trialsim/test_engine.py`` checks the calendar's
counts plus :func:`decide_arrays` against :func:`ctkinetics.escalation.decide` on random states.
(When the escalation package offers this array entry point itself, this module shrinks to an
import.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.escalation.mtd import select_mtd_batch
from ctkinetics.escalation.rules import (ESCALATE, STOP, STOP_LOWEST, action_of, eliminated_from,
                                         next_step, suspends)

__all__ = ["Decisions", "decide_arrays", "select_mtd_batch", "STOP_LOWEST"]


@dataclass(frozen=True)
class Decisions:
    """The engine's answer for q situations (arrays (q,))."""

    rule: np.ndarray  # rule id (ctkinetics.escalation.RULES)
    next_level: np.ndarray  # meaningless when stopped
    eliminated_from: np.ndarray  # first eliminated level; n_levels when none
    stopped: np.ndarray  # bool
    suspended: np.ndarray  # bool: accrual held, decide again when data arrive
    escalate: np.ndarray  # bool: the action is "escalate" (what guards may veto)


def decide_arrays(design, n_levels: int, level, n_all, y_all, c_all, stft_all, min_followup_all,
                  previous_elimination) -> Decisions:
    """The decision in q situations given per-level counts (arrays (q, D)) as of a day.

    ``level`` (q,) is the current level (that of the most recent escalation infusion);
    ``n_all`` treated incl. pending, ``y_all`` DLTs known, ``c_all`` pending, ``stft_all``
    Σ u/T over pending, ``min_followup_all`` the smallest pending follow-up (inf when none),
    ``previous_elimination`` (q,) the elimination persisted so far (``n_levels`` if none).
    """
    level = np.asarray(level, dtype=int)
    ii = np.arange(level.size)
    elim = eliminated_from(design, n_all, y_all, previous_elimination)
    rule, nxt, _ = next_step(design, n_levels, level, n_all[ii, level], y_all[ii, level],
                             c_all[ii, level], stft_all[ii, level], elim, n_all.sum(axis=1),
                             min_followup=min_followup_all[ii, level])
    action = action_of(rule)
    return Decisions(rule, nxt, elim, action == STOP, suspends(rule), action == ESCALATE)
