"""The calendar of many virtual trials under one decision rule, vectorised across trials.

Calendar of a trial (times in study days, continuous):

1. Participants arrive as a Poisson process, each product ready after a manufacturing delay
   (:mod:`ctkinetics.trialsim.draws`); ready participants queue in order of readiness and the
   dose is assigned at infusion. What then happens to each participant — a DLT, an early end
   of the window (dropout, no obvious expansion), a product short of its dose — follows from
   its draws (:func:`ctkinetics.trialsim.conduct.course`).
2. Whenever something can change — a product becomes ready, a DLT occurs, a DLT window ends
   (on time or early), the committee confirms a no-expansion or releases a sentinel hold, a
   stagger wait ends, a guard's information arrives — the rule decides with the data known that
   day (:mod:`ctkinetics.trialsim.engine`: the escalation package's array entry points, the
   rules of :func:`ctkinetics.escalation.decide`; or BOIN12 on complete data): stop, hold
   accrual (wait for the next event), or name the next level; a rule's kinetic guards may turn
   *escalate* into *stay* or *wait*; the stagger gate of that level (its sentinel's infusion
   day + ``stagger_days``, and its safety half: held after a DLT of the sentinel until the
   committee's release) may make the participant wait. Otherwise the participant is infused.
   Between events nothing changes, so deciding at every event is the same as deciding every
   day, without rounding to whole days.
3. A participant who is not evaluable (the protocol's evaluability rules) is not counted, so the
   rules keep enrolling until ``max_participants`` are evaluable — replacements — up to the
   slots the spec allows (then accrual stops: :data:`ctkinetics.trialsim.engine.STOP_SLOTS`).
   Accrual stops at the maximum (pending participants counted, as the engine does; one of them
   whose window then ends early, not evaluable, is replaced: the rules decide again at each
   event until every outcome is final, and escalation ends when the last one is) or when
   the lowest dose is eliminated / BOIN12 finds no admissible dose (it ends that day). The
   MTD (BOIN's ``select.mtd``, eliminations persisted) or for BOIN12 the optimal biological
   dose is selected on the complete data.
4. Expansion: from the end of escalation, new arrivals are infused without stagger into the
   expansion groups in turn ("mtd" = the selected level; skipped when there is none) until
   each has ``expansion_size`` participants; their DLTs are counted but no rule reads them.
   The trial ends ``dlt_window_days`` after the last expansion infusion.

All m trials of a batch advance together, participant slot by slot (as
:func:`ctkinetics.escalation.simulate_tite` does): for slot k, every trial still waiting to
infuse it is decided in one call of the rules; the trials that must wait jump to their next
event and are decided again, until all have infused slot k or stopped; then what happens to
slot k's participants (their courses, from one exposure request for the whole batch) is
recorded. Durations are counted from the first infusion.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.escalation.state import NOT_EVALUABLE
from ctkinetics.trialsim import engine
from ctkinetics.trialsim.conduct import course
from ctkinetics.trialsim.engine import STOP_LOWEST, STOP_MAX, select_mtd_batch
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
        Level selected as MTD (BOIN12: the optimal biological dose), −1 for none.
    stop_rule : ndarray (m,)
        Rule code that ended accrual (:mod:`ctkinetics.trialsim.engine` for the added codes).
    n, dlt, n_expansion, dlt_expansion : ndarray (m, D)
        Evaluable participants and DLTs per level (counted level) in escalation; participants
        and DLTs per level in expansion.
    n_not_evaluable, n_efficacy : ndarray (m, D)
        Escalation participants not evaluable (replaced) and responders among the evaluable
        (0 without an efficacy model).
    duration_escalation, duration_total, days_suspended : ndarray (m,)
        Days from the first infusion; days accrual was held by the rules.
    level : ndarray (m, P)
        Level given to each participant slot (−1: not infused) — the product's planned level.
    infusion_day : ndarray (m, P)
        Study day of infusion (NaN: not infused).
    dlt_given : ndarray (m, P) of bool
        DLT as observed.
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
    n_not_evaluable: np.ndarray
    n_efficacy: np.ndarray


def _next_event(events, infusion, offsets, t, also):
    """First event day after ``t`` (q,): a participant's event (``events`` (q, k·E), NaN none),
    an infusion + offset, or ``also``."""
    with np.errstate(invalid="ignore"):
        nxt = np.minimum(also, np.where(events > t[:, None] + _EPS, events, np.inf).min(axis=1, initial=np.inf))
    for o in offsets:
        day = infusion + o
        nxt = np.minimum(nxt, np.where(day > t[:, None] + _EPS, day, np.inf).min(axis=1, initial=np.inf))
    if not np.all(np.isfinite(nxt)):  # pragma: no cover - would be a bug in a rule or guard
        raise RuntimeError("virtual trial waiting for an event that never comes")
    return nxt


_N_EVENTS = 6  # per participant: DLT, window end, early end, confirmation, sentinel release, efficacy


class _Escalation:
    """The escalation phase of m trials under one rule (state arrays, one slot per participant)."""

    def __init__(self, spec, rule, draws):
        self.spec, self.rule, self.design, self.draws = spec, rule, rule.design, draws
        self.conduct = spec.design.conduct
        self.k_levels = len(spec.design.levels)
        m, n_esc = draws.ready.shape
        self.n_esc = n_esc
        nan = lambda dtype=float: np.full((m, n_esc), np.nan if dtype is float else -1, dtype=dtype)  # noqa: E731
        self.inf, self.ons, self.wend, self.confirm, self.evaluable = (nan() for _ in range(5))
        self.final, self.eff_day = nan(), nan()
        self.lev, self.planned = nan(int), nan(int)
        self.reason = np.zeros((m, n_esc), dtype=int)
        self.isd = np.zeros((m, n_esc), dtype=bool)
        self.eff = np.zeros((m, n_esc), dtype=bool)
        self.events = np.full((m, n_esc, _N_EVENTS), np.nan)
        d = self.k_levels
        self.sentinel = np.full((m, d), np.nan)
        self.sent_dlt = np.zeros((m, d), dtype=bool)
        self.sent_onset = np.full((m, d), np.nan)
        self.elim = np.full(m, d)
        self.t = draws.ready[:, 0].copy() if n_esc else np.zeros(m)
        self.active = np.ones(m, dtype=bool)
        self.stop_rule = np.full(m, -1)
        self.t_stop = np.full(m, np.nan)
        self.susp_since = np.full(m, np.nan)
        self.suspended = np.zeros(m)
        self.offsets = rule.event_offsets()
        self.boin12 = rule.method == "boin12"

    def record(self, r, k) -> engine.Record:
        return engine.Record(self.inf[r, :k], self.lev[r, :k], self.isd[r, :k], self.ons[r, :k],
                             self.wend[r, :k], self.reason[r, :k], self.confirm[r, :k], self.evaluable[r, :k])

    def run(self) -> None:
        for k in range(self.n_esc + 1):
            if k < self.n_esc:
                self.t = np.maximum(self.t, self.draws.ready[:, k])
            waiting = self.active.copy()
            rounds = 0
            placed = []
            while waiting.any():
                rounds += 1
                if rounds > _MAX_ROUNDS:  # pragma: no cover - a bug, not a user error
                    raise RuntimeError("virtual trial did not finish")
                r = np.flatnonzero(waiting)
                done = self._round(r, k, placed)
                waiting[r[done]] = False
            # slot k's infusions, in one exposure request: a trial that placed slot k takes no
            # further part in slot k's rounds, and the rounds of the others read only their
            # own rows, so its course is needed only from slot k + 1 on
            if placed:
                self._infuse(*(np.concatenate(x) for x in zip(*placed)), k)

    def _decide(self, r, k, tr, cur):
        d = self.design
        rec = self.record(r, k)
        counts = engine.counts(d, self.k_levels, tr, rec)
        if self.boin12:
            return engine.decide12(self.rule, self.k_levels, cur, tr, rec, self.eff[r, :k], self.eff_day[r, :k],
                                   counts, self.elim[r])
        return engine.decide(d, self.k_levels, cur, counts, self.elim[r])

    def _round(self, r, k, placed):
        """Decide for trials ``r`` about slot k; infuse (appended to ``placed`` as (trial rows,
        levels, days), recorded by :meth:`_infuse` at the end of the slot), stop or move to the
        next event. Returns the mask (over r) of trials that infused slot k or stopped."""
        d = self.design
        tr = self.t[r]
        inf, lev = self.inf[r, :k], self.lev[r, :k]
        # the current level is that of the most recent infusion, as planned (a dose shortfall
        # may count the participant at another level: ctkinetics.escalation.fast.current_level)
        cur = self.planned[r, k - 1] if k else np.full(r.size, min(d.start_level, self.k_levels - 1))
        dec = self._decide(r, k, tr, cur)
        self.elim[r] = dec.eliminated_from
        # the maximum reached while outcomes are pending stops accrual, but a participant whose
        # window then ends early, not evaluable, is replaced: decide again at the next event
        # (the engine's count falls below the maximum); stop once every outcome is final
        reopen = dec.stopped & (dec.rule == STOP_MAX) & (self.final[r, :k] > tr[:, None] + _EPS).any(axis=1)
        stop, held = dec.stopped & ~reopen, dec.suspended & ~dec.stopped
        go = ~dec.stopped & ~held
        self._count_suspension(r, tr, held, go)
        level = dec.next_level.copy()
        also = np.full(r.size, np.inf)
        blocked = np.zeros(r.size, dtype=bool)
        ask = go & dec.escalate
        if self.rule.guards and ask.any():
            q = np.flatnonzero(ask)
            given = self.draws.exposure(r[q][:, None], np.arange(k)[None, :], self.planned[r[q], :k])
            ctx = GuardContext(tr[q], cur[q], inf[q], lev[q], given.__getitem__)
            verdict, day = self.rule.check_escalation(ctx)
            wait = verdict == WAIT
            blocked[q[wait]] = True
            also[q[wait]] = np.where(day[wait] > tr[q[wait]] + _EPS, day[wait], np.inf)
            level[q[verdict == STAY]] = cur[q[verdict == STAY]]
        lv = np.clip(level, 0, self.k_levels - 1)
        gate = engine.time_gate(d, self.sentinel[r], lv)
        stagger = go & ~blocked & (tr < gate - _EPS)  # False where gate is NaN (no sentinel)
        hold = np.zeros(r.size, dtype=bool)
        gated = np.flatnonzero(go & ~blocked & ~stagger)   # the trials whose gate may be held
        if gated.size:
            hold[gated] = self._held(r[gated], tr[gated], lv[gated])
        release = self.sentinel[r, lv] + self.sent_onset[r, lv] + self.conduct.sentinel_review_days
        also = np.where(stagger, gate, np.where(hold, release, also))
        place = go & ~blocked & ~stagger & ~hold
        if k == self.n_esc:  # every slot used: no participant left to enrol
            stop, place = stop | place, np.zeros(r.size, dtype=bool)
            dec_rule = np.where(dec.stopped, dec.rule, engine.STOP_SLOTS)
        else:
            dec_rule = dec.rule
        rs = r[stop]
        self.active[rs] = False
        self.stop_rule[rs] = dec_rule[stop]
        self.t_stop[rs] = tr[stop]
        if place.any():
            placed.append((r[place], level[place], tr[place]))
        wait = ~stop & ~place
        rw = r[wait]
        if rw.size:
            self.t[rw] = _next_event(self.events[rw, :k].reshape(rw.size, k * _N_EVENTS), self.inf[rw, :k],
                                     self.offsets, tr[wait], also[wait])
        return stop | place

    def _held(self, r, tr, lv):
        """Whether the chosen level's gate is held for the committee (sentinel safety risk)."""
        one = lambda a: a[r, lv][:, None]  # noqa: E731 - the chosen level's sentinel only (q, 1)
        held = engine.gate_held(self.design, tr, one(self.sentinel), one(self.sent_dlt), one(self.sent_onset),
                                self.conduct.sentinel_review_days)
        return held[:, 0]

    def _count_suspension(self, r, tr, held, go):
        since = self.susp_since[r]
        start = held & np.isnan(since)
        self.susp_since[r[start]] = tr[start]
        end = go & ~np.isnan(since)
        self.suspended[r[end]] += tr[end] - since[end]
        self.susp_since[r[end]] = np.nan

    def _infuse(self, rp, lp, tp, k):
        T = self.design.dlt_window_days
        c = course(self.draws, rp, k, lp, tp, self.design, self.conduct)
        self.inf[rp, k] = tp
        self.planned[rp, k] = lp
        self.lev[rp, k] = c.level
        self.isd[rp, k] = c.dlt
        self.ons[rp, k] = c.onset
        self.wend[rp, k] = c.window_end
        self.reason[rp, k] = c.reason
        self.confirm[rp, k] = c.confirm
        self.evaluable[rp, k] = c.evaluable
        self.final[rp, k] = c.final
        if c.efficacy is not None:
            self.eff[rp, k] = c.efficacy
            self.eff_day[rp, k] = tp + self.design.protocol.efficacy.assessment_day
        first = np.isnan(self.sentinel[rp, lp])  # a dose group is the participants planned at a level
        release = np.where(first, tp + c.onset + self.conduct.sentinel_review_days, np.nan)
        self.events[rp, k] = np.stack([tp + c.onset, tp + T, tp + c.window_end, c.confirm, release,
                                       self.eff_day[rp, k]], axis=1)
        s_r, s_l = rp[first], lp[first]
        self.sentinel[s_r, s_l] = tp[first]
        self.sent_dlt[s_r, s_l] = c.dlt[first]
        self.sent_onset[s_r, s_l] = c.onset[first]


def _expansion(spec, rule, draws, selected, end_esc):
    """Expansion participants of m trials: level (m, M) (−1 none), day (m, M), DLT as observed,
    and the end of the trial."""
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
    if gr.size:
        dlt[gr, gs] = course(draws, gr, n_esc + gs, lev[gr, gs], day[gr, gs], rule.design, spec.design.conduct).dlt
    last = draws.exp_offsets[rows, np.maximum(count - 1, 0)] if n_exp else np.zeros(m)
    end_total = np.where(count > 0, end_esc + last + rule.design.dlt_window_days, end_esc)
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
    m = draws.m
    rec = esc.record(np.arange(m), esc.n_esc)
    status = engine.final_status(rule.design, rec)
    c = engine.counts(rule.design, k_levels, np.full(m, np.inf), rec)
    infused = esc.lev >= 0
    has = infused.any(axis=1)
    last = np.where(infused, esc.final, -np.inf)
    if esc.boin12:
        last = np.maximum(last, np.where(infused, esc.eff_day, -np.inf))
        evaluable = infused & (status != NOT_EVALUABLE)
        selected = engine.select_obd(rule, k_levels, rec, esc.eff)
        now = esc.stop_rule >= engine.BOIN12_STOP
    else:
        evaluable = infused & (status != NOT_EVALUABLE)
        selected = np.asarray(select_mtd_batch(rule.design, c.n, c.y, esc.elim), dtype=int)
        now = esc.stop_rule == STOP_LOWEST
    last = last.max(axis=1, initial=-np.inf)
    end_esc = np.where(now | ~has, esc.t_stop, last)
    first = np.where(has, esc.inf[:, 0], esc.t_stop)
    lev_x, day_x, dlt_x, end_total = _expansion(spec, rule, draws, selected, end_esc)
    return RuleOutcomes(
        rule.name, selected, esc.stop_rule, c.n, c.y,
        _per_level(lev_x, lev_x >= 0, k_levels), _per_level(lev_x, dlt_x, k_levels),
        end_esc - first, end_total - first, esc.suspended,
        np.concatenate([esc.planned, lev_x], axis=1), np.concatenate([esc.inf, day_x], axis=1),
        np.concatenate([esc.isd, dlt_x], axis=1), c.n_not_evaluable,
        _per_level(esc.lev, evaluable & esc.eff, k_levels))
