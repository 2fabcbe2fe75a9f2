"""The stagger gate of a dose group: a time gate and a safety gate (DOMAIN.md §1, §7).

Within a dose group the first escalation participant infused at that level is the sentinel.
No other participant of that level may be infused before

- **time**: ``sentinel infusion day + stagger_days``, and
- **safety**: the sentinel had no significant safety risk with onset within
  ``within_days`` of infusion (default: the stagger period) — by default any DLT, CRS grade
  >= 3 or ICANS grade >= 2 (:class:`ctkinetics.data.protocol.SentinelGate`). Such an event,
  once known, *holds* the gate for committee review until the committee records
  ``release_sentinel_hold`` for that level (``decisions.csv``). An event whose onset day is not
  recorded counts (the gate cannot tell it came late).

The sentinel of a new level may be infused as soon as the decision allows it. The gate does
not chain (the third participant does not wait for the second) and never applies across
levels. :func:`sentinel_risk` is the vectorised rule the day-by-day replay and the virtual
trial simulators share.
"""
from __future__ import annotations

import math

import numpy as np

from ctkinetics.data.protocol import SentinelGate


def sentinel_risk(as_of, infusion_day, gate: SentinelGate, within_days: float, *, dlt=None,
                  dlt_day=None, crs_grade=None, crs_day=None, icans_grade=None, icans_day=None):
    """Which sentinels show a significant safety risk known by ``as_of`` (vectorised).

    All arrays share one shape (e.g. (m, levels)); days after infusion, NaN when not given.
    Returns a boolean array and a code array (0 none, 1 DLT, 2 CRS, 3 ICANS: the first found).
    """
    t0 = np.asarray(infusion_day, dtype=float)
    elapsed = np.asarray(as_of, dtype=float) - t0
    shape = t0.shape
    arr = lambda x: np.full(shape, np.nan) if x is None else np.broadcast_to(np.asarray(x, dtype=float), shape)  # noqa: E731

    def event(flag, day):
        day = arr(day)
        with np.errstate(invalid="ignore"):
            onset_ok = np.isnan(day) | (day <= within_days)
            known = np.isnan(day) | (day <= elapsed)
        return flag & onset_ok & known & (elapsed >= 0)

    with np.errstate(invalid="ignore"):
        d = event(gate.hold_on_dlt & (arr(dlt) == 1), dlt_day)
        c = event(arr(crs_grade) >= gate.crs_grade, crs_day)
        i = event(arr(icans_grade) >= gate.icans_grade, icans_day)
    code = np.where(d, 1, np.where(c, 2, np.where(i, 3, 0)))
    code = np.where(gate.enabled, code, 0)
    return code > 0, code


def sentinels(state, as_of_day: float) -> list:
    """The sentinel (first escalation participant infused by ``as_of_day``) of each level, or None
    (a dose group is the participants planned at the level, whatever a shortfall counts)."""
    out = [None] * len(state.levels)
    for p in state.participants:
        if p.phase == "escalation" and p.infusion_day <= as_of_day:
            j = p.planned_level if p.planned_level >= 0 else p.level
            s = out[j]
            if s is None or p.infusion_day < s.infusion_day:
                out[j] = p
    return out


def sentinel_days(state, as_of_day: float) -> list:
    """Infusion day of the first escalation participant at each level (NaN if none yet)."""
    return [math.nan if s is None else float(s.infusion_day) for s in sentinels(state, as_of_day)]


def gate_holds(state, design, as_of_day: float) -> tuple:
    """``(held, notes)`` per level: is the safety gate held for the committee, and why."""
    gate = design.protocol.sentinel
    within = design.stagger_days if gate.within_days is None else gate.within_days
    k = len(state.levels)
    held, notes = np.zeros(k, dtype=bool), [""] * k
    # only sentinels with an event at or above the thresholds can hold (checked in Python first:
    # most states have none, and this runs for every decision)
    found = [(j, s) for j, s in enumerate(sentinels(state, as_of_day)) if s is not None and (
        (gate.hold_on_dlt and s.dlt == 1) or s.crs_grade >= gate.crs_grade or s.icans_grade >= gate.icans_grade)]
    if not gate.enabled or within <= 0 or not found:
        return held, notes
    col = lambda name: [float(getattr(s, name)) for _, s in found]  # noqa: E731
    risk, code = sentinel_risk(as_of_day, col("infusion_day"), gate, within, dlt=col("dlt"),
                               dlt_day=col("dlt_day"), crs_grade=col("crs_grade"), crs_day=col("crs_day"),
                               icans_grade=col("icans_grade"), icans_day=col("icans_day"))
    for (j, s), hit, c in zip(found, risk.tolist(), code.tolist()):
        if not hit:
            continue
        what, day = {1: ("DLT", s.dlt_day), 2: (f"CRS grade {s.crs_grade:g}", s.crs_day),
                     3: (f"ICANS grade {s.icans_grade:g}", s.icans_day)}[c]
        when = f" on day {day:g}" if not math.isnan(day) else " (onset day not recorded)"
        released = state.released(j, as_of_day)
        if not math.isnan(released):
            notes[j] = (f"sentinel {s.subject} had {what}{when}; the committee released the hold "
                        f"on day {released:g}")
            continue
        held[j] = True
        notes[j] = (f"stagger gate of {state.levels[j]} held for committee review: sentinel {s.subject} "
                    f"had {what}{when} (significant safety risk: {gate.describe()} within "
                    f"{within:g} days); record release_sentinel_hold in decisions.csv to open it")
    return held, notes


def stagger_gate(state, design, level: int, as_of: float) -> float:
    """First day a non-sentinel participant may be infused at ``level`` by time (NaN: no
    sentinel yet). The safety half of the gate is :func:`gate_holds`."""
    s = sentinel_days(state, as_of)[level]
    return s + design.stagger_days if not math.isnan(s) else math.nan
