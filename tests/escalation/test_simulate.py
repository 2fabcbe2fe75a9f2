"""Vectorised trial simulation: the BOIN package's published example, and agreement with a
day-by-day replay that calls decide() for every participant."""
import math

import numpy as np
import pytest

from ctkinetics.data.protocol import Protocol, SentinelGate
from ctkinetics.escalation import BoinDesign, EscalationState, Participant, decide, select_mtd
from ctkinetics.escalation.simulate import simulate_boin, simulate_tite


def test_boin_package_example_selection():
    # BOIN documentation: target 0.30, p = (0.05, 0.15, 0.30, 0.45, 0.60), 10 cohorts of 3,
    # start at dose 1 -> selection about 1 / 23 / 54 / 20 / 1 %.
    oc = simulate_boin(BoinDesign(0.30), [0.05, 0.15, 0.30, 0.45, 0.60], 10, 20000, seed=2024)
    # 20,000 trials: Monte Carlo SE <= 0.35 points; published values are rounded to 1 point.
    assert oc.selection_pct == pytest.approx([1, 23, 54, 20, 1], abs=2.0)
    assert sum(oc.selection_pct) + oc.no_mtd_pct == pytest.approx(100.0)
    assert sum(oc.mean_participants) == pytest.approx(30.0, abs=0.1)


def test_all_doses_too_toxic_mostly_stops():
    oc = simulate_boin(BoinDesign(0.30), [0.7, 0.8], 10, 4000, seed=5)
    assert oc.no_mtd_pct > 90
    # a stopped trial treated at most the lowest dose(s) and never more than 30
    assert (oc.n.sum(axis=1) <= 30).all()


def _replay_boin(design, p, n_cohorts, u):
    """One trial, cohort by cohort, each decision from decide() on a calendar 100 days apart."""
    k = len(p)
    labels = tuple(f"D{j}" for j in range(k))
    state = EscalationState(labels)
    level, day, cs = design.start_level, 0.0, design.cohort_size
    for c in range(n_cohorts):
        for i in range(cs):
            j = c * cs + i
            tox = u[j] < p[level]
            state = state.with_participant(Participant(f"P{j}", level, day, 1.0 if tox else 0.0,
                                                       3.0 if tox else math.nan))
        dec = decide(state, design, day + 50)
        state = state.with_elimination(dec.eliminated_from)
        if dec.decision == "stop":
            break
        level = labels.index(dec.next_level)
        day += 100
    lv = decide(state, design, day + 1000).to_frame()
    sel = select_mtd(design, lv["n"], lv["dlt"], eliminated_from=state.eliminated_from).mtd_index
    return lv["n"].to_numpy(), lv["dlt"].to_numpy(), sel


def test_vectorised_boin_agrees_with_day_by_day_decide():
    m, n_cohorts = 40, 6
    design = BoinDesign(0.30, stagger_days=0, max_subjects=n_cohorts * 3)
    p = [0.1, 0.3, 0.5, 0.7]
    u = np.random.default_rng(11).random((m, n_cohorts * 3))
    oc = simulate_boin(design, p, n_cohorts, m, uniforms=u)
    for t in range(m):
        n, y, sel = _replay_boin(design, p, n_cohorts, u[t])
        assert n.tolist() == oc.n[t].tolist(), t
        assert y.tolist() == oc.y[t].tolist(), t
        assert sel == oc.selected[t], t


def _replay_tite(design, p, n_cohorts, tox_u, onset_u, arrival):
    """One TITE trial as a committee would run it: at each moment ask decide(); when accrual is
    suspended or the stagger holds, wait for the next event (a DLT, a window end, the gate)."""
    T = design.dlt_window_days
    k = len(p)
    labels = tuple(f"D{j}" for j in range(k))
    state = EscalationState(labels)
    resolve = []
    t_prev, stop_day = 0.0, None
    for j in range(n_cohorts * design.cohort_size):
        t = max(arrival[j], t_prev)
        while True:
            dec = decide(state, design, t)
            if dec.decision == "stop":
                stop_day = t
                break
            events = [r for r in resolve if r > t]
            if design.min_pending_followup > 0:  # the guard's information arrives too
                events += [p.infusion_day + design.min_pending_followup for p in state.participants
                           if p.infusion_day + design.min_pending_followup > t + 1e-9]
            if dec.suspended:
                t = min(events)
                continue
            if dec.earliest_next_infusion_day > t:
                t = min(events + [dec.earliest_next_infusion_day])
                continue
            break
        if stop_day is not None:
            break
        level = labels.index(dec.next_level)
        tox = tox_u[j] < p[level]
        end = t + onset_u[j] * T if tox else t + T
        resolve.append(end)
        state = state.with_participant(Participant(f"P{j}", level, t, 1.0 if tox else 0.0,
                                                   (end - t) if tox else math.nan))
        t_prev = t
    duration = stop_day if stop_day is not None else max(resolve)
    lv = decide(state, design, 10 ** 6).to_frame()
    elim = decide(state, design, 10 ** 6).eliminated_from
    sel = select_mtd(design, lv["n"], lv["dlt"], eliminated_from=elim).mtd_index
    return lv["n"].to_numpy(), lv["dlt"].to_numpy(), sel, duration


@pytest.mark.parametrize("tite, guards", [(True, {}), (False, {}),
                                         (True, dict(min_completers=3, min_pending_followup=8.0))])
def test_vectorised_tite_agrees_with_event_replay(tite, guards):
    # Times on a binary-exact grid (window 32 d, stagger 16 d, whole-day arrivals, onsets k/32)
    # so that both implementations compare identical floating-point days.
    # simulate_tite models the stagger as a time gate (the sentinel's safety gate needs a
    # committee): the replay uses the same design
    design = BoinDesign(0.30, dlt_window_days=32, stagger_days=16, tite=tite,
                        protocol=Protocol(sentinel=SentinelGate(enabled=False)), **guards)
    p = [0.15, 0.3, 0.5]
    m, n_cohorts = 10, 4
    rng = np.random.default_rng(5)
    big = n_cohorts * 3
    draws = {
        "tox": rng.random((m, big)),
        "onset": rng.integers(1, 33, (m, big)) / 32.0,
        "arrival": np.cumsum(np.concatenate([np.zeros((m, 1)), rng.integers(0, 25, (m, big - 1))], axis=1), axis=1),
    }
    oc = simulate_tite(design, p, n_cohorts, m, draws=draws)
    for t in range(m):
        n, y, sel, dur = _replay_tite(design, p, n_cohorts, draws["tox"][t], draws["onset"][t], draws["arrival"][t])
        assert n.tolist() == oc.n[t].tolist(), t
        assert y.tolist() == oc.y[t].tolist(), t
        assert sel == oc.selected[t], t
        assert dur == pytest.approx(oc.duration[t]), t


def test_tite_shortens_trials_and_reports_duration():
    base = dict(target=0.30, stagger_days=0)
    p = [0.1, 0.2, 0.3, 0.45]
    tite = simulate_tite(BoinDesign(tite=True, **base), p, 6, 2000, seed=3, accrual_per_month=6)
    plain = simulate_tite(BoinDesign(tite=False, **base), p, 6, 2000, seed=3, accrual_per_month=6)
    assert tite.mean_duration_days < plain.mean_duration_days
    assert "mean_duration_days" in tite.to_dict()
    assert sum(tite.selection_pct) + tite.no_mtd_pct == pytest.approx(100.0)
