"""Hand-built studies, one per protocol rule (DOMAIN.md §7), each giving the decision a protocol
reader expects, asserted here and shown in the report's top box / safety section.

Boundaries used by hand (target 0.3, cohorts of 3): escalate if DLT <= 0/3, 1/6; de-escalate if
DLT >= 2/3, 3/6; eliminate if DLT >= 3/3, 4/6 (BOIN R package get.boundary)."""
import json

import pytest

from ctkinetics.data import load_study
from ctkinetics.errors import DataValidationError
from ctkinetics.escalation import review_escalation

from protocol_helpers import DESIGN, LEVELS, P, ctk, make_study, safety_html

# a short dose also raises the data layer's "received ... cells, not the ..." warning: expected here
pytestmark = pytest.mark.filterwarnings("ignore:.*received .* cells, not the")

COHORT1 = [P("P1", 1, 0, dlt=0), P("P2", 1, 14, dlt=0)]


# --- withdrawal on day 10 ------------------------------------------------------------------
def withdrawal(tmp_path, extra=""):
    return make_study(tmp_path / "withdrawal", COHORT1 + [
        P("P3", 1, 15, window_end_day=10, window_end_reason="withdrawn", last_followup_day=10)], extra_toml=extra)


def test_withdrawal_on_day_10_is_replaced_not_pending_forever(tmp_path):
    ds = load_study(withdrawal(tmp_path))
    r = review_escalation(ds, 60)
    p3 = r.participants.set_index("subject").loc["P3"]
    assert p3["status"] == "not evaluable" and "withdrawn" in p3["reason"]
    lv = r.decision.levels.set_index("level")
    assert (lv.loc["1", "n"], lv.loc["1", "not_evaluable"], lv.loc["1", "pending"]) == (2, 1, 0)
    # 2 evaluable of a cohort of 3: stay at level 1 and treat a replacement (stagger long past)
    assert (r.decision.decision, r.decision.next_level, r.decision.earliest_next_infusion_day) == ("stay", "1", 60)
    assert r.decision.rule_id == 6 and "incomplete" in r.decision.rule
    # 183 days later the participant is still not evaluable, never pending
    late = review_escalation(ds, 198)
    assert late.participants.set_index("subject").loc["P3", "status"] == "not evaluable"
    assert not any("still pending" in w for w in late.warnings)
    assert any(r_["subject"] == "P3" and r_["action"] == "excluded from DLT decisions" for r_ in late.audit.to_dict("records"))
    html = safety_html(ds, 60)
    assert "withdrawn" in html and "not evaluable" in html


@pytest.mark.parametrize("rule, decision", [("partial", "escalate"), ("no_dlt", "escalate")])
def test_withdrawal_rule_is_configurable(tmp_path, rule, decision):
    ds = load_study(withdrawal(tmp_path, f'[evaluability]\nwithdrawn = "{rule}"\n'))
    r = review_escalation(ds, 60)
    # partial: n = 3 with P3 counted with 10 of 28 days: p~ = 0.15/3, p^ = p~/(1-p~)(1 - 10/28)/3 = 0.011
    assert r.decision.decision == decision and r.decision.next_level == "2" and not r.decision.suspended
    if rule == "partial":
        assert r.decision.tite.p_hat == pytest.approx(0.05 / 0.95 * (1 - 10 / 28) / 3)


def test_without_a_recorded_reason_a_stopped_followup_is_named(tmp_path):
    ds = load_study(make_study(tmp_path / "s", COHORT1 + [P("P3", 1, 15, last_followup_day=10)]))
    r = review_escalation(ds, 198)
    assert any("'P3' is still pending" in w for w in r.warnings)


# --- no obvious expansion ------------------------------------------------------------------
def no_expansion(tmp_path, decisions=None):
    return make_study(tmp_path / "noexp", COHORT1 + [
        P("P3", 1, 15, dlt=0, window_end_day=14, window_end_reason="no_expansion", expands=False,
          last_followup_day=14)], decisions=decisions)


def test_no_expansion_waits_for_the_committee_then_is_not_evaluable(tmp_path):
    ds = load_study(no_expansion(tmp_path))
    r = review_escalation(ds, 45)
    check = r.no_expansion.set_index(["subject", "analyte"])
    assert check.loc[("P3", "transgene"), "verdict"] == "no obvious expansion" and check.loc[("P3", "car_flow"), "agrees"]
    assert check.loc[("P1", "transgene"), "verdict"] == "expansion"
    # P1, P2 complete; P3 awaits the committee: TITE would escalate, but not before the committee
    assert r.participants.set_index("subject").loc["P3", "status"] == "awaiting committee"
    assert r.decision.suspended and "await the committee" in r.decision.rule
    assert any("awaiting committee confirmation" in w for w in r.warnings)
    assert "await the committee" in safety_html(ds, 45)
    confirmed = load_study(no_expansion(tmp_path / "c", [(44, "confirm_no_expansion", "", "P3", "",
                                                          "flow and qPCR below LLOQ to day 14")]))
    r = review_escalation(confirmed, 45)
    assert r.participants.set_index("subject").loc["P3", "status"] == "not evaluable"
    assert (r.decision.decision, r.decision.next_level, r.decision.suspended) == ("stay", "1", False)


def test_kinetics_flag_for_the_committee_and_disagreement(tmp_path):
    ds = load_study(make_study(tmp_path / "k", COHORT1 + [P("P3", 1, 15, dlt=0, expands=False)] + [
        P("P4", 2, 50, window_end_day=14, window_end_reason="no_expansion", last_followup_day=14)]))
    notes = review_escalation(ds, 70).warnings
    assert any(n.startswith("'P3': no obvious expansion by day 14") for n in notes)
    assert any(n.startswith("'P4': recorded as no_expansion, but") for n in notes)


# --- unrelated AE ------------------------------------------------------------------------
def test_unrelated_ae_is_not_a_dlt(tmp_path):
    folder = make_study(tmp_path / "ae", COHORT1 + [
        P("P3", 1, 15, dlt=0, window_end_day=8, window_end_reason="unrelated_ae", crs_grade=0)])
    ds = load_study(folder)
    # plain BOIN (waits for complete data): with the AE judged unrelated the window is complete,
    # 0/3 -> escalate on day 42; had P3 simply been followed on, accrual would wait to day 43
    r = review_escalation(ds, 42, tite=False)
    assert r.participants.set_index("subject").loc["P3", "status"] == "no dlt"
    assert (r.decision.decision, r.decision.next_level) == ("escalate", "2")
    plain = load_study(make_study(tmp_path / "plain", COHORT1 + [P("P3", 1, 15, dlt=0)]))
    assert review_escalation(plain, 42, tite=False).decision.suspended
    assert "unrelated_ae" in safety_html(ds, 42, tite=False)
    bad = make_study(tmp_path / "bad", COHORT1 + [
        P("P3", 1, 15, dlt=1, dlt_day=8, window_end_day=8, window_end_reason="unrelated_ae")])
    with pytest.raises(DataValidationError, match="a DLT ends the window with reason 'dlt'"):
        load_study(bad)


# --- sentinel with grade-3 CRS ------------------------------------------------------------
def sentinel(tmp_path, decisions=None, **grades):
    return make_study(tmp_path / "sentinel", COHORT1 + [P("P3", 1, 15, dlt=0), P("P4", 2, 50, **grades)],
                      decisions=decisions)


@pytest.mark.parametrize("grades, held", [(dict(crs_grade=3, crs_day=4), True),
                                          (dict(icans_grade=2, icans_day=6), True),
                                          (dict(crs_grade=2, crs_day=4), False)])
def test_sentinel_gate_holds_for_committee_review(tmp_path, grades, held):
    ds = load_study(sentinel(tmp_path, **grades))
    d = review_escalation(ds, 66).decision
    # L2 has its sentinel only (day 50, 16 days ago): stay at L2 to fill the cohort; the time
    # gate (day 64) is past, so only the safety gate can hold the next infusion
    assert (d.decision, d.next_level) == ("stay", "2")
    assert d.gate_held is held
    assert d.earliest_next_infusion_day == (None if held else 66)
    if held:
        assert "held for committee review" in d.gate_note and "P4" in d.gate_note
        assert "Stagger gate held for committee review" in safety_html(ds, 66)
        code, out, _ = ctk("escalate", ds.sources[0].parent, "--as-of", 66)
        assert code == 0 and "HELD" in out


def test_committee_releases_the_sentinel_gate(tmp_path):
    ds = load_study(sentinel(tmp_path, [(65, "release_sentinel_hold", "2", "", "", "CRS resolved by day 9")],
                             crs_grade=3, crs_day=4))
    assert review_escalation(ds, 64).decision.gate_held  # before the release
    d = review_escalation(ds, 66).decision
    assert not d.gate_held and d.earliest_next_infusion_day == 66 and "released the hold on day 65" in d.stagger_note


# --- expansion groups ---------------------------------------------------------------------
def expansion(tmp_path, n, dlt_in_expansion=False):
    exp = [P(f"E{i}", 1, 60 + i, dlt=1 if (dlt_in_expansion and i == 0) else 0, dlt_day=3 if (dlt_in_expansion and i == 0) else None,
             phase="expansion", group="EXP-A", crs_grade=3 if i == 1 else 1) for i in range(n)]
    return make_study(tmp_path / f"exp{n}", COHORT1 + [P("P3", 1, 15, dlt=0)] + exp)


def test_ten_in_an_expansion_group_is_refused_naming_the_row(tmp_path):
    folder = expansion(tmp_path, 10)
    with pytest.raises(DataValidationError) as err:
        load_study(folder)
    p = err.value.problems[0]
    # header row 1, three escalation rows (2-4), expansion rows 5-14: the 10th is row 14
    assert (p.file.endswith("safety.csv"), p.row, p.column) == (True, 14, "group")
    assert "more than 9" in p.message
    code, _, err_text = ctk("validate", folder)
    assert code == 2 and "row 14" in err_text and "'group'" in err_text


def test_expansion_group_safety_without_dlt_counting(tmp_path):
    ds = load_study(expansion(tmp_path, 9, dlt_in_expansion=True))
    r = review_escalation(ds, 100)
    g = r.expansion.set_index("group").loc["EXP-A"]
    assert (g["n"], g["places_left"], g["crs_severe"], g["dlt_criteria_met_monitoring"]) == (9, 0, 1, 1)
    # the expansion DLT is not counted: L1 stays 0/3 -> escalate
    lv = r.decision.levels.set_index("level")
    assert (lv.loc["1", "n"], lv.loc["1", "dlt"], lv.loc["1", "n_expansion"]) == (3, 0, 9)
    assert r.decision.decision == "escalate"
    assert "EXP-A" in safety_html(ds, 100)


# --- an inserted level --------------------------------------------------------------------
INSERTED = {"1": 3.0e8, "2": 4.5e8, "2.5": 5.25e8, "3": 6.0e8}


def inserted(tmp_path, extra_people=(), decisions=None, design=DESIGN):
    people = COHORT1 + [P("P3", 1, 15, dlt=0), P("P4", 2, 44, dlt=0), P("P5", 2, 58, dlt=0), P("P6", 2, 59, dlt=0),
                        P("P7", 3, 88, dlt=1, dlt_day=5), P("P8", 3, 102, dlt=1, dlt_day=3), P("P9", 3, 103)]
    decisions = decisions or [(110, "insert_level", "2.5", "", "", "explore between DL2 and DL3 after 2 DLTs at DL3")]
    return make_study(tmp_path / "ins", people + list(extra_people), levels=INSERTED, decisions=decisions,
                      design=design)


def test_inserted_level_receives_the_next_participant_after_its_insertion(tmp_path):
    ds = load_study(inserted(tmp_path))
    # L3: 2 DLTs and 1 pending among 3: de-escalation is certain (2 >= 2)
    before = review_escalation(ds, 109)
    assert list(before.decision.levels["level"]) == ["1", "2", "3"]  # the ladder as it was
    assert (before.decision.decision, before.decision.next_level) == ("de-escalate", "2")
    after = review_escalation(ds, 111)
    assert list(after.decision.levels["level"]) == ["1", "2", "2.5", "3"]
    assert (after.decision.decision, after.decision.next_level) == ("de-escalate", "2.5")
    html = safety_html(ds, 111)
    assert "insert_level" in html and "explore between DL2 and DL3" in html


def test_infusion_at_a_level_before_its_insertion_is_refused(tmp_path):
    folder = inserted(tmp_path, [P("P10", "2.5", 105)])
    with pytest.raises(DataValidationError, match="before the level was inserted"):
        load_study(folder)


def test_retired_level_is_closed_from_its_day(tmp_path):
    people = [P("P10", "2.5", 112, dlt=0), P("P11", "2.5", 126, dlt=0), P("P12", "2.5", 127, dlt=0)]
    dec = [(110, "insert_level", "2.5", "", "", "explore between DL2 and DL3"),
           (111, "retire_level", "3", "", "", "2 DLTs at DL3: not to be re-entered")]
    ds = load_study(inserted(tmp_path, people, dec, design=DESIGN.replace("max_subjects = 12", "max_subjects = 18")))
    d = review_escalation(ds, 160).decision
    # 0/3 at 2.5 would escalate to 3, which the committee retired
    assert (d.decision, d.next_level, d.closed_levels) == ("stay", "2.5", ("3",))
    assert "retired on day 111" in d.rule


# --- a short dose -------------------------------------------------------------------------
def short_dose(tmp_path, extra=""):
    people = COHORT1 + [P("P3", 1, 15, dlt=0), P("P4", 2, 44, dlt=0), P("P5", 2, 58, dlt=0),
                        P("P6", 2, 59, dlt=0, dose=3.2e8)]
    return make_study(tmp_path / "short", people, extra_toml=extra)


@pytest.mark.parametrize("rule, decision, next_level, status", [
    ("level_received", "stay", "2", "no dlt"),      # P6 counted at L1 (3.2e8 >= 3.0e8): L2 has 2 of 3
    ("not_evaluable", "stay", "2", "not evaluable"),
    ("planned_level", "escalate", "3", "no dlt"),   # counted at L2: 0/3
])
def test_short_dose_rule(tmp_path, rule, decision, next_level, status):
    ds = load_study(short_dose(tmp_path, f'[dose_shortfall]\nrule = "{rule}"\n'))
    r = review_escalation(ds, 100)
    p6 = r.participants.set_index("subject").loc["P6"]
    assert (r.decision.decision, r.decision.next_level, p6["status"]) == (decision, next_level, status)
    audit = r.audit[r.audit["subject"] == "P6"]
    assert len(audit) >= 1 and "71 %" in audit["reason"].iat[0]  # 3.2e8 / 4.5e8
    if rule == "level_received":
        assert (p6["level"], p6["planned_level"]) == ("1", "2")
        assert "counted at the level reached" in safety_html(ds, 100)


def test_dose_at_80_percent_is_not_short(tmp_path):
    people = COHORT1 + [P("P3", 1, 15, dlt=0), P("P4", 2, 44, dlt=0), P("P5", 2, 58, dlt=0),
                        P("P6", 2, 59, dlt=0, dose=0.8 * LEVELS["2"])]
    r = review_escalation(load_study(make_study(tmp_path / "s80", people)), 100)
    assert r.decision.decision == "escalate" and not len(r.audit)


# --- the committee's record ----------------------------------------------------------------
def test_override_is_flagged_and_needs_a_rationale(tmp_path):
    people = COHORT1 + [P("P3", 1, 15, dlt=0), P("P4", 1, 50, dlt=0), P("P5", 1, 64, dlt=0), P("P6", 1, 65, dlt=0)]
    dec = [(44, "committee_decision", "1", "", "stay", "CRS management to be reviewed before DL2"),
           (93, "committee_decision", "1", "", "stay", "")]
    ds = load_study(make_study(tmp_path / "ov", people, decisions=dec))
    r = review_escalation(ds, 100)
    c = r.committee.set_index("day")
    # day 44: 0/3 complete -> the design said escalate to 2; the committee stayed: override
    assert (c.loc[44, "design_decision"], c.loc[44, "design_next_level"], c.loc[44, "followed"]) == ("escalate", "2", False)
    assert c.loc[93, "followed"] is False or c.loc[93, "followed"] == False  # noqa: E712
    assert any("day 93 departs from the design" in w and "without a rationale" in w for w in r.warnings)
    assert not any("day 44 departs" in w for w in r.warnings)
    code, out, _ = ctk("escalate", ds.sources[0].parent, "--json")
    assert json.loads(out)["committee"][0]["followed"] is False
