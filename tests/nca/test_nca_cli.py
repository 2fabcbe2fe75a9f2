"""ctk nca end to end on the small tidy study in tests/data/mini_study."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctkinetics.cli import main as cli
from ctkinetics.cli.commands import nca as nca_cmd
from ctkinetics.nca import AUC_METHODS, AUC_TYPES

STUDY = Path(__file__).resolve().parents[1] / "data" / "mini_study"


def test_cli_choices_come_from_the_registries():
    from ctkinetics.nca import NCAOptions
    from ctkinetics.nca.lambdaz import LAMZ_SELECTIONS

    assert tuple(nca_cmd.AUC_METHOD_CHOICES) == tuple(AUC_METHODS)
    assert tuple(nca_cmd.AUC_TYPE_CHOICES) == tuple(AUC_TYPES)
    assert tuple(nca_cmd.LAMZ_SELECTION_CHOICES) == tuple(LAMZ_SELECTIONS)
    defaults = NCAOptions()
    for field, default, _ in nca_cmd.QUALITY_FLAGS.values():  # the CLI's defaults are the API's
        assert getattr(defaults, field) == (None if default == "off" else float(default))


@pytest.mark.filterwarnings("ignore::ctkinetics.errors.DataWarning")
def test_ctk_nca_writes_every_table(tmp_path, capsys):
    code = cli.main(["nca", str(STUDY), "--out", str(tmp_path), "--interval", "0,21",
                     "--auc-type", "all", "--auc-method", "linear"])
    assert code == 0
    long = pd.read_csv(tmp_path / "nca.csv", keep_default_na=False)
    assert list(long.columns[:9]) == ["subject", "dose_level", "analyte", "parameter", "start",
                                      "end", "value", "unit", "exclude"]
    assert set(long["parameter"]) >= {"CMAX", "TMAX", "AUCLST", "AUCINT_ALL"}
    assert "auc=linear" in long["method"].iloc[0] and "aucint=all" in long["method"].iloc[0]
    summary = pd.read_csv(tmp_path / "nca_summary.csv")
    assert list(summary.columns[:13]) == ["dose_level", "analyte", "parameter", "start", "end", "n",
                                          "geo_mean", "geo_cv_pct", "mean", "sd", "median", "min", "max"]
    for name in ("nca_wide.csv", "dose_proportionality.csv", "nca_exclusions.csv", "nca_settings.csv"):
        assert (tmp_path / name).exists()
    ex = pd.read_csv(tmp_path / "nca_exclusions.csv")
    assert ex["reason"].str.contains("pre-infusion").all() and len(ex) >= 1
    # the CSV holds the numbers of the API, unrounded
    from ctkinetics.data import load_study
    from ctkinetics.nca import nca
    ref = nca(load_study(STUDY), auc_method="linear", auc_type="all",
              intervals=[{"start": 0, "end": 21, "parameters": "AUCINT"}])
    got = long[long["parameter"] == "AUCINT_ALL"].set_index(["subject", "analyte"])["value"].astype(float)
    want = ref.results.set_index(["subject", "analyte"])["value"]
    assert np.allclose(got.loc[want.index], want, rtol=1e-15)


@pytest.mark.parametrize("argv", [["--interval", "28,0"], ["--blq", "middle=sometimes"],
                                  ["--lambda-z-window", "14"], ["--analyte", "nope"]])
def test_bad_options_exit_2(tmp_path, argv, capsys):
    assert cli.main(["nca", str(STUDY), "--out", str(tmp_path), *argv]) == 2
    assert "error" in capsys.readouterr().err


def _study_with_pknca_profiles(tmp_path):
    """mini_study with the transgene profiles of two PKNCA reference cases (tests/data/pknca):
    S01 = H_zigzag (PKNCA excludes its λz: adj.r.squared < 0.9), S02 = H_exact (kept)."""
    import shutil

    from nca_helpers import PKNCA_DIR

    study = tmp_path / "study"
    shutil.copytree(STUDY, study)
    prof = pd.read_csv(PKNCA_DIR / "profiles.csv")
    obs = pd.read_csv(study / "observations.csv", dtype=str)
    rows = [obs[obs["analyte"] != "transgene"]]
    for subject, case in (("S01", "H_zigzag"), ("S02", "H_exact")):
        p = prof[(prof["subject"] == case) & (prof["time"] > 0)]
        rows.append(pd.DataFrame({"subject": subject, "time": p["time"].map("{:g}".format),
                                  "analyte": "transgene", "unit": "copies/ug", "lloq": "", "blq": "",
                                  "value": [("BLQ" if c == 0 else f"{c:.17g}") for c in p["conc"]]}))
    pd.concat(rows, ignore_index=True).to_csv(study / "observations.csv", index=False)
    return study


@pytest.mark.filterwarnings("ignore::ctkinetics.errors.DataWarning")
def test_quality_exclusions_reach_every_csv_and_the_summary(tmp_path, capsys):
    study = _study_with_pknca_profiles(tmp_path)
    assert cli.main(["nca", str(study), "--out", str(tmp_path / "out"), "--analyte", "transgene"]) == 0
    printed = capsys.readouterr().out
    assert "transgene: excluded for 1 of 2 participant(s)" in printed
    assert "R2ADJ < 0.9 (poor λz regression)" in printed
    out = tmp_path / "out"
    long = pd.read_csv(out / "nca.csv", keep_default_na=False)
    lamz = long[long["parameter"] == "LAMZ"].set_index("subject")
    # PKNCA's λz of H_zigzag is 0.01112213 with adj.r.squared 0.324 (tests/data/pknca/pknca_long.csv)
    assert float(lamz.loc["S01", "value"]) == pytest.approx(0.0111221256, rel=1e-8)
    assert lamz.loc["S01", "exclude"] == "R2ADJ < 0.9 (poor λz regression)"
    assert lamz.loc["S02", "exclude"] == ""
    wide = pd.read_csv(out / "nca_wide.csv", keep_default_na=False).set_index("subject")
    assert wide.loc["S01", "LAMZ"] == "" and float(wide.loc["S02", "LAMZ"]) == pytest.approx(np.log(2) / 7)
    assert "LAMZHL" in wide.loc["S01", "exclude"] and "R2ADJ < 0.9" in wide.loc["S01", "exclude"]
    ex = pd.read_csv(out / "nca_exclusions.csv", keep_default_na=False)
    values = ex[ex["record"] == "value"]
    assert list(values["subject"]) == ["S01"] and "AUCIFO" in values["parameter"].iloc[0]
    summary = pd.read_csv(out / "nca_summary.csv", keep_default_na=False)
    lz = summary[summary["parameter"] == "LAMZ"]
    assert (lz["n"].astype(int) + lz["n_missing"].astype(int) == 1).all()  # one per dose level
    assert set(lz["display"]) == {"NC", "0.099"}  # S01's excluded λz is not summarised


@pytest.mark.filterwarnings("ignore::ctkinetics.errors.DataWarning")
def test_quality_rules_off_and_pknca_window_rule(tmp_path, capsys):
    study = _study_with_pknca_profiles(tmp_path)
    argv = ["nca", str(study), "--out", str(tmp_path / "out"), "--analyte", "transgene",
            "--min-adj-r2", "off", "--min-span-ratio", "OFF", "--max-aucinf-pext", "off",
            "--lambda-z-rule", "pknca"]
    assert cli.main(argv) == 0
    assert "every λz-dependent value passed" in capsys.readouterr().out
    long = pd.read_csv(tmp_path / "out" / "nca.csv", keep_default_na=False)
    finite = long[long["value"] != ""]
    assert (finite["exclude"] == "").all()
    assert "auto pknca" in long["method"].iloc[0] and "quality=none" in long["method"].iloc[0]


@pytest.mark.parametrize("argv", [["--min-adj-r2", "high"], ["--max-aucinf-pext", "-3"],
                                  ["--min-span-ratio", "0"]])
def test_bad_quality_options_exit_2(tmp_path, argv, capsys):
    assert cli.main(["nca", str(STUDY), "--out", str(tmp_path), *argv]) == 2
    assert "error" in capsys.readouterr().err


def test_unknown_lambda_z_rule_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["nca", str(STUDY), "--out", str(tmp_path), "--lambda-z-rule", "best"])
    assert exc.value.code == 2 and "best-falling" in capsys.readouterr().err
