"""decide(): BOIN / TITE-BOIN decisions, suspension, elimination, stagger, checked by hand."""
import math

import pandas as pd
import pytest

from ctkinetics.errors import DataValidationError
from ctkinetics.escalation import BoinDesign, EscalationState, Participant, decide, state_from_frames

LEVELS = ("L1", "L2", "L3")


def P(i, level, day, dlt=math.nan, dlt_day=math.nan, lf=math.nan, phase="escalation"):
    return Participant(f"P{i}", level, float(day), dlt, dlt_day, lf, phase)


def complete_cohort(level, start, dlts=0, first=0):
    """Three participants infused on `start`, window long complete when asked on start + 100."""
    return [P(first + i, level, start, 1.0 if i < dlts else 0.0, 5.0 if i < dlts else math.nan) for i in range(3)]


def test_plain_boin_escalates_on_0_of_3_and_stays_on_1_of_3():
    d = BoinDesign(0.3)
    s = EscalationState(LEVELS, complete_cohort(0, 0))
    dec = decide(s, d, 100)
    assert (dec.decision, dec.next_level) == ("escalate", "L2")
    s = EscalationState(LEVELS, complete_cohort(0, 0, dlts=1))
    dec = decide(s, d, 100)
    assert (dec.decision, dec.next_level) == ("stay", "L1")  # 1/3 between 0.2365 and 0.3585


def test_tite_published_threshold_stft_077():
    # Yuan et al. 2018: target 0.2, n = 9, y = 1, c = 3 -> escalate iff STFT >= 0.77.
    d = BoinDesign(0.2, cohort_size=3, max_subjects=30, stagger_days=0)
    T = d.dlt_window_days

    def state(stft):
        parts = [P(0, 0, 0, 1.0, 3.0)] + [P(i, 0, 0, 0.0) for i in range(1, 6)]
        # three pending, each followed for stft/3 of the window on day 200
        u = stft / 3 * T
        parts += [P(6 + i, 0, 200 - u) for i in range(3)]
        return EscalationState(("A", "B"), parts)

    below, above = decide(state(0.765), d, 200), decide(state(0.775), d, 200)
    assert below.tite.pending == 3 and below.tite.n == 9 and below.tite.y == 1
    assert below.tite.stft == pytest.approx(0.765)
    assert below.decision == "stay"
    assert above.decision == "escalate"
    # p-hat by hand: p~ = (1 + 0.1)/(6 + 1); p^ = (1 + p~/(1-p~) (3 - STFT)) / 9
    pt = 1.1 / 7
    assert above.tite.p_hat == pytest.approx((1 + pt / (1 - pt) * (3 - 0.775)) / 9)


def test_first_cohort_with_stagger_suspends_until_second_window_ends():
    # Sentinel day 0, two more on day 14 and 15: on day 28 two of three are pending -> suspended;
    # resumes when the day-14 participant completes 28 days (day 42).
    s = EscalationState(LEVELS, [P(1, 0, 0), P(2, 0, 14), P(3, 0, 15)])
    d = BoinDesign(0.3)
    dec = decide(s, d, 28)
    assert dec.suspended and dec.decision == "stay" and dec.earliest_next_infusion_day is None
    assert dec.suspension_lifts_by_day == 42
    assert dec.tite.pending == 2
    dec = decide(s, d, 42)
    assert not dec.suspended and dec.decision == "escalate"
    assert dec.tite.pending == 1 and dec.tite.stft == pytest.approx(27 / 28)


def test_plain_boin_waits_for_all_pending():
    s = EscalationState(LEVELS, [P(1, 0, 0), P(2, 0, 14), P(3, 0, 15)])
    d = BoinDesign(0.3, tite=False)
    assert decide(s, d, 42).suspended
    assert decide(s, d, 43).decision == "escalate"


def test_deescalate_whatever_is_pending():
    # 3 DLTs among 6 at L2 (3 still pending): 3/6 >= lambda_d whatever the pending give.
    parts = complete_cohort(0, 0) + [P(10 + i, 1, 40, 1.0, 2.0) for i in range(3)]
    parts += [P(20 + i, 1, 100) for i in range(3)]
    s = EscalationState(LEVELS, parts)
    dec = decide(s, BoinDesign(0.3), 105)
    assert dec.tite.pending == 3
    assert (dec.decision, dec.next_level) == ("de-escalate", "L1")
    assert not dec.suspended


def test_incomplete_cohort_stays_and_stagger_gives_the_date():
    s = EscalationState(LEVELS, complete_cohort(0, 0) + [P(9, 1, 100)])
    dec = decide(s, BoinDesign(0.3, stagger_days=14), 105)
    assert dec.decision == "stay" and dec.next_level == "L2"
    assert dec.earliest_next_infusion_day == 114  # sentinel day 100 + 14
    # after day 114 the date is today
    assert decide(s, BoinDesign(0.3, stagger_days=14), 120).earliest_next_infusion_day == 120


def test_new_level_sentinel_needs_no_stagger_wait():
    s = EscalationState(LEVELS, complete_cohort(0, 0))
    dec = decide(s, BoinDesign(0.3, stagger_days=14), 100)
    assert dec.next_level == "L2" and dec.earliest_next_infusion_day == 100


def test_two_dlts_in_incomplete_cohort_deescalate_at_once():
    # 2 DLTs among the first 2 of a cohort of 3: at cohort end 2/3 >= lambda_d regardless.
    parts = complete_cohort(0, 0) + [P(9, 1, 100, 1.0, 3.0), P(10, 1, 114, 1.0, 2.0)]
    dec = decide(EscalationState(LEVELS, parts), BoinDesign(0.3), 120)
    assert (dec.decision, dec.next_level) == ("de-escalate", "L1")


def test_elimination_of_lowest_dose_stops_the_trial():
    s = EscalationState(LEVELS, complete_cohort(0, 0, dlts=3))
    dec = decide(s, BoinDesign(0.3), 100)
    assert dec.decision == "stop" and dec.next_level is None
    assert dec.eliminated_levels == LEVELS
    assert dec.earliest_next_infusion_day is None


def test_eliminate_current_dose_goes_down():
    s = EscalationState(LEVELS, complete_cohort(0, 0) + complete_cohort(1, 100, dlts=3, first=3))
    dec = decide(s, BoinDesign(0.3), 200)
    assert (dec.decision, dec.next_level) == ("eliminate", "L1")
    assert dec.eliminated_levels == ("L2", "L3")


def test_never_reescalate_into_an_eliminated_dose():
    # L2 eliminated (3/3), then L1 fills up without DLTs: 0/6 would escalate, but L2 is closed.
    parts = complete_cohort(0, 0) + complete_cohort(1, 100, dlts=3, first=3) + complete_cohort(0, 200, first=6)
    dec = decide(EscalationState(LEVELS, parts), BoinDesign(0.3), 300)
    assert dec.current_level == "L1"
    assert (dec.decision, dec.next_level) == ("stay", "L1")
    assert "eliminated" in dec.rule
    assert dec.to_frame()["eliminated"].tolist() == [False, True, True]


def test_elimination_persists_from_an_earlier_decision():
    # L2 shows 2/3 (not eliminating), but an earlier decision eliminated it: it stays closed.
    parts = complete_cohort(0, 0) + complete_cohort(1, 100, dlts=2, first=3) + complete_cohort(0, 200, first=6)
    state = EscalationState(LEVELS, parts, eliminated_from=1)
    assert decide(state, BoinDesign(0.3), 300).next_level == "L1"
    assert decide(state.with_elimination(None), BoinDesign(0.3), 300).next_level == "L2"


def test_highest_dose_stays():
    parts = complete_cohort(0, 0) + complete_cohort(1, 100, first=3) + complete_cohort(2, 200, first=6)
    dec = decide(EscalationState(LEVELS, parts), BoinDesign(0.3), 300)
    assert (dec.decision, dec.next_level) == ("stay", "L3")


def test_max_subjects_stops_accrual():
    parts = complete_cohort(0, 0) + complete_cohort(1, 100, first=3) + complete_cohort(2, 200, first=6)
    dec = decide(EscalationState(LEVELS, parts), BoinDesign(0.3, max_subjects=9), 300)
    assert dec.decision == "stop"


def test_expansion_participants_are_shown_but_not_counted():
    parts = complete_cohort(0, 0) + [P(9, 0, 50, 1.0, 3.0, phase="expansion")]
    dec = decide(EscalationState(LEVELS, parts), BoinDesign(0.3), 100)
    assert dec.decision == "escalate"
    row = dec.to_frame().iloc[0]
    assert (row["n"], row["dlt"], row["n_expansion"]) == (3, 0, 1)
    assert "expansion" in dec.participants["status"].tolist()


def test_replay_as_of_an_earlier_day():
    # A DLT reported 20 days after infusion is not known on day 10; a participant infused after
    # the as-of day is not yet in the trial.
    parts = [P(1, 0, 0, 1.0, 20.0), P(2, 0, 14, 0.0), P(3, 0, 15, 0.0), P(4, 1, 60)]
    s = EscalationState(LEVELS, parts)
    dec = decide(s, BoinDesign(0.3), 10)
    assert dec.tite.n == 1 and dec.tite.y == 0 and dec.tite.pending == 1
    dec = decide(s, BoinDesign(0.3), 50)
    assert dec.tite.y == 1 and dec.current_level == "L1"


def test_lost_to_followup_stays_pending_with_observed_followup():
    parts = [P(1, 0, 0, 0.0), P(2, 0, 0, 0.0), P(3, 0, 0, math.nan, lf=10.0)]
    dec = decide(EscalationState(LEVELS, parts), BoinDesign(0.3), 60)
    assert dec.tite.pending == 1
    assert dict(dec.tite.followup)["P3"] == 10.0


def test_adapter_from_frames():
    subjects = pd.DataFrame({"subject": ["S1", "S2", "S3", "S4"], "dose_level": ["1", "1", "1", "2"],
                             "dose": [3e8, 3e8, 3e8, 4.5e8]})
    safety = pd.DataFrame({
        "subject": ["S1", "S2", "S3", "S4"], "infusion_day": [0, 14, 15, 50],
        "dlt": [0.0, 0.0, 1.0, math.nan], "dlt_day": [math.nan, math.nan, 9.0, math.nan],
        "last_followup_day": [40, 40, 30, math.nan], "crs_grade": [1, 0, 3, 0],
        "icans_grade": [0, 0, 1, 0], "phase": ["escalation"] * 4,
    })
    state = state_from_frames({"1": 3e8, "2": 4.5e8, "3": 6e8}, subjects, safety)
    dec = decide(state, BoinDesign(0.3), 55)
    lv = dec.to_frame()
    assert lv["n"].tolist() == [3, 1, 0] and lv["dlt"].tolist() == [1, 0, 0]
    assert dec.decision == "stay" and dec.next_level == "2" and dec.earliest_next_infusion_day == 64
    bad = safety.assign(subject=["S1", "S2", "S3", "S9"])
    with pytest.raises(DataValidationError) as err:
        state_from_frames({"1": 3e8, "2": 4.5e8}, subjects, bad)
    assert err.value.row == 5 and err.value.column == "subject"
