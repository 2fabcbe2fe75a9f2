"""BOIN12: utility-based dose finding on toxicity *and* efficacy (Lin, Zhou, Yan, Li, Yuan 2020,
JCO Precision Oncology 4:1393), for the recommended dose (RD) beyond the MTD.

Each participant's (efficacy, DLT) outcome scores a utility, by default (the published ones)
u(E, no DLT) = 100, u(no E, no DLT) = 40, u(E, DLT) = 60, u(no E, DLT) = 0. With φ_T the
toxicity limit and φ_E the lowest acceptable response rate::

    ū   = u(E,¬T) φ_E (1−φ_T) + u(¬E,¬T)(1−φ_E)(1−φ_T) + u(E,T) φ_E φ_T + u(¬E,T)(1−φ_E) φ_T
    u_b = ū + (100 − ū) / 2                                   (the desirable benchmark)
    x_j = Σ_outcomes u · count / 100   (quasi-binomial "successes" among n_j at level j)
    desirability_j = Pr(U_j > u_b/100 | data),  U_j ~ Beta(1 + x_j, 1 + n_j − x_j)

The rank of the desirability among the entries of a decision table is the paper's
rank-based desirability score (RDS, Table 3). A level is **inadmissible** when
Pr(p_T > φ_T | data) > c_T (0.95; it and every higher level, as BOIN's elimination) or
Pr(p_E < φ_E | data) > c_E (0.90; that level only), under Beta(1, 1) priors.

Dose finding from the current level d with n_d treated and p̂_T = y_T / n_d, λe and λd the BOIN
boundaries of target φ_T:

1. p̂_T ≥ λd: de-escalate to the highest admissible level below d (at the lowest, stay);
2. λe < p̂_T < λd and n_d ≥ N* (6): the more desirable of d − 1 and d;
3. otherwise: the most desirable admissible level among d − 1, d, d + 1;
4. dose exploration: n_d ≥ ``n_explore`` (9), p̂_T < λd and the next level untried: escalate.

Ties go to the higher level (as the published software). No admissible level: stop. With
``max_at_dose`` the trial stops when that many are treated at d.

The optimal biological dose (OBD) at the end: the MTD by BOIN's isotonic selection on the
toxicity data (:func:`ctkinetics.escalation.select_mtd`), then among treated admissible levels
up to the MTD the highest estimated utility Û = Σ u · p̂(outcome), with p̂_T the isotonic
estimate, p̂_E = (y_E + 0.05)/(n + 0.1) and the outcomes independent given the level (ties: the
lower level). The published software smooths efficacy by (unimodal) isotonic regression; the
raw estimate here leaves a plateau or a fall of efficacy visible to the committee.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError
from ctkinetics.escalation.boundaries import BoinDesign
from ctkinetics.escalation.mtd import select_mtd

#: Outcome codes as in the literature's trial strings: N neither, E efficacy, T toxicity, B both.
OUTCOMES = {"E": (1, 0), "N": (0, 0), "B": (1, 1), "T": (0, 1)}


@dataclass(frozen=True)
class Boin12Design:
    """BOIN12 settings (module doc); ``utilities`` = (u(E,¬T), u(¬E,¬T), u(E,T), u(¬E,T))."""

    phi_t: float = 0.35
    phi_e: float = 0.25
    utilities: tuple = (100.0, 40.0, 60.0, 0.0)
    c_t: float = 0.95
    c_e: float = 0.90
    n_star: int = 6
    n_explore: int = 9
    cohort_size: int = 3
    max_at_dose: int | None = None

    def __post_init__(self):
        u = tuple(float(x) for x in self.utilities)
        if len(u) != 4 or u[0] != 100 or u[3] != 0 or not all(0 <= x <= 100 for x in u):
            raise SettingsError(f"BOIN12 utilities run from 0 (DLT without efficacy) to 100 (efficacy without "
                                f"DLT): give [100, u(neither), u(both), 0], got {list(self.utilities)}")
        object.__setattr__(self, "utilities", u)
        for name in ("phi_t", "phi_e", "c_t", "c_e"):
            v = float(getattr(self, name))
            if not 0 < v < 1:
                raise SettingsError(f"{name} must lie in (0, 1), got {getattr(self, name)!r}")

    @classmethod
    def from_settings(cls, eff, target: float, cohort_size: int = 3) -> "Boin12Design":
        """From ``study.toml`` ``[efficacy]`` (phi_t defaults to the design's target)."""
        return cls(phi_t=eff.phi_t if eff.phi_t is not None else target, phi_e=eff.phi_e,
                   utilities=eff.utilities, c_t=eff.c_t, c_e=eff.c_e, n_star=eff.n_star,
                   n_explore=eff.n_explore, cohort_size=cohort_size)

    @property
    def boin(self) -> BoinDesign:
        """The BOIN design of target φ_T (its λe, λd and isotonic MTD)."""
        return BoinDesign(self.phi_t, cohort_size=self.cohort_size)

    @property
    def additive(self) -> bool:
        """u(E,¬T) + u(¬E,T) = u(¬E,¬T) + u(E,T): then marginal counts determine the utility."""
        u = self.utilities
        return math.isclose(u[0] + u[3], u[1] + u[2])

    @property
    def u_bar(self) -> float:
        u, pt, pe = self.utilities, self.phi_t, self.phi_e
        return u[0] * pe * (1 - pt) + u[1] * (1 - pe) * (1 - pt) + u[2] * pe * pt + u[3] * (1 - pe) * pt

    @property
    def u_benchmark(self) -> float:
        return self.u_bar + (100 - self.u_bar) / 2


@dataclass(frozen=True)
class Boin12Counts:
    """Per level: n and the joint outcome counts (efficacy without DLT, neither, both, DLT only)."""

    n: np.ndarray
    e_only: np.ndarray
    neither: np.ndarray
    both: np.ndarray
    t_only: np.ndarray

    @property
    def y_t(self):
        return self.both + self.t_only

    @property
    def y_e(self):
        return self.e_only + self.both

    @classmethod
    def from_outcomes(cls, levels, efficacy, toxicity, k: int) -> "Boin12Counts":
        lv, e, t = (np.asarray(a, dtype=int) for a in (levels, efficacy, toxicity))
        c = lambda mask: np.bincount(lv[mask], minlength=k)  # noqa: E731
        return cls(np.bincount(lv, minlength=k), c((e == 1) & (t == 0)), c((e == 0) & (t == 0)),
                   c((e == 1) & (t == 1)), c((e == 0) & (t == 1)))

    @classmethod
    def from_string(cls, trial: str, k: int) -> "Boin12Counts":
        """From a trial string such as ``"1NNN 2NNB"`` (level 1-based, then one letter per
        participant: N neither, E efficacy, T toxicity, B both)."""
        levels, e, t = [], [], []
        for cohort in trial.split():
            j = int(cohort[:-len(cohort.lstrip("0123456789"))] or cohort.rstrip("NETB"))
            for ch in cohort.lstrip("0123456789"):
                levels.append(j - 1)
                e.append(OUTCOMES[ch][0])
                t.append(OUTCOMES[ch][1])
        return cls.from_outcomes(levels, e, t, k)


def quasi_successes(design: Boin12Design, counts: Boin12Counts) -> np.ndarray:
    """x_j = Σ u · count / 100 (module doc)."""
    u = design.utilities
    return (u[0] * counts.e_only + u[1] * counts.neither + u[2] * counts.both + u[3] * counts.t_only) / 100.0


def desirability(design: Boin12Design, n, x) -> np.ndarray:
    """Pr(U > u_b / 100 | x of n) with U ~ Beta(1 + x, 1 + n − x) (vectorised)."""
    from scipy.stats import beta

    n = np.asarray(n, dtype=float)
    x = np.asarray(x, dtype=float)
    return beta.sf(design.u_benchmark / 100.0, 1 + x, 1 + n - x)


def admissibility(design: Boin12Design, n, y_t, y_e) -> tuple:
    """``(toxic, futile)`` boolean arrays: Pr(p_T > φ_T) > c_T, Pr(p_E < φ_E) > c_E."""
    from scipy.stats import beta

    n, y_t, y_e = (np.asarray(a, dtype=float) for a in (n, y_t, y_e))
    toxic = beta.sf(design.phi_t, 1 + y_t, 1 + n - y_t) > design.c_t
    futile = beta.cdf(design.phi_e, 1 + y_e, 1 + n - y_e) > design.c_e
    return toxic, futile


def rds_table(design: Boin12Design, sample_sizes=(0, 3, 6, 9)) -> pd.DataFrame:
    """The rank-based desirability scores of every (n, y_T, y_E) for the given sample sizes
    (the paper's Table 3; marginal counts, so additive utilities are required). ``rds`` is NaN
    where the entry is inadmissible ("E" in the paper); ties share the average rank."""
    if not design.additive:
        raise SettingsError("an RDS table from marginal counts needs additive utilities "
                            "(u(E,no DLT) + u(DLT,no E) = u(neither) + u(both))")
    rows = [(n, t, e) for n in sample_sizes for t in range(n + 1) for e in range(n + 1)]
    n, t, e = (np.array(c, dtype=float) for c in zip(*rows))
    u = design.utilities
    x = (u[1] * (n - t) + u[2] * e) / 100.0  # additive: u = u(¬E,¬T)(1 − T) + u(E,T) E
    prob = desirability(design, n, x)
    toxic, futile = admissibility(design, n, t, e)
    ok = ~toxic & ~futile
    rank = pd.Series(np.where(ok, prob, np.nan)).rank(method="average").to_numpy()
    return pd.DataFrame({"n": n.astype(int), "dlt": t.astype(int), "efficacy": e.astype(int),
                         "admissible": ok, "desirability": prob, "rds": rank})


@dataclass(frozen=True)
class Boin12Step:
    next_level: int  # −1: stop
    rule: str
    admissible: np.ndarray
    desirability: np.ndarray


#: Rules of :func:`next_dose_arrays`, by code (the wording takes n, p, lambda_d, ...).
RULES12 = (
    ("stop_max_at_dose", "{n} treated at the current level (max {max_at_dose}): stop"),
    ("explore", "dose exploration: {n} treated, p_T = {p:.3f} < lambda_d, next level untried"),
    ("deescalate", "p_T = {p:.3f} >= lambda_d = {lambda_d:.4f}: de-escalate"),
    ("stay_lowest", "p_T = {p:.3f} >= lambda_d at the lowest admissible level: stay"),
    ("stop_none_below", "no admissible level at or below the current one: stop"),
    ("best_of_two", "lambda_e < p_T = {p:.3f} < lambda_d with n >= N* = {n_star}: the more desirable of d-1 and d"),
    ("best_of_three", "the most desirable admissible level among d-1, d, d+1"),
    ("stop_none_admissible", "no admissible level among the candidates: stop"),
)


def next_dose_arrays(design: Boin12Design, n, e_only, neither, both, t_only, current) -> tuple:
    """BOIN12's decision for m situations at once (counts (m, K), ``current`` (m,)): returns
    ``(next level (m,) with −1 = stop, rule code (m,) into RULES12, admissible (m, K),
    desirability (m, K))``. The one home of the rule (module doc); :func:`next_dose` and the
    virtual-trial simulators call it."""
    n, e_only, neither, both, t_only = (np.atleast_2d(np.asarray(a, dtype=float)) for a in
                                        (n, e_only, neither, both, t_only))
    m, k = n.shape
    d = np.asarray(current, dtype=int).reshape(m)
    ii, idx = np.arange(m), np.arange(k)[None, :]
    u = design.utilities
    des = desirability(design, n, (u[0] * e_only + u[1] * neither + u[2] * both + u[3] * t_only) / 100.0)
    toxic, futile = admissibility(design, n, both + t_only, e_only + both)
    first_toxic = np.where(toxic.any(axis=1), toxic.argmax(axis=1), k)
    open_ = idx < first_toxic[:, None]
    adm = open_ & ~futile
    nd = n[ii, d]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(nd > 0, (both + t_only)[ii, d] / np.maximum(nd, 1), 0.0)
    b = design.boin

    def best(mask):
        score = np.where(mask & adm, des, -np.inf)
        top = score.max(axis=1)
        pick = k - 1 - np.argmax((score == top[:, None])[:, ::-1], axis=1)  # ties: the higher level
        return np.where(np.isfinite(top), pick, -1)

    up = np.minimum(d + 1, k - 1)
    explore = ((nd > 0) & (p < b.lambda_d) & (nd >= design.n_explore) & (d + 1 < k)
               & (n[ii, up] == 0) & open_[ii, up])
    below = adm & (idx < d[:, None])
    highest_below = np.where(below.any(axis=1), k - 1 - np.argmax(below[:, ::-1], axis=1), -1)
    near = np.abs(idx - d[:, None]) <= 1
    two, three = best(near & (idx <= d[:, None])), best(near)
    conds = [
        (np.zeros(m, bool) if design.max_at_dose is None else nd >= design.max_at_dose, 0, np.full(m, -1)),
        (explore, 1, d + 1),
        ((nd > 0) & (p >= b.lambda_d) & (highest_below >= 0), 2, highest_below),
        ((nd > 0) & (p >= b.lambda_d) & adm[ii, d], 3, d),
        ((nd > 0) & (p >= b.lambda_d), 4, np.full(m, -1)),
        ((nd >= design.n_star) & (p > b.lambda_e), 5, two),
    ]
    nxt, code = three, np.where(three >= 0, 6, 7)
    for cond, c, target in reversed(conds):  # the first that holds wins
        nxt = np.where(cond, target, nxt)
        code = np.where(cond, np.where((c == 5) & (target < 0), 7, c), code)
    return nxt, code, adm, des


def next_dose(design: Boin12Design, counts: Boin12Counts, current: int) -> Boin12Step:
    """The BOIN12 decision for the next cohort from level ``current`` (module doc)."""
    nxt, code, adm, des = next_dose_arrays(design, counts.n, counts.e_only, counts.neither, counts.both,
                                           counts.t_only, [current])
    nd = int(counts.n[current])
    b = design.boin
    text = RULES12[int(code[0])][1].format(n=nd, p=counts.y_t[current] / nd if nd else 0.0,
                                           lambda_d=b.lambda_d, n_star=design.n_star,
                                           max_at_dose=design.max_at_dose)
    return Boin12Step(int(nxt[0]), text, adm[0], des[0])


def _first_toxic(toxic) -> int:
    hit = np.flatnonzero(toxic)
    return int(hit[0]) if hit.size else len(toxic)


@dataclass(frozen=True)
class ObdSelection:
    """The optimal biological dose and the table behind it."""

    obd_level: str | None
    obd_index: int
    mtd_level: str | None
    reason: str
    table: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()


def select_obd(design: Boin12Design, counts: Boin12Counts, levels=None) -> ObdSelection:
    """The OBD at the end of the trial (module doc): per level n, DLTs, responders, isotonic
    p̂_T, p̂_E, the estimated utility, the desirability and admissibility."""
    k = len(counts.n)
    levels = [str(j + 1) for j in range(k)] if levels is None else [str(x) for x in levels]
    n, yt, ye = counts.n, counts.y_t, counts.y_e
    mtd = select_mtd(design.boin, n, yt, levels)
    p_t = mtd.table["estimate"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_e = np.where(n > 0, (ye + 0.05) / (n + 0.1), np.nan)
    u = design.utilities
    util = u[0] * p_e * (1 - p_t) + u[1] * (1 - p_e) * (1 - p_t) + u[2] * p_e * p_t + u[3] * (1 - p_e) * p_t
    toxic, futile = admissibility(design, n, yt, ye)
    adm = (np.arange(k) < _first_toxic(toxic)) & ~futile & (n > 0)
    cand = adm & (np.arange(k) <= mtd.mtd_index) if mtd.mtd_index >= 0 else np.zeros(k, bool)
    des = desirability(design, n, quasi_successes(design, counts))
    table = pd.DataFrame({"level": levels, "n": n, "dlt": yt, "efficacy": ye, "p_dlt": p_t, "p_efficacy": p_e,
                          "utility": util, "desirability": des, "toxic": toxic, "futile": futile,
                          "admissible": adm, "candidate": cand})
    if not cand.any():
        why = ("no MTD (the lowest level is too toxic)" if mtd.mtd_index < 0
               else "no treated admissible level at or below the MTD")
        table["selected"] = False
        return ObdSelection(None, -1, mtd.mtd_level, f"no OBD: {why}", table)
    j = int(np.flatnonzero(cand & (util == np.nanmax(np.where(cand, util, np.nan))))[0])
    table["selected"] = np.arange(k) == j
    reason = (f"highest estimated utility {util[j]:.1f} (efficacy {int(ye[j])}/{int(n[j])}, DLT {int(yt[j])}/"
              f"{int(n[j])}) among admissible levels at or below the MTD ({mtd.mtd_level})")
    return ObdSelection(levels[j], j, mtd.mtd_level, reason, table)
