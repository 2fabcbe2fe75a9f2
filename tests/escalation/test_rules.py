"""Each escalation rule against its own reference: a hand-built situation and the answer
worked out by hand from the published BOIN boundaries (Liu & Yuan 2015; BOIN R package
get.boundary(target = 0.3, cohortsize = 3): escalate if y <= 0/3, 1/6; de-escalate if
y >= 2/3, 3/6; eliminate if y >= 3/3, 4/6), the TITE-BOIN formula (Yuan et al. 2018) and R BOIN
2.7.2's get.oc code for n.earlystop / extrasafe. Rules are addressed by name only."""
import math

import pytest

from ctkinetics.escalation import BoinDesign
from ctkinetics.escalation import rules as R

D = BoinDesign(0.3, max_subjects=30)


def fire(design=D, *, level, n, y, c=0, stft=0.0, n_total=None, elim=3, n_levels=3,
         min_followup=None, c_partial=None, closed=None, c_awaiting=None):
    rule, nxt, p_hat = R.next_step(design, n_levels, [level], [n], [y], [c], [stft], [elim],
                                   [n if n_total is None else n_total],
                                   min_followup=None if min_followup is None else [min_followup],
                                   c_partial=None if c_partial is None else [c_partial],
                                   closed_from=None if closed is None else [closed],
                                   c_awaiting=None if c_awaiting is None else [c_awaiting])
    return R.RULES[int(rule[0])].name, int(nxt[0]), float(p_hat[0])


def p_hat_by_hand(n, y, c, stft, target=0.3):
    p_tilde = (y + target / 2) / (n - c + 1)
    return (y + p_tilde / (1 - p_tilde) * (c - stft)) / n


CASES = {
    # nobody treated: start where the design starts
    "start": (dict(level=0, n=0, y=0, n_total=0), 0),
    # the lowest dose is eliminated (elimination computed separately below): stop
    "stop_lowest": (dict(level=0, n=3, y=3, elim=0), None),
    # the committee closed every level
    "stop_closed": (dict(level=0, n=3, y=0, closed=0), None),
    # 30 escalation participants treated = max_subjects
    "stop_max": (dict(level=1, n=6, y=1, n_total=30), None),
    # L2 with 3/3 is eliminated: go to the highest dose below it
    "eliminate": (dict(level=1, n=3, y=3, elim=1, n_total=6), 0),
    # the committee closed L3 and up while the current level is L3: below it
    "closed": (dict(level=2, n=3, y=0, closed=2, n_total=9), 1),
    # L2: 2 DLTs and 1 pending of 3: 2 >= 2 (de-escalate at n = 3) whatever the pending gives
    "deesc_observed": (dict(level=1, n=3, y=2, c=1, stft=0.5, n_total=6), 0),
    # lowest: 2 DLTs + 1 pending of 3; a DLT would give 3/3 (eliminates: 1 - 0.3^4 = 0.992 > 0.95)
    "hold_elimination": (dict(level=0, n=3, y=2, c=1, stft=0.5), 0),
    # L2 with 4 treated (a cohort and one), 1/4: the cohort of 3 is not full
    "cohort": (dict(level=1, n=4, y=1, n_total=7), 1),
    # 2 of 3 pending > half (TITE-BOIN's suspension rule)
    "suspend": (dict(level=0, n=3, y=0, c=2, stft=1.0), 0),
    # stay zone 2/6 (1 < 2 < 3) with n.earlystop = 6 reached: stop (get.oc's early stop)
    "stop_early": (dict(design=BoinDesign(0.3, max_subjects=30, n_earlystop=6), level=1, n=6, y=2,
                        n_total=9), None),
    # lowest: 2/3 complete: de-escalation is certain but there is nothing lower: stay
    "stay_lowest_observed": (dict(level=0, n=3, y=2), 0),
    # top level, 0/3: escalation has nowhere to go
    "stay_top": (dict(level=2, n=3, y=0, n_total=9), 2),
    # 0/3 at L1 but L2 is eliminated: never re-escalate into it
    "stay_next_eliminated": (dict(level=0, n=3, y=0, elim=1, n_total=9), 0),
    # 0/3 at L1 but the committee closed L2 and up
    "stay_next_closed": (dict(level=0, n=3, y=0, closed=1), 0),
    # guard: 4 completers wanted, only 3 treated: treat more here
    "stay_completers": (dict(design=BoinDesign(0.3, max_subjects=30, min_completers=4), level=0, n=3,
                             y=0), 0),
    # guard: 3 completers wanted, 2 complete + 1 pending (p-hat tiny): wait
    "hold_completers": (dict(design=BoinDesign(0.3, max_subjects=30, min_completers=3), level=0, n=3,
                             y=0, c=1, stft=0.9), 0),
    # guard: every pending followed >= 7 d; one has 4 d: wait
    "hold_followup": (dict(design=BoinDesign(0.3, max_subjects=30, min_pending_followup=7), level=0,
                           n=3, y=0, c=1, stft=4 / 28, min_followup=4.0), 0),
    # 2 complete + 1 whose window ended for "no expansion" (pending until the committee confirms):
    # p-hat tiny, but no escalation before the committee
    "hold_committee": (dict(level=0, n=3, y=0, c=1, stft=0.5, c_awaiting=1), 0),
    # 0/3 <= 0 (escalate at n = 3)
    "escalate": (dict(level=0, n=3, y=0), 1),
    # lowest, 2/6 with 3 pending (c/n = 0.5, not above): p-hat by hand 0.895 > lambda_d; nothing lower
    "stay_lowest_tite": (dict(level=0, n=6, y=2, c=3, stft=0.1), 0),
    # the same at L2: de-escalate
    "deesc_tite": (dict(level=1, n=6, y=2, c=3, stft=0.1, n_total=9), 0),
    # 2/6: 1 < 2 < 3: stay
    "stay_between": (dict(level=1, n=6, y=2, n_total=9), 1),
}


def test_every_rule_has_a_reference_case():
    assert set(CASES) == set(R.RULE), set(R.RULE) ^ set(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_rule_against_hand_reference(name):
    kw, expected_next = CASES[name]
    got, nxt, _ = fire(**kw)
    assert got == name
    rule = R.rule_named(name)
    if expected_next is None:
        assert rule.action == R.STOP
    else:
        assert nxt == expected_next


def test_tite_numbers_behind_the_tite_cases():
    # p-hat of the TITE cases by hand, against the boundaries of target 0.3
    assert D.lambda_e == pytest.approx(0.2365, abs=5e-5) and D.lambda_d == pytest.approx(0.3585, abs=5e-5)
    assert p_hat_by_hand(6, 2, 3, 0.1) == pytest.approx((2 + 2.15 / 4 / (1 - 2.15 / 4) * 2.9) / 6)
    assert p_hat_by_hand(6, 2, 3, 0.1) > D.lambda_d
    _, _, p = fire(level=0, n=6, y=2, c=3, stft=0.1)
    assert p == pytest.approx(p_hat_by_hand(6, 2, 3, 0.1))
    _, _, p = fire(D, level=0, n=3, y=0, c=1, stft=0.9)
    assert p == pytest.approx(0.05 / 0.95 * 0.1 / 3) and p < D.lambda_e


def test_partial_followup_enters_p_hat_but_never_suspends():
    # 3 evaluable at L1: 1 complete without DLT, 2 whose windows ended early and who count with
    # 7 of 28 days each (TITE weight, no more data will come): p-hat uses c = 2, STFT = 0.5 ...
    name, nxt, p = fire(level=0, n=3, y=0, c=0, c_partial=2, stft=0.5)
    assert p == pytest.approx(p_hat_by_hand(3, 0, 2, 0.5))
    # ... yet nothing is pending, so there is no suspension (2 of 3 would suspend if pending)
    assert name == "escalate" and nxt == 1
    assert fire(level=0, n=3, y=0, c=2, stft=0.5)[0] == "suspend"


def test_elimination_counts_by_closed_form_and_extrasafe():
    # Pr(p > 0.3 | y of n, Beta(1,1)) = P(Bin(n + 1, 0.3) <= y)
    def post(y, n):
        return sum(math.comb(n + 1, k) * 0.3 ** k * 0.7 ** (n + 1 - k) for k in range(y + 1))

    assert post(3, 3) == pytest.approx(1 - 0.3 ** 4) and post(3, 3) > 0.95
    assert 0.90 < post(2, 3) < 0.95  # 0.9163: not eliminated, but above 0.95 - 0.05
    assert R.eliminated_from(D, [[3, 0, 0]], [[3, 0, 0]]).tolist() == [0]
    assert R.eliminated_from(D, [[3, 0, 0]], [[2, 0, 0]]).tolist() == [3]
    safe = BoinDesign(0.3, extrasafe=True, offset=0.05)
    assert R.eliminated_from(safe, [[3, 0, 0]], [[2, 0, 0]]).tolist() == [0]
    # the extra-safe rule is for the lowest dose only: 2/3 at L2 eliminates nothing
    assert R.eliminated_from(safe, [[3, 3, 0]], [[0, 2, 0]]).tolist() == [3]
    assert fire(safe, level=0, n=3, y=2, elim=0)[0] == "stop_lowest"


def test_stop_early_only_when_the_rules_would_keep_the_next_participant_there():
    d = BoinDesign(0.3, max_subjects=30, n_earlystop=6)
    # get.oc stops when n >= n.earlystop and (stay zone | lowest & y >= b.d | (top or next
    # eliminated) & y <= b.e); not when the rules move the next participant
    assert fire(d, level=1, n=6, y=1, n_total=9)[0] == "escalate"  # 1/6 <= 1: escalate, no stop
    assert fire(d, level=1, n=6, y=3, n_total=9)[0] == "deesc_observed"
    assert fire(d, level=0, n=6, y=3)[0] == "stop_early"  # lowest and 3 >= 3
    assert fire(d, level=2, n=6, y=1, n_total=12)[0] == "stop_early"  # top and 1 <= 1
    assert fire(d, level=1, n=6, y=1, elim=2, n_total=12)[0] == "stop_early"  # next eliminated
    assert fire(d, level=1, n=3, y=1, n_total=9)[0] == "stay_between"  # n < 6


def test_table_is_well_formed_and_old_names_stay_importable():
    codes = [r.code for r in R.RULE_TABLE]
    assert len(set(codes)) == len(codes) and len(R.RULE) == len(R.RULE_TABLE)
    assert R.RULE_TABLE[-1].when is None and all(r.when is not None for r in R.RULE_TABLE[:-1])
    assert (R.STOP_LOWEST, R.COHORT, R.ESC, R.HOLD_ELIM) == tuple(
        R.RULE[n].code for n in ("stop_lowest", "cohort", "escalate", "hold_elimination"))
    assert R.SUSPENDING == {R.RULE[n].code for n in ("suspend", "hold_elimination", "hold_completers",
                                                     "hold_followup", "hold_committee")}
    with pytest.raises(KeyError, match="known"):
        R.rule_named("escalat")
