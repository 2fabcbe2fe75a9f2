"""One virtual trial: participants arrive, wait, are infused, and the engine decides.

Calendar of one trial under one decision rule (times in study days, continuous):

1. Participants arrive as a Poisson process (``accrual_per_month``; 1 month = 365.25/12 d),
   the first on day 0; each product is ready after a manufacturing delay. Ready participants
   queue in order of readiness; the dose is assigned at infusion.
2. Whenever something can change — a product becomes ready, a DLT occurs, a DLT window ends,
   a stagger wait ends, a guard's information arrives — the escalation engine decides with the
   data known that day (:func:`ctkinetics.trialsim.engine.engine_step`, i.e. exactly
   :func:`ctkinetics.escalation.decide`): stop, suspend accrual (wait for the next event),
   or name the next level; a rule's guards may turn *escalate* into *stay* or *wait*; the
   stagger of that level may make the participant wait. Otherwise the participant is
   infused. Between events nothing changes, so deciding at every event is the same as
   deciding every day, without rounding to whole days.
3. The engine stops accrual at the maximum number of participants (the trial then ends when
   the last DLT window resolves) or when the lowest dose is eliminated (the trial ends that
   day). The MTD is selected on the complete data (:func:`select_mtd_batch`, BOIN's
   ``select.mtd``), with eliminations persisted.
4. Expansion: from the end of escalation, new arrivals (same accrual, new manufacturing
   delays) are infused without stagger into the expansion groups in turn ("mtd" = the selected
   level; skipped when there is none) until each has ``expansion_size`` participants; their
   DLTs are counted but no rule reads them. The trial ends ``dlt_window_days`` after the last
   expansion infusion.

Each participant's draws (arrival, delay, toxicity uniform, onset, kinetic η) are made once
per trial and shared by every rule (common random numbers: rules are compared on the same
virtual participants). Durations are counted from the first infusion.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from ctkinetics.escalation.mtd import select_mtd_batch
from ctkinetics.escalation.rules import STOP_LOWEST
from ctkinetics.escalation.state import EscalationState, Participant
from ctkinetics.trialsim.engine import decide_many, situation, stagger_gate
from ctkinetics.trialsim.guards import STAY, WAIT
from ctkinetics.trialsim.kinetics import exposures
from ctkinetics.trialsim.toxicity import dlt_outcomes

DAYS_PER_MONTH = 365.25 / 12
_EPS = 1e-9
# Drawn days are rounded to a 2^-16-day grid (1.3 s): sums and differences of such days are
# exact in floating point, so a window ending on day t0 + 28 has elapsed, as the engine sees
# it (as_of − t0 >= 28), on exactly that day.
_GRID = 2.0 ** 16


def on_grid(days):
    """Days rounded to the 2^-16-day grid (at least one grid step when positive)."""
    d = np.asarray(days, dtype=float)
    q = np.round(d * _GRID) / _GRID
    return np.where(d > 0, np.maximum(q, 1.0 / _GRID), q)
_MAX_STEPS = 100_000
_KINETIC_CHUNK = 20_000  # subjects per model call: bounds the memory of the curves


@dataclass(frozen=True)
class TrialDraws:
    """All random inputs of one trial (N escalation + M expansion participants)."""

    ready: np.ndarray  # (N,) day each escalation participant's product is ready, sorted
    exp_offsets: np.ndarray  # (M,) days after the end of escalation each expansion product is ready
    dlt: np.ndarray  # (N + M, D) bool
    onset: np.ndarray  # (N + M, D) days after infusion
    exposure: dict | None  # metric -> (N + M, D)


def seed_sequence(seed: int, trial: int) -> np.random.SeedSequence:
    """Trial ``trial``'s seed: the ``trial``-th child of ``SeedSequence(seed)``, without spawning
    all earlier children (identical to ``SeedSequence(seed).spawn(trial + 1)[trial]``)."""
    return np.random.SeedSequence(seed, spawn_key=(trial,))


def draw_trials(spec, seed: int, trials) -> list:
    """Draw everything random about each trial in ``trials`` (one stream per trial, fixed order
    of draws), then the kinetics of all of them in few vectorised model calls."""
    d = spec.design
    n_esc, n_exp = d.boin.max_subjects, d.n_expansion
    total = n_esc + n_exp
    scale = DAYS_PER_MONTH / d.accrual_per_month
    kin = spec.kinetics
    raw = []
    for trial in trials:
        rng = np.random.default_rng(seed_sequence(seed, trial))
        gaps = rng.exponential(scale, n_esc)
        gaps[0] = 0.0
        ready = on_grid(np.sort(np.cumsum(gaps) + d.manufacturing.draw(rng, n_esc)))
        tox_u = rng.random(total)
        onset_u = rng.random(total)
        eta = rng.standard_normal((total, len(kin.variable))) if kin is not None else None
        exp_offsets = on_grid(np.sort(np.cumsum(rng.exponential(scale, n_exp)) + d.manufacturing.draw(rng, n_exp)))
        raw.append((ready, exp_offsets, tox_u, onset_u, eta))
    if not raw:
        return []
    expo = None
    if kin is not None:
        eta_all = np.concatenate([r[4] for r in raw])
        chunk = max(1, _KINETIC_CHUNK // (total * len(d.levels))) * total
        parts = [exposures(kin, eta_all[i:i + chunk], d.doses) for i in range(0, len(eta_all), chunk)]
        expo = {m: np.concatenate([p[m] for p in parts]) for m in parts[0]}
    window = max(r.design.dlt_window_days for r in spec.rules)
    tox_all = np.concatenate([r[2] for r in raw])
    onset_all = np.concatenate([r[3] for r in raw])
    dlt, onset = dlt_outcomes(spec.toxicity, tox_all, onset_all, expo, window, len(d.levels))
    onset = on_grid(onset)
    out = []
    for i, (ready, exp_offsets, *_rest) in enumerate(raw):
        rows = slice(i * total, (i + 1) * total)
        e = None if expo is None else {m: v[rows] for m, v in expo.items()}
        out.append(TrialDraws(ready, exp_offsets, dlt[rows], onset[rows], e))
    return out


@dataclass(frozen=True)
class RuleOutcome:
    """One trial under one rule. Arrays are per dose level (D,)."""

    rule: str
    selected: int  # −1: no MTD
    stop_rule: int  # engine rule id that ended accrual
    n: np.ndarray
    dlt: np.ndarray
    n_expansion: np.ndarray
    dlt_expansion: np.ndarray
    duration_escalation: float
    duration_total: float
    days_suspended: float
    participants: tuple  # ((level, phase, infusion_day, dlt), ...) for exposure summaries


class _Events:
    """Sorted future event days of one trial (resolutions, guard information, gates)."""

    def __init__(self):
        self.days = []

    def add(self, day: float) -> None:
        bisect.insort(self.days, float(day))

    def after(self, t: float, also: float = math.inf) -> float:
        """The first event after day t, or ``also`` if that comes first."""
        i = bisect.bisect_right(self.days, t + _EPS)
        nxt = min(self.days[i] if i < len(self.days) else math.inf, also)
        if not math.isfinite(nxt):  # pragma: no cover - would be a bug in a rule or guard
            raise RuntimeError(f"virtual trial waiting on day {t:g} for an event that never comes")
        return nxt


def rule_process(spec, rule, draws: TrialDraws):
    """One trial under ``rule`` as a generator (see the module doc).

    It yields requests to the engine, ``("decide", Situation)`` answered with a
    :class:`~ctkinetics.trialsim.engine.Step` and ``("select", n, y, eliminated_from)``
    answered with the selected level, and returns a :class:`RuleOutcome`. The driver
    (:func:`simulate_trials_local`) answers the requests of many trials with one vectorised
    call of the engine's rules.
    """
    design = rule.design
    T = design.dlt_window_days
    levels = spec.design.levels
    k_levels = len(levels)
    state = EscalationState(levels, (), spec.design.doses)
    events = _Events()
    offsets = tuple(o for g in rule.guards for o in g.event_offsets())
    expo = draws.exposure

    def exposure(subject, metric, level):
        return float(expo[metric][int(subject), level])

    ready = draws.ready
    k, t, steps, suspended_since, suspended = 0, float(ready[0]), 0, None, 0.0
    resolves = []
    while True:
        steps += 1
        if steps > _MAX_STEPS:  # pragma: no cover - a bug, not a user error
            raise RuntimeError("virtual trial did not finish")
        if k < len(ready):
            t = max(t, float(ready[k]))
        step = yield ("decide", situation(state, design, t))
        if step.eliminated_from < k_levels and state.eliminated_from != step.eliminated_from:
            state = state.with_elimination(step.eliminated_from)  # elimination persists
        if step.stopped:
            stop_rule, t_stop = step.rule_id, t
            break
        if step.suspended:
            suspended_since = t if suspended_since is None else suspended_since
            t = events.after(t)
            continue
        if suspended_since is not None:
            suspended += t - suspended_since
            suspended_since = None
        level = step.next_level
        if step.decision == "escalate" and rule.guards:
            verdict, day = rule.check_escalation(state, t, step.current_level, exposure)
            if verdict == WAIT:
                t = events.after(t, day if day is not None and day > t + _EPS else math.inf)
                continue
            if verdict == STAY:
                level = step.current_level
        gate = stagger_gate(state, design, level, t)
        if t < gate - _EPS:
            t = events.after(t, gate)
            continue
        is_dlt = bool(draws.dlt[k, level])
        onset = float(draws.onset[k, level]) if is_dlt else math.nan
        state = state.with_participant(Participant(str(k), level, t, 1.0 if is_dlt else 0.0, onset))
        resolve = t + (min(onset, T) if is_dlt else T)
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
    selected = yield ("select", n, y, prev)

    parts = [(p.level, "escalation", p.infusion_day, int(p.dlt == 1)) for p in state.participants]
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
        for i in range(count):
            j = groups[i % len(groups)]
            day = end_esc + float(draws.exp_offsets[i])
            d = bool(draws.dlt[base + i, j])
            n_exp[j] += 1
            y_exp[j] += int(d)
            parts.append((j, "expansion", day, int(d)))
        end_total = end_esc + float(draws.exp_offsets[count - 1]) + T
    return RuleOutcome(rule.name, selected, stop_rule, n, y, n_exp, y_exp, end_esc - first,
                       end_total - first, suspended, tuple(parts))


def participant_index(outcome: RuleOutcome, n_escalation: int) -> np.ndarray:
    """Row of each participant of ``outcome`` in the trial's draws (escalation, then expansion)."""
    out, esc, exp = [], 0, 0
    for _, phase, _, _ in outcome.participants:
        if phase == "escalation":
            out.append(esc)
            esc += 1
        else:
            out.append(n_escalation + exp)
            exp += 1
    return np.asarray(out, dtype=int)


def simulate_trials_local(spec, seed: int, trials) -> list:
    """Simulate trials ``trials`` (indices) under every rule, in this process.

    Returns a list, in the order of ``trials``, of ``(draws, (RuleOutcome per rule, ...))``.
    The trials advance in lock-step: each round, every trial's pending request to the engine
    is answered by one vectorised call per rule, so the per-call cost of the engine is shared.
    """
    trials = list(trials)
    all_draws = draw_trials(spec, seed, trials)
    k_levels = len(spec.design.levels)
    gens, requests, results = {}, {}, {}
    for ti, draws in enumerate(all_draws):
        for ri, rule in enumerate(spec.rules):
            g = rule_process(spec, rule, draws)
            gens[ti, ri] = g
            requests[ti, ri] = next(g)
    while requests:
        answers = {}
        for ri, rule in enumerate(spec.rules):
            decide_keys = [key for key, req in requests.items() if key[1] == ri and req[0] == "decide"]
            steps = decide_many(rule.design, k_levels, [requests[key][1] for key in decide_keys])
            answers.update(zip(decide_keys, steps))
            select_keys = [key for key, req in requests.items() if key[1] == ri and req[0] == "select"]
            if select_keys:
                n = np.stack([requests[key][1] for key in select_keys])
                y = np.stack([requests[key][2] for key in select_keys])
                prev = np.array([requests[key][3] for key in select_keys])
                chosen = select_mtd_batch(rule.design, n, y, prev)
                answers.update(zip(select_keys, (int(c) for c in chosen)))
        requests = {}
        for key, answer in answers.items():
            try:
                requests[key] = gens[key].send(answer)
            except StopIteration as stop:
                results[key] = stop.value
    n_rules = len(spec.rules)
    return [(draws, tuple(results[ti, ri] for ri in range(n_rules))) for ti, draws in enumerate(all_draws)]


def simulate_trial(spec, seed: int, trial: int) -> tuple:
    """All rules of ``spec`` on trial ``trial``: ``(draws, (RuleOutcome, ...))``."""
    return simulate_trials_local(spec, seed, [trial])[0]
