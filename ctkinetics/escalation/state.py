"""The escalation state: who was infused at which dose level, and what is known about each DLT.

A state is plain data, independent of file formats. :func:`level_counts` reads it *as of* a
study day, so a state can be replayed: participants infused after that day are not yet in
the trial and outcomes reported after that day are not yet known. The status rule itself is
one vectorised function, :func:`classify`, which the day-by-day replay here and the virtual
trial simulators (arrays of shape (trials, participants)) share.

Day conventions (as ``safety.csv``): ``infusion_day`` and ``as_of`` are study days;
``dlt_day``, ``last_followup_day``, ``window_end_day`` are days *after that participant's
infusion* (float allowed).

Status of an escalation-phase participant infused on study day t0, as of study day t, window T
(u = days of the window observed):

- **dlt**: ``dlt == 1`` and the DLT is known by day t (t0 + ``dlt_day`` <= t, or no dlt_day
  given). A DLT ends follow-up.
- **not evaluable**: the committee said so (``evaluable == 0``), or the window ended early
  (``window_end_day`` < T, known by day t) for a reason whose rule is ``not_evaluable``
  (:class:`ctkinetics.data.protocol.Evaluability`; protocol reading: withdrawn, lost to
  follow-up, death without DLT, no expansion once the committee confirmed). Left out of n.
- **no dlt**: the window has elapsed (t − t0 >= T, follow-up not cut short), or it ended early
  for a reason whose rule is ``no_dlt`` (an AE judged unrelated), or with ``evaluable == 1``.
- **partial**: the window ended early for a reason whose rule is ``partial``: counted in n with
  its observed follow-up u (TITE weight u/T), never holding accrual.
- **awaiting committee**: ``no_expansion`` recorded but not yet confirmed by the committee:
  counted as pending with the follow-up it had (accrual may wait for the committee).
- **pending** otherwise, with follow-up u = min(t − t0, last_followup_day), clipped to [0, T].
  ``dlt == 0`` recorded before the window has elapsed (possible when replaying an earlier
  day) still counts as pending.

Expansion-phase participants are carried (they are shown) but never enter DLT decisions.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from ctkinetics.data.protocol import EARLY_END_REASONS, WINDOW_END_REASONS, Evaluability
from ctkinetics.errors import SettingsError

# Status codes of :func:`classify` (one home; words in STATUS_NAMES).
PENDING, NO_DLT, DLT, NOT_EVALUABLE, PARTIAL, AWAITING, EXPANSION, NOT_INFUSED = range(8)
STATUS_NAMES = ("pending", "no dlt", "dlt", "not evaluable", "partial", "awaiting committee",
                "expansion", "not infused")
#: Reason codes: index into WINDOW_END_REASONS ("" = open / not recorded).
REASON_CODE = {r: i for i, r in enumerate(WINDOW_END_REASONS)}
_OUTCOME_STATUS = {"not_evaluable": NOT_EVALUABLE, "no_dlt": NO_DLT, "partial": PARTIAL}


@dataclass(frozen=True)
class Participant:
    subject: str
    level: int  # index into EscalationState.levels: the level counted for DLT decisions
    infusion_day: float
    dlt: float = math.nan  # 1.0 DLT, 0.0 none, NaN not (yet) known
    dlt_day: float = math.nan  # days after infusion
    last_followup_day: float = math.nan  # days after infusion
    phase: str = "escalation"
    crs_grade: float = math.nan
    icans_grade: float = math.nan
    window_end_day: float = math.nan  # days after infusion the DLT window ended (early or complete)
    window_end_reason: str = ""  # one of WINDOW_END_REASONS; "" while open
    evaluable: float = math.nan  # the committee's explicit call: 1, 0, NaN (by the rules)
    confirmed_day: float = math.nan  # study day the committee confirmed the reason (no_expansion)
    crs_day: float = math.nan  # onset of the highest CRS grade, days after infusion
    icans_day: float = math.nan
    group: str = ""  # expansion group
    planned_level: int = -1  # level planned, when another is counted (dose shortfall); -1: same


@dataclass(frozen=True)
class CommitteeEvent:
    """A dated entry of the committee's record that the rules read (``decisions.csv``)."""

    day: float  # study day
    action: str  # retire_level | release_sentinel_hold (see ctkinetics.data.decisions)
    level: int = -1  # level index, -1 none
    subject: str = ""
    rationale: str = ""


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
    committee : tuple of CommitteeEvent, optional
        Dated committee actions the rules read (levels closed, sentinel holds released); each
        counts from its day on.
    """

    levels: tuple
    participants: tuple = ()
    doses: tuple = ()
    eliminated_from: int | None = None
    committee: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "levels", tuple(str(x) for x in self.levels))
        object.__setattr__(self, "participants", tuple(self.participants))
        object.__setattr__(self, "doses", tuple(float(d) for d in self.doses))
        object.__setattr__(self, "committee", tuple(self.committee))
        if not self.levels:
            raise SettingsError("an escalation needs at least one dose level")
        for p in self.participants:
            if not 0 <= p.level < len(self.levels):
                raise SettingsError(f"participant {p.subject}: dose level index {p.level} out of range")

    def with_participant(self, participant: Participant) -> "EscalationState":
        """A new state with one more participant (the state itself is immutable)."""
        return EscalationState(self.levels, self.participants + (participant,), self.doses,
                               self.eliminated_from, self.committee)

    def with_elimination(self, eliminated_from: int | None) -> "EscalationState":
        return EscalationState(self.levels, self.participants, self.doses, eliminated_from,
                               self.committee)

    def closed_from(self, as_of: float) -> tuple:
        """``(first level closed by the committee by day as_of or len(levels), note)``."""
        k = len(self.levels)
        first, note = k, ""
        for e in self.committee:
            if e.action == "retire_level" and e.day <= as_of and 0 <= e.level < first:
                first, note = e.level, f"retired on day {e.day:g}" + (f": {e.rationale}" if e.rationale else "")
        return first, note

    def released(self, level: int, as_of: float) -> float:
        """Study day the committee released the sentinel hold of ``level`` (NaN: not by as_of)."""
        days = [e.day for e in self.committee
                if e.action == "release_sentinel_hold" and e.level == level and e.day <= as_of]
        return min(days) if days else math.nan


@dataclass(frozen=True)
class ParticipantStatus:
    subject: str
    level: int
    phase: str
    infusion_day: float
    status: str  # one of STATUS_NAMES
    followup_days: float  # u (days in the DLT window observed), capped at T
    window_end_day: float  # study day the window ends (or ended early)
    dlt_day: float  # study day of the DLT (NaN if none or unknown)
    reason: str = ""  # why the window ended early / why not evaluable ("" none)


@dataclass(frozen=True)
class LevelCounts:
    """Per-level counts as of a day (escalation phase only, except ``n_expansion``).

    ``n`` evaluable participants (pending, partial and awaiting included), ``y`` DLTs, ``c``
    pending (an outcome or a committee confirmation still to come), ``c_partial`` counted with
    partial follow-up, ``stft`` Σ u/T over pending and partial, ``n_not_evaluable``.
    """

    n: np.ndarray
    y: np.ndarray
    c: np.ndarray
    stft: np.ndarray  # Σ u_i / T over pending and partial
    n_expansion: np.ndarray
    statuses: tuple = field(default=())
    min_followup: np.ndarray | None = None  # smallest u (days) among pending; inf when none
    c_partial: np.ndarray | None = None
    n_not_evaluable: np.ndarray | None = None
    c_awaiting: np.ndarray | None = None  # of c: awaiting the committee's confirmation


def classify(as_of, infusion_day, window: float, *, dlt, dlt_day=None, last_followup=None,
             window_end_day=None, reason=None, evaluable=None, confirmed_day=None,
             escalation=None, evaluability: Evaluability | None = None):
    """Status code and follow-up u of participants as of a day (vectorised, see module doc).

    Parameters
    ----------
    as_of : float or array broadcastable to the participants' shape (e.g. (m, 1))
    infusion_day : array
        Study days (any shape, e.g. (m, k) for m trials of k participants).
    window : float
        DLT window T (days).
    dlt : array
        1 DLT, 0 none, NaN unknown (bool accepted).
    dlt_day, last_followup, window_end_day : arrays, optional
        Days after infusion (NaN: not given).
    reason : array of int, optional
        Reason codes (:data:`REASON_CODE`), 0 = none.
    evaluable : array, optional
        The committee's explicit call, 1 / 0 / NaN.
    confirmed_day : array, optional
        Study day the committee confirmed the reason (NaN: not yet).
    escalation : array of bool, optional
        False for expansion-phase participants (default: all escalation).
    evaluability : Evaluability, optional
        Rule per reason (default: the protocol reading).

    Returns
    -------
    status : array of int
        Codes PENDING, NO_DLT, DLT, NOT_EVALUABLE, PARTIAL, AWAITING, EXPANSION, NOT_INFUSED.
    u : array of float
        Days of the window observed, in [0, T] (the DLT day for a DLT).
    """
    ev = evaluability or Evaluability()
    nan = lambda x: np.nan if x is None else np.asarray(x, dtype=float)  # noqa: E731
    t0 = np.asarray(infusion_day, dtype=float)
    now = np.asarray(as_of, dtype=float)
    elapsed = now - t0
    d, dday, lf, we = nan(dlt), nan(dlt_day), nan(last_followup), nan(window_end_day)
    code = 0 if reason is None else np.asarray(reason, dtype=int)
    T = float(window)
    with np.errstate(invalid="ignore"):
        dlt_known = (d == 1) & (np.isnan(dday) | (dday <= elapsed))
        u_dlt = np.clip(np.where(np.isnan(dday), elapsed, dday), 0.0, T)
        ended_early = _EARLY[code] & (we < T) & (we <= elapsed)  # NaN compares False
        seen = np.where(np.isnan(lf), elapsed, np.minimum(elapsed, lf))
        u = np.clip(seen, 0.0, T)
        status = np.where(u >= T, NO_DLT, PENDING)
        early_status = _rule_status(ev)[code]
        if evaluable is not None:
            early_status = np.where(nan(evaluable) == 1, NO_DLT, early_status)
        if ev.no_expansion_needs_confirmation:
            confirmed = False if confirmed_day is None else nan(confirmed_day) <= now
            early_status = np.where((code == REASON_CODE["no_expansion"]) & ~confirmed, AWAITING, early_status)
        status = np.where(ended_early, early_status, status)
        u = np.where(ended_early, np.clip(we, 0.0, T), u)
        if evaluable is not None:
            explicit_ne = (nan(evaluable) == 0) & np.where(np.isnan(we), elapsed >= 0, we <= elapsed)
            status = np.where(explicit_ne, NOT_EVALUABLE, status)
        status = np.where(dlt_known, DLT, status)
        u = np.where(dlt_known, u_dlt, u)
        if escalation is not None:
            esc = np.asarray(escalation, dtype=bool)
            status = np.where(esc, status, EXPANSION)
            u = np.where(esc, u, np.clip(elapsed, 0.0, T))
        status = np.where(elapsed < 0, NOT_INFUSED, status)
    shape = np.broadcast(t0, now).shape
    return np.broadcast_to(status, shape), np.broadcast_to(u, shape)


_EARLY = np.array([r in EARLY_END_REASONS for r in WINDOW_END_REASONS])


@functools.lru_cache(maxsize=32)
def _rule_status(ev: Evaluability) -> np.ndarray:
    """Status code of each reason's rule (PENDING for reasons that do not end a window early)."""
    out = np.full(len(WINDOW_END_REASONS), PENDING)
    for r in EARLY_END_REASONS:
        out[REASON_CODE[r]] = _OUTCOME_STATUS[ev.rule_for(r)]
    return out


@dataclass(frozen=True)
class CountArrays:
    """Per-level counts of many situations (arrays (m, D)), as :class:`LevelCounts`."""

    n: np.ndarray
    y: np.ndarray
    c: np.ndarray
    c_partial: np.ndarray
    stft: np.ndarray
    min_followup: np.ndarray
    n_not_evaluable: np.ndarray
    n_expansion: np.ndarray
    c_awaiting: np.ndarray


def count_levels(status, u, level, window: float, n_levels: int) -> CountArrays:
    """Per-level counts from :func:`classify`'s output (arrays (m, k); level −1 = empty slot)."""
    status = np.atleast_2d(status)
    u = np.atleast_2d(u)
    level = np.atleast_2d(level)
    onehot = level[:, :, None] == np.arange(n_levels)
    m = level.shape[0]
    cell = np.arange(m)[:, None] * n_levels + level      # (situation, level) cell of each participant
    placed = (level >= 0) & (level < n_levels)

    def count(mask):   # the participants in mask per cell (a bincount: ~10x a one-hot sum)
        return np.bincount(cell[mask & placed], minlength=m * n_levels).reshape(m, n_levels)

    open_ = (status == PENDING) | (status == AWAITING)
    partial = status == PARTIAL
    n = count(open_ | partial | (status == DLT) | (status == NO_DLT))
    frac = np.where(open_ | partial, u / float(window), 0.0)
    stft = (onehot * frac[:, :, None]).sum(axis=1)
    min_u = np.where(onehot & open_[:, :, None], u[:, :, None], np.inf).min(axis=1, initial=np.inf)
    return CountArrays(n, count(status == DLT), count(open_), count(partial), stft, min_u,
                       count(status == NOT_EVALUABLE), count(status == EXPANSION), count(status == AWAITING))


def participant_arrays(participants) -> dict:
    """The fields :func:`classify` reads, as arrays over ``participants``."""
    ps = list(participants)
    col = lambda name: np.array([float(getattr(p, name)) for p in ps], dtype=float)  # noqa: E731
    return dict(
        infusion_day=col("infusion_day"), dlt=col("dlt"), dlt_day=col("dlt_day"),
        last_followup=col("last_followup_day"), window_end_day=col("window_end_day"),
        reason=np.array([REASON_CODE.get(p.window_end_reason or "", 0) for p in ps], dtype=int),
        evaluable=col("evaluable"), confirmed_day=col("confirmed_day"),
        escalation=np.array([p.phase == "escalation" for p in ps], dtype=bool),
    )


def _reason_text(p: Participant, status: int) -> str:
    if status == NOT_EVALUABLE:
        if p.evaluable == 0:
            return "not evaluable (committee)" + (f": {p.window_end_reason}" if p.window_end_reason else "")
        return f"window ended day {p.window_end_day:g} ({p.window_end_reason}): not evaluable"
    if status == AWAITING:
        return f"window ended day {p.window_end_day:g} (no_expansion): awaiting committee confirmation"
    if status == PARTIAL:
        return f"window ended day {p.window_end_day:g} ({p.window_end_reason}): counted with {p.window_end_day:g} d"
    if status == NO_DLT and p.window_end_reason in EARLY_END_REASONS and p.window_end_day < math.inf:
        return f"window ended day {p.window_end_day:g} ({p.window_end_reason}): evaluable, no DLT"
    return ""


def level_counts(state: EscalationState, as_of: float, window: float,
                 evaluability: Evaluability | None = None) -> LevelCounts:
    """Count n, DLTs, pending and STFT per level among participants infused by ``as_of``."""
    k = len(state.levels)
    ps = [p for p in state.participants if p.infusion_day <= as_of]
    if not ps:
        z = np.zeros(k, dtype=int)
        return LevelCounts(z, z.copy(), z.copy(), np.zeros(k), z.copy(), (), np.full(k, np.inf),
                           z.copy(), z.copy(), z.copy())
    arrays = participant_arrays(ps)
    status, u = classify(float(as_of), arrays.pop("infusion_day"), window,
                         evaluability=evaluability, **arrays)
    levels = np.array([p.level for p in ps])
    cnt = count_levels(status, u, levels, window, k)
    statuses = []
    for p, s, ui in zip(ps, status.tolist(), u.tolist()):
        end = p.infusion_day + (p.window_end_day if s in (NOT_EVALUABLE, PARTIAL, AWAITING) or
                                (s == NO_DLT and p.window_end_reason in EARLY_END_REASONS
                                 and not math.isnan(p.window_end_day)) else window)
        statuses.append(ParticipantStatus(p.subject, p.level, p.phase, float(p.infusion_day),
                                          STATUS_NAMES[s], float(ui), float(end),
                                          float(p.infusion_day + p.dlt_day) if s == DLT else math.nan,
                                          _reason_text(p, s)))
    return LevelCounts(cnt.n[0], cnt.y[0], cnt.c[0], cnt.stft[0], cnt.n_expansion[0], tuple(statuses),
                       cnt.min_followup[0], cnt.c_partial[0], cnt.n_not_evaluable[0], cnt.c_awaiting[0])


def participant_status(p: Participant, as_of: float, window: float,
                       evaluability: Evaluability | None = None) -> ParticipantStatus:
    """The status of one participant (see the module doc)."""
    st = EscalationState(("x",) * (p.level + 1), (p,))
    counts = level_counts(st, max(as_of, p.infusion_day), window, evaluability)
    s = counts.statuses[0]
    if as_of < p.infusion_day:
        return ParticipantStatus(p.subject, p.level, p.phase, float(p.infusion_day), "not infused",
                                 0.0, float(p.infusion_day + window), math.nan)
    return s
