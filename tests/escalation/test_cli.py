"""ctk boin table / simulate and ctk escalate through the real CLI entry point."""
import io
import json
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

from ctkinetics.cli.main import main

MINI = Path(__file__).resolve().parents[1] / "data" / "mini_study"


def ctk(*argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_boin_table_csv_matches_published():
    code, out, _ = ctk("boin", "table", "--target", "0.3", "--cohort-size", "3", "--cohorts", "4")
    assert code == 0
    assert out.splitlines() == ["n,escalate_if_le,deescalate_if_ge,eliminate_if_ge",
                                "3,0,2,3", "6,1,3,4", "9,2,4,5", "12,2,5,7"]


def test_boin_table_empty_where_no_elimination(tmp_path):
    f = tmp_path / "t.csv"
    code, out, _ = ctk("boin", "table", "--target", "0.3", "--cohort-size", "1", "--cohorts", "3", "--out", f)
    assert code == 0 and out == ""
    assert f.read_text().splitlines()[1:] == ["1,0,1,", "2,0,1,", "3,0,2,3"]


@pytest.mark.parametrize("argv", [
    ("boin", "table", "--target", "1.5"),
    ("boin", "table", "--target", "0"),
    ("boin", "table", "--cohort-size", "0"),
    ("boin", "simulate", "--true-tox", "0.1,abc"),
    ("boin", "simulate", "--true-tox", "0.1,1.2"),
    ("boin", "simulate", "--true-tox", "0.1,0.2", "--start-level", "3"),
    ("boin", "simulate", "--true-tox", "0.1,0.2", "--tite", "--accrual-per-month", "-1"),
    ("boin",),
])
def test_bad_options_exit_2_with_message(argv):
    code, _, err = ctk(*argv)
    assert code == 2
    assert "error" in err and "Traceback" not in err


def test_boin_simulate_json_keys():
    code, out, _ = ctk("boin", "simulate", "--target", "0.3", "--true-tox", "0.15,0.30,0.45", "--cohort-size", "3",
                       "--cohorts", "4", "--trials", "2000", "--seed", "1", "--json")
    assert code == 0
    res = json.loads(out)
    assert {"selection_pct", "no_mtd_pct", "mean_participants", "mean_dlts"} <= set(res)
    assert len(res["selection_pct"]) == 3
    assert sum(res["selection_pct"]) + res["no_mtd_pct"] == pytest.approx(100)
    assert sum(res["mean_participants"]) == pytest.approx(12, abs=0.2)
    code, out2, _ = ctk("boin", "simulate", "--target", "0.3", "--true-tox", "0.15,0.30,0.45", "--cohorts", "4",
                        "--trials", "2000", "--seed", "1", "--json")
    assert out2 == out  # reproducible with a seed
    code, out, _ = ctk("boin", "simulate", "--true-tox", "0.15,0.30,0.45", "--cohorts", "4", "--trials", "500",
                       "--seed", "1", "--tite", "--accrual-per-month", "2", "--json")
    res = json.loads(out)
    # with a 14-day stagger and 28-day window 12 participants take at least 4 cohorts x 28 days
    assert res["mean_duration_days"] > 4 * 28


def test_boin_simulate_table_output():
    code, out, _ = ctk("boin", "simulate", "--true-tox", "0.15,0.30,0.45", "--cohorts", "4", "--trials", "500",
                       "--seed", "1")
    assert code == 0 and "no MTD selected" in out and "selected %" in out


def _study(tmp_path, safety_rows, subjects_rows):
    folder = tmp_path / "study"
    shutil.copytree(MINI, folder)
    pd.DataFrame(subjects_rows, columns=["subject", "dose_level", "dose"]).to_csv(folder / "subjects.csv", index=False)
    pd.DataFrame(safety_rows, columns=["subject", "infusion_day", "dlt", "dlt_day", "last_followup_day",
                                       "crs_grade", "icans_grade", "phase"]).to_csv(folder / "safety.csv", index=False)
    return folder


def test_escalate_on_the_mini_study():
    # S01 at level 1 (day 0, no DLT), S02 sentinel of level 2 on day 20, followed 10 days:
    # cohort at level 2 incomplete -> stay at 2; next of that group from day 20 + 14 = 34.
    code, out, _ = ctk("escalate", MINI, "--as-of", "25", "--json")
    assert code == 0
    res = json.loads(out)
    assert res["decision"] == "stay" and res["current_level"] == "2" and res["next_level"] == "2"
    assert res["earliest_next_infusion_day"] == 34
    lv = {r["level"]: r for r in res["levels"]}
    assert (lv["1"]["n"], lv["2"]["n"], lv["2"]["pending"]) == (1, 1, 1)
    code, text, _ = ctk("escalate", MINI, "--as-of", "25")
    assert code == 0 and "DECISION: STAY" in text and "study day 34" in text


def test_escalate_stop_prints_mtd(tmp_path):
    # subject ids as in the mini study's observations.csv (S01, S02) plus one more
    subjects = [("S01", "1", 3e8), ("S02", "1", 3e8), ("S03", "1", 3e8)]
    safety = [(s, 0, 1, 5, 28, 3, 0, "escalation") for s, _, _ in subjects]
    folder = _study(tmp_path, safety, subjects)
    code, out, _ = ctk("escalate", folder, "--json")
    res = json.loads(out)
    assert code == 0 and res["decision"] == "stop" and res["mtd"]["level"] is None


SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "sle_cohort"


@pytest.mark.skipif(not (SAMPLE / "safety.csv").exists(), reason="sample cohort not generated")
@pytest.mark.parametrize("day, decision, suspended, nxt, earliest", [
    # day 30: SLE-102/103 (days 14, 17) pending -> 2 of 3 pending, suspended until day 14 + 28 = 42
    (30, "stay", True, "1", None),
    # day 44: only SLE-103 pending (27 d of 28) -> TITE p-hat ~0 <= 0.2365 -> escalate to 2
    (44, "escalate", False, "2", 44),
    # day 140: SLE-301 (day 130) is the sentinel of level 3 -> stay, next from day 144
    (140, "stay", False, "3", 144),
    # day 200: 12 participants -> stop
    (200, "stop", False, None, None),
])
def test_sample_cohort_decisions_by_hand(day, decision, suspended, nxt, earliest):
    code, out, _ = ctk("escalate", SAMPLE, "--as-of", day, "--json")
    assert code == 0
    res = json.loads(out)
    assert (res["decision"], res["suspended"], res["next_level"]) == (decision, suspended, nxt)
    assert res["earliest_next_infusion_day"] == earliest
    if suspended:
        assert res["suspension_lifts_by_day"] == 42
    if decision == "stop":
        assert res["mtd"]["provisional"] is True  # SLE-303 still in its window on day 200


@pytest.mark.skipif(not (SAMPLE / "safety.csv").exists(), reason="sample cohort not generated")
def test_escalate_guards_on_the_sample_cohort():
    # Day 44: SLE-101/102 complete, SLE-103 (day 17) pending with 27 days of follow-up; TITE
    # escalates. At least 3 completers: wait for SLE-103's window, day 17 + 28 = 45.
    code, out, _ = ctk("escalate", SAMPLE, "--as-of", 44, "--min-completers", 3, "--json")
    res = json.loads(out)
    assert code == 0 and res["suspended"] and res["decision"] == "stay"
    assert res["suspension_lifts_by_day"] == 45 and res["design"]["min_completers"] == 3
    # 27 days of follow-up meets a 7-day guard: escalate as without it
    code, out, _ = ctk("escalate", SAMPLE, "--as-of", 44, "--min-pending-followup", 7, "--json")
    assert json.loads(out)["decision"] == "escalate"
    code, text, _ = ctk("escalate", SAMPLE, "--as-of", 44, "--min-completers", 3)
    assert code == 0 and "Guards before escalating" in text and "resumes by study day 45" in text
    code, _, err = ctk("escalate", SAMPLE, "--min-pending-followup", 99)
    assert code == 2 and "min_pending_followup" in err


def test_boin_simulate_accepts_guards():
    base = ("boin", "simulate", "--true-tox", "0.15,0.30,0.45", "--cohorts", "4", "--trials", "300",
            "--seed", "1", "--tite", "--json")
    plain = json.loads(ctk(*base)[1])
    # guards default to off: giving 0 explicitly changes nothing (same seed, same draws)
    assert json.loads(ctk(*base, "--min-completers", "0", "--min-pending-followup", "0")[1]) == plain
    guarded = json.loads(ctk(*base, "--min-completers", "3", "--min-pending-followup", "7")[1])
    assert sum(guarded["selection_pct"]) + guarded["no_mtd_pct"] == pytest.approx(100)
    assert guarded["mean_duration_days"] != plain["mean_duration_days"]  # the holds did act
