"""Issue 19.2: ``ctk convert`` is lossless or refuses. Studies with adversarial IDs and
covariate names go tidy -> NONMEM / SDTM -> tidy and read back identical (checked against the
values written into the input files, not only against each other); what a format cannot hold
is refused before anything is written; the output may not be the input."""
import hashlib
import math

import pandas as pd
import pytest

from ctkinetics.cli.main import main
from ctkinetics.data import load_study

# IDs a spreadsheet, NONMEM or SAS could mangle: leading zeros (007 vs 7), a decimal comma,
# a formula, quotes, non-ASCII letters, inner spaces, signs
IDS = ["007", "7", "101,5", '=HYPERLINK("http://x")', 'say "hi"', "Ünïcødé-01", "S 01", "+1", "-5", "1e3"]
# covariate names that are NONMEM data items or SDTM DM variables, or longer than 8 characters
COVARIATES = ["age", "sex", "dv", "time", "id", "evid", "mdv", "cens", "usubjid", "armcd", "country",
              "baseline_ldh", "baseline_crp"]
TOML = """[study]
name = "Adversarial study"
start_date = "2026-01-05"

[dose_levels]
1 = 3.0e8
2 = 4.5e8

[design]
target_dlt_rate = 0.30
dlt_window_days = 28
stagger_days = 14
cohort_size = 3
max_subjects = 12

[analytes.transgene]
unit = "copies/ug"
lloq = 20
kind = "qpcr"

[analytes.car_flow]
unit = "cells/uL"
lloq = 0.5
kind = "flow"
"""


def _adversarial(folder, ids=IDS):
    """A study folder whose every value is known here (the expected values of the tests)."""
    folder.mkdir()
    (folder / "study.toml").write_text(TOML)
    subj = pd.DataFrame({"subject": ids, "dose_level": ["1", "2"] * (len(ids) // 2) + ["1"] * (len(ids) % 2)})
    subj["dose"] = subj["dose_level"].map({"1": "3.0e8", "2": "4.5e8"})
    for k, c in enumerate(COVARIATES):
        if c in ("sex", "usubjid", "armcd", "country"):
            subj[c] = [f"{c[:2]}{i}" for i in range(len(ids))]
        else:
            subj[c] = [str(10 * k + i + 0.5) if i != 2 else "" for i in range(len(ids))]
    subj.to_csv(folder / "subjects.csv", index=False)
    rows = []
    for i, s in enumerate(ids):
        rows += [(s, "-1", "transgene", "BLQ", ""), (s, "1", "transgene", str(150 + i), ""),
                 (s, "7.25", "transgene", f"{12000.123456789 + i!r}", ""), (s, "28", "transgene", "<20", ""),
                 (s, "56", "transgene", "", ""), (s, "7", "car_flow", "25.5", "0.5"), (s, "-1", "car_flow", "BLQ", "")]
    pd.DataFrame(rows, columns=["subject", "time", "analyte", "value", "lloq"]).assign(unit=lambda d: d["analyte"].map(
        {"transgene": "copies/ug", "car_flow": "cells/uL"}))[["subject", "time", "analyte", "value", "unit", "lloq"]].to_csv(
        folder / "observations.csv", index=False)
    pd.DataFrame({"subject": ids, "infusion_day": [30 * i for i in range(len(ids))], "dlt": 0, "dlt_day": "",
                  "last_followup_day": 60, "crs_grade": 1, "icans_grade": 0, "phase": "escalation"}).to_csv(
        folder / "safety.csv", index=False)
    return folder


def _check_values(ds, ids=IDS):
    """The dataset holds exactly what _adversarial wrote."""
    assert ds.subject_ids == ids
    assert ds.covariate_names == COVARIATES
    subj = ds.subjects.set_index("subject")
    for k, c in enumerate(COVARIATES):
        for i, s in enumerate(ids):
            got = subj.loc[s, c]
            if c in ("sex", "usubjid", "armcd", "country"):
                assert got == f"{c[:2]}{i}"
            elif i == 2:
                assert math.isnan(got)
            else:
                assert got == 10 * k + i + 0.5
    for i, s in enumerate(ids):
        tg = ds.samples(s, "transgene").set_index("time")
        assert tg.loc[7.25, "value"] == 12000.123456789 + i and tg.loc[1.0, "value"] == 150 + i
        assert tg.loc[28.0, "blq"] and tg.loc[28.0, "lloq"] == 20 and tg.loc[-1.0, "pre_infusion"]
    miss = ds.missing_samples
    assert sorted(miss["subject"]) == sorted(ids) and set(miss["time"]) == {56.0}
    assert ds.safety["infusion_day"].tolist() == [30.0 * i for i in range(len(ids))]


@pytest.fixture
def adversarial(tmp_path):
    return _adversarial(tmp_path / "adv")


@pytest.mark.parametrize("path", [["nonmem"], ["sdtm"], ["nonmem", "sdtm"], ["sdtm", "nonmem"]],
                         ids=lambda p: "->".join(["tidy"] + p + ["tidy"]))
def test_round_trip_through_formats_is_identical(adversarial, tmp_path, capsys, path):
    first = load_study(adversarial, warn=False)
    _check_values(first)
    src = adversarial
    for k, fmt in enumerate(path + ["tidy"]):
        out = tmp_path / f"out{k}_{fmt}"
        assert main(["convert", str(src), str(out), "--to", fmt]) == 0, capsys.readouterr().err
        src = out
    err = capsys.readouterr().err
    if "nonmem" in path:
        assert "covariate 'dv' is written as column COV_DV (its name is reserved by the format)" in err
    if "sdtm" in path:
        assert "covariate 'baseline_crp' is written as column BASELI_2 (its name is longer than 8 characters)" in err
    back = load_study(src, warn=False)
    _check_values(back)
    assert first.differences(back) == []


def test_nonmem_keeps_text_ids_in_usubjid(adversarial, tmp_path):
    assert main(["convert", str(adversarial), str(tmp_path / "nm"), "--to", "nonmem"]) == 0
    nm = pd.read_csv(tmp_path / "nm" / "nonmem.csv", dtype=str, keep_default_na=False)
    assert list(nm["USUBJID"].drop_duplicates()) == IDS  # written as text, exactly
    assert list(nm["ID"].drop_duplicates()) == [str(i) for i in range(1, len(IDS) + 1)]


def test_missing_sample_rows_are_written_by_every_format(adversarial, tmp_path):
    assert main(["convert", str(adversarial), str(tmp_path / "nm"), "--to", "nonmem"]) == 0
    nm = pd.read_csv(tmp_path / "nm" / "nonmem.csv", dtype=str, keep_default_na=False)
    assert ((nm["MDV"] == "1") & (nm["EVID"] == "0")).sum() == len(IDS)
    assert main(["convert", str(adversarial), str(tmp_path / "sd"), "--to", "sdtm"]) == 0
    from ctkinetics.data.xpt import read_xpt

    cp = read_xpt(tmp_path / "sd" / "cp.xpt")
    assert (cp["CPSTAT"] == "NOT DONE").sum() == len(IDS)
    assert main(["convert", str(tmp_path / "sd"), str(tmp_path / "td"), "--to", "tidy"]) == 0
    obs = pd.read_csv(tmp_path / "td" / "observations.csv", dtype=str, keep_default_na=False)
    assert (obs["value"] == "").sum() == len(IDS)


def test_a_pre_infusion_sample_at_the_dose_time_survives_every_format(tmp_path, capsys):
    # NONMEM: the sample on the row before the dose record at the same TIME is pre-infusion
    d = tmp_path / "nm"
    d.mkdir()
    (d / "study.toml").write_text(TOML + '\n[formats.nonmem.dvid]\n1 = "transgene"\n')
    (d / "nonmem.csv").write_text("ID,TIME,DV,MDV,EVID,AMT,DVID,CENS\n1,0,20,0,0,.,1,1\n1,0,.,1,1,300000000,.,0\n"
                                  "1,1,150,0,0,.,1,0\n")
    src = d
    for k, fmt in enumerate(["tidy", "sdtm", "nonmem"]):
        out = tmp_path / f"o{k}"
        assert main(["convert", str(src), str(out), "--to", fmt]) == 0, capsys.readouterr().err
        ds = load_study(out, warn=False)
        s = ds.samples("1", "transgene")
        assert s["time"].tolist() == [0.0, 1.0] and s["pre_infusion"].tolist() == [True, False], fmt
        src = out


def test_subject_id_over_200_bytes_is_refused_for_xpt_before_writing(tmp_path, capsys):
    long_id = "P" * 150 + "é" * 30  # 210 bytes in UTF-8
    src = _adversarial(tmp_path / "adv", ids=["007", long_id])
    out = tmp_path / "sd"
    assert main(["convert", str(src), str(out), "--to", "sdtm"]) == 2
    err = capsys.readouterr().err
    assert "dm.xpt" in err and "column 'USUBJID'" in err and "is 210 bytes" in err and "at most 200 bytes" in err
    assert not out.exists()
    # the same study converts to NONMEM and back unchanged
    assert main(["convert", str(src), str(tmp_path / "nm"), "--to", "nonmem"]) == 0
    assert load_study(tmp_path / "nm", warn=False).subject_ids == ["007", long_id]


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("fmt", ["tidy", "nonmem", "sdtm"])
def test_output_equal_to_input_is_refused(adversarial, capsys, fmt):
    before = _digest(adversarial)
    assert main(["convert", str(adversarial), str(adversarial), "--to", fmt]) == 2
    assert "is the input" in capsys.readouterr().err
    assert _digest(adversarial) == before


def test_a_conversion_that_would_change_the_data_writes_nothing(adversarial, tmp_path, capsys, monkeypatch):
    # a writer that silently loses the last sample: the read-back comparison must refuse
    from ctkinetics.data import tidy

    real = tidy.write_study_folder

    def lossy(dataset, folder, warnings=None):
        files = real(dataset, folder, warnings)
        p = folder / "observations.csv"
        p.write_text("".join(p.read_text().splitlines(keepends=True)[:-1]))
        return files

    monkeypatch.setattr(tidy, "write_study_folder", lossy)
    out = tmp_path / "out"
    assert main(["convert", str(adversarial), str(out), "--to", "tidy"]) == 2
    err = capsys.readouterr().err
    assert "converting to tidy would change the data, so nothing was written" in err
    assert not out.exists() and not list(tmp_path.glob(".out.ctk-*"))
