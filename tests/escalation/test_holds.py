"""Accrual holds a committee expects: no new participant while a pending outcome could eliminate
the current dose (at the lowest dose: stop the trial); the rule order that guarantees it."""
import math

import numpy as np
import pytest

from ctkinetics.escalation import BoinDesign, EscalationState, Participant, decide
from ctkinetics.escalation.state import CommitteeEvent

LEVELS = ("L1", "L2", "L3")


def P(i, level, day, dlt=math.nan, dlt_day=math.nan, lf=math.nan):
    return Participant(f"P{i}", level, float(day), dlt, dlt_day, lf)


def lowest_two_dlts_third_pending():
    # By hand: L1, P1 infused day 0 (DLT day 5), P2 day 14 (DLT 3 days later, day 17), P3 day
    # 15, no outcome yet. On day 20: n = 3, y = 2, c = 1. 2/3 >= the de-escalation count (2 of 3)
    # whatever P3 gives, and L1 is the lowest dose: "stay". But a DLT in P3 makes 3/3, which is
    # the elimination count for n = 3 (Pr(p > 0.3 | 3/3) = 1 - 0.3^4 = 0.9919 > 0.95): L1
    # would be eliminated and the trial stopped. So a 4th participant must not be infused
    # before P3's window ends on day 15 + 28 = 43. (P1, the sentinel, had a DLT on day 5: the
    # committee reviewed it and released the stagger gate on day 13, as decisions.csv records.)
    return EscalationState(LEVELS, [P(1, 0, 0, 1.0, 5.0), P(2, 0, 14, 1.0, 3.0), P(3, 0, 15)],
                           committee=(CommitteeEvent(13.0, "release_sentinel_hold", 0),))


@pytest.mark.parametrize("tite", [False, True])
def test_lowest_dose_no_infusion_while_a_pending_dlt_would_stop_the_trial(tite):
    d = BoinDesign(0.3, tite=tite)
    assert 1 - 0.3 ** 4 > 0.95 and d.eliminate_min(3) == 3 and d.deescalate_min(3) == 2
    dec = decide(lowest_two_dlts_third_pending(), d, 20)
    assert dec.suspended, dec.rule
    assert dec.earliest_next_infusion_day is None
    assert dec.suspension_lifts_by_day == 43
    assert dec.decision == "stay" and dec.next_level == "L1"
    # once P3's window has ended without a DLT, the 4th participant goes to L1 at once
    dec = decide(lowest_two_dlts_third_pending(), d, 43)
    assert not dec.suspended and dec.next_level == "L1" and dec.earliest_next_infusion_day == 43
    # and if P3 has a DLT the trial stops
    s = lowest_two_dlts_third_pending()
    s = EscalationState(LEVELS, s.participants[:2] + (P(3, 0, 15, 1.0, 10.0),), committee=s.committee)
    assert decide(s, d, 26).decision == "stop"
    # without the committee's release the sentinel's DLT keeps the gate of L1 closed
    s = lowest_two_dlts_third_pending()
    dec = decide(EscalationState(LEVELS, s.participants), d, 43)
    assert dec.gate_held and dec.earliest_next_infusion_day is None and "SLE" not in dec.gate_note
    assert "P1 had DLT on day 5" in dec.gate_note


def test_elimination_count_by_closed_form():
    # Pr(p > 0.3 | y of n) under Beta(1, 1) is P(Bin(n + 1, 0.3) <= y); 3 of 4 -> 1 - P(Bin(5, .3) >= 4)
    p34 = 1 - (5 * 0.3 ** 4 * 0.7 + 0.3 ** 5)
    assert p34 == pytest.approx(0.96922, abs=1e-5)
    assert BoinDesign(0.3).eliminate_min(4) == 3


def _step(design, level, n, y, c, n_total=None, levels=3, min_followup=None):
    from ctkinetics.escalation.rules import RULES, next_step

    rule, nxt, _ = next_step(design, levels, [level], [n], [y], [c], [0.5 * c], [levels],
                             [n if n_total is None else n_total],
                             min_followup=None if min_followup is None else [min_followup])
    return RULES[int(rule[0])], int(nxt[0])


def test_incomplete_cohort_is_not_filled_while_one_dlt_would_eliminate():
    # L2, 4 treated (a cohort of 3 and one more), 2 DLTs, 1 pending: one more DLT gives 3/4,
    # which eliminates (0.969 > 0.95). Before the fix the cohort rule infused a 5th at L2.
    d = BoinDesign(0.3, max_subjects=30)
    rule, nxt = _step(d, 1, 4, 2, 1, n_total=7)
    assert rule.suspends and "eliminate" in rule.text and nxt == 1
    # with the outcome known as no DLT (2/4, nothing pending) the cohort is filled
    rule, _ = _step(d, 1, 4, 2, 0, n_total=7)
    assert rule.name == "cohort"


@pytest.mark.parametrize("tite, suspended", [(False, True), (True, False)])
def test_plain_boin_waits_at_the_lowest_dose_even_when_staying_is_certain(tite, suspended):
    # Lowest dose, 12 treated, 5 DLTs, 1 pending (published table: de-escalate >= 5/12,
    # eliminate >= 7/12): one more DLT gives 6/12, no elimination. Staying is certain; plain
    # BOIN still waits for complete data, TITE-BOIN (1/12 pending) goes on.
    d = BoinDesign(0.3, max_subjects=15, tite=tite)
    assert (d.deescalate_min(12), d.eliminate_min(12)) == (5, 7)
    rule, nxt = _step(d, 0, 12, 5, 1)
    assert rule.suspends is suspended and nxt == 0
    assert rule.name == ("suspend" if suspended else "stay_lowest_observed")


def test_certain_deescalation_above_the_lowest_dose_does_not_wait():
    # L2: 2 DLTs and 1 pending among 3. 3/3 would eliminate L2, but the next participant goes to
    # L1 whatever P6 gives, so there is nothing to wait for.
    parts = [P(i, 0, 0, 0.0) for i in range(3)] + [P(4, 1, 40, 1.0, 3.0), P(5, 1, 54, 1.0, 2.0), P(6, 1, 55)]
    dec = decide(EscalationState(LEVELS, parts), BoinDesign(0.3), 60)
    assert (dec.decision, dec.next_level, dec.suspended) == ("de-escalate", "L1", False)
    assert dec.earliest_next_infusion_day == 60  # L1's sentinel was day 0: stagger long past


# --- CAR-T guards -------------------------------------------------------------------------
def guard_state(third_day):
    # L1: P1 day 0, P2 day 14, P3 on `third_day`; no DLTs. Asked on day 42: P1 (window ended day
    # 28) and P2 (day 42) complete, P3 pending with 42 - third_day days of follow-up.
    return EscalationState(LEVELS, [P(1, 0, 0, 0.0), P(2, 0, 14, 0.0), P(3, 0, third_day)])


def test_tite_escalates_without_guards():
    # p~ = (0 + 0.15)/(2 + 1) = 0.05; p^ = (0.05/0.95 (1 - u/28)) / 3 <= 0.0176 <= lambda_e
    dec = decide(guard_state(38), BoinDesign(0.3), 42)
    assert dec.decision == "escalate" and dec.tite.pending == 1
    assert dec.tite.p_hat == pytest.approx(0.05 / 0.95 * (1 - 4 / 28) / 3)


def test_min_pending_followup_waits_until_the_pending_participant_reaches_it():
    d = BoinDesign(0.3, min_pending_followup=7)
    dec = decide(guard_state(38), d, 42)  # P3 followed 4 days < 7
    assert dec.suspended and dec.decision == "stay" and dec.earliest_next_infusion_day is None
    assert dec.suspension_lifts_by_day == 45  # day 38 + 7
    assert "follow-up" in dec.rule
    dec = decide(guard_state(38), d, 45)
    assert (dec.decision, dec.next_level, dec.earliest_next_infusion_day) == ("escalate", "L2", 45)
    # P3 infused day 30: 12 days of follow-up already, the guard allows escalation
    assert decide(guard_state(30), d, 42).decision == "escalate"


def test_min_completers_waits_and_stays_when_too_few_are_treated():
    dec = decide(guard_state(30), BoinDesign(0.3, min_completers=3), 42)
    assert dec.suspended and dec.suspension_lifts_by_day == 58  # P3's window: 30 + 28
    assert "2 of 3" in dec.rule
    assert decide(guard_state(30), BoinDesign(0.3, min_completers=2), 42).decision == "escalate"
    # asking for more completers than there are participants at the dose: treat more there
    dec = decide(guard_state(30), BoinDesign(0.3, min_completers=4), 42)
    assert (dec.decision, dec.next_level, dec.suspended) == ("stay", "L1", False)
    assert dec.earliest_next_infusion_day == 42  # sentinel day 0 + 14 long past


def test_both_guards_lift_on_the_later_day():
    d = BoinDesign(0.3, min_completers=3, min_pending_followup=7)
    dec = decide(guard_state(38), d, 42)
    assert dec.suspended and dec.suspension_lifts_by_day == 66  # 38 + 28 (follow-up met on day 45)


@pytest.mark.parametrize("kw", [dict(min_completers=-1), dict(min_completers=1.5),
                                dict(min_pending_followup=-2), dict(min_pending_followup=40),
                                dict(min_pending_followup="a week")])
def test_bad_guard_settings(kw):
    from ctkinetics.errors import SettingsError

    with pytest.raises(SettingsError):
        BoinDesign(0.3, **kw)


# --- max_subjects against cohorts in the simulators ---------------------------------------
def test_simulators_check_max_subjects_against_cohorts():
    from ctkinetics.errors import SettingsError
    from ctkinetics.escalation import simulate_boin, simulate_tite

    p = [0.1, 0.3]
    with pytest.raises(SettingsError, match="does not fit 10 cohorts of 3"):
        simulate_boin(BoinDesign(0.3, max_subjects=12), p, 10, 10, seed=1)
    with pytest.raises(SettingsError, match="not a whole number of cohorts of 5"):
        simulate_tite(BoinDesign(0.3, cohort_size=5, max_subjects=12), p, None, 10, seed=1)
    # agreeing, or only one of them given: fine; None takes max_subjects / cohort_size
    oc = simulate_boin(BoinDesign(0.3, max_subjects=12), p, 4, 50, seed=1)
    assert oc.n.sum(axis=1).max() == 12
    oc = simulate_boin(BoinDesign(0.3, max_subjects=15, cohort_size=5), p, None, 50, seed=1)
    assert oc.n.sum(axis=1).max() == 15
    assert simulate_boin(BoinDesign(0.3), p, 10, 50, seed=1).n.sum(axis=1).max() == 30


# --- plumbing: decide_fast agrees with decide (built on the same steps; each rule has its own
# reference test in test_rules.py) ------------------------------------------------------------
def _random_state(rng, k=3):
    parts, day, level = [], 0.0, 0
    for i in range(int(rng.integers(0, 14))):
        day += float(rng.choice([0.0, 2.0, 7.5, 14.0, 20.0]))
        level = int(np.clip(level + rng.integers(-1, 2), 0, k - 1))
        dlt = float(rng.random() < 0.35)
        lf = float(rng.uniform(3, 20)) if rng.random() < 0.05 else math.nan  # lost to follow-up
        parts.append(P(i, level, day, dlt, float(rng.uniform(1, 28)) if dlt else math.nan, lf))
    elim = None if rng.random() < 0.85 else int(rng.integers(1, k))
    return EscalationState(LEVELS[:k], parts, eliminated_from=elim), day


@pytest.mark.parametrize("kw", [dict(tite=True), dict(tite=False),
                                dict(tite=True, min_completers=3, min_pending_followup=7.0)])
def test_decide_fast_equals_decide_on_random_states(kw):
    from ctkinetics.escalation import decide_fast

    rng = np.random.default_rng(17)
    design = BoinDesign(0.3, max_subjects=15, **kw)
    seen = set()
    for _ in range(150):
        state, last = _random_state(rng)
        as_of = last + float(rng.choice([0.0, 3.0, 10.0, 20.0, 40.0]))
        ref = decide(state, design, as_of)
        fast = decide_fast(state, design, as_of)
        seen.add(fast.rule_id)
        assert fast.rule_id == ref.rule_id and fast.decision == ref.decision
        assert fast.suspended == ref.suspended
        assert state.levels[fast.current_level] == ref.current_level
        if not fast.stopped:
            assert state.levels[fast.next_level] == ref.next_level
        assert (fast.eliminated_from if fast.eliminated_from < 3 else None) == ref.eliminated_from
        assert fast.earliest_next_infusion_day == ref.earliest_next_infusion_day
        assert fast.p_hat == pytest.approx(ref.tite.p_hat, nan_ok=True)
        # the Decision's own consistency: suspended <=> no infusion day; a hold's lift day is later
        if ref.suspended:
            assert ref.earliest_next_infusion_day is None
            assert ref.suspension_lifts_by_day is None or ref.suspension_lifts_by_day > as_of
    assert len(seen) >= 6  # the random states reach many rules, holds included
    from ctkinetics.escalation.rules import RULE

    assert seen & {RULE[n].code for n in ("suspend", "hold_elimination", "hold_completers", "hold_followup")}
