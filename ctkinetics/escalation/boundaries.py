"""BOIN interval boundaries and the elimination rule (Liu & Yuan 2015, JRSS-C 64:507).

This module is the one home of the boundary formulas; every decision, table and simulation in
:mod:`ctkinetics.escalation` goes through :class:`BoinDesign`.

With target DLT probability φ, a highest "sub-therapeutic" rate φ1 (default 0.6 φ) and a lowest
"overly toxic" rate φ2 (default 1.4 φ)::

    λe = ln((1−φ1)/(1−φ)) / ln(φ(1−φ1) / (φ1(1−φ)))
    λd = ln((1−φ)/(1−φ2)) / ln(φ2(1−φ) / (φ(1−φ2)))

At the current dose with n treated and y DLTs: escalate if y/n ≤ λe, de-escalate if y/n ≥ λd,
else stay. A dose is eliminated (with every higher dose) when n ≥ 3 and
Pr(p > φ | y, n) > 0.95 under a Beta(1, 1) prior, i.e. when ``1 − I_φ(y+1, n−y+1) > 0.95``.

Tie convention (as the BOIN R package, ``get.boundary``): when λd·n is an integer, y = λd·n
means *stay*, so de-escalation needs y/n > λd exactly; escalation needs y ≤ floor(λe·n). The
de-escalation count is capped at the elimination count (an eliminated dose is always left).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from ctkinetics.data.protocol import Design, Protocol
from ctkinetics.errors import SettingsError

_DESIGN = Design()

# Counts are compared with a relative slack so that λ·n computed in floating point as
# 2.9999999999999996 for a mathematical 3 gives the same answer as the exact value.
_TOL = 1e-9
DEFAULT_MAX_SUBJECTS = 12
#: How "the MTD now" treats participants still inside their DLT window (see :mod:`.mtd`).
MTD_PENDING_POLICIES = ("exclude", "no_dlt")
#: Settings of a study's ``[design]`` table that map onto BoinDesign fields of another name.
_STUDY_FIELDS = {"target_dlt_rate": "target"}


def lambda_e(target: float, phi1: float) -> float:
    """Escalation boundary λe (a DLT rate, dimensionless)."""
    return math.log((1 - phi1) / (1 - target)) / math.log(target * (1 - phi1) / (phi1 * (1 - target)))


def lambda_d(target: float, phi2: float) -> float:
    """De-escalation boundary λd (a DLT rate, dimensionless)."""
    return math.log((1 - target) / (1 - phi2)) / math.log(phi2 * (1 - target) / (target * (1 - phi2)))


def _check_probability(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} must be a number, got {value!r}") from None
    if not (0.0 < v < 1.0) or math.isnan(v):
        raise SettingsError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return v


def _check_count(name: str, value, minimum: int = 1) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} must be an integer, got {value!r}") from None
    if v != value and not (isinstance(value, float) and value.is_integer()):
        raise SettingsError(f"{name} must be an integer, got {value!r}")
    if v < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value!r}")
    return v


@dataclass(frozen=True)
class BoinDesign:
    """A BOIN / TITE-BOIN design: the settings every escalation rule here reads.

    Parameters
    ----------
    target : float
        Target DLT probability φ at the MTD, in (0, 1).
    phi1, phi2 : float, optional
        Rates deemed too low / too high; defaults 0.6 φ and 1.4 φ. Need 0 < φ1 < φ < φ2 < 1.
    cohort_size : int
        Participants per cohort; the dose is re-decided when a cohort is complete.
    max_subjects : int
        Maximum number of escalation-phase participants; reaching it stops accrual.
    dlt_window_days : float
        DLT assessment window T (days after infusion).
    stagger_days : float
        Within a dose group, the first participant (the sentinel) must be this many days past
        infusion before the next participant of that group is infused. 0 disables it.
    cutoff_eli : float
        Posterior probability Pr(p > φ | data) above which a dose is eliminated (0.95).
    start_level : int
        0-based index of the starting dose level.
    tite : bool
        True (TITE-BOIN): decide with pending outcomes, suspending accrual only when more than
        half of the current level's participants are pending. False (plain BOIN): any pending
        outcome at the current level suspends accrual until the data are complete.
    min_completers : int
        Optional CAR-T guard (0 = off): escalate only when at least this many participants at
        the current level have complete DLT data (window over, or a DLT); while fewer are
        treated there, stay; while fewer are complete, wait.
    min_pending_followup : float
        Optional CAR-T guard in days (0 = off, at most the DLT window): escalate only when every
        pending participant at the current level has been followed at least this long; wait
        until then.
    n_earlystop : int, optional
        R BOIN's ``n.earlystop``: stop the trial (and select the MTD) when this many are
        treated at the current dose and the rules would keep the next participant there.
        None (default) never stops early (R's default 100 does the same for small trials).
    extrasafe : bool
        R BOIN's ``extrasafe``: stop the trial when the lowest dose has n >= 3 and
        Pr(p > φ | data) > ``cutoff_eli − offset`` (a stricter rule for the lowest dose only).
    offset : float
        R BOIN's ``offset`` for ``extrasafe`` (default 0.05, below 0.5).
    bound_mtd : bool
        R BOIN's ``boundMTD``: the selected MTD's isotonic estimate must not exceed λd.
    mtd_pending : str
        How "the MTD now" treats participants still inside their DLT window: ``"exclude"``
        (default: complete windows only) or ``"no_dlt"`` (counted as no DLT, provisional).
    protocol : ctkinetics.data.protocol.Protocol
        The protocol's own rules the escalation reads (evaluability of an early window end,
        the sentinel's safety gate, ...); default: the protocol's reading (DOMAIN.md §7).

    Notes
    -----
    ``max_subjects`` defaults to 12 when not given. The simulators take a number of cohorts
    and treat ``n_cohorts × cohort_size`` participants; a ``max_subjects`` given explicitly
    must then agree with it (see :meth:`simulation_cohorts`).
    """

    # the defaults of study.toml's [design] (one home: ctkinetics.data.protocol.Design)
    target: float = _DESIGN.target_dlt_rate
    phi1: float | None = None
    phi2: float | None = None
    cohort_size: int = _DESIGN.cohort_size
    max_subjects: int | None = None  # None: 12 (remembered as "not given", see Notes)
    dlt_window_days: float = _DESIGN.dlt_window_days
    stagger_days: float = _DESIGN.stagger_days
    cutoff_eli: float = _DESIGN.cutoff_eli
    start_level: int = 0
    tite: bool = True
    min_completers: int = _DESIGN.min_completers
    min_pending_followup: float = _DESIGN.min_pending_followup
    n_earlystop: int | None = _DESIGN.n_earlystop
    extrasafe: bool = _DESIGN.extrasafe
    offset: float = _DESIGN.offset
    bound_mtd: bool = _DESIGN.bound_mtd
    mtd_pending: str = _DESIGN.mtd_pending
    protocol: Protocol = field(default_factory=Protocol)
    _elim: tuple = field(default=(), init=False, repr=False, compare=False)
    _max_given: bool = field(default=True, init=False, repr=False, compare=False)

    def __post_init__(self):
        target = _check_probability("target", self.target)
        phi1 = 0.6 * target if self.phi1 is None else _check_probability("phi1", self.phi1)
        phi2 = 1.4 * target if self.phi2 is None else _check_probability("phi2", self.phi2)
        if not phi1 < target < phi2:
            raise SettingsError(f"need phi1 < target < phi2, got phi1={phi1:g}, target={target:g}, phi2={phi2:g}")
        if phi2 >= 1.0:
            raise SettingsError(f"phi2 = 1.4 x target = {phi2:g} must stay below 1; give --phi2 explicitly")
        cutoff = _check_probability("cutoff_eli", self.cutoff_eli)
        for name in ("dlt_window_days",):
            if not float(getattr(self, name)) > 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)!r}")
        if float(self.stagger_days) < 0:
            raise SettingsError(f"stagger_days must be >= 0, got {self.stagger_days!r}")
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "phi1", phi1)
        object.__setattr__(self, "phi2", phi2)
        object.__setattr__(self, "cutoff_eli", cutoff)
        object.__setattr__(self, "cohort_size", _check_count("cohort_size", self.cohort_size))
        object.__setattr__(self, "_max_given", self.max_subjects is not None)
        max_subjects = DEFAULT_MAX_SUBJECTS if self.max_subjects is None else self.max_subjects
        object.__setattr__(self, "max_subjects", _check_count("max_subjects", max_subjects))
        object.__setattr__(self, "min_completers", _check_count("min_completers", self.min_completers, 0))
        try:
            follow = float(self.min_pending_followup)
        except (TypeError, ValueError):
            raise SettingsError(f"min_pending_followup must be a number of days, got "
                                f"{self.min_pending_followup!r}") from None
        if not 0.0 <= follow <= float(self.dlt_window_days):
            raise SettingsError(f"min_pending_followup must lie between 0 and the DLT window "
                                f"({float(self.dlt_window_days):g} days), got {self.min_pending_followup!r}")
        object.__setattr__(self, "min_pending_followup", follow)
        object.__setattr__(self, "start_level", _check_count("start_level", self.start_level, 0))
        if self.n_earlystop is not None:
            object.__setattr__(self, "n_earlystop", _check_count("n_earlystop", self.n_earlystop))
        offset = _check_probability("offset", self.offset)
        if not offset < 0.5 or offset >= cutoff:
            raise SettingsError(f"offset must lie in (0, 0.5) and below cutoff_eli, got {self.offset!r}")
        object.__setattr__(self, "offset", offset)
        for name in ("extrasafe", "bound_mtd"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise SettingsError(f"{name} must be true or false, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        if self.mtd_pending not in MTD_PENDING_POLICIES:
            raise SettingsError(f"mtd_pending must be one of {', '.join(MTD_PENDING_POLICIES)}, "
                                f"got {self.mtd_pending!r}")
        object.__setattr__(self, "dlt_window_days", float(self.dlt_window_days))
        object.__setattr__(self, "stagger_days", float(self.stagger_days))

    @classmethod
    def from_study(cls, design, **overrides) -> "BoinDesign":
        """From a ``ctkinetics.data`` ``Design`` (target_dlt_rate, dlt_window_days, ...):
        every field the study's ``[design]`` shares with BoinDesign, then ``overrides``."""
        import dataclasses

        names = {f.name for f in dataclasses.fields(cls) if f.init}
        kw = {}
        for f in dataclasses.fields(design):
            name = _STUDY_FIELDS.get(f.name, f.name)
            if name in names:
                kw[name] = getattr(design, f.name)
        kw.update(overrides)
        return cls(**kw)

    def simulation_cohorts(self, n_cohorts=None) -> int:
        """Number of cohorts a simulator runs, checked against ``max_subjects``.

        ``n_cohorts`` None: ``max_subjects / cohort_size``, which must be a whole number.
        Given: it sets the sample size ``n_cohorts × cohort_size``; a ``max_subjects`` given
        explicitly to this design must equal it.

        Raises
        ------
        SettingsError
            When the two disagree or ``max_subjects`` is not a whole number of cohorts.
        """
        cs = self.cohort_size
        if n_cohorts is None:
            if self.max_subjects % cs:
                raise SettingsError(
                    f"max_subjects = {self.max_subjects} is not a whole number of cohorts of {cs}: the "
                    f"simulators treat whole cohorts; give n_cohorts or a max_subjects divisible by {cs}")
            return self.max_subjects // cs
        n_cohorts = _check_count("n_cohorts", n_cohorts)
        if self._max_given and self.max_subjects != n_cohorts * cs:
            raise SettingsError(
                f"max_subjects = {self.max_subjects} does not fit {n_cohorts} cohorts of {cs} "
                f"(= {n_cohorts * cs} participants): give one of them, or make them agree")
        return n_cohorts

    @property
    def max_pending_fraction(self) -> float:
        """Accrual is suspended when pending / treated exceeds this at the current level."""
        return 0.5 if self.tite else 0.0

    @property
    def lambda_e(self) -> float:
        return lambda_e(self.target, self.phi1)

    @property
    def lambda_d(self) -> float:
        return lambda_d(self.target, self.phi2)

    # -- integer boundaries by number treated -------------------------------------------------
    # All three are looked up in tables over n = 0 … n_max computed once per design, so that
    # the simulators pay an array index, not a formula, per trial and decision.
    def escalate_max(self, n):
        """Largest DLT count that still escalates with n treated: floor(λe·n)."""
        n = np.asarray(n, dtype=int)
        return self._tables(n)[0][n]

    def deescalate_min(self, n):
        """Smallest DLT count that de-escalates with n treated (y/n > λd, capped by elimination)."""
        n = np.asarray(n, dtype=int)
        return self._tables(n)[1][n]

    def eliminate_min(self, n):
        """Smallest DLT count that eliminates the dose with n treated; n + 1 means never."""
        n = np.asarray(n, dtype=int)
        return self._tables(n)[2][n]

    def stop_lowest_min(self, n):
        """With ``extrasafe``: smallest DLT count at the lowest dose with n treated that stops
        the trial, Pr(p > φ | y, n) > cutoff_eli − offset (n + 1 means never; n < 3 never)."""
        n = np.asarray(n, dtype=int)
        return self._tables(n)[3][n]

    def _tables(self, n):
        n_max = int(n.max()) if n.size else 0
        cached = self._elim
        if not cached or len(cached[0]) <= n_max:
            size = 64 * (1 + n_max // 64)
            cached = _count_tables(self.target, self.lambda_e, self.lambda_d, self.cutoff_eli, self.offset, size)
            object.__setattr__(self, "_elim", cached)
        return cached

    def prob_overdose(self, y, n):
        """Pr(p > φ | y DLTs in n) under a Beta(1, 1) prior."""
        from scipy.special import betaincc  # = scipy.stats.beta.sf, without its 1 s import

        y = np.asarray(y, dtype=float)
        n = np.asarray(n, dtype=float)
        return betaincc(y + 1, n - y + 1, self.target)


@functools.lru_cache(maxsize=64)
def _count_tables(target: float, lam_e: float, lam_d: float, cutoff: float, offset: float, size: int) -> tuple:
    """Escalation, de-escalation, elimination and extra-safe counts for n = 0 .. size − 1 (one
    computation per design, shared by every BoinDesign instance with the same settings)."""
    from scipy.special import betaincc  # = scipy.stats.beta.sf (the same Boost function)

    nn = np.arange(size)
    ng = nn[:, None]
    y = nn[None, :]
    # Pr(p > φ | y, n) with p ~ Beta(1 + y, 1 + n − y), on the whole (n, y) grid at once
    with np.errstate(invalid="ignore"):
        post = betaincc(y + 1, np.maximum(ng - y, 0) + 1, target)

    def first_above(cut):
        hit = (post > cut) & (y <= ng) & (ng >= 3)
        return np.where(hit.any(axis=1), hit.argmax(axis=1), nn + 1)

    elim = first_above(cutoff)
    stop_lowest = first_above(cutoff - offset)
    esc = np.floor(lam_e * nn + _TOL).astype(int)
    deesc = np.minimum(np.floor(lam_d * nn + _TOL).astype(int) + 1, elim)
    for a in (esc, deesc, elim, stop_lowest):
        a.setflags(write=False)
    return esc, deesc, elim, stop_lowest


@dataclass(frozen=True)
class BoundaryTable:
    """The BOIN decision table by number treated.

    Attributes
    ----------
    design : BoinDesign
    table : pandas.DataFrame
        Columns ``n, escalate_if_le, deescalate_if_ge, eliminate_if_ge`` (the last nullable
        Int64: <NA> where no number of DLTs eliminates, e.g. n < 3).
    """

    design: BoinDesign
    table: object

    @property
    def lambda_e(self) -> float:
        return self.design.lambda_e

    @property
    def lambda_d(self) -> float:
        return self.design.lambda_d

    def to_frame(self):
        return self.table.copy()


def boundaries(target: float = 0.30, phi1: float | None = None, phi2: float | None = None,
               cohort_size: int = 3, n_cohorts: int = 4, cutoff_eli: float = 0.95,
               every_n: bool = False, extrasafe: bool = False, offset: float = 0.05) -> BoundaryTable:
    """BOIN boundaries at n = cohort_size, 2·cohort_size, ..., n_cohorts·cohort_size.

    Parameters
    ----------
    every_n : bool
        Give every n = 1 … n_cohorts·cohort_size instead of cohort ends only.
    extrasafe, offset : bool, float
        Add ``stop_trial_if_ge``: the DLT count at the lowest dose that stops the trial under
        R BOIN's extra-safe rule, Pr(p > φ | data) > cutoff_eli − offset (<NA> where none).

    Examples
    --------
    >>> t = boundaries(0.3, cohort_size=3, n_cohorts=4).to_frame()
    >>> t["eliminate_if_ge"].tolist()
    [3, 4, 5, 7]
    """
    import pandas as pd

    n_cohorts = _check_count("n_cohorts", n_cohorts)
    design = BoinDesign(target=target, phi1=phi1, phi2=phi2, cohort_size=cohort_size,
                        cutoff_eli=cutoff_eli, extrasafe=extrasafe, offset=offset)
    n_max = design.cohort_size * n_cohorts
    n = np.arange(1, n_max + 1) if every_n else np.arange(1, n_cohorts + 1) * design.cohort_size
    elim = design.eliminate_min(n)
    table = pd.DataFrame({
        "n": n,
        "escalate_if_le": design.escalate_max(n),
        "deescalate_if_ge": design.deescalate_min(n),
        "eliminate_if_ge": pd.array(np.where(elim <= n, elim, 0), dtype="Int64"),
    })
    table.loc[elim > n, "eliminate_if_ge"] = pd.NA
    if extrasafe:
        stop = design.stop_lowest_min(n)
        table["stop_trial_if_ge"] = pd.array(np.where(stop <= n, stop, 0), dtype="Int64")
        table.loc[stop > n, "stop_trial_if_ge"] = pd.NA
    return BoundaryTable(design=design, table=table)
