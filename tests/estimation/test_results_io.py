"""Results written by the CLI read back into equal objects (issue 18)."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctkinetics.estimation import FitResult, fit
from ctkinetics.estimation.results_io import REPORT_FILE_NAMES, fit_tables, read_fit, write_fit
from est_fakes import OneCptOral, theoph

COHORT = Path(__file__).parents[2] / "data" / "sample" / "sle_cohort"
THEOPH = Path(__file__).parents[1] / "data" / "theoph.csv"


@pytest.mark.skipif(not COHORT.exists(), reason="sample cohort not present")
def test_ctk_fit_output_reads_back_into_an_equal_result(tmp_path, capsys):
    from ctkinetics.cli.main import main
    from ctkinetics.data import load_study

    out = tmp_path / "fit"
    args = ["--starts", "2", "--seed", "3", "--subjects", "SLE-101,SLE-203,SLE-303"]
    assert main(["fit", str(COHORT), "--model", "stein2019", "--out", str(out), *args]) == 0
    back = FitResult.read(out)
    same = fit(load_study(COHORT), "stein2019", starts=2, seed=3,
               subjects=["SLE-101", "SLE-203", "SLE-303"])
    assert back == same
    # and equality is not vacuous: one estimate changed is a different result
    f = same.fits[0]
    cols = dict(f.param_columns, estimate=f.param_columns["estimate"] * (1 + 1e-12))
    other = replace(same, fits=(replace(f, param_columns=cols),) + same.fits[1:])
    assert other != same
    meta = json.loads((out / "fit.json").read_text())
    assert meta["study"] == str(COHORT) and meta["model"] == "stein2019"
    # the tables the CLI writes are the result's own, and the report's names map them
    names = {p.name for p in out.iterdir()}
    assert set(fit_tables(same)) | {"fit.json", "manifest.json"} == names
    assert set(REPORT_FILE_NAMES) <= names


def test_a_result_with_a_failed_fit_and_profile_cis_reads_back(tmp_path):
    res = fit(theoph(THEOPH), OneCptOral(), subjects=["1", "2"], error="additive", starts=2,
              ci="profile")
    failed = replace(res.fits[1], success=False, failed=True, message="failed: test", cov=None,
                     derived_rows=None, start_history=())
    res = replace(res, fits=(res.fits[0], failed))
    write_fit(res, tmp_path / "out")
    back = read_fit(tmp_path / "out")
    assert back == res
    assert back.failed == ["2"] and back["1"].parameters["ci_method"].eq("profile").any()
    assert np.array_equal(back["1"].covariance.to_numpy(), res["1"].covariance.to_numpy(),
                          equal_nan=True)
    pd.testing.assert_frame_equal(back.summary(), res.summary())
