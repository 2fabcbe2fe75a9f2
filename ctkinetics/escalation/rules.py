"""The BOIN / TITE-BOIN decision rules, vectorised: the one home of "what happens next".

Both the committee's decision for today (:func:`ctkinetics.escalation.decide`), the dose
pathways and the trial simulators call :func:`next_step` on arrays, so a simulated trial
follows exactly the rules the committee reads. Inputs describe the *current* dose level (the
level of the most recent escalation-phase infusion) in m parallel situations (m trials, or
m = 1).

The rules are ONE ordered table, :data:`RULE_TABLE`: each :class:`Rule` carries its stable
name, its numeric code (stored in simulation outputs; new rules get new codes), the action,
where it sends the next participant, its condition and its committee wording. The first rule
whose condition holds fires. Code and tests address rules by name (``RULE["cohort"]``).

Order (names as in the table):

1. ``start``            nobody treated yet: start at the start level.
2. ``stop_lowest``      the lowest dose is eliminated (with ``extrasafe``: at the stricter
   cutoff ``cutoff_eli − offset``, as R BOIN): stop the trial, no MTD.
3. ``stop_closed``      the committee closed every dose level (``decisions.csv``): stop.
4. ``stop_max``         the maximum number of escalation participants is reached.
5. ``eliminate``        the current dose is eliminated: go to the highest open dose below it.
6. ``closed``           the committee closed the current dose (from it up): go below it.
7. ``deesc_observed``   above the lowest dose, y > λd·n_full with pending counted as no-DLT
   (n_full is n rounded up to a whole cohort): de-escalation is certain whatever is pending
   or still to be infused in the cohort, so the next participant goes below the doubtful dose.
8. ``hold_elimination`` a single pending outcome could eliminate the current dose (c > 0 and
   y + 1 reaches the elimination count for n): accrual waits. At the lowest dose such an
   outcome would stop the trial. (One outcome, not all pending together: TITE-BOIN decides
   while several outcomes are pending; requiring y + c below the elimination count would
   overturn its published check — target 0.2, 1/9 with 3 pending escalates iff STFT ≥ 0.77.)
9. ``cohort``           the cohort at the current dose is incomplete: stay and fill it (the
   stagger governs it).
10. ``suspend``         more than half of the current dose's participants are pending
    (c/n > 0.5; with ``design.tite`` False any pending outcome): wait for data.
11. ``stop_early``      R BOIN's ``n.earlystop``: at least ``n_earlystop`` treated at the
    current dose and the rules would keep the next participant there (λe < p̂ < λd, a
    certain de-escalation at the lowest dose, or escalation blocked at the top / by an
    eliminated or closed next dose): stop and select the MTD.
12. ``stay_lowest_observed`` de-escalation is certain at the lowest dose: stay.
13. ``stay_top`` / ``stay_next_eliminated`` / ``stay_next_closed``: p̂ ≤ λe but there is no
    open dose above.
14. ``stay_completers`` / ``hold_completers`` / ``hold_followup``: the optional CAR-T guards
    (``min_completers``: stay while fewer are treated, wait while fewer have complete data;
    ``min_pending_followup``: wait while a pending participant has less follow-up);
    ``hold_committee``: a participant at the current level whose window ended for "no obvious
    expansion" awaits the committee's confirmation: no escalation before it.
15. ``escalate``        p̂ ≤ λe.
16. ``stay_lowest_tite`` / ``deesc_tite``: p̂ > λd (only reachable with pending data).
17. ``stay_between``    λe < p̂ ≤ λd (the catch-all last rule).

Rules flagged ``suspends`` mean: no infusion now, decide again when data arrive.

p̂ is the TITE-BOIN estimate (Yuan et al. 2018, Clin Cancer Res 24:4921) with n evaluable
participants, y DLTs, c pending, r = n − c complete, and STFT = Σ u_i / T over the pending::

    p̃ = (y + φ/2) / (r + 1)
    p̂ = (y + p̃ / (1 − p̃) · (c − STFT)) / n

With nothing pending p̂ = y/n and the rules are plain BOIN. Participants whose window ended
early and who are counted with their observed follow-up (``partial``, see
:mod:`ctkinetics.escalation.protocol`) enter p̂ as pending with a frozen u, but never hold
accrual: their outcome will not arrive.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import numpy as np

from ctkinetics.escalation.boundaries import _TOL, BoinDesign

ESCALATE, STAY, DEESCALATE, ELIMINATE, STOP = 0, 1, 2, 3, 4
ACTIONS = {ESCALATE: "escalate", STAY: "stay", DEESCALATE: "de-escalate", ELIMINATE: "eliminate", STOP: "stop"}
#: ``Rule.move`` for rules that send the next participant just below the first closed level
BELOW_BARRIER = "below"


@dataclass(frozen=True)
class Rule:
    """One decision rule: its stable name and code, what it does, when, and its wording.

    ``when(f)`` returns a boolean array over the m situations from the facts ``f`` computed
    once by :func:`next_step` (see :func:`_facts`); None marks the catch-all last rule.
    ``move`` is +1 / 0 / −1 relative to the current level, or :data:`BELOW_BARRIER`.
    ``text`` is a ``str.format`` template over the fields of a decision context.
    """

    code: int
    name: str
    action: int
    move: object
    text: str
    when: Callable | None = None
    suspends: bool = False  # no infusion now: decide again when data arrive


_ESC_TEXT = "Estimated DLT rate {p_hat:.3f} <= lambda_e = {lambda_e:.4f}"

#: The rules in the order they are tried (module doc). Codes are stable ids.
RULE_TABLE = (
    Rule(0, "start", STAY, 0, "No participant treated yet: start at dose level {level}.",
         lambda f: f.n_total == 0),
    Rule(1, "stop_lowest", STOP, 0,
         "Lowest dose level {lowest} is eliminated (Pr(p > {target:g}) > {lowest_cutoff:g} with "
         "{y_lowest}/{n_lowest} DLTs{extrasafe_note}): stop the trial; no MTD.",
         lambda f: f.elim_from <= 0),
    Rule(18, "stop_closed", STOP, 0,
         "Every dose level is closed by the committee ({closed_note}): stop the trial.",
         lambda f: f.closed_from <= 0),
    Rule(2, "stop_max", STOP, 0,
         "Maximum of {max_subjects} escalation participants reached: stop accrual and "
         "select the MTD when all DLT windows are complete.",
         lambda f: f.n_total >= f.design.max_subjects),
    Rule(3, "eliminate", ELIMINATE, BELOW_BARRIER,
         "Dose level {level} is eliminated (n = {n} >= 3 and Pr(p > {target:g} | "
         "{y}/{n}) = {p_over:.3f} > {cutoff:g}): it and all higher levels are "
         "closed for good; de-escalate to {next_level}.",
         lambda f: f.level >= f.elim_from),
    Rule(19, "closed", DEESCALATE, BELOW_BARRIER,
         "Dose level {level} is closed by the committee ({closed_note}): treat the next "
         "participant at {next_level}.",
         lambda f: f.level >= f.closed_from),
    Rule(4, "deesc_observed", DEESCALATE, -1,
         "{y} DLT(s) among {n_full} participants is above the de-escalation "
         "boundary (y/n >= lambda_d = {lambda_d:.4f}) whatever is still pending: "
         "de-escalate to {next_level}.",
         lambda f: f.deesc_obs & ~f.lowest),
    Rule(14, "hold_elimination", STAY, 0,
         "Accrual suspended: {y} DLT(s) and {c} pending among {n} at {level}; "
         "one more DLT ({elim_count} of {n}) would eliminate {level}{elim_consequence}, so "
         "no participant is infused until the pending outcomes are known.",
         lambda f: f.could_eliminate, suspends=True),
    Rule(6, "cohort", STAY, 0,
         "Cohort at {level} incomplete ({n} treated, cohort size {cohort_size}): "
         "stay and complete the cohort.",
         lambda f: ~f.full_cohort),
    Rule(7, "suspend", STAY, 0,
         "Accrual suspended: {c} of {n} participants at {level} are pending "
         "({pending_limit}); wait for DLT data.",
         lambda f: f.c > f.design.max_pending_fraction * f.n + _TOL, suspends=True),
    Rule(20, "stop_early", STOP, 0,
         "{n} participants treated at {level} (n.earlystop = {n_earlystop}) and the rules would "
         "keep the next one there: stop the trial and select the MTD.",
         lambda f: f.early_stop),
    Rule(5, "stay_lowest_observed", STAY, 0,
         "{y} DLT(s) among {n_full} participants is above the de-escalation boundary "
         "(lambda_d = {lambda_d:.4f}), but {level} is the lowest dose: stay.",
         lambda f: f.deesc_obs),
    Rule(9, "stay_top", STAY, 0, _ESC_TEXT + ", but {level} is the highest dose: stay.",
         lambda f: f.esc & f.top),
    Rule(10, "stay_next_eliminated", STAY, 0,
         _ESC_TEXT + ", but the next dose level is eliminated: stay (never re-escalate into an "
         "eliminated dose).",
         lambda f: f.esc & (f.level + 1 >= f.elim_from)),
    Rule(21, "stay_next_closed", STAY, 0,
         _ESC_TEXT + ", but the next dose level is closed by the committee ({closed_note}): stay.",
         lambda f: f.esc & (f.level + 1 >= f.closed_from)),
    Rule(16, "stay_completers", STAY, 0,
         _ESC_TEXT + ", but only {n} participant(s) treated at {level} (guard: at least "
         "{min_completers} completers before escalating): stay.",
         lambda f: f.esc & (f.n < f.design.min_completers)),
    Rule(15, "hold_completers", STAY, 0,
         _ESC_TEXT + ", but only {r} of {n} participants at {level} have complete DLT data "
         "(guard: at least {min_completers} before escalating): wait.",
         lambda f: f.esc & (f.n - f.c < f.design.min_completers), suspends=True),
    Rule(17, "hold_followup", STAY, 0,
         _ESC_TEXT + ", but a pending participant at {level} has only {min_followup:g} day(s) "
         "of follow-up (guard: at least {min_pending_followup:g} before escalating): wait.",
         lambda f: f.esc & f.short, suspends=True),
    Rule(22, "hold_committee", STAY, 0,
         _ESC_TEXT + ", but {awaiting} participant(s) at {level} await the committee's confirmation of "
         "'no obvious expansion' (decisions.csv confirm_no_expansion): wait for the committee.",
         lambda f: f.esc & (f.awaiting > 0), suspends=True),
    Rule(8, "escalate", ESCALATE, 1, _ESC_TEXT + ": escalate to {next_level}.",
         lambda f: f.esc),
    Rule(12, "stay_lowest_tite", STAY, 0,
         "TITE estimated DLT rate {p_hat:.3f} >= lambda_d = {lambda_d:.4f}, but {level} is the "
         "lowest dose: stay.",
         lambda f: f.deesc & f.lowest),
    Rule(11, "deesc_tite", DEESCALATE, -1,
         "TITE estimated DLT rate {p_hat:.3f} >= lambda_d = {lambda_d:.4f}: de-escalate to "
         "{next_level}.",
         lambda f: f.deesc),
    Rule(13, "stay_between", STAY, 0,
         "Estimated DLT rate {p_hat:.3f} lies between lambda_e = {lambda_e:.4f} and "
         "lambda_d = {lambda_d:.4f}: stay."),
)

#: Rules by name (how code and tests address them) and by numeric code (stored in outputs).
RULE = {r.name: r for r in RULE_TABLE}
RULES = {r.code: r for r in RULE_TABLE}
SUSPENDING = frozenset(r.code for r in RULE_TABLE if r.suspends)

# Module-level codes kept for callers written before the table had names.
(START, STOP_LOWEST, STOP_MAX, ELIM, DEESC_OBS, STAY_LOWEST_OBS, COHORT, SUSPEND, ESC, STAY_TOP,
 STAY_NEXT_ELIM, DEESC_TITE, STAY_LOWEST_TITE, STAY_BETWEEN, HOLD_ELIM, HOLD_COMPLETERS,
 STAY_COMPLETERS, HOLD_FOLLOWUP) = (RULE[n].code for n in (
    "start", "stop_lowest", "stop_max", "eliminate", "deesc_observed", "stay_lowest_observed",
    "cohort", "suspend", "escalate", "stay_top", "stay_next_eliminated", "deesc_tite",
    "stay_lowest_tite", "stay_between", "hold_elimination", "hold_completers",
    "stay_completers", "hold_followup"))

_ORDER_CODE = np.array([r.code for r in RULE_TABLE])
_ORDER_MOVE = np.array([r.move if r.move != BELOW_BARRIER else 0 for r in RULE_TABLE])
_ORDER_TO_BARRIER = np.array([r.move == BELOW_BARRIER for r in RULE_TABLE])
_N_CODES = max(RULES) + 1
_ACTION_TABLE = np.zeros(_N_CODES, dtype=int)
_SUSPENDS_TABLE = np.zeros(_N_CODES, dtype=bool)
for _r in RULE_TABLE:
    _ACTION_TABLE[_r.code] = _r.action
    _SUSPENDS_TABLE[_r.code] = _r.suspends
if [r.when is None for r in RULE_TABLE] != [False] * (len(RULE_TABLE) - 1) + [True]:  # pragma: no cover
    raise AssertionError("exactly the last rule of RULE_TABLE is the catch-all")


def rule_named(name: str) -> Rule:
    """The rule called ``name`` (KeyError naming the known rules otherwise)."""
    try:
        return RULE[name]
    except KeyError:
        raise KeyError(f"no escalation rule named {name!r}; known: {', '.join(RULE)}") from None


def tite_estimate(target, n, y, c, stft):
    """TITE-BOIN estimate p̂ of the DLT rate at a dose (vectorised; NaN where n = 0).

    Parameters
    ----------
    target : float
        φ.
    n, y, c : array_like of int
        Participants evaluable (incl. pending), DLTs observed, participants counted with
        partial follow-up (pending, or window ended early with TITE weight).
    stft : array_like of float
        Standardised total follow-up time of those c participants, Σ u_i / T.
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

    ``n_all, y_all`` have shape (m, n_levels) (pending counted in n, not in y). A level is
    eliminated (with every higher one) when n ≥ 3 and Pr(p > φ | y, n) > ``cutoff_eli``;
    with ``design.extrasafe`` the lowest level already at ``cutoff_eli − offset`` (R BOIN's
    extra-safe stopping rule). Elimination persists: the result is never above ``previous``.
    """
    n_all = np.atleast_2d(np.asarray(n_all, dtype=int))
    y_all = np.atleast_2d(np.asarray(y_all, dtype=int))
    n_levels = n_all.shape[1]
    hit = (n_all >= 3) & (y_all >= design.eliminate_min(n_all))
    if design.extrasafe:
        hit[:, 0] |= (n_all[:, 0] >= 3) & (y_all[:, 0] >= design.stop_lowest_min(n_all[:, 0]))
    first = np.where(hit.any(axis=1), hit.argmax(axis=1), n_levels)
    if previous is not None:
        first = np.minimum(first, np.asarray(previous, dtype=int))
    return first


def _facts(design, n_levels, level, n, y, c, stft, elim_from, n_total, min_followup, c_partial,
           closed_from, c_awaiting):
    """Everything the rule conditions read, computed once for the m situations."""
    level = np.asarray(level, dtype=int)
    n = np.asarray(n, dtype=int)
    y = np.asarray(y, dtype=int)
    c = np.asarray(c, dtype=int)
    cp = np.zeros_like(c) if c_partial is None else np.asarray(c_partial, dtype=int)
    elim_from = np.asarray(elim_from, dtype=int)
    closed_from = (np.full(level.shape, n_levels) if closed_from is None
                   else np.asarray(closed_from, dtype=int))
    cs = design.cohort_size
    p_hat = tite_estimate(design.target, n, y, c + cp, stft)
    n_full = -(-n // cs) * cs
    barrier = np.minimum(elim_from, closed_from)
    deesc_obs = (n > 0) & (y >= design.deescalate_min(np.maximum(n_full, 1)))
    esc = p_hat <= design.lambda_e + _TOL
    deesc = p_hat > design.lambda_d + _TOL
    lowest = level == 0
    top = level == n_levels - 1
    short = np.zeros(level.shape, dtype=bool)
    if design.min_pending_followup > 0:
        if min_followup is None:
            if np.any(c > 0):
                raise ValueError("next_step needs min_followup when design.min_pending_followup is set")
        else:
            short = (c > 0) & (np.asarray(min_followup, dtype=float) < design.min_pending_followup - _TOL)
    early = np.zeros(level.shape, dtype=bool)
    if design.n_earlystop is not None:
        between = ~esc & ~deesc & ~deesc_obs
        blocked_up = esc & (top | (level + 1 >= barrier))
        early = (n >= design.n_earlystop) & (between | (lowest & (deesc_obs | deesc)) | blocked_up)
    return SimpleNamespace(
        design=design, level=level, n=n, y=y, c=c, n_total=np.asarray(n_total, dtype=int),
        elim_from=elim_from, closed_from=closed_from, barrier=barrier, p_hat=p_hat,
        lowest=lowest, top=top, full_cohort=n % cs == 0, deesc_obs=deesc_obs,
        could_eliminate=(c > 0) & (y + 1 >= design.eliminate_min(n)), esc=esc, deesc=deesc,
        short=short, early_stop=early,
        awaiting=np.zeros(level.shape, dtype=int) if c_awaiting is None else np.asarray(c_awaiting, dtype=int))


def next_step(design: BoinDesign, n_levels: int, level, n, y, c, stft, elim_from, n_total,
              min_followup=None, c_partial=None, closed_from=None, c_awaiting=None):
    """Apply the rules to m situations at once (the first rule that applies fires).

    Parameters
    ----------
    design : BoinDesign
    n_levels : int
    level : array (m,) of int
        Current dose level (0-based).
    n, y, c : arrays (m,) of int
        At the current level: evaluable participants (incl. pending), DLTs, pending (outcome
        still to come).
    stft : array (m,) of float
        Σ u_i / T over the pending and the partially followed participants at the current level.
    elim_from : array (m,) of int
        First eliminated level (``n_levels`` if none), already updated with the current data.
    n_total : array (m,) of int
        Escalation participants treated so far (all levels).
    min_followup : array (m,) of float, optional
        Smallest follow-up (days) among the pending participants at the current level
        (``inf`` when none is pending). Needed only when ``design.min_pending_followup`` > 0.
    c_partial : array (m,) of int, optional
        Participants whose window ended early and who count with their observed follow-up
        (enter p̂ as pending, never hold accrual). Default none.
    closed_from : array (m,) of int, optional
        First level closed by the committee (``n_levels`` if none).
    c_awaiting : array (m,) of int, optional
        Pending participants (in ``c``) whose window ended for "no obvious expansion" and who
        await the committee's confirmation. Default none.

    Returns
    -------
    rule : array (m,) of int
        Rule code (key of :data:`RULES`).
    next_level : array (m,) of int
        Level for the next participant (meaningless after a stop).
    p_hat : array (m,) of float
        TITE estimate at the current level (y/n with nothing pending).
    """
    f = _facts(design, n_levels, level, n, y, c, stft, elim_from, n_total, min_followup, c_partial,
               closed_from, c_awaiting)
    # Walking the conditions from the last to the first with np.where leaves the first true
    # one (cheaper than stacking them).
    first = np.full(f.level.shape, len(RULE_TABLE) - 1, dtype=np.intp)
    for i in range(len(RULE_TABLE) - 2, -1, -1):
        first = np.where(RULE_TABLE[i].when(f), i, first)
    rule = _ORDER_CODE[first]
    nxt = np.where(_ORDER_TO_BARRIER[first], f.barrier - 1, f.level + _ORDER_MOVE[first])
    return rule, nxt, f.p_hat


def action_of(rule):
    """Vectorised map from rule code to action code (ESCALATE, STAY, ...)."""
    return _ACTION_TABLE[np.asarray(rule, dtype=int)]


def suspends(rule):
    """Vectorised: does the rule hold accrual (no infusion now)?"""
    return _SUSPENDS_TABLE[np.asarray(rule, dtype=int)]
