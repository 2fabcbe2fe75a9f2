"""Extra conditions a decision rule may put on escalation (registry :data:`GUARDS`).

A rule to compare is the BOIN / TITE-BOIN engine plus zero or more guards (and optionally a
few design overrides, e.g. TITE off or a shorter stagger). Guards are set in the spec's
``[[rules]] guards = [{kind = ..., ...}]``. Two kinds are options of the escalation engine
itself and are handed to it (one home for their rules, :mod:`ctkinetics.escalation.rules`):

- ``min_completers`` (``n`` = 2) -> ``BoinDesign.min_completers``: escalate only when at least
  n participants at the current level have complete DLT data; with fewer treated, stay and
  treat more there (rule STAY_COMPLETERS), else hold accrual (HOLD_COMPLETERS).
- ``min_followup`` (``days`` = 7) -> ``BoinDesign.min_pending_followup``: escalate only when
  every pending participant at the current level has at least that many days of follow-up;
  hold accrual until they do (HOLD_FOLLOWUP; the calendar re-decides on the day they reach it).

The others need the virtual participants' kinetics, which the engine does not know. They are
consulted only when the engine says *escalate* and answer, for many trials at once,

- ``ALLOW``  escalate as the engine says;
- ``STAY``   treat the next participant at the current level instead;
- ``WAIT``   hold accrual until a later day (given, or the next event) and decide again.

- ``min_median_expansion`` (``metric`` cmax|auc0_28, ``min``, ``known_after_days`` = 14):
  escalate only if the median exposure of the current level's escalation participants whose
  peak is known (infused at least ``known_after_days`` ago) is at least ``min``: a dose where
  the cells barely expanded has not really tested safety. Nobody known yet: wait until the
  first of them is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

ALLOW, STAY, WAIT = 0, 1, 2
_EPS = 1e-9


@dataclass(frozen=True)
class GuardContext:
    """What a guard may read, for q trials whose engine says *escalate* (arrays (q, ...)).

    ``infusion_day``, ``level`` (q, k) describe the escalation participants infused so far (slot
    order), ``exposure`` maps a metric to (q, k) of those participants' exposure at the level
    each was given.
    """

    as_of: np.ndarray  # (q,)
    current: np.ndarray  # (q,) current level
    infusion_day: np.ndarray  # (q, k)
    level: np.ndarray  # (q, k)
    exposure: Callable  # metric -> (q, k)


@dataclass(frozen=True)
class GuardKind:
    name: str
    defaults: tuple  # ((key, default or None if required), ...)
    description: str
    check: Callable | None = None  # (settings, GuardContext) -> (verdict (q,), wait-until day (q,))
    event_offsets: Callable = lambda settings: ()  # days after each infusion when it may change
    design_option: tuple | None = None  # (BoinDesign field, setting key): handled by the engine


def masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median of ``values`` where ``mask`` along the last axis (NaN where none), as np.median."""
    cnt = mask.sum(axis=-1)
    if values.shape[-1] == 0:
        return np.full(cnt.shape, np.nan)
    s = np.sort(np.where(mask, values, np.inf), axis=-1)
    lo = np.take_along_axis(s, np.maximum((cnt - 1) // 2, 0)[..., None], -1)[..., 0]
    hi = np.take_along_axis(s, np.minimum(cnt // 2, s.shape[-1] - 1)[..., None], -1)[..., 0]
    med = np.where(cnt % 2 == 1, lo, (lo + hi) / 2.0)
    return np.where(cnt > 0, med, np.nan)


def _min_median_expansion(s, ctx: GuardContext):
    people = ctx.level == ctx.current[:, None]
    known = people & (ctx.as_of[:, None] - ctx.infusion_day >= s["known_after_days"] - _EPS)
    any_known = known.any(axis=1)
    med = masked_median(ctx.exposure(s["metric"]), known)
    verdict = np.where(~any_known, WAIT, np.where(med >= s["min"], ALLOW, STAY))
    first = np.where(people, ctx.infusion_day, np.inf).min(axis=1) + s["known_after_days"]
    return verdict, np.where(any_known, np.inf, first)


GUARDS = {g.name: g for g in (
    GuardKind("min_median_expansion", (("metric", "cmax"), ("min", None), ("known_after_days", 14.0)),
              "escalate only if the median known exposure at the current dose reaches a minimum",
              _min_median_expansion, lambda s: (s["known_after_days"],)),
    GuardKind("min_completers", (("n", 2),),
              "escalate only with at least n complete DLT windows at the current dose",
              design_option=("min_completers", "n")),
    GuardKind("min_followup", (("days", 7.0),),
              "escalate only when every pending participant has that much follow-up",
              design_option=("min_pending_followup", "days")),
)}


@dataclass(frozen=True)
class Guard:
    kind: str
    settings: tuple  # ((key, value), ...)

    def check(self, ctx: GuardContext):
        return GUARDS[self.kind].check(dict(self.settings), ctx)

    def event_offsets(self) -> tuple:
        return tuple(GUARDS[self.kind].event_offsets(dict(self.settings)))


#: Dose-finding methods a rule may use: the BOIN / TITE-BOIN rules, or BOIN12 (toxicity and
#: efficacy, Lin et al. 2020) on complete data.
METHODS = ("boin", "boin12")


@dataclass(frozen=True)
class RuleSpec:
    """A decision rule to compare: the engine's design (with overrides, including the guards
    the engine handles) plus the guards that need kinetics; ``method`` ``boin12`` decides with
    ``boin12`` (a :class:`ctkinetics.escalation.boin12.Boin12Design`) instead."""

    name: str
    design: object  # ctkinetics.escalation.BoinDesign
    guards: tuple = field(default=())
    method: str = "boin"
    boin12: object = None

    def event_offsets(self) -> tuple:
        """Days after each infusion on which the rule's decision may change without a DLT or a
        window ending (guards' information, the engine's follow-up hold)."""
        out = [o for g in self.guards for o in g.event_offsets()]
        if self.design.min_pending_followup > 0:
            out.append(float(self.design.min_pending_followup))
        return tuple(sorted(set(out)))

    def check_escalation(self, ctx: GuardContext):
        """Verdict (q,) and wait-until day (q,; inf: the next event): the first guard that does
        not allow escalation wins."""
        q = ctx.as_of.size
        verdict = np.full(q, ALLOW)
        day = np.full(q, np.inf)
        for g in self.guards:
            v, d = g.check(ctx)
            new = (verdict == ALLOW) & (v != ALLOW)
            verdict = np.where(new, v, verdict)
            day = np.where(new & (v == WAIT), d, day)
        return verdict, day
