"""A reference calendar for tests: one virtual trial at a time, by the committee's decide().

Independent of the vectorised calendar (ctkinetics.trialsim.calendar): it keeps an
EscalationState of Participant objects, asks ctkinetics.escalation.decide() (the full
decision with its tables, as a dose-review committee sees it) at every event, keeps a sorted
list of event days, and evaluates the kinetic guard participant by participant. It is the
per-trial simulator the project had before the calendar was vectorised (slow: ~100 trials/s).
"""
from __future__ import annotations

import bisect
import math

import numpy as np

from ctkinetics.escalation import EscalationState, Participant, decide
from ctkinetics.escalation.fast import stagger_gate
from ctkinetics.escalation.mtd import select_mtd_batch
from ctkinetics.escalation.rules import STOP_LOWEST

EPS = 1e-9


def _median_guard(s, state, as_of, level, exposure):
    people = [p for p in state.participants
              if p.level == level and p.phase == "escalation" and p.infusion_day <= as_of]
    known = [exposure(int(p.subject), level, s["metric"]) for p in people
             if as_of - p.infusion_day >= s["known_after_days"] - EPS]
    if not known:
        return "wait", min(p.infusion_day for p in people) + s["known_after_days"]
    return ("allow", None) if float(np.median(known)) >= s["min"] else ("stay", None)


class _Events:
    def __init__(self):
        self.days = []

    def add(self, day):
        bisect.insort(self.days, float(day))

    def after(self, t, also=math.inf):
        i = bisect.bisect_right(self.days, t + EPS)
        nxt = min(self.days[i] if i < len(self.days) else math.inf, also)
        assert math.isfinite(nxt), "waiting for an event that never comes"
        return nxt


def reference_trial(spec, rule, draws, i):
    """Trial ``i`` of ``draws`` (a TrialDraws batch) under ``rule``: a dict of its outcome."""
    design = rule.design
    T = design.dlt_window_days
    levels = spec.design.levels
    k_levels = len(levels)
    ready = draws.ready[i]

    def outcome(slot, level):
        d, o = draws.outcome(i, slot, level)
        return bool(d), float(o)

    def exposure(slot, level, metric):
        return float(draws.exposure(i, slot, level)[metric])
    state = EscalationState(levels, (), spec.design.doses)
    events = _Events()
    offsets = [o for g in rule.guards for o in g.event_offsets()]
    if design.min_pending_followup > 0:
        offsets.append(design.min_pending_followup)
    k, t, suspended_since, suspended, resolves = 0, float(ready[0]), None, 0.0, []
    while True:
        if k < len(ready):
            t = max(t, float(ready[k]))
        dec = decide(state, design, t)
        elim = dec.eliminated_from
        if elim is not None and state.eliminated_from != elim:
            state = state.with_elimination(elim)
        if dec.decision == "stop":
            stop_rule, t_stop = dec.rule_id, t
            break
        if dec.suspended:
            suspended_since = t if suspended_since is None else suspended_since
            t = events.after(t)
            continue
        if suspended_since is not None:
            suspended += t - suspended_since
            suspended_since = None
        level = levels.index(dec.next_level)
        current = levels.index(dec.current_level)
        if dec.decision == "escalate" and rule.guards:
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
        is_dlt, on = outcome(k, level)
        on = on if is_dlt else math.nan
        state = state.with_participant(Participant(str(k), level, t, 1.0 if is_dlt else 0.0, on))
        resolve = t + (min(on, T) if is_dlt else T)
        resolves.append(resolve)
        events.add(resolve)
        for o in offsets:
            events.add(t + o)
        k += 1

    first = float(state.participants[0].infusion_day) if state.participants else t_stop
    end_esc = t_stop if stop_rule == STOP_LOWEST or not resolves else max(resolves)
    n = np.zeros(k_levels, dtype=int)
    y = np.zeros(k_levels, dtype=int)
    for p in state.participants:
        n[p.level] += 1
        y[p.level] += int(p.dlt == 1)
    prev = k_levels if state.eliminated_from is None else state.eliminated_from
    selected = int(select_mtd_batch(design, n[None], y[None], np.array([prev]))[0])
    parts = [(int(p.subject), p.level, p.infusion_day, int(p.dlt == 1)) for p in state.participants]
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
            d = outcome(base + e, j)[0]
            n_exp[j] += 1
            y_exp[j] += int(d)
            parts.append((base + e, j, end_esc + float(draws.exp_offsets[i, e]), int(d)))
        end_total = end_esc + float(draws.exp_offsets[i, count - 1]) + T
    return {"selected": selected, "stop_rule": stop_rule, "n": n, "dlt": y, "n_expansion": n_exp,
            "dlt_expansion": y_exp, "duration_escalation": end_esc - first,
            "duration_total": end_total - first, "days_suspended": suspended, "participants": parts}
