"""The rule that says which population interval to read (CLI and report share it): each
branch of ctkinetics.estimation.interval_choice on results built by hand."""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from ctkinetics.estimation.interval_choice import interval_to_read


def _sir(flags, ess=112.0, samples=2000, resamples=1000):
    it = pd.DataFrame([dict(effective_sample_size=900.0, samples=1000, resamples=500),
                       dict(effective_sample_size=ess, samples=samples, resamples=resamples)])
    return SimpleNamespace(flags=list(flags), iterations=it)


def test_nothing_to_choose_without_sir_or_with_a_settled_sir():
    boot = SimpleNamespace(flags=[])
    assert interval_to_read(boot, None) is None
    assert interval_to_read(None, None) is None
    assert interval_to_read(boot, _sir([])) is None
    assert interval_to_read(None, _sir([])) is None


def test_an_unsettled_sir_defers_to_an_unflagged_bootstrap_and_says_why():
    text = interval_to_read(SimpleNamespace(flags=[]), _sir(["sir_low_ess"], ess=112.4))
    assert text.startswith("Read the bootstrap intervals")
    # the last iteration's figures, not the first's
    assert "effective 112 of its 2000 proposals for 1000 resamples (sir_low_ess)" in text
    text = interval_to_read(SimpleNamespace(flags=[]), _sir(["sir_dofv_above_chi2"]))
    assert text.startswith("Read the bootstrap intervals") and "sir_dofv_above_chi2" in text


def test_without_a_bootstrap_the_advice_is_to_run_one():
    text = interval_to_read(None, _sir(["sir_low_ess"]))
    assert "run the bootstrap" in text and "--bootstrap 200" in text
    assert not text.startswith("Read the bootstrap")


def test_a_flagged_bootstrap_is_not_recommended():
    text = interval_to_read(SimpleNamespace(flags=["replicates_failed"]), _sir(["sir_low_ess"]))
    assert "read both as indicative only" in text and "replicates_failed" in text
    assert "Read the bootstrap intervals" not in text


def test_a_lower_objective_than_the_estimates_says_refit_first():
    text = interval_to_read(SimpleNamespace(flags=[]), _sir(["sir_negative_dofv"]))
    assert text.startswith("The population fit did not reach the minimum")
    assert "Read the bootstrap" not in text          # SIR itself was settled
    both = interval_to_read(SimpleNamespace(flags=[]),
                            _sir(["sir_low_ess", "sir_negative_dofv"]))
    assert both.startswith("The population fit did not reach") and "Read the bootstrap" in both
    # the margin, from the lowest proposal SIR keeps (sir.json), and where to refit from
    s = _sir(["sir_negative_dofv"])
    s.settings = {"lowest_proposal": {"dofv": -1.4567, "estimates": {}}}
    text = interval_to_read(SimpleNamespace(flags=[]), s)
    assert "a lower OFV by 1.46;" in text and "ctk popfit --init" in text


def _pop(*flags):
    return SimpleNamespace(diagnostics={"flags": list(flags)})


def test_a_failed_covariance_step_withholds_the_bootstrap_recommendation():
    boot = SimpleNamespace(flags=[])
    text = interval_to_read(boot, None, _pop("covariance_failed", "rse>50%"))
    assert "covariance_failed" in text and "no evidence of precision" in text
    assert "rse>50%" not in text                 # only the flags about the Hessian count
    text = interval_to_read(boot, _sir(["sir_low_ess"]), _pop("covariance_failed"))
    assert "read both as indicative only" in text and "Read the bootstrap" not in text
    # a fit whose covariance step worked: the plain recommendation
    assert interval_to_read(boot, _sir(["sir_low_ess"]), _pop("rse>50%")).startswith(
        "Read the bootstrap intervals")
    assert interval_to_read(boot, None, _pop()) is None
    assert interval_to_read(None, None, _pop("covariance_failed")) is None


def test_parameters_no_replicate_moved_are_named():
    import numpy as np

    from ctkinetics.estimation.bootstrap import replicate_flags, unmoved

    params = pd.DataFrame({"parameter": ["Cmax", "foldx", "shift", "omega2_Cmax"],
                           "estimate": [1500.0, 638.0, -2.0, 0.5],
                           "scale": ["log", "log", "linear", "variance"]})
    rng = np.random.default_rng(1)
    boot = pd.DataFrame({"Cmax": 1500.0 * np.exp(rng.normal(0, 0.1, 20)),
                         "foldx": np.full(20, 638.0),
                         "shift": np.full(20, -2.0), "omega2_Cmax": np.full(20, 0.5)})
    boot.loc[0, "foldx"] = 700.0                   # 19 of 20 unmoved: 0.95 >= 0.9
    boot.loc[:2, "shift"] = -2.1                   # 17 of 20: 0.85 < 0.9
    boot["omega2_Cmax"] *= 1 + 1e-6                # moved, by less than the eye sees
    assert unmoved(params, boot) == ["foldx"]
    # held by a bound in the original fit, not by a flat objective: the bound's flag says so
    assert unmoved(params, boot, at_bound=["foldx"]) == []
    boot["omega2_Cmax"] = 0.5
    assert unmoved(params, boot) == ["foldx", "omega2_Cmax"]
    assert unmoved(params, boot, at_bound=["omega_Cmax"]) == ["foldx"]
    assert replicate_flags({}, ["foldx", "FB"]) == ["replicates_unmoved:foldx,FB"]
    assert replicate_flags({}, []) == []


def test_the_unmoved_parameters_are_left_out_of_the_interval_figure():
    from ctkinetics.estimation.bootstrap import BootstrapResult
    from ctkinetics.plots.uncertainty import _intervals

    iv = pd.DataFrame({"parameter": ["Cmax", "foldx"], "pct_low": [1.0, 5.0],
                       "pct_high": [3.0, 5.0], "bca_low": [float("nan")] * 2,
                       "bca_high": [float("nan")] * 2})
    b = BootstrapResult(iv, pd.DataFrame(), pd.DataFrame(), {}, ["replicates_unmoved:foldx"])
    assert b.unmoved() == ["foldx"]
    assert BootstrapResult(iv, pd.DataFrame(), pd.DataFrame(), {}, []).unmoved() == []
    pop = SimpleNamespace(parameters=pd.DataFrame({"parameter": ["Cmax", "foldx"],
                                                   "ci_low": [0.5, 4.0], "ci_high": [4.0, 6.0]}))
    rows = _intervals(pop, b, None)
    assert rows["bootstrap (percentile)"] == {"Cmax": (1.0, 3.0)}
    assert set(rows["Wald"]) == {"Cmax", "foldx"}
