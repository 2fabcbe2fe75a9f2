"""Extra conditions a decision rule may put on escalation (registry :data:`GUARDS`).

A rule to compare is the BOIN / TITE-BOIN engine plus zero or more guards (and optionally a
few design overrides, e.g. TITE off or a shorter stagger). A guard is consulted only when the
engine says *escalate*; it answers

- ``allow``  escalate as the engine says;
- ``stay``   treat the next participant at the current level instead;
- ``wait``   hold accrual until a later day (given) and decide again.

Guards (settings in the spec's ``[[rules]] guards = [{kind = ..., ...}]``):

- ``min_median_expansion`` (``metric`` cmax|auc0_28, ``min``, ``known_after_days`` = 14):
  escalate only if the median exposure of the current level's escalation participants whose
  peak is known (infused at least ``known_after_days`` ago) is at least ``min``: a dose where
  the cells barely expanded has not really tested safety. Nobody known yet: wait.
- ``min_completers`` (``n`` = 2): escalate only when at least n participants at the current
  level have a complete DLT window (or a DLT); else wait for the next one.
- ``min_followup`` (``days`` = 7): escalate only when every pending participant at the
  current level has at least that many days of follow-up; else wait until they do.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ctkinetics.escalation.state import level_counts

ALLOW, STAY, WAIT = "allow", "stay", "wait"


@dataclass(frozen=True)
class GuardKind:
    name: str
    defaults: tuple  # ((key, default or None if required), ...)
    description: str
    check: Callable  # (settings, state, design, as_of, level, exposure) -> (verdict, day | None)
    event_offsets: Callable = lambda settings: ()  # days after each infusion when it may change


def _escalation_at(state, level, as_of):
    return [p for p in state.participants
            if p.level == level and p.phase == "escalation" and p.infusion_day <= as_of]


def _min_median_expansion(s, state, design, as_of, level, exposure):
    people = _escalation_at(state, level, as_of)
    known = [exposure(p.subject, s["metric"], level) for p in people
             if as_of - p.infusion_day >= s["known_after_days"] - 1e-9]
    if not known:
        first = min(p.infusion_day for p in people) + s["known_after_days"]
        return WAIT, first
    return (ALLOW, None) if float(np.median(known)) >= s["min"] else (STAY, None)


def _min_completers(s, state, design, as_of, level, exposure):
    counts = level_counts(state, as_of, design.dlt_window_days)
    done = int(counts.n[level] - counts.c[level])
    return (ALLOW, None) if done >= s["n"] else (WAIT, None)


def _min_followup(s, state, design, as_of, level, exposure):
    T = design.dlt_window_days
    counts = level_counts(state, as_of, T)
    short = [st for st in counts.statuses if st.level == level and st.status == "pending"
             and st.followup_days < s["days"] - 1e-9]
    if not short:
        return ALLOW, None
    return WAIT, max(st.infusion_day + s["days"] for st in short)


GUARDS = {g.name: g for g in (
    GuardKind("min_median_expansion", (("metric", "cmax"), ("min", None), ("known_after_days", 14.0)),
              "escalate only if the median known exposure at the current dose reaches a minimum",
              _min_median_expansion, lambda s: (s["known_after_days"],)),
    GuardKind("min_completers", (("n", 2),),
              "escalate only with at least n complete DLT windows at the current dose", _min_completers),
    GuardKind("min_followup", (("days", 7.0),),
              "escalate only when every pending participant has that much follow-up",
              _min_followup, lambda s: (s["days"],)),
)}


@dataclass(frozen=True)
class Guard:
    kind: str
    settings: tuple  # ((key, value), ...)

    def check(self, state, design, as_of, level, exposure):
        return GUARDS[self.kind].check(dict(self.settings), state, design, as_of, level, exposure)

    def event_offsets(self) -> tuple:
        return tuple(GUARDS[self.kind].event_offsets(dict(self.settings)))


@dataclass(frozen=True)
class RuleSpec:
    """A decision rule to compare: the engine's design (with overrides) plus guards."""

    name: str
    design: object  # ctkinetics.escalation.BoinDesign
    guards: tuple = field(default=())

    def check_escalation(self, state, as_of, level, exposure):
        """First guard that does not allow escalation wins; ``(ALLOW, None)`` if none."""
        for g in self.guards:
            verdict, day = g.check(state, self.design, as_of, level, exposure)
            if verdict != ALLOW:
                return verdict, day
        return ALLOW, None


def no_exposure(subject, metric, level):  # pragma: no cover - guarded at spec time
    return math.nan
