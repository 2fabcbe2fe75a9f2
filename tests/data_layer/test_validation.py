"""Each validation rule on a real malformed file: exit code 2, a message naming file, row and
column, never a traceback. Rows are counted as a spreadsheet shows them (header = row 1)."""
import subprocess
import sys
import warnings

import pytest

from data_helpers import append, replace_line

from ctkinetics.data import load_study
from ctkinetics.errors import DataValidationError

OBS_HEADER = "subject,time,analyte,value,unit,lloq,blq\n"


# (name, mutation(folder), file, row, column, words expected in the message)
CASES = [
    ("missing required column",
     lambda d: (d / "observations.csv").write_text("subject,time,analyte,unit\nS01,1,transgene,copies/ug\n"),
     "observations.csv", 1, "value", "required column 'value' is missing"),
    ("non-numeric time",
     lambda d: replace_line(d / "observations.csv", 3, "S01,day1,transgene,150,copies/ug,,"),
     "observations.csv", 3, "time", "expected a time in days since infusion, got 'day1'"),
    ("non-numeric value",
     lambda d: replace_line(d / "observations.csv", 4, "S01,7,transgene,12k,copies/ug,,"),
     "observations.csv", 4, "value", "expected a number or a below-LLOQ marker"),
    ("negative value",
     lambda d: replace_line(d / "observations.csv", 4, "S01,7,transgene,-5,copies/ug,,"),
     "observations.csv", 4, "value", "expected a value >= 0, got -5"),
    ("infinite value",
     lambda d: replace_line(d / "observations.csv", 4, "S01,7,transgene,inf,copies/ug,,"),
     "observations.csv", 4, "value", "expected a finite value"),
    ("infinite time",
     lambda d: replace_line(d / "observations.csv", 4, "S01,inf,transgene,5,copies/ug,,"),
     "observations.csv", 4, "time", "finite number"),
    ("duplicate sample",
     lambda d: append(d / "observations.csv", "S01,7,transgene,11000,copies/ug,,"),
     "observations.csv", 14, "time", "duplicate sample: subject 'S01', time 7, analyte 'transgene' also on row 4"),
    ("unknown subject",
     lambda d: append(d / "observations.csv", "S99,7,transgene,11000,copies/ug,,"),
     "observations.csv", 14, "subject", "subject 'S99' is not in"),
    ("undeclared analyte",
     lambda d: append(d / "observations.csv", "S01,7,il6,11,pg/mL,,"),
     "observations.csv", 14, "analyte", "analyte 'il6' is not declared in study.toml"),
    ("mixed units",
     lambda d: append(d / "observations.csv", "S01,10,transgene,11000,copies/mL,,"),
     "observations.csv", 14, "unit", "one analyte must have one unit"),
    ("dose level not in study.toml",
     lambda d: replace_line(d / "subjects.csv", 3, "S02,7,4.5e8,41,M"),
     "subjects.csv", 3, "dose_level", "dose level '7' is not in study.toml"),
    ("non-numeric dose",
     lambda d: replace_line(d / "subjects.csv", 2, "S01,1,lots,34,F"),
     "subjects.csv", 2, "dose", "expected a dose in cells, got 'lots'"),
    ("subject listed twice",
     lambda d: append(d / "subjects.csv", "S01,1,3.0e8,34,F"),
     "subjects.csv", 4, "subject", "subject 'S01' is listed twice"),
    ("empty observations file",
     lambda d: (d / "observations.csv").write_text(""),
     "observations.csv", None, None, "the file is empty"),
    ("header only",
     lambda d: (d / "observations.csv").write_text(OBS_HEADER),
     "observations.csv", None, None, "has a header but no data rows"),
    ("ragged row",
     lambda d: replace_line(d / "observations.csv", 5, "S01,14,transgene,3000"),
     "observations.csv", 5, None, "has 4 cells but the header has 7"),
    ("bad blq flag",
     lambda d: replace_line(d / "observations.csv", 5, "S01,14,transgene,3000,copies/ug,,maybe"),
     "observations.csv", 5, "blq", "expected 1, 0 or empty, got 'maybe'"),
    ("bad safety dlt",
     lambda d: replace_line(d / "safety.csv", 2, "S01,0,yes please,,60,1,0,escalation"),
     "safety.csv", 2, "dlt", "expected 1 (DLT), 0 (no DLT) or empty (pending)"),
    ("bad safety phase",
     lambda d: replace_line(d / "safety.csv", 3, "S02,20,,,10,2,0,follow-up"),
     "safety.csv", 3, "phase", "expected one of escalation, expansion, got 'follow-up'"),
    ("crs grade out of range",
     lambda d: replace_line(d / "safety.csv", 3, "S02,20,,,10,7,0,escalation"),
     "safety.csv", 3, "crs_grade", "expected a grade 0-5, got 7"),
    ("safety subject unknown",
     lambda d: append(d / "safety.csv", "S77,30,0,,40,0,0,escalation"),
     "safety.csv", 4, "subject", "subject 'S77' is not in"),
    ("not UTF-8",
     lambda d: (d / "observations.csv").write_bytes(OBS_HEADER.encode() + b"S01,1,transgene,1\xe9,copies/ug,,\n"),
     "observations.csv", 2, None, "not UTF-8 text"),
    ("BLQ without any LLOQ",
     lambda d: (d / "study.toml").write_text((d / "study.toml").read_text().replace("lloq = 20\n", "")),
     "observations.csv", 2, "value", "below-LLOQ sample of 'transgene' without an LLOQ"),
    ("study.toml bad kind",
     lambda d: (d / "study.toml").write_text((d / "study.toml").read_text().replace('kind = "qpcr"', 'kind = "pcr"')),
     "study.toml", 18, "analytes.transgene.kind", "expected one of qpcr, flow, bcell, conc, got 'pcr'"),
    ("study.toml bad target",
     lambda d: (d / "study.toml").write_text((d / "study.toml").read_text().replace("target_dlt_rate = 0.30", "target_dlt_rate = 30")),
     "study.toml", 9, "design.target_dlt_rate", "expected a probability in (0, 1)"),
    ("study.toml not TOML",
     lambda d: (d / "study.toml").write_text("[study\nname = 'x'\n"),
     "study.toml", 1, None, "not valid TOML"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_validation_rule(mini, case):
    _, mutate, file, row, column, words = case
    mutate(mini)
    with pytest.raises(DataValidationError) as info:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_study(mini)
    problems = info.value.problems
    match = [p for p in problems if p.file.endswith(file) and words in p.message]
    assert match, f"no problem in {file} with {words!r}; got: {[str(p) for p in problems]}"
    p = match[0]
    assert p.row == row
    assert p.column == column


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_cli_exit_code_2_names_file_row_column(mini, case, capsys):
    from ctkinetics.cli.main import main

    _, mutate, file, row, column, words = case
    mutate(mini)
    assert main(["validate", str(mini)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert file in err and words in err
    # a settings file (TOML) is named by line and key, a table by row and column
    line, key = ("line", "key") if file.endswith(".toml") else ("row", "column")
    if row is not None:
        assert f"{line} {row}" in err
    if column is not None:
        assert f"{key} '{column}'" in err


def test_cli_in_a_real_process_prints_no_traceback(mini):
    (mini / "observations.csv").write_text("")
    out = subprocess.run([sys.executable, "-m", "ctkinetics.cli.main", "validate", str(mini)],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "the file is empty" in out.stderr


def test_missing_study_folder(tmp_path, capsys):
    from ctkinetics.cli.main import main

    assert main(["validate", str(tmp_path / "nowhere")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_all_problems_are_reported_not_only_the_first(mini):
    replace_line(mini / "observations.csv", 3, "S01,day1,transgene,150,copies/ug,,")
    replace_line(mini / "observations.csv", 4, "S01,7,transgene,12k,copies/ug,,")
    replace_line(mini / "subjects.csv", 3, "S02,9,4.5e8,41,M")
    with pytest.raises(DataValidationError) as info:
        load_study(mini)
    cells = {(p.file.rsplit("/", 1)[-1], p.row, p.column) for p in info.value.problems}
    assert {("observations.csv", 3, "time"), ("observations.csv", 4, "value")} <= cells


def test_semicolons_and_decimal_commas_are_read_with_a_warning(mini):
    text = (mini / "observations.csv").read_text().replace(",", ";")
    text = text.replace("25.5", "25,5")
    (mini / "observations.csv").write_text(text)
    ds = load_study(mini, warn=False)
    flow = ds.samples(analyte="car_flow")
    assert flow["value"].tolist() == [25.5]
    assert any("semicolon" in w for w in ds.warnings)
    assert any("decimal comma" in w for w in ds.warnings)


def test_utf8_bom_is_accepted(mini):
    p = mini / "subjects.csv"
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    ds = load_study(mini, warn=False)
    assert ds.subject_ids == ["S01", "S02"]
    assert any("byte-order mark" in w for w in ds.warnings)


def test_quantified_below_lloq_is_a_warning_not_an_error(mini):
    append(mini / "observations.csv", "S02,14,transgene,12,copies/ug,,")
    ds = load_study(mini, warn=False)
    assert any("quantified value 12 of 'transgene' is below its LLOQ 20" in w for w in ds.warnings)
    assert 12.0 in ds.samples("S02", "transgene")["value"].tolist()
