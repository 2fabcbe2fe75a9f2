"""A reference calendar for tests: one virtual trial at a time, by the committee's decide().

Independent of the vectorised calendar (ctkinetics.trialsim.calendar): it keeps an
EscalationState of Participant objects (with their early window ends, the committee's
confirmations and the shortfall rule's counted level) and the committee's release of sentinel
holds as dated CommitteeEvents, asks ctkinetics.escalation.decide() (the full decision with its
tables, as a dose-review committee sees it) or, for BOIN12 rules, boin12.next_dose on the
complete outcomes at every event, keeps a sorted list of event days, and evaluates the
kinetic guard participant by participant. It is the per-trial simulator the project had before
the calendar was vectorised (slow: ~100 trials/s), extended with the protocol's rules. What
happens to a participant (DLT, early end, shortfall) comes from the same draws through
ctkinetics.trialsim.conduct.course (tested on its own in test_conduct.py).
"""
from __future__ import annotations

import bisect
import math

import numpy as np

from ctkinetics.data.protocol import WINDOW_END_REASONS
from ctkinetics.escalation import EscalationState, Participant, decide
from ctkinetics.escalation.boin12 import Boin12Counts, next_dose_arrays, select_obd
from ctkinetics.escalation.mtd import select_mtd_batch
from ctkinetics.escalation.rules import RULE, STOP_LOWEST
from ctkinetics.escalation.sentinel import gate_holds, stagger_gate
from ctkinetics.escalation.state import CommitteeEvent, level_counts
from ctkinetics.trialsim.conduct import course

EPS = 1e-9
BOIN12_STOP, STOP_SLOTS = 100, -2  # the calendar's stop codes (documented in trialsim.engine)


def _median_guard(s, state, as_of, level, exposure):
    people = [p for p in state.participants
              if p.level == level and p.phase == "escalation" and p.infusion_day <= as_of]
    known = [exposure(int(p.subject), p.planned_level, s["metric"]) for p in people
             if as_of - p.infusion_day >= s["known_after_days"] - EPS]
    if not known:
        return "wait", min(p.infusion_day for p in people) + s["known_after_days"]
    return ("allow", None) if float(np.median(known)) >= s["min"] else ("stay", None)


class _Events:
    def __init__(self):
        self.days = []

    def add(self, day):
        if not math.isnan(day):
            bisect.insort(self.days, float(day))

    def after(self, t, also=math.inf):
        i = bisect.bisect_right(self.days, t + EPS)
        nxt = min(self.days[i] if i < len(self.days) else math.inf, also)
        assert math.isfinite(nxt), "waiting for an event that never comes"
        return nxt


def _boin12_state(rule, state, t, eff_known, k_levels):
    """(complete counts, anything pending) of a BOIN12 trial as of t."""
    counts = level_counts(state, t, rule.design.dlt_window_days, rule.design.protocol.evaluability)
    lv, e, tox, pending = [], [], [], False
    for p, st in zip(state.participants, counts.statuses):
        if st.status in ("not evaluable", "not infused", "expansion"):
            continue
        known = eff_known[int(p.subject)][1] <= t
        if st.status not in ("dlt", "no dlt", "partial") or not known:
            pending = True
            continue
        lv.append(p.level)
        e.append(int(eff_known[int(p.subject)][0]))
        tox.append(int(st.status == "dlt"))
    return Boin12Counts.from_outcomes(lv, e, tox, k_levels), counts, pending


def reference_trial(spec, rule, draws, i):
    """Trial ``i`` of ``draws`` (a TrialDraws batch) under ``rule``: a dict of its outcome."""
    design = rule.design
    conduct = spec.design.conduct
    T = design.dlt_window_days
    levels = spec.design.levels
    k_levels = len(levels)
    ready = draws.ready[i]
    state = EscalationState(levels, (), spec.design.doses)
    events = _Events()
    offsets = [o for g in rule.guards for o in g.event_offsets()]
    if design.min_pending_followup > 0:
        offsets.append(design.min_pending_followup)
    A = design.protocol.efficacy.assessment_day
    eff_known = {}
    finals, dlt_finals = [], []

    def exposure(slot, level, metric):
        return float(draws.exposure(i, slot, level)[metric])

    def decide12(t):
        d12 = rule.boin12
        counts, c, pending = _boin12_state(rule, state, t, eff_known, k_levels)
        n_total = int(c.n.sum())
        cur = state.participants[-1].planned_level if state.participants else min(design.start_level, k_levels - 1)
        if n_total == 0:
            return "go", cur, RULE["start"].code
        if n_total >= design.max_subjects:
            return "stop", cur, RULE["stop_max"].code
        if c.n[cur] % d12.cohort_size:
            return "go", cur, RULE["cohort"].code
        if pending:
            return "hold", cur, RULE["suspend"].code
        nxt, code, _, _ = next_dose_arrays(d12, counts.n, counts.e_only, counts.neither, counts.both,
                                           counts.t_only, [cur])
        nxt, code = int(nxt[0]), BOIN12_STOP + int(code[0])
        if nxt < 0:
            return "stop", cur, code
        return ("escalate" if nxt > cur else "go"), nxt, code

    k, t, suspended_since, suspended = 0, float(ready[0]), None, 0.0
    while True:
        if k < len(ready):
            t = max(t, float(ready[k]))
        current = state.participants[-1].planned_level if state.participants else min(design.start_level, k_levels - 1)
        if rule.method == "boin12":
            what, level, code = decide12(t)
            stopped, held, escalate = what == "stop", what == "hold", what == "escalate"
        else:
            dec = decide(state, design, t)
            if dec.eliminated_from is not None and state.eliminated_from != dec.eliminated_from:
                state = state.with_elimination(dec.eliminated_from)
            stopped, held, escalate, code = dec.decision == "stop", dec.suspended, dec.decision == "escalate", dec.rule_id
            level = levels.index(dec.next_level) if dec.next_level is not None else current
        if stopped and code == RULE["stop_max"].code and any(f > t + EPS for f in dlt_finals):
            t = events.after(t)  # a pending participant may still turn out not evaluable: replaced
            continue
        if stopped:
            stop_rule, t_stop = code, t
            break
        if held:
            suspended_since = t if suspended_since is None else suspended_since
            t = events.after(t)
            continue
        if suspended_since is not None:
            suspended += t - suspended_since
            suspended_since = None
        if escalate and rule.guards:
            verdict, day = "allow", None
            for g in rule.guards:
                verdict, day = _median_guard(dict(g.settings), state, t, current, exposure)
                if verdict != "allow":
                    break
            if verdict == "wait":
                t = events.after(t, day if day is not None and day > t + EPS else math.inf)
                continue
            if verdict == "stay":
                level = current
        gate = stagger_gate(state, design, level, t)
        if t < gate - EPS:
            t = events.after(t, gate)
            continue
        held_gates, _ = gate_holds(state, design, t)
        if held_gates[level]:
            t = events.after(t)  # the committee's release is a dated event
            continue
        if k == len(ready):  # every slot used: nobody left to enrol
            stop_rule, t_stop = STOP_SLOTS, t
            break
        c = course(draws, np.array([i]), np.array([k]), np.array([level]), np.array([t]), design, conduct)
        dlt, onset = bool(c.dlt[0]), float(c.onset[0])
        p = Participant(str(k), int(c.level[0]), t, 1.0 if dlt else 0.0, onset if dlt else math.nan,
                        window_end_day=float(c.window_end[0]), window_end_reason=WINDOW_END_REASONS[int(c.reason[0])]
                        if not math.isnan(c.window_end[0]) else "", evaluable=float(c.evaluable[0]),
                        confirmed_day=float(c.confirm[0]), planned_level=level)
        state = state.with_participant(p)
        if c.efficacy is not None:
            eff_known[k] = (bool(c.efficacy[0]), t + A)
            events.add(t + A)
        first_here = sum(q.planned_level == level for q in state.participants) == 1
        if first_here and dlt:  # the committee releases a sentinel hold review_days after it is known
            release = t + onset + conduct.sentinel_review_days
            state = EscalationState(state.levels, state.participants, state.doses, state.eliminated_from,
                                    state.committee + (CommitteeEvent(release, "release_sentinel_hold", level),))
            events.add(release)
        dlt_finals.append(float(c.final[0]))
        finals.append(float(c.final[0]) if c.efficacy is None or rule.method != "boin12" else
                      max(float(c.final[0]), t + A))
        for day in (t + onset, t + T, t + c.window_end[0], c.confirm[0]):
            events.add(day)
        for o in offsets:
            events.add(t + o)
        k += 1

    first = float(state.participants[0].infusion_day) if state.participants else t_stop
    now = stop_rule == STOP_LOWEST if rule.method != "boin12" else stop_rule >= BOIN12_STOP
    end_esc = t_stop if now or not finals else max(finals)
    c = level_counts(state, math.inf, T, design.protocol.evaluability)
    n, y = c.n, c.y
    if rule.method == "boin12":
        counts, _, _ = _boin12_state(rule, state, math.inf, eff_known, k_levels)
        selected = select_obd(rule.boin12, counts).obd_index
    else:
        prev = k_levels if state.eliminated_from is None else state.eliminated_from
        selected = int(select_mtd_batch(design, n[None], y[None], np.array([prev]))[0])
    parts = [(int(p.subject), p.planned_level, p.infusion_day, int(p.dlt == 1)) for p in state.participants]
    n_exp = np.zeros(k_levels, dtype=int)
    y_exp = np.zeros(k_levels, dtype=int)
    groups = []
    for lab in spec.design.expansion_levels:
        j = selected if lab == "mtd" else levels.index(lab)
        if j >= 0 and j not in groups:
            groups.append(j)
    end_total = end_esc
    if groups and spec.design.expansion_size > 0:
        base = len(ready)
        count = len(groups) * spec.design.expansion_size
        for e in range(count):
            j = groups[e % len(groups)]
            day = end_esc + float(draws.exp_offsets[i, e])
            d = bool(course(draws, np.array([i]), np.array([base + e]), np.array([j]), np.array([day]), design,
                            conduct).dlt[0])
            n_exp[j] += 1
            y_exp[j] += int(d)
            parts.append((base + e, j, day, int(d)))
        end_total = end_esc + float(draws.exp_offsets[i, count - 1]) + T
    return {"selected": selected, "stop_rule": stop_rule, "n": n, "dlt": y, "n_expansion": n_exp,
            "dlt_expansion": y_exp, "duration_escalation": end_esc - first, "n_not_evaluable": c.n_not_evaluable,
            "duration_total": end_total - first, "days_suspended": suspended, "participants": parts}

