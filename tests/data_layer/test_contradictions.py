"""Issue 19.1: every contradiction between columns, markers and files is an input error (exit 2
naming file, row and column), never a silent choice; IDs are text.

Each case writes a real file (the mini study of tests/data, or a NONMEM / SDTM file) and runs
``ctk validate`` on it. Where the data are legal, the test checks the values read against the
file as written (no value changed silently)."""
import pytest
from data_helpers import append, replace_line

from ctkinetics.cli.main import main
from ctkinetics.data import load_study
from ctkinetics.errors import DataValidationError


def _fails(folder, capsys, file, row, column, words):
    """ctk validate exits 2 with a message naming file, row and column; load_study raises
    the same problem."""
    assert main(["validate", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and file in err and words in err, err
    if row is not None:
        assert f"row {row}" in err, err
    if column is not None:
        assert f"column '{column}'" in err, err
    with pytest.raises(DataValidationError) as info:
        load_study(folder, warn=False)
    hits = [p for p in info.value.problems if p.file.endswith(file) and words in p.message]
    assert hits and (hits[0].row, hits[0].column) == (row, column), [str(p) for p in info.value.problems]


# (name, mutation of the mini study, file, row, column, words of the message)
TIDY_CASES = [
    ("blq=1 on a quantified value",
     lambda d: replace_line(d / "observations.csv", 3, "S01,1,transgene,150,copies/ug,,1"),
     "observations.csv", 3, "blq", "blq is 1 but the value '150' is a quantified number"),
    ("blq=0 with a <20 marker",
     lambda d: replace_line(d / "observations.csv", 6, "S01,28,transgene,<20,copies/ug,,0"),
     "observations.csv", 6, "blq", "blq is 0 but the value '<20' is a below-LLOQ marker"),
    ("blq=0 with BLQ",
     lambda d: replace_line(d / "observations.csv", 2, "S01,-1,transgene,BLQ,copies/ug,,0"),
     "observations.csv", 2, "blq", "blq is 0 but the value 'BLQ' is a below-LLOQ marker"),
    ("lloq column against a <20 marker",
     lambda d: replace_line(d / "observations.csv", 6, "S01,28,transgene,<20,copies/ug,25,"),
     "observations.csv", 6, "lloq", "the value '<20' states an LLOQ of 20 but the lloq cell says 25"),
    ("misspelled lloq column",
     lambda d: replace_line(d / "observations.csv", 1, "subject,time,analyte,value,unit,llqo,blq"),
     "observations.csv", 1, "llqo", "unknown column 'llqo' (did you mean 'lloq'?)"),
    ("4_31.6 as a value",
     lambda d: replace_line(d / "observations.csv", 4, "S01,7,transgene,4_31.6,copies/ug,,"),
     "observations.csv", 4, "value", "got '4_31.6'"),
    ("full-width digits as a value",
     lambda d: replace_line(d / "observations.csv", 4, "S01,7,transgene,４３１.６,copies/ug,,"),
     "observations.csv", 4, "value", "got '４３１.６'"),
    ("full-width digits as a time",
     lambda d: replace_line(d / "observations.csv", 4, "S01,７,transgene,431.6,copies/ug,,"),
     "observations.csv", 4, "time", "expected a time in days since infusion, got '７'"),
    ("underscore in a dose",
     lambda d: replace_line(d / "subjects.csv", 2, "S01,1,3_000_000_00,34,F"),
     "subjects.csv", 2, "dose", "expected a dose in cells, got '3_000_000_00'"),
    ("duplicated ID after stripping spaces",
     lambda d: append(d / "subjects.csv", " S01 ,1,3.0e8,34,F"),
     "subjects.csv", 4, "subject", "subject 'S01' is listed twice (also on row 2)"),
    ("a measured sample and a missing-sample row at the same time",
     lambda d: append(d / "observations.csv", "S01,7,transgene,,copies/ug,,"),
     "observations.csv", 14, "time", "duplicate sample: subject 'S01', time 7, analyte 'transgene' also on row 4"),
    ("missing-sample row of an unknown subject",
     lambda d: append(d / "observations.csv", "S99,7,transgene,,copies/ug,,"),
     "observations.csv", 14, "subject", "subject 'S99' is not in"),
]


@pytest.mark.parametrize("case", TIDY_CASES, ids=[c[0] for c in TIDY_CASES])
def test_tidy_contradiction_is_an_error(mini, capsys, case):
    _, mutate, file, row, column, words = case
    mutate(mini)
    _fails(mini, capsys, file, row, column, words)


def test_agreeing_markers_and_flags_are_read_as_written(mini):
    # blq=1 with '<20' and lloq 20 agree; an empty blq states nothing; blq=0 on a number agrees
    replace_line(mini / "observations.csv", 6, "S01,28,transgene,<20,copies/ug,20,1")
    replace_line(mini / "observations.csv", 3, "S01,1,transgene,150,copies/ug,,0")
    ds = load_study(mini, warn=False)
    s = ds.samples("S01", "transgene").set_index("time")
    assert s.loc[28.0, "blq"] and s.loc[28.0, "lloq"] == 20
    assert not s.loc[1.0, "blq"] and s.loc[1.0, "value"] == 150.0
    assert s.loc[7.0, "value"] == 12000.0  # untouched rows as written


def test_semicolon_file_keeps_ids_as_text_and_reads_decimal_commas_in_numbers(mini):
    # the subject '101,5' must stay '101,5' (never 101.5); the value 25,5 is 25.5
    subj = (mini / "subjects.csv").read_text().replace("S01", "101,5").replace(",", ";")
    subj = subj.replace("101;5", "101,5")
    (mini / "subjects.csv").write_text(subj)
    obs = (mini / "observations.csv").read_text().replace("S01", "101,5").replace(",", ";")
    obs = obs.replace("101;5", "101,5").replace("25.5", "25,5")
    (mini / "observations.csv").write_text(obs)
    saf = (mini / "safety.csv").read_text().replace("S01,", "\"101,5\",")
    (mini / "safety.csv").write_text(saf)
    ds = load_study(mini, warn=False)
    assert ds.subject_ids == ["101,5", "S02"]
    assert set(ds.observations["subject"]) == {"101,5", "S02"}
    assert ds.samples("101,5", "car_flow")["value"].tolist() == [25.5]
    assert ds.samples("101,5", "transgene").set_index("time").loc[7.0, "value"] == 12000.0
    assert any("1 decimal comma(s) in numeric columns read as decimal points" in w for w in ds.warnings)


def test_ids_007_and_7_are_two_participants_in_a_study_folder(mini):
    for name in ("subjects.csv", "observations.csv", "safety.csv"):
        p = mini / name
        p.write_text(p.read_text().replace("S01,", "007,").replace("S02,", "7,"))
    ds = load_study(mini, warn=False)
    assert ds.subject_ids == ["007", "7"]
    assert ds.dose_of("007") == 3.0e8 and ds.dose_of("7") == 4.5e8


# --------------------------------------------------------------------------------------------
# NONMEM

NM_HEAD = "ID,TIME,DV,MDV,EVID,AMT,DVID,CENS,LLOQ,BLQ\n"
NM_ROWS = ["{id},0,.,1,1,300000000,.,0,.,0", "{id},1,150,0,0,.,1,0,20,0", "{id},7,12000,0,0,.,1,0,20,0"]


@pytest.fixture
def nm(mini, tmp_path):
    d = tmp_path / "nm"
    d.mkdir()
    toml = (mini / "study.toml").read_text() + '\n[formats.nonmem.dvid]\n1 = "transgene"\n'
    (d / "study.toml").write_text(toml)
    return d


def _nm(folder, rows):
    (folder / "data.csv").write_text(NM_HEAD + "\n".join(rows) + "\n")


def test_nonmem_ids_007_and_7_are_refused_not_merged(nm, capsys):
    _nm(nm, [r.format(id="007") for r in NM_ROWS] + [r.format(id="7") for r in NM_ROWS])
    _fails(nm, capsys, "data.csv", 5, "ID", "ID '7' and ID '007' (row 2) are the same number to NONMEM")


def test_nonmem_text_ids_in_usubjid_keep_007_and_7_apart(nm):
    rows = [r.format(id="1") for r in NM_ROWS] + [r.format(id="2") for r in NM_ROWS]
    text = NM_HEAD.replace("ID,", "ID,USUBJID,", 1) + "\n".join(
        r.replace(",", ",007,", 1) if r.startswith("1,") else r.replace(",", ",7,", 1) for r in rows) + "\n"
    (nm / "data.csv").write_text(text)
    ds = load_study(nm, warn=False)
    assert ds.subject_ids == ["007", "7"]


def test_nonmem_one_usubjid_with_two_ids_is_refused(nm, capsys):
    rows = [r.format(id="1") for r in NM_ROWS] + [r.format(id="2") for r in NM_ROWS]
    text = NM_HEAD.replace("ID,", "ID,USUBJID,", 1) + "\n".join(r.replace(",", ",A ,", 1) for r in rows) + "\n"
    (nm / "data.csv").write_text(text)
    _fails(nm, capsys, "data.csv", 5, "ID", "USUBJID 'A' goes with ID '2' here but with ID '1' on row 2")


@pytest.mark.parametrize("row, column, words", [
    ("1,14,20,0,0,.,1,1,20,0", "BLQ", "CENS is 1 (censored: DV holds the LLOQ) but BLQ is 0"),
    ("1,14,.,0,0,.,1,0,20,1", "CENS", "BLQ is 1 but CENS is 0"),
    ("1,14,20,0,0,.,1,1,25,", "LLOQ", "CENS is 1 and DV says the LLOQ is 20, but the LLOQ column says 25"),
])
def test_nonmem_censoring_contradictions(nm, capsys, row, column, words):
    _nm(nm, [r.format(id="1") for r in NM_ROWS] + [row])
    _fails(nm, capsys, "data.csv", 5, column, words)


def test_nonmem_blq_flag_with_a_quantified_dv_is_refused(nm, capsys):
    (nm / "data.csv").write_text("ID,TIME,DV,MDV,EVID,AMT,DVID,LLOQ,BLQ\n1,0,.,1,1,300000000,.,.,0\n"
                                 "1,1,150,0,0,.,1,20,1\n")
    _fails(nm, capsys, "data.csv", 3, "DV", "BLQ is 1 but DV is 150, neither empty, 0 nor the LLOQ")


def test_nonmem_covariate_named_like_the_dose_column_is_refused(nm, capsys):
    (nm / "data.csv").write_text("ID,TIME,DV,EVID,AMT,DVID,DOSE\n1,0,.,1,300000000,.,5\n1,1,150,0,.,1,5\n")
    _fails(nm, capsys, "data.csv", 1, "DOSE", "column DOSE would be read as the covariate 'dose'")


# --------------------------------------------------------------------------------------------
# SDTM (CSV domains: the rules are the same for .xpt)


@pytest.fixture
def sd(mini, tmp_path):
    from ctkinetics.data.sdtm import write_sdtm

    d = tmp_path / "sd"
    write_sdtm(load_study(mini, warn=False), d, as_csv=True)
    return d


def test_sdtm_duplicated_usubjid_in_dm_is_refused(sd, capsys):
    lines = (sd / "dm.csv").read_text().splitlines()
    (sd / "dm.csv").write_text("\n".join(lines + [lines[1]]) + "\n")
    _fails(sd, capsys, "dm.csv", 4, "USUBJID", "subject 'S01' is listed twice (also on row 2)")


def test_sdtm_stresn_and_stresc_that_disagree_are_refused(sd, capsys):
    text = (sd / "cp.csv").read_text()
    assert ",12000.0,copies/ug,12000.0,12000.0," in text
    (sd / "cp.csv").write_text(text.replace(",12000.0,copies/ug,12000.0,12000.0,", ",12000.0,copies/ug,1200.0,12000.0,"))
    with pytest.raises(DataValidationError, match="CPSTRESN is 12000.0 but CPSTRESC says '1200.0'"):
        load_study(sd, warn=False)
    assert main(["validate", str(sd)]) == 2
    assert "column 'CPSTRESC'" in capsys.readouterr().err


def test_nonmem_misspelled_data_item_is_refused_not_read_as_a_covariate(nm, capsys):
    (nm / "data.csv").write_text("ID,TIME,DV,EVID,AMT,DVID,CENS,LLQO\n1,0,.,1,300000000,.,0,.\n"
                                 "1,1,20,0,.,1,1,25\n")
    _fails(nm, capsys, "data.csv", 1, "LLQO", "unknown column LLQO (did you mean LLOQ?)")


def test_nonmem_race_is_a_covariate_not_a_typo_of_rate(nm):
    (nm / "data.csv").write_text("ID,TIME,DV,EVID,AMT,DVID,RACE\n1,0,.,1,300000000,.,2\n1,1,150,0,.,1,2\n")
    assert load_study(nm, warn=False).covariates_of("1") == {"dose": 3.0e8, "race": 2.0}


def test_sdtm_misspelled_variable_is_refused(sd, capsys):
    text = (sd / "cp.csv").read_text()
    (sd / "cp.csv").write_text(text.replace("CPLLOQ", "CPLLQO", 1))
    _fails(sd, capsys, "cp.csv", 1, "CPLLQO", "unknown variable CPLLQO (did you mean CPLLOQ?)")
