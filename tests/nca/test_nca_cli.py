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
    assert tuple(nca_cmd.AUC_METHOD_CHOICES) == tuple(AUC_METHODS)
    assert tuple(nca_cmd.AUC_TYPE_CHOICES) == tuple(AUC_TYPES)


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
