"""Safety inputs that used to change a decision silently (issue 19.1): a participant missing from
safety.csv, events outside their window, a missing or misspelled [design] — each an error
naming file, row and column (exit 2), or a warning shown first by ctk validate, ctk escalate
and the report."""
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore:no safety data for")

from ctkinetics.data import load_study
from ctkinetics.errors import DataValidationError

from protocol_helpers import DESIGN, P, ctk, make_study, safety_html

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "sle_cohort"


def _drop_safety_row(folder: Path, subject: str) -> None:
    p = folder / "safety.csv"
    p.write_text("".join(line for line in p.read_text().splitlines(keepends=True)
                         if not line.startswith(subject + ",")))


def test_deleting_a_dlt_participants_safety_row_is_an_error_not_a_new_decision(tmp_path):
    # the full data say STOP with MTD 2; without SLE-302's row (a DLT) the decision used to be
    # STAY with "Warnings: 0"
    folder = tmp_path / "sle"
    shutil.copytree(SAMPLE, folder)
    _drop_safety_row(folder, "SLE-302")
    for cmd in ("validate", "escalate"):
        code, out, err = ctk(cmd, folder)
        assert code == 2 and out == ""
        assert "subjects.csv" in err and "'subject'" in err and "SLE-302" in err
        assert "has samples after infusion (days 1 to 56) but no row in" in err
    with pytest.raises(DataValidationError) as e:
        load_study(folder)
    assert e.value.row == 12  # SLE-302 is on row 12 of subjects.csv


def test_a_participant_without_samples_or_safety_row_is_named_first(tmp_path):
    people = [P("P1", 1, 0, dlt=0), P("P2", 1, 14, dlt=0), P("P3", 1, 15, dlt=0),
              P("P4", 2, 0, no_safety_row=True, last_followup_day=-1)]
    folder = make_study(tmp_path / "s", people)
    ds = load_study(folder)
    warn = [w for w in ds.warnings if w.startswith("no safety data for 'P4'")]
    assert warn, ds.warnings
    code, out, _ = ctk("validate", folder)
    assert code == 0 and "no safety data for 'P4'" in out
    code, out, _ = ctk("escalate", folder)
    first = out.splitlines()[1]
    assert code == 0 and first.startswith("WARNING: no safety data for 'P4'")
    html = safety_html(ds)
    assert html.index("no safety data for &#x27;P4&#x27;") < html.index("Design recommendation")


@pytest.mark.parametrize("change, row, column, words", [
    (dict(dlt=1, dlt_day=12, last_followup_day=10), 4, "dlt_day", "after the last follow-up"),
    (dict(dlt=1, dlt_day=60, last_followup_day=90), 4, "dlt_day", "outside the 28-day DLT window"),
    (dict(dlt=0, window_end_day=35, window_end_reason="withdrawn", last_followup_day=40), 4, "window_end_day",
     "outside the 28-day DLT window"),
    (dict(dlt=0, window_end_reason="withdrawn"), 4, "window_end_day", "needs the day the window ended"),
    (dict(dlt=0, window_end_day=20, window_end_reason="completed"), 4, "window_end_day", "ended early"),
    (dict(dlt=1, dlt_day=3, evaluable=0), 4, "evaluable", "a participant with a DLT is evaluable"),
    (dict(dlt=0, crs_day=4), 4, "crs_day", "without a crs_grade"),
    (dict(dlt=0, window_end_reason="gone fishing", window_end_day=3), 4, "window_end_reason", "expected one of"),
])
def test_event_days_outside_their_windows_are_errors(tmp_path, change, row, column, words):
    people = [P("P1", 1, 0, dlt=0), P("P2", 1, 14, dlt=0), P("P3", 1, 15, **change)]
    folder = make_study(tmp_path / "s", people)
    code, _, err = ctk("escalate", folder)
    assert code == 2 and f"row {row}" in err and f"'{column}'" in err and words in err, err


def test_missing_or_misspelled_design_is_an_error_naming_the_key(tmp_path):
    people = [P("P1", 1, 0, dlt=0)]
    folder = make_study(tmp_path / "nodesign", people, with_design=False)
    code, _, err = ctk("escalate", folder)
    assert code == 2 and "design.target_dlt_rate" in err and "no silent default" in err
    folder = make_study(tmp_path / "typo", people, design=DESIGN.replace("[design]", "[desing]"))
    code, _, err = ctk("validate", folder)
    assert code == 2 and "unknown table [desing]" in err and "did you mean 'design'" in err
    folder = make_study(tmp_path / "key", people, design=DESIGN.replace("cohort_size", "cohort_sise"))
    code, _, err = ctk("escalate", folder)
    assert code == 2 and "design.cohort_sise" in err and "did you mean 'cohort_size'" in err


@pytest.mark.parametrize("day", ["nan", "-3", "inf", "soon"])
def test_as_of_must_be_a_finite_study_day(day, tmp_path):
    for cmd in (("escalate", SAMPLE), ("report", SAMPLE, "--out", tmp_path / "out")):
        try:
            code, out, err = ctk(*cmd, "--as-of", day)
        except SystemExit as e:  # argparse refusing a non-number: exit 2 with its own message
            code, err = e.code, "as-of"
        assert code == 2 and "as-of" in err.replace("as_of", "as-of") and "Traceback" not in err, err
        assert not (tmp_path / "out").exists()
