"""The escalation engine as the vectorised calendar calls it: the escalation package's own
array entry points, nothing decided here.

- :func:`counts` — per-level counts of many trials as of a day, by the engine's participant
  status rule :func:`ctkinetics.escalation.state.classify` (DLTs, complete and pending windows,
  early ends and their evaluability, the committee's confirmation) and
  :func:`~ctkinetics.escalation.state.count_levels`;
- :func:`decide` — :func:`ctkinetics.escalation.fast.decide_arrays`: rules, elimination,
  holds, the action (what :func:`ctkinetics.escalation.decide` is built on);
- :func:`gate_held` — the sentinel's safety gate
  (:func:`ctkinetics.escalation.sentinel.sentinel_risk`) until the committee releases it;
- :func:`time_gate` — the time half of the stagger gate
  (:func:`ctkinetics.escalation.sentinel.stagger_gate`) for a level that a kinetic guard
  chose instead of the engine's next level;
- :func:`decide12` — BOIN12 (:func:`ctkinetics.escalation.boin12.next_dose_arrays`) run on
  complete data, as the published design is: fill the current cohort, then wait until every
  evaluable participant's DLT window and efficacy assessment are complete, then decide;
- :func:`select_mtd_batch`, :func:`select_obd` — the final selections.

``tests/trialsim/test_engine.py`` checks counts + decisions against
:func:`ctkinetics.escalation.decide` on random states.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.escalation.fast import decide_arrays
from ctkinetics.escalation.mtd import select_mtd_batch
from ctkinetics.escalation.rules import RULE, STOP_LOWEST, STOP_MAX
from ctkinetics.escalation.state import DLT, NO_DLT, NOT_EVALUABLE, NOT_INFUSED, PARTIAL, classify, count_levels

__all__ = ["counts", "decide", "decide12", "gate_held", "time_gate", "select_mtd_batch", "select_obd",
           "STOP_LOWEST", "STOP_MAX", "BOIN12_STOP", "STOP_SLOTS", "Record", "final_status"]

#: Stop codes the calendar adds to the engine's rule codes: a BOIN12 stop is 100 + its code
#: in ``ctkinetics.escalation.boin12.RULES12``; −2: no participant left to enrol (the
#: maximum plus the replacements allowed were infused).
BOIN12_STOP = 100
STOP_SLOTS = -2


@dataclass
class Record:
    """Escalation participants of q trials (arrays (q, k)): as the status rule reads them."""

    infusion_day: np.ndarray
    level: np.ndarray  # level counted for DLT decisions
    dlt: np.ndarray  # DLT as observed (bool)
    onset: np.ndarray  # days after infusion (NaN: no DLT)
    window_end: np.ndarray  # days after infusion the window ended early (NaN: none)
    reason: np.ndarray  # its code (REASON_CODE)
    confirm: np.ndarray  # study day the committee confirmed no expansion (NaN)
    evaluable: np.ndarray  # 0: excluded by the shortfall rule; NaN: by the rules


def _status(design, as_of, rec: Record):
    return classify(np.asarray(as_of, dtype=float)[:, None], rec.infusion_day, design.dlt_window_days,
                    dlt=rec.dlt, dlt_day=rec.onset, window_end_day=rec.window_end, reason=rec.reason,
                    evaluable=rec.evaluable, confirmed_day=rec.confirm,
                    evaluability=design.protocol.evaluability)


def counts(design, n_levels: int, as_of, rec: Record):
    """Per-level counts (:class:`~ctkinetics.escalation.state.CountArrays`, arrays (q, D)) of
    q trials as of ``as_of`` (q,) from their participants' :class:`Record`."""
    status, u = _status(design, as_of, rec)
    return count_levels(status, u, rec.level, design.dlt_window_days, n_levels)


def final_status(design, rec: Record):
    """Status codes (q, k) once every outcome is known (for the final selection)."""
    return _status(design, np.full(rec.level.shape[0], np.inf), rec)[0]


def decide(design, n_levels: int, current, c, previous_elimination):
    """The engine's decision for q trials from their :func:`counts` ``c``
    (:class:`~ctkinetics.escalation.fast.StepArrays`)."""
    return decide_arrays(design, n_levels, current, c.n, c.y, c.c, c.stft, previous_elimination,
                         min_followup_all=c.min_followup, c_partial_all=c.c_partial,
                         c_awaiting_all=c.c_awaiting)


def gate_held(design, as_of, sentinel_day, sentinel_dlt, sentinel_onset, review_days: float):
    """Which levels' stagger gates (q, D) are held for the committee as of ``as_of`` (q,): the
    sentinel (infused on ``sentinel_day``, NaN none) had a significant safety risk, and the
    committee releases the hold ``review_days`` after the event became known."""
    from ctkinetics.escalation.sentinel import sentinel_risk

    gate = design.protocol.sentinel
    within = design.stagger_days if gate.within_days is None else gate.within_days
    if not gate.enabled or within <= 0:
        return np.zeros(sentinel_day.shape, dtype=bool)
    now = np.asarray(as_of, dtype=float)[:, None]
    risk, _ = sentinel_risk(now, sentinel_day, gate, within, dlt=sentinel_dlt.astype(float),
                            dlt_day=sentinel_onset)
    with np.errstate(invalid="ignore"):
        return risk & ~(now >= sentinel_day + sentinel_onset + review_days)


def time_gate(design, sentinel, level):
    """First day (q,) a non-sentinel participant may be infused at ``level`` (q,) by time:
    the level's sentinel day (``sentinel`` (q, D), NaN none) + ``stagger_days``; NaN without
    a sentinel (no wait)."""
    return sentinel[np.arange(len(level)), level] + design.stagger_days


@dataclass(frozen=True)
class Steps12:
    """BOIN12's answer for q trials, with the fields the calendar reads of the BOIN steps."""

    rule: np.ndarray
    next_level: np.ndarray
    eliminated_from: np.ndarray
    stopped: np.ndarray
    suspended: np.ndarray
    escalate: np.ndarray


def _complete(status):
    """Final DLT outcomes for BOIN12 (binary): DLT, no DLT, or a window that ended early and is
    counted (``partial``: as no DLT)."""
    return (status == DLT) | (status == NO_DLT) | (status == PARTIAL)


def _boin12_counts(level, status, efficacy, n_levels):
    onehot = level[:, :, None] == np.arange(n_levels)
    done = _complete(status)
    t = status == DLT

    def count(mask):
        return (onehot & mask[:, :, None]).sum(axis=1)
    return count(done), count(done & efficacy & ~t), count(done & ~efficacy & ~t), \
        count(done & efficacy & t), count(done & ~efficacy & t)


def decide12(rule, n_levels: int, current, as_of, rec: Record, efficacy, efficacy_day, c, previous_elimination):
    """BOIN12 for q trials (module doc). ``efficacy`` (q, k) the responses, ``efficacy_day``
    (q, k) the study day each is known, ``c`` the :func:`counts` as of ``as_of``."""
    from ctkinetics.escalation.boin12 import next_dose_arrays

    design, d12 = rule.design, rule.boin12
    q = len(current)
    ii = np.arange(q)
    n_total = c.n.sum(axis=1)
    started = n_total > 0
    cur = np.asarray(current, dtype=int)
    fill = started & (c.n[ii, cur] % d12.cohort_size != 0)
    status, _ = _status(design, as_of, rec)
    evaluable = (status != NOT_INFUSED) & (status != NOT_EVALUABLE)
    waiting = evaluable & (~_complete(status) | (efficacy_day > as_of[:, None]))
    incomplete = waiting.any(axis=1)
    n, e_only, neither, both, t_only = _boin12_counts(rec.level, status, efficacy & (efficacy_day <= as_of[:, None]),
                                                      n_levels)
    nxt, code, _, _ = next_dose_arrays(d12, n, e_only, neither, both, t_only, cur)
    at_max = n_total >= design.max_subjects
    decide_now = started & ~fill & ~incomplete & ~at_max
    stop12 = decide_now & (nxt < 0)
    stopped = at_max | stop12
    held = started & ~fill & incomplete & ~at_max
    level = np.where(~started, min(design.start_level, n_levels - 1), np.where(decide_now, nxt, cur))
    rule_code = np.where(at_max, RULE["stop_max"].code, np.where(decide_now, BOIN12_STOP + code, RULE["cohort"].code))
    rule_code = np.where(~started, RULE["start"].code, np.where(held, RULE["suspend"].code, rule_code))
    return Steps12(rule_code, np.where(stopped, cur, level), np.asarray(previous_elimination), stopped, held,
                   decide_now & ~stop12 & (nxt > cur))


def select_obd(rule, n_levels: int, rec: Record, efficacy):
    """The optimal biological dose (index, −1 none) of each of q trials on complete data."""
    from ctkinetics.escalation.boin12 import Boin12Counts, select_obd as obd

    status = final_status(rule.design, rec)
    n, e_only, neither, both, t_only = _boin12_counts(rec.level, status, efficacy, n_levels)
    return np.array([obd(rule.boin12, Boin12Counts(n[i], e_only[i], neither[i], both[i], t_only[i])).obd_index
                     for i in range(n.shape[0])], dtype=int)
