"""Issue 17.1: re-infusions and time-varying covariates in every format.

A study whose every value is written here (two infusions for some participants, tocilizumab
and steroid exposure, lymphocyte counts, categorical product lot and lymphodepletion regimen)
reads from the tidy folder, a hand-written NONMEM file and a hand-written SDTM folder into the
expected tables, goes through ``ctk convert`` to every format and back unchanged, and each
rule refuses bad input naming the file, row and column."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctkinetics.cli.main import main
from ctkinetics.data import load_study, write_study
from ctkinetics.errors import DataValidationError

MINI = Path(__file__).resolve().parents[1] / "data" / "mini_study"
#: the mini study's definition (transgene, car_flow; levels 3.0e8, 4.5e8) with B cells added
TOML = (MINI / "study.toml").read_text() + '\n[analytes.bcell]\nunit = "cells/uL"\nlloq = 1\nkind = "bcell"\n'
SUBJECTS = """subject,dose_level,dose,lot,ld_regimen
P1,1,3e8,L001,FluCy
P2,2,4.5e8,L002,FluCy
P3,2,4.5e8,L001,Cy
"""
OBS = """subject,time,analyte,value,unit
P1,-1,transgene,BLQ,copies/ug
P1,7,transgene,900,copies/ug
P1,60,transgene,<20,copies/ug
P1,70,transgene,450.5,copies/ug
P1,-1,bcell,180,cells/uL
P1,60,bcell,35,cells/uL
P2,-1,transgene,BLQ,copies/ug
P2,9,transgene,2500,copies/ug
P3,-1,transgene,BLQ,copies/ug
P3,7,transgene,1200,copies/ug
"""
# P1 re-infused on day 60 (4.5e8), P3 on day 30.5 (a fractional day: exact in every format)
DOSES = """subject,time,amount
P1,60,4.5e8
P3,30.5,3e8
"""
COV_TV = """subject,time,covariate,value
P1,-1,alc,850
P1,4,alc,120
P1,21,alc,640.25
P1,21,alc_rep,640.25
P1,0,tocilizumab,0
P1,5,tocilizumab,1
P2,-1,alc,900
P2,8,steroid,10
P2,15,steroid,0
"""
#: what every reading must give (independent of the readers)
EXPECTED_LATER = {"P1": [[60.0, 4.5e8]], "P2": [], "P3": [[30.5, 3.0e8]]}
EXPECTED_TV = {("P1", "alc"): ([-1, 4, 21], [850, 120, 640.25]), ("P1", "alc_rep"): ([21], [640.25]),
               ("P1", "tocilizumab"): ([0, 5], [0, 1]), ("P2", "alc"): ([-1], [900]),
               ("P2", "steroid"): ([8, 15], [10, 0])}


def make_study(folder, doses=DOSES, cov_tv=COV_TV, toml=TOML):
    folder.mkdir(parents=True)
    (folder / "study.toml").write_text(toml)
    (folder / "subjects.csv").write_text(SUBJECTS)
    (folder / "observations.csv").write_text(OBS)
    if doses is not None:
        (folder / "doses.csv").write_text(doses)
    if cov_tv is not None:
        (folder / "covariates_tv.csv").write_text(cov_tv)
    return folder


def check_values(ds):
    """The dataset holds what make_study wrote (the expected values above)."""
    for s, rows in EXPECTED_LATER.items():
        np.testing.assert_array_equal(ds.later_doses(s), np.array(rows, float).reshape(-1, 2))
    first = ds.doses.query("time == 0").set_index("subject")["amount"]
    assert first.to_dict() == {"P1": 3e8, "P2": 4.5e8, "P3": 4.5e8}
    assert len(ds.time_varying) == sum(len(t) for t, _ in EXPECTED_TV.values())
    for (s, c), (t, v) in EXPECTED_TV.items():
        got_t, got_v = ds.covariate_course(s, c)
        np.testing.assert_array_equal(got_t, t)
        np.testing.assert_array_equal(got_v, v)
    subj = ds.subjects.set_index("subject")
    assert subj["lot"].tolist() == ["L001", "L002", "L001"]
    assert subj["ld_regimen"].tolist() == ["FluCy", "FluCy", "Cy"]
    assert ds.samples("P1", "transgene").set_index("time").loc[70.0, "value"] == 450.5


@pytest.fixture
def study(tmp_path):
    return make_study(tmp_path / "two")


def test_tidy_folder_reads_every_infusion_and_covariate_record(study):
    ds = load_study(study, warn=False)
    check_values(ds)
    assert set(ds.time_varying_names) == {"alc", "alc_rep", "tocilizumab", "steroid"}
    d = ds.doses.set_index(["subject", "time"])
    assert d.loc[("P1", 60.0), "source_row"] == 2 and d.loc[("P1", 60.0), "source_file"].endswith("doses.csv")
    assert any(str(p).endswith("covariates_tv.csv") for p in ds.sources)


@pytest.mark.parametrize("path", [["nonmem"], ["sdtm"], ["nonmem", "sdtm"], ["sdtm", "nonmem"]],
                         ids=lambda p: "->".join(["tidy"] + p + ["tidy"]))
def test_ctk_convert_round_trip_keeps_doses_and_covariate_courses(study, tmp_path, capsys, path):
    first = load_study(study, warn=False)
    src = study
    for k, fmt in enumerate(path + ["tidy"]):
        out = tmp_path / f"out{k}_{fmt}"
        assert main(["convert", str(src), str(out), "--to", fmt]) == 0, capsys.readouterr().err
        src = out
        check_values(load_study(out, warn=False))
    back = load_study(src, warn=False)
    assert first.differences(back) == []
    assert (src / "doses.csv").exists() and (src / "covariates_tv.csv").exists()


def test_a_conversion_that_loses_a_dose_is_refused(study, tmp_path):
    """The read-back check compares the infusions: a dose table changed behind the writer's back
    is a difference (the comparison sees doses at all)."""
    a = load_study(study, warn=False)
    write_study(a, tmp_path / "nm", "nonmem")
    p = tmp_path / "nm" / "nonmem.csv"
    lines = p.read_text().splitlines()
    lines = [ln for ln in lines if not (",60,.,1,1,450000000," in ln)]
    p.write_text("\n".join(lines) + "\n")
    b = load_study(tmp_path / "nm", warn=False)
    assert any(d.startswith("doses") for d in a.differences(b))


NONMEM = """ID,TIME,DV,MDV,EVID,AMT,ADDL,II,DVID,CENS,LLOQ,ALC,TOCI,LOT
1,-24,.,1,2,.,0,0,.,0,.,850,0,L001
1,-24,20,0,0,.,0,0,1,1,20,850,0,L001
1,0,.,1,1,300000000,0,0,.,0,.,850,0,L001
1,96,.,1,2,.,0,0,.,0,.,120,0,L001
1,120,.,1,2,.,0,0,.,0,.,120,1,L001
1,168,900,0,0,.,0,0,1,0,.,120,1,L001
1,504,.,0,0,.,0,0,1,0,.,640.25,1,L001
1,1440,.,1,1,450000000,1,240,.,0,.,640.25,1,L001
1,1680,450.5,0,0,.,0,0,1,0,.,640.25,1,L001
2,-24,20,0,0,.,0,0,1,1,20,900,.,L002
2,0,.,1,1,450000000,0,0,.,0,.,900,.,L002
2,216,2500,0,0,.,0,0,1,0,.,900,.,L002
"""


def test_nonmem_dose_records_addl_and_varying_columns(tmp_path):
    """Hours; EVID 1 twice (the second with ADDL=1, II=240 h: a third infusion 10 days later);
    ALC changes on EVID 2 and observation rows (a record where the value changes: the missing
    DV at 504 h still sets ALC), TOCI on an EVID 2 row; LOT is constant: a categorical covariate."""
    d = tmp_path / "nm"
    d.mkdir()
    (d / "study.toml").write_text(TOML + '\n[formats.nonmem]\ntime_unit = "hours"\n\n[formats.nonmem.dvid]\n'
                                         '1 = "transgene"\n\n[formats.nonmem.covariates]\nALC = "alc"\n'
                                         'TOCI = "tocilizumab"\n')
    (d / "trial.csv").write_text(NONMEM)
    ds = load_study(d, warn=False)
    np.testing.assert_array_equal(ds.later_doses("1"), [[60.0, 4.5e8], [70.0, 4.5e8]])
    np.testing.assert_array_equal(ds.later_doses("2"), np.zeros((0, 2)))
    t, v = ds.covariate_course("1", "alc")
    np.testing.assert_array_equal(t, [-1, 4, 21])
    np.testing.assert_array_equal(v, [850, 120, 640.25])
    t, v = ds.covariate_course("1", "tocilizumab")
    np.testing.assert_array_equal(t, [-1, 5])
    np.testing.assert_array_equal(v, [0, 1])
    assert ds.covariate_course("2", "tocilizumab")[0].size == 0   # '.' everywhere: no record
    assert ds.subjects.set_index("subject").loc["2", "lot"] == "L002"
    assert "lot" not in ds.time_varying_names
    audit = ds.audit
    assert (audit["reason"] == "EVID 2 (other event) row; its time-varying covariate values are read").sum() == 3
    # a sample at the re-infusion time is pre-dose: times relative to the FIRST infusion
    assert ds.samples("1", "transgene")["time"].tolist() == [-1.0, 7.0, 70.0]


@pytest.mark.parametrize("edit, row, column, message", [
    (lambda s: s.replace("1,1440,.,1,1,450000000,1,240", "1,1440,.,1,4,450000000,1,240"), 9, "EVID",
     "EVID 4 (reset and dose) after the first infusion"),
    (lambda s: s.replace("1,1440,.,1,1,450000000,1,240", "1,1440,.,1,1,450000000,1,0"), 9, "II",
     "need a whole ADDL and an interval II > 0"),
    (lambda s: s.replace("1,1440,.,1,1,450000000,1,240", "1,-48,.,1,1,450000000,0,0"), 9, "TIME",
     "expected a time >= 0 in days since the first infusion"),
])
def test_nonmem_dose_problems_name_row_and_column(tmp_path, edit, row, column, message):
    d = tmp_path / "nm"
    d.mkdir()
    (d / "study.toml").write_text(TOML + '\n[formats.nonmem]\ntime_unit = "hours"\n\n[formats.nonmem.dvid]\n'
                                         '1 = "transgene"\n')
    (d / "trial.csv").write_text(edit(NONMEM))
    with pytest.raises(DataValidationError) as info:
        load_study(d)
    hits = [p for p in info.value.problems if message in p.message]
    assert hits and (hits[0].row, hits[0].column) == (row, column), info.value.problems


def _sdtm_folder(tmp_path):
    d = tmp_path / "sd"
    d.mkdir()
    (d / "study.toml").write_text(TOML + '\n[formats.sdtm.time_varying]\nalc = "LB:LYM"\n'
                                         'tocilizumab = "CM:TOCILIZUMAB:indicator"\n')
    pd.DataFrame({"USUBJID": ["P1", "P2"], "ARMCD": ["DL1", "DL2"], "LOT": ["L001", "L002"]}).to_csv(d / "dm.csv", index=False)
    pd.DataFrame({"USUBJID": ["P1", "P2", "P1"], "EXSEQ": [1, 1, 2], "EXDOSE": [3e8, 4.5e8, 4.5e8],
                  "EXSTDTC": ["2026-01-05T08:00", "2026-02-01T08:00", "2026-03-06T20:00"]}).to_csv(d / "ex.csv", index=False)
    pd.DataFrame({"USUBJID": ["P1", "P1", "P2"], "CPTESTCD": ["TRANSGEN"] * 3, "CPSTRESN": ["", "900", "2500"],
                  "CPSTRESC": ["<20", "900", "2500"], "CPELTM": ["-P1D", "P7D", "P9D"]}).to_csv(d / "cp.csv", index=False)
    pd.DataFrame({"USUBJID": ["P1", "P1", "P1", "P2"], "LBTESTCD": ["LYM", "LYM", "ALT", "LYM"],
                  "LBSTRESN": ["850", "120", "31", "900"], "LBELTM": ["-P1D", "P4D", "P4D", ""],
                  "LBDTC": ["", "", "", "2026-01-31T08:00"]}).to_csv(d / "lb.csv", index=False)
    pd.DataFrame({"USUBJID": ["P1", "P1"], "CMTRT": ["Tocilizumab", "PARACETAMOL"], "CMDOSE": ["8", "500"],
                  "CMSTDTC": ["2026-01-10T08:00", "2026-01-06"]}).to_csv(d / "cm.csv", index=False)
    return d


def test_sdtm_ex_records_lb_and_cm_covariates(tmp_path):
    d = _sdtm_folder(tmp_path)
    toml = (d / "study.toml").read_text().replace("[formats.sdtm.time_varying]",
                                                  '[formats.sdtm.testcd]\nTRANSGEN = "transgene"\n\n'
                                                  "[formats.sdtm.time_varying]")
    (d / "study.toml").write_text(toml)
    notes = []
    ds = load_study(d, warn=False)
    notes = ds.warnings
    np.testing.assert_array_equal(ds.later_doses("P1"), [[60.5, 4.5e8]])      # 2026-03-06T20:00 - 01-05T08:00
    assert ds.dose_of("P1") == 3e8 and ds.subjects.set_index("subject").loc["P1", "dose_level"] == "1"
    t, v = ds.covariate_course("P1", "alc")
    np.testing.assert_array_equal(t, [-1, 4]) and np.testing.assert_array_equal(v, [850, 120])
    t, v = ds.covariate_course("P2", "alc")
    np.testing.assert_array_equal(t, [-1.0]) and np.testing.assert_array_equal(v, [900])  # from LBDTC
    t, v = ds.covariate_course("P1", "tocilizumab")
    np.testing.assert_array_equal(t, [5.0]) and np.testing.assert_array_equal(v, [1.0])   # indicator, not 8 mg/kg
    assert any("ALT" in n and "not read" in n for n in notes)
    assert any("PARACETAMOL" in n and "not read" in n for n in notes)


@pytest.mark.parametrize("file, text, row, column, message", [
    ("doses.csv", "subject,time,amount\nP9,60,4.5e8\n", 2, "subject", "subject 'P9' is not in"),
    ("doses.csv", "subject,time,amount\nP1,-3,4.5e8\n", 2, "time", "expected a time >= 0"),
    ("doses.csv", "subject,time,amount\nP1,0,4.5e8\n", 2, "amount", "the first one, whose dose is 3e+08"),
    ("doses.csv", "subject,time,amount\nP1,60,4.5e8\nP1,60,3e8\n", 3, "time", "two infusions at time 60"),
    ("doses.csv", "subject,time,amount\nP1,60,\n", 2, "amount", "expected an amount of cells, got an empty cell"),
    ("covariates_tv.csv", "subject,time,covariate,value\nP1,4,lot,1\n", 2, "covariate", "also a column of"),
    ("covariates_tv.csv", "subject,time,covariate,value\nP1,4,alc,1\nP1,4,alc,2\n", 3, "time", "two values at time 4"),
    ("covariates_tv.csv", "subject,time,covariate,value\nP1,4,2alc,1\n", 2, "covariate", "not one a model can read"),
    ("covariates_tv.csv", "subject,time,covariate,value\nP1,4,alc,high\n", 2, "value", "expected a number"),
    ("covariates_tv.csv", "subject,time,covariate,value,unit\nP1,4,alc,1,x\n", 1, "unit", "unknown column 'unit'"),
])
def test_bad_event_rows_name_file_row_and_column(tmp_path, file, text, row, column, message):
    d = make_study(tmp_path / "bad", doses=None, cov_tv=None)
    (d / file).write_text(text)
    with pytest.raises(DataValidationError) as info:
        load_study(d)
    hits = [p for p in info.value.problems if message in p.message]
    assert hits, info.value.problems
    assert str(hits[0].file).endswith(file) and (hits[0].row, hits[0].column) == (row, column)


def test_a_single_infusion_study_writes_no_event_files(tmp_path):
    d = make_study(tmp_path / "one", doses=None, cov_tv=None)
    ds = load_study(d, warn=False)
    assert ds.doses["time"].tolist() == [0.0, 0.0, 0.0] and ds.time_varying.empty
    write_study(ds, tmp_path / "back", "tidy")
    assert not (tmp_path / "back" / "doses.csv").exists()
    assert not (tmp_path / "back" / "covariates_tv.csv").exists()


def test_as_of_leaves_out_later_infusions_and_records(study):
    (study / "safety.csv").write_text(
        "subject,infusion_day,dlt,dlt_day,last_followup_day,crs_grade,icans_grade,phase\n"
        "P1,0,0,,100,1,0,escalation\nP2,10,0,,90,0,0,escalation\nP3,20,0,,80,0,0,escalation\n")
    ds = load_study(study, warn=False)
    cut = ds.as_of(45)  # P1's day-60 dose is after study day 45; P3's (20 + 30.5 = 50.5) too
    assert cut.later_doses("P1").size == 0 and cut.later_doses("P3").size == 0
    a = cut.audit
    late = a[a["reason"].str.contains("infusion of")]
    assert sorted(late["subject"]) == ["P1", "P3"] and late["row"].tolist() == [2, 3]
    # P2's steroid record of day 15 is study day 25: kept; a record on study day 46+ would not be
    assert cut.covariate_course("P2", "steroid")[0].tolist() == [8.0, 15.0]
    assert ds.as_of(24).covariate_course("P2", "steroid")[0].tolist() == [8.0]
    assert math.isclose(ds.as_of(200).later_doses("P3")[0, 0], 30.5)
