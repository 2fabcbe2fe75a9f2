"""The BOIN / TITE-BOIN decision rules, vectorised: the one home of "what happens next".

Both the committee's decision for today (:func:`ctkinetics.escalation.decide`) and the trial
simulators call :func:`next_step` on arrays, so a simulated trial follows exactly the rules the
committee reads. Inputs describe the *current* dose level (the level of the most recent
escalation-phase infusion) in m parallel situations (m trials, or m = 1).

Order of the rules (the first that applies fires):

1. ``STOP_LOWEST``  the lowest dose is eliminated: stop the trial, no MTD.
2. ``STOP_MAX``     the maximum number of escalation participants is reached: stop accrual.
3. ``ELIMINATE``    the current dose is eliminated: go to the highest dose below it.
4. ``DEESC_OBS``    y > λd·n_full with pending counted as no-DLT (n_full is n rounded up to a
   whole cohort): de-escalation is certain whatever is pending or still to be infused in the
   cohort (``STAY_LOWEST_OBS`` at the lowest dose).
5. ``COHORT``       the cohort at the current dose is not complete (n not a multiple of the
   cohort size): stay and fill it. Filling a cohort is never suspended; the stagger governs it.
6. ``SUSPEND``      more than half of the current dose's participants are pending (c/n > 0.5;
   with ``design.tite`` False any pending outcome): accrual waits for data.
7. ``ESCALATE``     p̂ ≤ λe (``STAY_TOP`` at the highest dose, ``STAY_NEXT_ELIM`` when the next
   dose is eliminated).
8. ``DEESC_TITE``   p̂ > λd (only reachable with pending data; ``STAY_LOWEST_TITE`` at the lowest).
9. ``STAY``         λe < p̂ ≤ λd.

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
                      "({pending_limit}); wait for DLT data."),
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
    )
}
(START, STOP_LOWEST, STOP_MAX, ELIM, DEESC_OBS, STAY_LOWEST_OBS, COHORT, SUSPEND, ESC, STAY_TOP,
 STAY_NEXT_ELIM, DEESC_TITE, STAY_LOWEST_TITE, STAY_BETWEEN) = range(14)


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


def next_step(design: BoinDesign, n_levels: int, level, n, y, c, stft, elim_from, n_total):
    """Apply the rules to m situations at once.

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

    rule = np.full(level.shape, STAY_BETWEEN, dtype=int)
    nxt = level.copy()
    undecided = np.ones(level.shape, dtype=bool)

    def fire(mask, code, new_level=None):
        nonlocal undecided
        m = mask & undecided
        rule[m] = code
        if new_level is not None:
            nxt[m] = np.broadcast_to(new_level, level.shape)[m]
        undecided = undecided & ~m

    fire(n_total == 0, START)
    fire(elim_from <= 0, STOP_LOWEST)
    fire(n_total >= design.max_subjects, STOP_MAX)
    fire(level >= elim_from, ELIM, elim_from - 1)
    deesc_obs = (n > 0) & (y >= design.deescalate_min(np.maximum(n_full, 1)))
    fire(deesc_obs & (level == 0), STAY_LOWEST_OBS)
    fire(deesc_obs, DEESC_OBS, level - 1)
    fire(n % cs != 0, COHORT)
    fire(c > design.max_pending_fraction * n + _TOL, SUSPEND)
    esc = p_hat <= design.lambda_e + _TOL
    fire(esc & (level == top), STAY_TOP)
    fire(esc & (level + 1 >= elim_from), STAY_NEXT_ELIM)
    fire(esc, ESC, level + 1)
    deesc = p_hat > design.lambda_d + _TOL
    fire(deesc & (level == 0), STAY_LOWEST_TITE)
    fire(deesc, DEESC_TITE, level - 1)
    return rule, nxt, p_hat


def action_of(rule):
    """Vectorised map from rule index to action code (ESCALATE, STAY, ...)."""
    table = np.array([RULES[i].action for i in range(len(RULES))])
    return table[np.asarray(rule, dtype=int)]
