"""The BOIN / TITE-BOIN decision rules, vectorised: the one home of "what happens next".

Both the committee's decision for today (:func:`ctkinetics.escalation.decide`) and the trial
simulators call :func:`next_step` on arrays, so a simulated trial follows exactly the rules the
committee reads. Inputs describe the *current* dose level (the level of the most recent
escalation-phase infusion) in m parallel situations (m trials, or m = 1).

Order of the rules (the first that applies fires):

1. ``STOP_LOWEST``  the lowest dose is eliminated: stop the trial, no MTD.
2. ``STOP_MAX``     the maximum number of escalation participants is reached: stop accrual.
3. ``ELIMINATE``    the current dose is eliminated: go to the highest dose below it.
4. ``DEESC_OBS``    above the lowest dose, y > λd·n_full with pending counted as no-DLT (n_full
   is n rounded up to a whole cohort): de-escalation is certain whatever is pending or still
   to be infused in the cohort, and the next participant goes below the doubtful dose.
5. ``HOLD_ELIM``    a single pending outcome could eliminate the current dose (c > 0 and
   y + 1 reaches the elimination count for n): accrual waits. (At a whole cohort above the
   lowest dose rule 4 has already sent the next participant lower: for the usual targets
   y + 1 >= the elimination count implies y >= the de-escalation count.) At the lowest dose such
   an outcome would stop the trial, so nobody more is infused there until it is known. (One
   outcome, not all pending together: TITE-BOIN deliberately decides while several outcomes
   are pending, and requiring y + c below the elimination count would overturn its published
   check — target 0.2, 1/9 with 3 pending escalates iff STFT >= 0.77, while 4/9 eliminates.)
6. ``COHORT``       the cohort at the current dose is not complete (n not a multiple of the
   cohort size): stay and fill it. Filling a cohort is not suspended (rule 5 aside); the
   stagger governs it.
7. ``SUSPEND``      more than half of the current dose's participants are pending (c/n > 0.5;
   with ``design.tite`` False any pending outcome): accrual waits for data.
8. ``STAY_LOWEST_OBS`` de-escalation is certain at the lowest dose: stay. It comes after the
   suspension rules because the next participant is treated at the very dose whose outcomes
   are pending (before the fix a 4th participant could be infused while the 3rd was pending).
9. ``ESCALATE``     p̂ ≤ λe (``STAY_TOP`` at the highest dose, ``STAY_NEXT_ELIM`` when the next
   dose is eliminated), subject to the optional guards of the design (``min_completers``:
   ``STAY_COMPLETERS`` while fewer are treated, ``HOLD_COMPLETERS`` while fewer have complete
   data; ``min_pending_followup``: ``HOLD_FOLLOWUP`` while a pending participant has less
   follow-up).
10. ``DEESC_TITE``  p̂ > λd (only reachable with pending data; ``STAY_LOWEST_TITE`` at the lowest).
11. ``STAY``        λe < p̂ ≤ λd.

Rules flagged ``suspends`` (SUSPEND, HOLD_*) mean: no infusion now, decide again when data
arrive. Rule ids are stable (stored in simulation outputs); new rules get new ids.

p̂ is the TITE-BOIN estimate (Yuan et al. 2018, Clin Cancer Res 24:4921) with n treated, y
DLTs, c pending, r = n − c complete, and STFT = Σ u_i / T over the pending participants::

    p̃ = (y + φ/2) / (r + 1)
    p̂ = (y + p̃ / (1 − p̃) · (c − STFT)) / n

With nothing pending p̂ = y/n and the rules are plain BOIN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.escalation.boundaries import _TOL, BoinDesign

ESCALATE, STAY, DEESCALATE, ELIMINATE, STOP = 0, 1, 2, 3, 4
ACTIONS = {ESCALATE: "escalate", STAY: "stay", DEESCALATE: "de-escalate", ELIMINATE: "eliminate", STOP: "stop"}


@dataclass(frozen=True)
class Rule:
    code: int
    action: int
    text: str  # str.format template over the fields of a decision context
    suspends: bool = False  # no infusion now: decide again when data arrive


# Registry of rules: the committee-facing wording lives here, next to the rule id.
RULES = {
    r.code: r for r in (
        Rule(0, STAY, "No participant treated yet: start at dose level {level}."),
        Rule(1, STOP, "Lowest dose level {lowest} is eliminated (Pr(p > {target:g}) > {cutoff:g} with "
                      "{y_lowest}/{n_lowest} DLTs): stop the trial; no MTD."),
        Rule(2, STOP, "Maximum of {max_subjects} escalation participants reached: stop accrual and "
                      "select the MTD when all DLT windows are complete."),
        Rule(3, ELIMINATE, "Dose level {level} is eliminated (n = {n} >= 3 and Pr(p > {target:g} | "
                           "{y}/{n}) = {p_over:.3f} > {cutoff:g}): it and all higher levels are "
                           "closed for good; de-escalate to {next_level}."),
        Rule(4, DEESCALATE, "{y} DLT(s) among {n_full} participants is above the de-escalation "
                            "boundary (y/n >= lambda_d = {lambda_d:.4f}) whatever is still pending: "
                            "de-escalate to {next_level}."),
        Rule(5, STAY, "{y} DLT(s) among {n_full} participants is above the de-escalation boundary "
                      "(lambda_d = {lambda_d:.4f}), but {level} is the lowest dose: stay."),
        Rule(6, STAY, "Cohort at {level} incomplete ({n} treated, cohort size {cohort_size}): "
                      "stay and complete the cohort."),
        Rule(7, STAY, "Accrual suspended: {c} of {n} participants at {level} are pending "
                      "({pending_limit}); wait for DLT data.", suspends=True),
        Rule(8, ESCALATE, "Estimated DLT rate {p_hat:.3f} <= lambda_e = {lambda_e:.4f}: escalate to "
                          "{next_level}."),
        Rule(9, STAY, "Estimated DLT rate {p_hat:.3f} <= lambda_e = {lambda_e:.4f}, but {level} is "
                      "the highest dose: stay."),
        Rule(10, STAY, "Estimated DLT rate {p_hat:.3f} <= lambda_e = {lambda_e:.4f}, but the next "
                       "dose level is eliminated: stay (never re-escalate into an eliminated dose)."),
        Rule(11, DEESCALATE, "TITE estimated DLT rate {p_hat:.3f} >= lambda_d = {lambda_d:.4f}: "
                             "de-escalate to {next_level}."),
        Rule(12, STAY, "TITE estimated DLT rate {p_hat:.3f} >= lambda_d = {lambda_d:.4f}, but "
                       "{level} is the lowest dose: stay."),
        Rule(13, STAY, "Estimated DLT rate {p_hat:.3f} lies between lambda_e = {lambda_e:.4f} and "
                       "lambda_d = {lambda_d:.4f}: stay."),
        Rule(14, STAY, "Accrual suspended: {y} DLT(s) and {c} pending among {n} at {level}; "
                       "one more DLT ({elim_count} of {n}) would eliminate {level}{elim_consequence}, so "
                       "no participant is infused until the pending outcomes are known.", suspends=True),
        Rule(15, STAY, "Estimated DLT rate {p_hat:.3f} <= lambda_e = {lambda_e:.4f}, but only {r} of "
                       "{n} participants at {level} have complete DLT data (guard: at least "
                       "{min_completers} before escalating): wait.", suspends=True),
        Rule(16, STAY, "Estimated DLT rate {p_hat:.3f} <= lambda_e = {lambda_e:.4f}, but only {n} "
                       "participant(s) treated at {level} (guard: at least {min_completers} "
                       "completers before escalating): stay."),
        Rule(17, STAY, "Estimated DLT rate {p_hat:.3f} <= lambda_e = {lambda_e:.4f}, but a pending "
                       "participant at {level} has only {min_followup:g} day(s) of follow-up "
                       "(guard: at least {min_pending_followup:g} before escalating): wait.",
             suspends=True),
    )
}
(START, STOP_LOWEST, STOP_MAX, ELIM, DEESC_OBS, STAY_LOWEST_OBS, COHORT, SUSPEND, ESC, STAY_TOP,
 STAY_NEXT_ELIM, DEESC_TITE, STAY_LOWEST_TITE, STAY_BETWEEN, HOLD_ELIM, HOLD_COMPLETERS,
 STAY_COMPLETERS, HOLD_FOLLOWUP) = range(18)
SUSPENDING = frozenset(code for code, r in RULES.items() if r.suspends)
# The order of the rules (module doc) and where each sends the next participant: a move
# relative to the current level, or (ELIM) to the level just below the first eliminated one.
_ORDER = ((START, 0), (STOP_LOWEST, 0), (STOP_MAX, 0), (ELIM, 0), (DEESC_OBS, -1), (HOLD_ELIM, 0),
          (COHORT, 0), (SUSPEND, 0), (STAY_LOWEST_OBS, 0), (STAY_TOP, 0), (STAY_NEXT_ELIM, 0),
          (STAY_COMPLETERS, 0), (HOLD_COMPLETERS, 0), (HOLD_FOLLOWUP, 0), (ESC, 1),
          (STAY_LOWEST_TITE, 0), (DEESC_TITE, -1), (STAY_BETWEEN, 0))
_ORDER_CODE = np.array([code for code, _ in _ORDER])
_ORDER_MOVE = np.array([move for _, move in _ORDER])
_ORDER_TO_ELIM = _ORDER_CODE == ELIM
_ACTION_TABLE = np.array([RULES[i].action for i in range(len(RULES))])
_SUSPENDS_TABLE = np.array([RULES[i].suspends for i in range(len(RULES))])


def tite_estimate(target, n, y, c, stft):
    """TITE-BOIN estimate p̂ of the DLT rate at a dose (vectorised; NaN where n = 0).

    Parameters
    ----------
    target : float
        φ.
    n, y, c : array_like of int
        Participants treated (incl. pending), DLTs observed, participants pending.
    stft : array_like of float
        Standardised total follow-up time of the pending participants, Σ u_i / T.
    """
    n = np.asarray(n, dtype=float)
    y = np.asarray(y, dtype=float)
    c = np.asarray(c, dtype=float)
    stft = np.asarray(stft, dtype=float)
    r = n - c
    p_tilde = (y + target / 2.0) / (r + 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_hat = (y + p_tilde / (1.0 - p_tilde) * (c - stft)) / n
    return np.where(n > 0, p_hat, np.nan)


def eliminated_from(design: BoinDesign, n_all, y_all, previous=None):
    """First eliminated level (index) given counts per level; ``n_levels`` when none.

    ``n_all, y_all`` have shape (m, n_levels) (pending counted in n, not in y). Elimination
    persists: the result is never above ``previous``.
    """
    n_all = np.atleast_2d(np.asarray(n_all, dtype=int))
    y_all = np.atleast_2d(np.asarray(y_all, dtype=int))
    n_levels = n_all.shape[1]
    hit = (n_all >= 3) & (y_all >= design.eliminate_min(n_all))
    first = np.where(hit.any(axis=1), hit.argmax(axis=1), n_levels)
    if previous is not None:
        first = np.minimum(first, np.asarray(previous, dtype=int))
    return first


def next_step(design: BoinDesign, n_levels: int, level, n, y, c, stft, elim_from, n_total,
              min_followup=None):
    """Apply the rules to m situations at once (the first rule that applies fires).

    Parameters
    ----------
    design : BoinDesign
    n_levels : int
    level : array (m,) of int
        Current dose level (0-based).
    n, y, c : arrays (m,) of int
        At the current level: treated (incl. pending), DLTs, pending.
    stft : array (m,) of float
        Σ u_i / T over the pending participants at the current level.
    elim_from : array (m,) of int
        First eliminated level (``n_levels`` if none), already updated with the current data.
    n_total : array (m,) of int
        Escalation participants treated so far (all levels).
    min_followup : array (m,) of float, optional
        Smallest follow-up (days) among the pending participants at the current level
        (``inf`` when none is pending). Needed only when ``design.min_pending_followup`` > 0.

    Returns
    -------
    rule : array (m,) of int
        Index into :data:`RULES`.
    next_level : array (m,) of int
        Level for the next participant (meaningless after a stop).
    p_hat : array (m,) of float
        TITE estimate at the current level (y/n with nothing pending).
    """
    level = np.asarray(level, dtype=int)
    n = np.asarray(n, dtype=int)
    y = np.asarray(y, dtype=int)
    c = np.asarray(c, dtype=int)
    elim_from = np.asarray(elim_from, dtype=int)
    n_total = np.asarray(n_total, dtype=int)
    cs = design.cohort_size
    p_hat = tite_estimate(design.target, n, y, c, stft)
    n_full = -(-n // cs) * cs
    top = n_levels - 1
    lowest = level == 0
    full_cohort = n % cs == 0

    deesc_obs = (n > 0) & (y >= design.deescalate_min(np.maximum(n_full, 1)))
    could_eliminate = (c > 0) & (y + 1 >= design.eliminate_min(n))
    esc = p_hat <= design.lambda_e + _TOL
    deesc = p_hat > design.lambda_d + _TOL
    guard_n = design.min_completers
    if design.min_pending_followup > 0:
        if min_followup is None:
            if np.any(c > 0):
                raise ValueError("next_step needs min_followup when design.min_pending_followup is set")
            short = np.zeros(level.shape, dtype=bool)
        else:
            short = (c > 0) & (np.asarray(min_followup, dtype=float) < design.min_pending_followup - _TOL)
    else:
        short = np.zeros(level.shape, dtype=bool)

    # Conditions in the order of the module doc; the first true one fires. Walking them from
    # the last to the first with np.where leaves the first true one (cheaper than stacking).
    conds = (
        n_total == 0,
        elim_from <= 0,
        n_total >= design.max_subjects,
        level >= elim_from,
        deesc_obs & ~lowest,
        could_eliminate,
        ~full_cohort,
        c > design.max_pending_fraction * n + _TOL,
        deesc_obs,
        esc & (level == top),
        esc & (level + 1 >= elim_from),
        esc & (n < guard_n),
        esc & (n - c < guard_n),
        esc & short,
        esc,
        deesc & lowest,
        deesc,
    )
    first = np.full(level.shape, len(conds), dtype=np.intp)  # STAY_BETWEEN
    for i in range(len(conds) - 1, -1, -1):
        first = np.where(conds[i], i, first)
    rule = _ORDER_CODE[first]
    nxt = np.where(_ORDER_TO_ELIM[first], elim_from - 1, level + _ORDER_MOVE[first])
    return rule, nxt, p_hat


def action_of(rule):
    """Vectorised map from rule index to action code (ESCALATE, STAY, ...)."""
    return _ACTION_TABLE[np.asarray(rule, dtype=int)]


def suspends(rule):
    """Vectorised: does the rule hold accrual (no infusion now)?"""
    return _SUSPENDS_TABLE[np.asarray(rule, dtype=int)]
