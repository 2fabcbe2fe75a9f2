"""Dose-transition pathways against a hand enumeration, and BOIN12 against the published
decision table and worked example (Lin R, Zhou Y, Yan F, Li D, Yuan Y. BOIN12: Bayesian optimal
interval phase I/II trial design for utility-based dose finding in immunotherapy and targeted
therapies. JCO Precis Oncol 2020;4:1393-1402: Table 3, the example on p.1396 and Figure S2 of
the Data Supplement; the table entries and the example's decisions as transcribed in the
``escalation`` R package's tests, tests/testthat/test_boin12_rds.R and test_boin12.R)."""
import json
from pathlib import Path

import pytest

from ctkinetics.data import load_study
from ctkinetics.escalation import BoinDesign, dose_paths, review_escalation
from ctkinetics.escalation.boin12 import (Boin12Counts, Boin12Design, desirability, next_dose, rds_table,
                                          select_obd)

from protocol_helpers import ctk

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "sle_cohort"

# From level 1 with nothing treated, target 0.3, cohorts of 3 (escalate <= 0/3, 1/6; de-escalate
# >= 2/3, 3/6; eliminate >= 3/3, 4/6):
HAND_PATHS = [
    "1: 0/3 DLT at 1 -> escalate -> 2 | 2: 0/3 DLT at 2 -> escalate -> 3",
    "1: 0/3 DLT at 1 -> escalate -> 2 | 2: 1/3 DLT at 2 -> stay -> 2",
    "1: 0/3 DLT at 1 -> escalate -> 2 | 2: 2/3 DLT at 2 -> de-escalate -> 1",
    "1: 0/3 DLT at 1 -> escalate -> 2 | 2: 3/3 DLT at 2 -> eliminate -> 1",
    "1: 1/3 DLT at 1 -> stay -> 1 | 2: 0/3 DLT at 1 -> escalate -> 2",   # 1/6 <= 1
    "1: 1/3 DLT at 1 -> stay -> 1 | 2: 1/3 DLT at 1 -> stay -> 1",       # 2/6 between
    "1: 1/3 DLT at 1 -> stay -> 1 | 2: 2/3 DLT at 1 -> stay -> 1",       # 3/6 >= 3, lowest: stay
    "1: 1/3 DLT at 1 -> stay -> 1 | 2: 3/3 DLT at 1 -> stop",            # 4/6 eliminates the lowest
    "1: 2/3 DLT at 1 -> stay -> 1 | 2: 0/3 DLT at 1 -> stay -> 1",       # 2/3: de-escalate, lowest
    "1: 2/3 DLT at 1 -> stay -> 1 | 2: 1/3 DLT at 1 -> stay -> 1",
    "1: 2/3 DLT at 1 -> stay -> 1 | 2: 2/3 DLT at 1 -> stop",
    "1: 2/3 DLT at 1 -> stay -> 1 | 2: 3/3 DLT at 1 -> stop",
    "1: 3/3 DLT at 1 -> stop",
]


def test_dose_paths_equal_hand_enumeration():
    p = dose_paths(BoinDesign(0.3, max_subjects=30), list("12345"), [0] * 5, [0] * 5, 0, 2)
    assert p.lines() == HAND_PATHS
    code, out, _ = ctk("boin", "paths", "--levels", 5, "--cohorts", 2)
    assert code == 0 and [x.strip() for x in out.splitlines()[1:]] == HAND_PATHS


def test_dose_paths_from_a_running_study_complete_the_cohort():
    # Sample cohort on day 44: DL1 0/3 (SLE-103 pending, taken as no DLT) -> next cohort of 3 at
    # DL2, whose outcomes 0..3 DLTs give escalate / stay / de-escalate / eliminate (n = 3 row)
    r = review_escalation(load_study(SAMPLE), 44, paths=1)
    assert r.paths.lines() == ["1: 0/3 DLT at 2 -> escalate -> 3", "1: 1/3 DLT at 2 -> stay -> 2",
                               "1: 2/3 DLT at 2 -> de-escalate -> 1", "1: 3/3 DLT at 2 -> eliminate -> 1"]
    # on day 140 DL3 has its sentinel only: the next "cohort" is the 2 that complete it
    r = review_escalation(load_study(SAMPLE), 140, paths=1)
    assert {int(x) for x in r.paths.to_frame()["cohort1_n"]} == {2}
    code, out, _ = ctk("escalate", SAMPLE, "--as-of", 44, "--paths", 2, "--json")
    assert len(json.loads(out)["dose_paths"]["paths"]) == 16


D12 = Boin12Design(phi_t=0.35, phi_e=0.25, utilities=(100, 40, 60, 0), c_t=0.95, c_e=0.9, n_star=6)


def test_boin12_benchmark_by_hand():
    # u-bar = 100*.25*.65 + 40*.75*.65 + 60*.35*.25 + 0 = 16.25 + 19.5 + 5.25 = 41; u_b = 41 + 59/2
    assert D12.u_bar == pytest.approx(41.0) and D12.u_benchmark == pytest.approx(70.5)
    # nothing treated: Pr(U > 0.705) under Beta(1, 1)
    assert desirability(D12, 0, 0) == pytest.approx(0.295)


@pytest.mark.parametrize("n, dlt, eff, rds", [
    (0, 0, 0, 60), (3, 0, 3, 91), (6, 1, 5, 87), (6, 5, 1, None), (9, 0, 8, 99),
    (9, 2, 3, 32.5), (9, 5, 5, 32.5), (9, 3, 1, 7), (9, 4, 0, None), (9, 6, 9, None),
])
def test_boin12_rds_equals_published_table_3(n, dlt, eff, rds):
    t = rds_table(D12, (0, 3, 6, 9)).set_index(["n", "dlt", "efficacy"])
    got = t.loc[(n, dlt, eff), "rds"]
    if rds is None:  # "E": inadmissible
        assert got != got and not t.loc[(n, dlt, eff), "admissible"]
    else:
        assert got == rds


WORKED = "1NNN 2NNB 3NEE 3NTN 4ETE 4NBE 4BNN 5BEN 5NBT 4NEN".split()
WORKED_NEXT = [2, 3, 3, 4, 4, 4, 5, 5, 4, None]  # None: 12 at dose 4, stop


def test_boin12_worked_example_decisions():
    d = Boin12Design(phi_t=0.35, phi_e=0.25, n_star=6, max_at_dose=12)
    for i, expected in enumerate(WORKED_NEXT, start=1):
        counts = Boin12Counts.from_string(" ".join(WORKED[:i]), 5)
        step = next_dose(d, counts, int(WORKED[i - 1][0]) - 1)
        assert (step.next_level + 1 if step.next_level >= 0 else None) == expected, (WORKED[:i], step.rule)
    # p.1396: after 1NNN 2ENT 3ETT 2EEN the next cohort goes to dose 2
    assert next_dose(d, Boin12Counts.from_string("1NNN 2ENT 3ETT 2EEN", 5), 1).next_level == 1
    # the trial stops with 12 at dose 4 and recommends dose 4
    obd = select_obd(d, Boin12Counts.from_string(" ".join(WORKED), 5))
    assert obd.obd_level == "4"


def test_rd_on_the_sample_cohort_by_hand():
    # Responders (SLEDAI-2K reduction >= 4 by day 84): DL1 0/3, DL2 6/6, DL3: SLE-302 (4 on day 28);
    # SLE-301 (3 on day 28, day 84 not reached) and SLE-303 (pending DLT) left out. Toxicity:
    # DL1 0/3, DL2 1/6, DL3 1/1 -> isotonic (0.016, 0.172, 0.955): BOIN12's MTD is DL2. Utility
    # at DL2 with p_E = 6.05/6.1, p_T = 0.172: 100 p_E (1-p_T) + 40 (1-p_E)(1-p_T) + 60 p_E p_T = 92.6;
    # at DL1 (p_E = p_T = 0.05/3.1): 40.3 -> RD = DL2.
    rd = review_escalation(load_study(SAMPLE)).recommendation
    t = rd.obd.to_frame().set_index("level")
    assert rd.level == "2" and set(rd.left_out) == {"SLE-301", "SLE-303"}
    assert (t.loc["2", "efficacy"], t.loc["2", "n"], t.loc["3", "efficacy"], t.loc["3", "n"]) == (6, 6, 1, 1)
    pe, pt = 6.05 / 6.1, t.loc["2", "p_dlt"]
    assert pt == pytest.approx(1.05 / 6.1, abs=1e-3)
    assert t.loc["2", "utility"] == pytest.approx(100 * pe * (1 - pt) + 40 * (1 - pe) * (1 - pt) + 60 * pe * pt)
    assert t.loc["1", "utility"] == pytest.approx(40.3, abs=0.05)


def test_boin12_vectorised_over_many_trials_gives_the_published_decisions():
    # the 10 states of the worked example as 10 "trials" decided in one call (what a simulator does)
    from ctkinetics.escalation.boin12 import next_dose_arrays

    import numpy as np

    d = Boin12Design(phi_t=0.35, phi_e=0.25, n_star=6, max_at_dose=12)
    counts = [Boin12Counts.from_string(" ".join(WORKED[:i]), 5) for i in range(1, len(WORKED) + 1)]
    stack = lambda a: np.stack([getattr(c, a) for c in counts])  # noqa: E731
    nxt, code, _, _ = next_dose_arrays(d, stack("n"), stack("e_only"), stack("neither"), stack("both"),
                                       stack("t_only"), [int(w[0]) - 1 for w in WORKED])
    assert [x + 1 if x >= 0 else None for x in nxt.tolist()] == WORKED_NEXT
