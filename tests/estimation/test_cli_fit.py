"""ctk fit on the sample SLE cohort: files, columns, and consistency with the library."""
from pathlib import Path

import pandas as pd
import pytest

from ctkinetics.cli.commands import fit as fit_cmd
from ctkinetics.cli.main import main
from ctkinetics.estimation import BLQ_METHODS, ERROR_MODELS

COHORT = Path(__file__).parents[2] / "data" / "sample" / "sle_cohort"


def test_cli_choices_come_from_the_registries():
    from ctkinetics.estimation.optimize import ENGINES
    from ctkinetics.estimation.uncertainty import CI_METHODS

    from ctkinetics.cli.commands import _study

    assert set(_study.BLQ_CHOICES) == set(BLQ_METHODS)
    assert set(_study.ERROR_CHOICES) == set(ERROR_MODELS)
    assert set(fit_cmd.CI_CHOICES) == set(CI_METHODS)
    assert set(fit_cmd.ENGINE_CHOICES) == {"auto", *ENGINES}


@pytest.mark.skipif(not COHORT.exists(), reason="sample cohort not present")
def test_ctk_fit_writes_the_tables(tmp_path, capsys):
    code = main(["fit", str(COHORT), "--model", "stein2019", "--out", str(tmp_path),
                 "--subjects", "SLE-101,SLE-201", "--starts", "1", "--blq", "m1"])
    assert code == 0
    fits = pd.read_csv(tmp_path / "fits.csv")
    assert list(fits.columns[:6]) == ["subject", "model", "blq_method", "error_model",
                                      "success", "n_obs"]
    assert set(fits.blq_method) == {"M1"} and fits.success.all()
    params = pd.read_csv(tmp_path / "parameters.csv")
    for col in ["subject", "parameter", "estimate", "se", "rse_pct", "ci_low", "ci_high",
                "unit", "flags"]:
        assert col in params.columns
    pred = pd.read_csv(tmp_path / "predictions.csv")
    # every quantified sample has a prediction; the pre-infusion ones are excluded, listed
    q = pred[pred.status == "quantified"]
    assert q.ipred.notna().all() and q.iwres.notna().all()
    ex = pd.read_csv(tmp_path / "excluded.csv")
    assert ex.reason.str.contains("pre-infusion").any()
    assert ex.reason.str.contains("M1").any() or not pred.blq[pred.time > 0].any()
    assert "fitting [" in capsys.readouterr().err


def test_ctk_fit_rejects_m7_with_log_error(tmp_path, capsys):
    code = main(["fit", str(COHORT), "--model", "stein2019", "--out", str(tmp_path),
                 "--blq", "M7"])
    assert code == 2 and "M7" in capsys.readouterr().err
