"""How a virtual trial is conducted beyond the dose rules: participants whose DLT window ends
early, products short of their dose, no obvious expansion, and the committee's delays.

Settings of the trial spec (each table optional; off by default)::

    [design.dropout]        probability = 0.1       # P(the window ends early without a DLT)
                            reason = "withdrawn"    # withdrawn | lost_to_followup | death | unrelated_ae
    [design.shortfall]      probability = 0.1       # P(the product falls short of the level's dose)
                            low = 0.5, high = 0.8   # fraction of the dose received (uniform)
    [design.no_expansion]   lloq = 20.0             # LLOQ of the kinetics' observable
    [design.committee]      sentinel_review_days = 7   # a sentinel hold is released this long after it is known
                            confirm_days = 7           # "no obvious expansion" confirmed this long after by_day
    [design] max_replacements = 12                  # escalation participants beyond max_participants who
                                                    # may replace non-evaluable ones

What an event means is the protocol's rule, read from the spec's ``[protocol]`` tables (the
same tables as ``study.toml``, :mod:`ctkinetics.data.protocol`) and applied by the escalation
package: the evaluability of each early-end reason (:func:`ctkinetics.escalation.state.classify`),
the sentinel's safety gate (:func:`ctkinetics.escalation.sentinel.sentinel_risk`; the DLT is
simulated, CRS/ICANS grades are not), the no-expansion criterion
(:func:`ctkinetics.escalation.no_expansion.no_expansion_flag` on the simulated peak of the
observable from infusion to ``by_day``) and the dose-shortfall rule
(:func:`ctkinetics.escalation.adapter.shortfall_level`).

A participant's course (:func:`course`), from the uniforms drawn for its slot: the product
delivers a fraction f of the planned dose (1 unless short); the kinetics follow the dose
received; the DLT (toxicity link at the exposure, or for a fixed-rate link the rate of the
highest level whose dose was reached) is observed only if its onset comes before an early end;
the window ends early at the dropout day (uniform over the window) or, with no obvious
expansion, on ``by_day`` — whichever comes first. Days are put on the calendar's 2^-16-day
grid (:func:`ctkinetics.trialsim.draws.on_grid`) so that the day an event is due is the day the
status rule sees it happen.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.data.protocol import EARLY_END_REASONS
from ctkinetics.escalation.state import REASON_CODE
from ctkinetics.trialsim.draws import on_grid

DROPOUT_REASONS = tuple(r for r in EARLY_END_REASONS if r != "no_expansion")


@dataclass(frozen=True)
class Conduct:
    """The conduct settings of a spec (module doc); all off by default."""

    dropout_probability: float = 0.0
    dropout_reason: str = "withdrawn"
    shortfall_probability: float = 0.0
    shortfall_low: float = 0.5
    shortfall_high: float = 0.8
    no_expansion_lloq: float | None = None
    sentinel_review_days: float = 7.0
    confirm_days: float = 7.0
    max_replacements: int = 0


def read_conduct(sec, n_max: int) -> Conduct:
    """The conduct settings of a spec's validated ``[design]`` table (``sec``: a
    :class:`ctkinetics.trialsim.spec_schema.DesignTable`, which holds their types, ranges and
    defaults); ``max_replacements`` defaults to ``n_max`` when participants may be lost."""
    kw = {}
    if sec.dropout is not None:
        kw["dropout_probability"] = float(sec.dropout.probability)
        kw["dropout_reason"] = sec.dropout.reason
    if sec.shortfall is not None:
        kw["shortfall_probability"] = float(sec.shortfall.probability)
        kw["shortfall_low"] = float(sec.shortfall.low)
        kw["shortfall_high"] = float(sec.shortfall.high)
    if sec.no_expansion is not None:
        kw["no_expansion_lloq"] = float(sec.no_expansion.lloq)
    if sec.committee is not None:
        kw["sentinel_review_days"] = float(sec.committee.sentinel_review_days)
        kw["confirm_days"] = float(sec.committee.confirm_days)
    may_lose = (kw.get("dropout_probability", 0) > 0 or kw.get("shortfall_probability", 0) > 0
                or kw.get("no_expansion_lloq") is not None)
    kw["max_replacements"] = sec.max_replacements if sec.max_replacements is not None else (n_max if may_lose else 0)
    return Conduct(**kw)


@dataclass(frozen=True)
class Course:
    """What happens to q infused participants (arrays (q,)); days after infusion unless said.

    ``level`` is the level counted for DLT decisions (the shortfall rule), ``dlt`` the DLT as
    observed, ``onset`` its day (NaN without), ``window_end`` the early end (NaN: none) and
    ``reason`` its code (:data:`ctkinetics.escalation.state.REASON_CODE`), ``confirm`` the
    study day the committee confirms no expansion (NaN), ``evaluable`` 0 where the shortfall
    rule excludes the participant (else NaN: by the rules), ``final`` the day the outcome for
    the DLT decisions is final, ``efficacy`` the efficacy outcome (None without a model).
    """

    level: np.ndarray
    dlt: np.ndarray
    onset: np.ndarray
    window_end: np.ndarray
    reason: np.ndarray
    confirm: np.ndarray
    evaluable: np.ndarray
    final: np.ndarray
    efficacy: np.ndarray | None


def counted_levels(conduct: Conduct, rule, doses, planned, fraction):
    """Level counted and evaluable override (0 or NaN) of participants planned at ``planned``
    who received ``fraction`` of that level's dose (the protocol's shortfall rule)."""
    from ctkinetics.escalation.adapter import shortfall_level

    level = np.asarray(planned, dtype=int).copy()
    evaluable = np.full(level.shape, np.nan)
    for i in np.flatnonzero(np.asarray(fraction) < 1.0):
        level[i], evaluable[i], _ = shortfall_level(int(planned[i]), float(fraction[i] * doses[planned[i]]),
                                                    doses, rule)
    return level, evaluable


def reached_level(doses, planned, fraction):
    """The highest level whose dose the product reached (the lowest when below it)."""
    received = np.asarray(fraction) * np.asarray(doses)[planned]
    reached = np.searchsorted(np.asarray(doses) * (1 - 1e-9), received, side="right") - 1
    return np.maximum(reached, 0)


def course(draws, rows, slots, planned, t0, design, conduct: Conduct):
    """The :class:`Course` of participants at (trial row, slot) infused at ``planned`` levels
    on study days ``t0`` under a rule's ``design`` (its window and protocol)."""
    from ctkinetics.escalation.no_expansion import no_expansion_flag

    T = design.dlt_window_days
    proto = design.protocol
    fraction = draws.fraction[rows, slots]
    level, evaluable = counted_levels(conduct, proto.shortfall, draws.doses, planned, fraction)
    dlt, onset = draws.outcome(rows, slots, planned, reached_level(draws.doses, planned, fraction))
    early = np.where(draws.dropout[rows, slots], on_grid(draws.dropout_day[rows, slots] * T), np.inf)
    reason = np.where(np.isfinite(early), REASON_CODE[conduct.dropout_reason], 0)
    confirm = np.full(early.shape, np.nan)
    if conduct.no_expansion_lloq is not None:
        crit = proto.no_expansion
        peak = draws.exposure(rows, slots, planned)["peak_by_day"]
        by_day = float(on_grid(crit.by_day))
        none_ = no_expansion_flag(peak, conduct.no_expansion_lloq, crit.fold_lloq) & (by_day < early)
        early = np.where(none_, by_day, early)
        reason = np.where(none_, REASON_CODE["no_expansion"], reason)
        if proto.evaluability.no_expansion_needs_confirmation:
            confirm = np.where(none_, t0 + by_day + conduct.confirm_days, np.nan)
    seen = dlt & (onset <= np.minimum(early, T))
    ended = ~seen & (early < T)
    window_end = np.where(ended, early, np.nan)
    reason = np.where(ended, reason, 0)
    confirm = np.where(ended, confirm, np.nan)
    final = np.where(seen, onset, np.where(ended, early, T))
    final = np.where(np.isnan(confirm), t0 + final, np.maximum(t0 + final, confirm))
    efficacy = draws.efficacy(rows, slots, planned)
    return Course(level, seen, np.where(seen, onset, np.nan), window_end, reason.astype(int), confirm,
                  evaluable, final, efficacy)


def slots_needed(n_max: int, conduct: Conduct) -> int:
    """Escalation participant slots of a trial: the maximum plus the replacements allowed."""
    return n_max + conduct.max_replacements


__all__ = ["Conduct", "Course", "read_conduct", "course", "counted_levels", "reached_level", "slots_needed",
           "DROPOUT_REASONS"]
