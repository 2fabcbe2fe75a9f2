"""Readers and writers: NONMEM and SDTM conventions, and round trips between all formats."""
import math

import pytest

from ctkinetics.data import load_study, write_study
from ctkinetics.data.sdtm import format_duration, parse_duration
from ctkinetics.errors import DataValidationError

NONMEM = """ID,TIME,DV,MDV,EVID,AMT,DVID,CENS,LLOQ,AGE
1,0,20,0,0,.,1,1,20,34
1,0,.,1,1,300000000,.,0,.,34
1,24,150,0,0,.,1,0,.,34
1,24,3.5,0,0,.,2,0,.,34
1,168,.,1,0,.,1,0,.,34
1,336,12000,0,0,.,1,0,.,34
1,400,.,1,2,.,.,0,.,34
1,672,25,0,0,.,1,1,25,34
2,-24,.,0,0,.,1,1,20,41
2,0,.,1,1,450000000,.,0,.,41
2,48,900,0,0,.,1,0,.,41
"""


@pytest.fixture
def nonmem_folder(mini, tmp_path):
    d = tmp_path / "nm"
    d.mkdir()
    toml = (mini / "study.toml").read_text()
    toml += '\n[formats.nonmem]\ntime_unit = "hours"\n\n[formats.nonmem.dvid]\n1 = "transgene"\n2 = "car_flow"\n'
    (d / "study.toml").write_text(toml)
    (d / "trial.csv").write_text(NONMEM)
    return d


def test_nonmem_conventions(nonmem_folder):
    ds = load_study(nonmem_folder, warn=False)
    assert ds.format == "nonmem"
    s1 = ds.samples("1", "transgene").set_index("time")
    # TIME in hours -> days since the dose record; the row before the dose record at the same
    # TIME is pre-infusion; CENS=1 puts the LLOQ in DV.
    assert list(s1.index) == [0.0, 1.0, 14.0, 28.0]
    assert s1.loc[0.0, "pre_infusion"] and s1.loc[0.0, "blq"] and s1.loc[0.0, "lloq"] == 20
    assert s1.loc[28.0, "blq"] and s1.loc[28.0, "lloq"] == 25 and math.isnan(s1.loc[28.0, "value"])
    assert s1.loc[14.0, "value"] == 12000
    assert ds.samples("1", "car_flow")["value"].tolist() == [3.5]
    assert ds.samples("2", "transgene").set_index("time").loc[-1.0, "pre_infusion"]
    subj = ds.subjects.set_index("subject")
    assert subj.loc["1", "dose_level"] == "1" and subj.loc["2", "dose"] == 4.5e8  # level from AMT
    assert subj.loc["2", "age"] == 41
    audit = ds.audit
    assert sorted(audit.loc[audit["action"] == "excluded", "reason"]) == ["EVID 2 (other event) row",
                                                                          "missing sample (MDV=1)"]
    # the MDV=1 row of analyte 1 at 168 h is a planned sample without a result: kept as such
    assert ds.missing_samples[["subject", "time", "analyte"]].values.tolist() == [["1", 7.0, "transgene"]]


def test_nonmem_unmapped_dvid_names_row_and_column(nonmem_folder):
    p = nonmem_folder / "trial.csv"
    p.write_text(p.read_text().replace("1,24,3.5,0,0,.,2,", "1,24,3.5,0,0,.,7,"))
    with pytest.raises(DataValidationError) as info:
        load_study(nonmem_folder)
    p0 = info.value.problems[0]
    assert (p0.row, p0.column) == (5, "DVID") and "'7' is not mapped" in p0.message


def test_nonmem_subject_without_dose_record(nonmem_folder):
    p = nonmem_folder / "trial.csv"
    p.write_text(p.read_text().replace("2,0,.,1,1,450000000,.,0,.,41\n", ""))
    with pytest.raises(DataValidationError, match="subject '2' has no dosing record"):
        load_study(nonmem_folder)


@pytest.mark.parametrize("fmt", ["nonmem", "sdtm", "tidy"])
def test_round_trip_through_each_format(mini, tmp_path, fmt):
    a = load_study(mini, warn=False)
    write_study(a, tmp_path / fmt, fmt)
    b = load_study(tmp_path / fmt, warn=False)
    assert b.format == fmt
    assert a.differences(b) == []
    # and back again to tidy gives the same files' content
    write_study(b, tmp_path / "back", "tidy")
    assert a.differences(load_study(tmp_path / "back", warn=False)) == []


def test_equality_detects_a_changed_value(mini, tmp_path):
    a = load_study(mini, warn=False)
    p = mini / "observations.csv"
    p.write_text(p.read_text().replace("12000", "12001"))
    assert a.differences(load_study(mini, warn=False)) == ["observations differ in column(s) value"]


@pytest.mark.parametrize("text, days", [("P14D", 14.0), ("-P1D", -1.0), ("PT2H", 2 / 24), ("P1W2DT3H", 9.125),
                                        ("PT90M", 0.0625), ("P0DT30S", 30 / 86400)])
def test_iso_durations(text, days):
    assert parse_duration(text) == pytest.approx(days, rel=1e-15)


@pytest.mark.parametrize("days", [0.0, 14.0, -1.0, 1 / 24, 9.3, 180.25, -0.5])
def test_duration_round_trip(days):
    assert parse_duration(format_duration(days)) == pytest.approx(days, abs=1e-10)
