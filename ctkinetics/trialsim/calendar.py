"""The calendar of many virtual trials under one decision rule, vectorised across trials.

Calendar of a trial (times in study days, continuous):

1. Participants arrive as a Poisson process, each product ready after a manufacturing delay
   (:mod:`ctkinetics.trialsim.draws`); ready participants queue in order of readiness and the
   dose is assigned at infusion.
2. Whenever something can change — a product becomes ready, a DLT occurs, a DLT window ends,
   a stagger wait ends, a guard's information arrives — the escalation engine decides with the
   data known that day (:mod:`ctkinetics.trialsim.engine`: the escalation package's array
   entry points, the rules of :func:`ctkinetics.escalation.decide`): stop, hold accrual
   (wait for the next event), or name the next level; a rule's kinetic guards may turn
   *escalate* into *stay* or *wait*; the stagger of that level (its first participant's
   infusion day + ``stagger_days``) may make the participant wait. Otherwise the participant
   is infused. Between events nothing changes, so deciding at every event is the same as
   deciding every day, without rounding to whole days.
3. The engine stops accrual at the maximum number of participants (escalation then ends when
   the last DLT window resolves) or when the lowest dose is eliminated (it ends that day).
   The MTD is selected on the complete data (BOIN's ``select.mtd``), with eliminations
   persisted.
4. Expansion: from the end of escalation, new arrivals are infused without stagger into the
   expansion groups in turn ("mtd" = the selected level; skipped when there is none) until
   each has ``expansion_size`` participants; their DLTs are counted but no rule reads them.
   The trial ends ``dlt_window_days`` after the last expansion infusion.

All m trials of a batch advance together, participant slot by slot (as
:func:`ctkinetics.escalation.simulate_tite` does): for slot k, every trial still waiting to
infuse it is decided in one call of the engine's rules; the trials that must wait jump to
their next event and are decided again, until all have infused slot k or stopped. Durations
are counted from the first infusion.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.trialsim import engine
from ctkinetics.trialsim.engine import STOP_LOWEST, select_mtd_batch
from ctkinetics.trialsim.guards import STAY, WAIT, GuardContext

_EPS = 1e-9
_MAX_ROUNDS = 100_000


@dataclass(frozen=True)
class RuleOutcomes:
    """m trials under one rule (arrays over trials; P = N escalation + M expansion slots).

    Attributes
    ----------
    rule : str
    selected : ndarray (m,)
        Level selected as MTD, −1 for none.
    stop_rule : ndarray (m,)
        Engine rule id that ended accrual.
    n, dlt, n_expansion, dlt_expansion : ndarray (m, D)
        Participants and DLTs per level in escalation and expansion.
    duration_escalation, duration_total, days_suspended : ndarray (m,)
        Days from the first infusion; days accrual was held by the engine.
    level : ndarray (m, P)
        Level given to each participant slot (−1: not infused).
    infusion_day : ndarray (m, P)
        Study day of infusion (NaN: not infused).
    dlt_given : ndarray (m, P) of bool
        DLT at the level given.
    """

    rule: str
    selected: np.ndarray
    stop_rule: np.ndarray
    n: np.ndarray
    dlt: np.ndarray
    n_expansion: np.ndarray
    dlt_expansion: np.ndarray
    duration_escalation: np.ndarray
    duration_total: np.ndarray
    days_suspended: np.ndarray
    level: np.ndarray
    infusion_day: np.ndarray
    dlt_given: np.ndarray


def _next_event(resolve, infusion, offsets, t, also):
    """First event day after ``t`` (q,): a DLT or window end, an infusion + offset, or ``also``."""
    nxt = np.minimum(also, np.where(resolve > t[:, None] + _EPS, resolve, np.inf).min(axis=1, initial=np.inf))
    for o in offsets:
        day = infusion + o
        nxt = np.minimum(nxt, np.where(day > t[:, None] + _EPS, day, np.inf).min(axis=1, initial=np.inf))
    if not np.all(np.isfinite(nxt)):  # pragma: no cover - would be a bug in a rule or guard
        raise RuntimeError("virtual trial waiting for an event that never comes")
    return nxt


class _Escalation:
    """The escalation phase of m trials under one rule (state arrays, one slot per participant)."""

    def __init__(self, spec, rule, draws):
        self.rule, self.design, self.draws = rule, rule.design, draws
        self.k_levels = len(spec.design.levels)
        m, n_esc = draws.ready.shape
        self.n_esc = n_esc
        self.inf = np.full((m, n_esc), np.nan)
        self.lev = np.full((m, n_esc), -1)
        self.isd = np.zeros((m, n_esc), dtype=bool)
        self.ons = np.full((m, n_esc), np.nan)
        self.res = np.full((m, n_esc), np.inf)  # the DLT day or the end of the window
        self.sentinel = np.full((m, self.k_levels), np.nan)
        self.elim = np.full(m, self.k_levels)
        self.t = draws.ready[:, 0].copy() if n_esc else np.zeros(m)
        self.active = np.ones(m, dtype=bool)
        self.stop_rule = np.full(m, -1)
        self.t_stop = np.full(m, np.nan)
        self.susp_since = np.full(m, np.nan)
        self.suspended = np.zeros(m)
        self.offsets = rule.event_offsets()

    def run(self) -> None:
        for k in range(self.n_esc + 1):
            if k < self.n_esc:
                self.t = np.maximum(self.t, self.draws.ready[:, k])
            waiting = self.active.copy()
            rounds = 0
            while waiting.any():
                rounds += 1
                if rounds > _MAX_ROUNDS:  # pragma: no cover - a bug, not a user error
                    raise RuntimeError("virtual trial did not finish")
                r = np.flatnonzero(waiting)
                done = self._round(r, k)
                waiting[r[done]] = False

    def _round(self, r, k):
        """Decide for trials ``r`` about slot k; infuse, stop or move to the next event.
        Returns the mask (over r) of trials that infused slot k or stopped."""
        d = self.design
        tr = self.t[r]
        inf, lev = self.inf[r, :k], self.lev[r, :k]
        counts = engine.counts(d, self.k_levels, tr, inf, lev, self.isd[r, :k], self.ons[r, :k])
        cur = lev[:, -1] if k else np.full(r.size, min(d.start_level, self.k_levels - 1))
        dec = engine.decide(d, self.k_levels, cur, counts, self.elim[r])
        self.elim[r] = dec.eliminated_from
        stop, held = dec.stopped, dec.suspended & ~dec.stopped
        go = ~stop & ~held
        self._count_suspension(r, tr, held, go)
        level = dec.next_level.copy()
        also = np.full(r.size, np.inf)
        blocked = np.zeros(r.size, dtype=bool)
        ask = go & dec.escalate
        if self.rule.guards and ask.any():
            q = np.flatnonzero(ask)
            given = self.draws.exposure(r[q][:, None], np.arange(k)[None, :], lev[q])
            ctx = GuardContext(tr[q], cur[q], inf[q], lev[q], given.__getitem__)
            verdict, day = self.rule.check_escalation(ctx)
            wait = verdict == WAIT
            blocked[q[wait]] = True
            also[q[wait]] = np.where(day[wait] > tr[q[wait]] + _EPS, day[wait], np.inf)
            level[q[verdict == STAY]] = cur[q[verdict == STAY]]
        gate = engine.time_gate(d, self.sentinel[r], np.clip(level, 0, self.k_levels - 1))
        stagger = go & ~blocked & (tr < gate - _EPS)  # False where gate is NaN (no sentinel)
        also = np.where(stagger, gate, also)
        place = go & ~blocked & ~stagger
        rs = r[stop]
        self.active[rs] = False
        self.stop_rule[rs] = dec.rule[stop]
        self.t_stop[rs] = tr[stop]
        if place.any():
            if k == self.n_esc:  # pragma: no cover - the engine stops at the maximum
                raise RuntimeError("the engine asked for more participants than the maximum")
            self._infuse(r[place], k, level[place], tr[place])
        wait = ~stop & ~place
        rw = r[wait]
        self.t[rw] = _next_event(self.res[rw, :k], self.inf[rw, :k], self.offsets, tr[wait], also[wait])
        return stop | place

    def _count_suspension(self, r, tr, held, go):
        since = self.susp_since[r]
        start = held & np.isnan(since)
        self.susp_since[r[start]] = tr[start]
        end = go & ~np.isnan(since)
        self.suspended[r[end]] += tr[end] - since[end]
        self.susp_since[r[end]] = np.nan

    def _infuse(self, rp, k, lp, tp):
        T = self.design.dlt_window_days
        is_dlt, onset = self.draws.outcome(rp, k, lp)
        self.inf[rp, k] = tp
        self.lev[rp, k] = lp
        self.isd[rp, k] = is_dlt
        self.ons[rp, k] = np.where(is_dlt, onset, np.nan)
        self.res[rp, k] = tp + np.where(is_dlt, np.minimum(onset, T), T)
        first = np.isnan(self.sentinel[rp, lp])
        self.sentinel[rp[first], lp[first]] = tp[first]


def _expansion(spec, draws, selected, end_esc, window):
    """Expansion participants of m trials: level (m, M) (−1 none), day (m, M), DLT, and the end."""
    levels = spec.design.levels
    m, n_exp = draws.exp_offsets.shape
    n_esc = draws.ready.shape[1]
    labels = spec.design.expansion_levels
    groups = np.full((m, max(len(labels), 1)), -1)
    n_groups = np.zeros(m, dtype=int)
    rows = np.arange(m)
    for lab in labels:
        j = selected if lab == "mtd" else np.full(m, levels.index(lab))
        new = (j >= 0) & ~(groups == j[:, None]).any(axis=1)
        groups[rows[new], n_groups[new]] = j[new]
        n_groups += new
    count = n_groups * spec.design.expansion_size
    lev = np.full((m, n_exp), -1)
    for i in range(n_exp):
        on = i < count
        lev[on, i] = groups[rows[on], i % n_groups[on]]
    given = lev >= 0
    day = np.where(given, end_esc[:, None] + draws.exp_offsets, np.nan)
    dlt = np.zeros((m, n_exp), dtype=bool)
    gr, gs = np.nonzero(given)
    dlt[gr, gs] = draws.outcome(gr, n_esc + gs, lev[gr, gs])[0]
    last = draws.exp_offsets[rows, np.maximum(count - 1, 0)] if n_exp else np.zeros(m)
    end_total = np.where(count > 0, end_esc + last + window, end_esc)
    return lev, day, dlt, end_total


def _per_level(level, weight, k_levels):
    """Σ weight per level (m, D) of participants with ``level`` (m, P) (−1 ignored)."""
    onehot = level[:, :, None] == np.arange(k_levels)
    return (onehot & weight[:, :, None]).sum(axis=1)


def run_rule(spec, rule, draws) -> RuleOutcomes:
    """The m trials of ``draws`` under ``rule`` (see the module doc)."""
    esc = _Escalation(spec, rule, draws)
    esc.run()
    k_levels = esc.k_levels
    T = rule.design.dlt_window_days
    infused = esc.lev >= 0
    has = infused.any(axis=1)
    last_resolve = np.where(infused, esc.res, -np.inf).max(axis=1, initial=-np.inf)
    end_esc = np.where((esc.stop_rule == STOP_LOWEST) | ~has, esc.t_stop, last_resolve)
    first = np.where(has, esc.inf[:, 0], esc.t_stop)
    n = _per_level(esc.lev, infused, k_levels)
    y = _per_level(esc.lev, esc.isd, k_levels)
    selected = select_mtd_batch(rule.design, n, y, esc.elim)
    lev_x, day_x, dlt_x, end_total = _expansion(spec, draws, selected, end_esc, T)
    return RuleOutcomes(
        rule.name, np.asarray(selected, dtype=int), esc.stop_rule, n, y,
        _per_level(lev_x, lev_x >= 0, k_levels), _per_level(lev_x, dlt_x, k_levels),
        end_esc - first, end_total - first, esc.suspended,
        np.concatenate([esc.lev, lev_x], axis=1), np.concatenate([esc.inf, day_x], axis=1),
        np.concatenate([esc.isd, dlt_x], axis=1))
