"""The flag registry (issue 14.4): every flag any fit produces is registered and explained,
every registered flag is produced somewhere, and ``ctk fit``'s summary names the flagged
results (``ctk popfit``'s: tests/population/test_population.py)."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ctkinetics.estimation import fit
from ctkinetics.estimation.flags import FLAGS, SEVERITIES, describe, flag_id, split
from ctkinetics.estimation.likelihood import CENSORED, QUANTIFIED
from ctkinetics.estimation.population import api as pop_api
from ctkinetics.estimation.problem import AnalyteData, ParamSpec
from ctkinetics.estimation.subject_result import _fit_flags, failed_fit, prediction_rows
from ctkinetics.estimation.uncertainty import CIMethod, parameter_flags

COHORT = Path(__file__).parents[2] / "data" / "sample" / "sle_cohort"


def test_every_registered_flag_is_explained():
    for f in FLAGS.values():
        assert f.severity in SEVERITIES and f.scopes
        assert len(f.meaning) > 30 and f.threshold, f.id
    # the numbers the code uses live in the registry
    assert FLAGS["rse>50%"].limit == 50 and FLAGS["corr>0.95"].limit == 0.95
    from scipy.stats import chi2
    assert FLAGS["second_optimum"].limit == pytest.approx(chi2.ppf(0.95, 1), rel=1e-12)
    assert describe("corr>0.95:CL,ke") == FLAGS["corr>0.95"].meaning


def _produced_by_every_branch():
    """Every flag each producer can raise, each producer driven through all its branches."""
    out = set()
    names = ["a", "b", "c"]
    corr = np.array([[1, 0.99, 0], [0.99, 1, 0], [0, 0, 1.0]])
    for f in parameter_flags(names, np.array([80.0, 10, 10]), corr, np.array([1, 0, 0], bool),
                             True, False):
        out |= {flag_id(x) for x in split(f)}
    preds = {"flags": np.array(["exact_fit", ""], dtype=object)}
    params = {"rse_pct": np.array([80.0]), "flags": np.array(["not_estimable;corr>0.95:b"])}
    unc = (np.array([True]), None, True, None, None)
    out |= set(_fit_flags(False, unc, params, [0], 10.0, 11.0, preds))
    subj = SimpleNamespace(subject="S", n_obs=2, n_blq=0, columns={
        "subject": np.array(["S", "S"], dtype=object), "analyte": np.array(["q", "q"], object),
        "time": np.array([1.0, 2.0]), "observed": np.array([5.0, 7.0]),
        "blq": np.zeros(2, bool), "lloq": np.full(2, np.nan),
        "status": np.array(["quantified", "quantified"], object),
        "reason": np.array(["", ""], object)},
        analytes=(AnalyteData("q", np.array([1.0, 2.0]), np.array([5.0, 7.0]),
                              np.array([QUANTIFIED, QUANTIFIED]), np.array([0, 1])),))
    rows = prediction_rows(subj, [(np.array([5.0, 6.0]), np.array([0.0, 0.5]),
                                   np.array([np.nan, np.nan]))])
    assert list(rows["flags"]) == ["exact_fit", ""]
    out |= {f for f in rows["flags"] if f}
    layout = SimpleNamespace(specs=(ParamSpec("a", "model", 1, 0.1, 10, True),))
    opts = dict(model_name="m", blq="M3", error="proportional", starts=1, ci=CIMethod())
    out |= set(failed_fit(subj, layout, opts, "failed: test").flags)
    import pandas as pd
    table = pd.DataFrame({"rse_pct": [80.0], "shrinkage_pct": [95.0]})
    ebe = SimpleNamespace(converged=np.array([True, False]))
    out |= set(pop_api._flags(False, True, np.array([np.nan]), ["omega_ke"], table, ebe, False))
    return out


def test_every_flag_produced_anywhere_is_registered_and_every_registered_one_is_produced():
    produced = _produced_by_every_branch()
    assert produced <= set(FLAGS), produced - set(FLAGS)
    # no registry entry of the individual fits that their code does not raise
    # (at_sample_time comes from the switch-time check, tested in test_ci)
    individual = {f.id for f in FLAGS.values() if set(f.scopes) & {"subject", "parameter",
                                                                    "sample"}}
    assert individual - produced <= {"at_sample_time"}
    population = {"failed", "not_converged", "covariance_failed", "at_bound", "rse>50%",
                  "shrinkage>30%", "ebe_not_converged"}
    assert population <= produced


@pytest.mark.skipif(not COHORT.exists(), reason="sample cohort not present")
def test_flags_of_the_sample_cohort_fits_are_registered_and_explained_in_the_report():
    from ctkinetics.data import load_study
    from ctkinetics.report.sections import FLAG_MEANINGS

    res = fit(load_study(COHORT), "stein2019", starts=2)
    seen = set()
    for cell in list(res.fits_frame()["flags"]) + list(res.to_frame()["flags"]) + list(
            res.predictions_frame()["flags"]):
        seen |= {flag_id(f) for f in split(cell)}
    assert {"at_bound", "not_estimable", "exact_fit"} <= seen
    for f in seen:
        assert f in FLAGS and f in FLAG_MEANINGS and FLAGS[f].meaning in FLAG_MEANINGS[f]
    # a parameter not estimable shows no interval (no [3e-130, 2.6e133])
    t = res.to_frame()
    ne = t[t["flags"].str.contains("not_estimable")]
    assert len(ne) and ne[["se", "rse_pct", "ci_low", "ci_high"]].isna().all().all()
    assert (ne["ci_method"] == "none").all()
    ok = t[~t["flags"].str.contains("not_estimable") & t["ci_low"].notna()]
    assert (ok["ci_high"] / ok["ci_low"]).max() <= 1e6


@pytest.mark.skipif(not COHORT.exists(), reason="sample cohort not present")
def test_ctk_fit_summary_names_the_flagged_fits(tmp_path, capsys):
    import pandas as pd

    from ctkinetics.cli.main import main

    code = main(["fit", str(COHORT), "--model", "stein2019", "--out", str(tmp_path / "f"),
                 "--starts", "1"])
    out = capsys.readouterr().out
    fits = pd.read_csv(tmp_path / "f" / "fits.csv", keep_default_na=False)
    flagged = fits[fits["flags"] != ""]
    assert code == 0 and len(flagged) > 5
    assert "12/12 subjects fitted" in out and f"{len(flagged)} flagged" in out
    for fid in {flag_id(f) for c in flagged["flags"] for f in split(c)}:
        line = next(x for x in out.splitlines() if x.strip().startswith(fid + " ("))
        carriers = flagged[flagged["flags"].str.contains(fid, regex=False)]["subject"]
        assert f"({len(carriers)} subjects: {carriers.iloc[0]}" in line
        assert FLAGS[fid].meaning.split(":")[0] in line
