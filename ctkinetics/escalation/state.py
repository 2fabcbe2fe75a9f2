"""The escalation state: who was infused at which dose level, and what is known about each DLT.

A state is plain data, independent of file formats. :func:`level_counts` reads it *as of* a
study day, so a state can be replayed: participants infused after that day are not yet in
the trial and DLTs reported after that day are not yet known.

Day conventions (as ``safety.csv``): ``infusion_day`` and ``as_of`` are study days;
``dlt_day`` and ``last_followup_day`` are days *after that participant's infusion* (float
allowed).

Status of an escalation-phase participant infused on study day t0, as of study day t, window T:

- **DLT**: ``dlt == 1`` and the DLT is known by day t (t0 + ``dlt_day`` <= t, or no dlt_day
  given). A DLT ends follow-up.
- **complete, no DLT**: no DLT known and the window has elapsed, t − t0 >= T, with follow-up
  not cut short (``last_followup_day`` empty or >= T). ``dlt == 0`` recorded before the window
  has elapsed (possible when replaying an earlier day) still counts as pending.
- **pending** otherwise, with follow-up u = min(t − t0, last_followup_day), clipped to [0, T].
  A participant lost to follow-up before the end of the window stays pending with the
  follow-up actually observed, which is exactly what TITE-BOIN weights.

Expansion-phase participants are carried (they are shown) but never enter DLT decisions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ctkinetics.errors import SettingsError


@dataclass(frozen=True)
class Participant:
    subject: str
    level: int  # index into EscalationState.levels
    infusion_day: float
    dlt: float = math.nan  # 1.0 DLT, 0.0 none, NaN not (yet) known
    dlt_day: float = math.nan  # days after infusion
    last_followup_day: float = math.nan  # days after infusion
    phase: str = "escalation"
    crs_grade: float = math.nan
    icans_grade: float = math.nan


@dataclass(frozen=True)
class EscalationState:
    """Dose levels and participants of one trial.

    Parameters
    ----------
    levels : tuple of str
        Dose-level labels, lowest dose first.
    participants : tuple of Participant
    doses : tuple of float, optional
        Dose of each level (cells), for display.
    eliminated_from : int, optional
        First level eliminated by an earlier decision (persisted by the caller, e.g. a
        day-by-day simulator). Elimination is also recomputed from the data, and the lower
        of the two wins: a dose once eliminated stays eliminated.
    """

    levels: tuple
    participants: tuple = ()
    doses: tuple = ()
    eliminated_from: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "levels", tuple(str(x) for x in self.levels))
        object.__setattr__(self, "participants", tuple(self.participants))
        object.__setattr__(self, "doses", tuple(float(d) for d in self.doses))
        if not self.levels:
            raise SettingsError("an escalation needs at least one dose level")
        for p in self.participants:
            if not 0 <= p.level < len(self.levels):
                raise SettingsError(f"participant {p.subject}: dose level index {p.level} out of range")

    def with_participant(self, participant: Participant) -> "EscalationState":
        """A new state with one more participant (the state itself is immutable)."""
        return EscalationState(self.levels, self.participants + (participant,), self.doses,
                               self.eliminated_from)

    def with_elimination(self, eliminated_from: int | None) -> "EscalationState":
        return EscalationState(self.levels, self.participants, self.doses, eliminated_from)


@dataclass(frozen=True)
class ParticipantStatus:
    subject: str
    level: int
    phase: str
    infusion_day: float
    status: str  # 'dlt' | 'no dlt' | 'pending' | 'expansion'
    followup_days: float  # u (days in the DLT window observed), capped at T
    window_end_day: float  # study day
    dlt_day: float  # study day of the DLT (NaN if none or unknown)


@dataclass(frozen=True)
class LevelCounts:
    """Per-level counts as of a day (escalation phase only, except ``n_expansion``)."""

    n: np.ndarray
    y: np.ndarray
    c: np.ndarray
    stft: np.ndarray  # Σ u_i / T over pending
    n_expansion: np.ndarray
    statuses: tuple = field(default=())
    min_followup: np.ndarray | None = None  # smallest u (days) among pending; inf when none


def participant_status(p: Participant, as_of: float, window: float) -> ParticipantStatus:
    t0 = float(p.infusion_day)
    window_end = t0 + window
    rel = float(p.dlt_day) if p.dlt_day is not None else math.nan
    dlt_day = t0 + rel  # NaN stays NaN
    elapsed = as_of - t0
    if p.phase != "escalation":
        status, u = "expansion", min(max(elapsed, 0.0), window)
    elif p.dlt == 1 and (math.isnan(rel) or rel <= elapsed):
        status, u = "dlt", min(max(rel if not math.isnan(rel) else elapsed, 0.0), window)
    else:
        seen = elapsed
        lf = float(p.last_followup_day) if p.last_followup_day is not None else math.nan
        if not math.isnan(lf):
            seen = min(seen, lf)
        u = min(max(seen, 0.0), window)
        status = "no dlt" if u >= window else "pending"
    return ParticipantStatus(p.subject, p.level, p.phase, t0, status, u, window_end, dlt_day)


def level_counts(state: EscalationState, as_of: float, window: float) -> LevelCounts:
    """Count n, DLTs, pending and STFT per level among participants infused by ``as_of``."""
    k = len(state.levels)
    n, y, c, nexp = (np.zeros(k, dtype=int) for _ in range(4))
    stft = np.zeros(k)
    min_u = np.full(k, np.inf)
    statuses = []
    for p in state.participants:
        if p.infusion_day > as_of:
            continue
        s = participant_status(p, as_of, window)
        statuses.append(s)
        if s.status == "expansion":
            nexp[p.level] += 1
            continue
        n[p.level] += 1
        if s.status == "dlt":
            y[p.level] += 1
        elif s.status == "pending":
            c[p.level] += 1
            stft[p.level] += s.followup_days / window
            min_u[p.level] = min(min_u[p.level], s.followup_days)
    return LevelCounts(n, y, c, stft, nexp, tuple(statuses), min_u)
