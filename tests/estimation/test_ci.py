"""CI methods (small-sample Wald-t, ML Wald) against R numbers, units of derived times, and
the interval arithmetic at the float range's edge."""
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ctkinetics.estimation import fit
from ctkinetics.estimation.subject_result import switch_at_sample as _switch_at_sample
from ctkinetics.estimation.problem import AnalyteData, ParamSpec
from ctkinetics.estimation.uncertainty import small_sample_quantile, wald
from est_fakes import OneCptOral, theoph

THEOPH = Path(__file__).parents[1] / "data" / "theoph.csv"
# R: optimHess SEs of (lKe, lKa, lCl) for Theoph subject 1 (see test_fit) and qt(0.975, 8)
SE_R = {"ke": 0.14427049, "ka": 0.12939803, "CL": 0.10898874}
QT_8 = 2.306004135


@pytest.fixture(scope="module")
def theo():
    return theoph(THEOPH)


def test_wald_t_is_the_nls_small_sample_interval(theo):
    res = fit(theo, OneCptOral(), subjects=["1"], error="additive", starts=1, derived=False)
    f = res["1"]
    assert f.ci_method == "wald-t" and f.ci_df == 8          # n = 11 samples, p = 3
    p = f.parameters.set_index("parameter")
    mult = QT_8 * np.sqrt(11 / 8)
    for k, se in SE_R.items():
        th = p.loc[k, "estimate_transformed"]
        assert p.loc[k, "ci_method"] == "wald-t"
        assert np.log(p.loc[k, "ci_low"]) == pytest.approx(th - mult * se, abs=2e-3 * mult * se)
        assert np.log(p.loc[k, "ci_high"]) == pytest.approx(th + mult * se, abs=2e-3 * mult * se)
        # the SE itself stays the ML Hessian's (no reduced chi-square rescaling)
        assert p.loc[k, "se_transformed"] == pytest.approx(se, rel=2e-3)
    # the residual SD keeps the ML Wald interval
    assert p.loc["sigma_conc", "ci_method"] == "wald"
    assert res.fits_frame().loc[0, "ci_method"] == "wald-t"


def test_wald_is_the_ml_interval(theo):
    res = fit(theo, OneCptOral(), subjects=["1"], error="additive", starts=1, derived=False,
              ci="wald")
    p = res["1"].parameters.set_index("parameter")
    for k, se in SE_R.items():
        th = p.loc[k, "estimate_transformed"]
        assert p.loc[k, "ci_method"] == "wald"
        assert np.log(p.loc[k, "ci_high"]) == pytest.approx(th + 1.959964 * se,
                                                            abs=2e-3 * 1.96 * se)


def test_small_sample_quantile_and_unknown_method(theo):
    m, df = small_sample_quantile(24, 6)
    assert df == 18 and m == pytest.approx(2.100922 * np.sqrt(24 / 18), rel=1e-6)  # R qt
    assert small_sample_quantile(5, 5) == (pytest.approx(1.959964, rel=1e-6), np.inf)
    with pytest.raises(Exception, match="CI method"):
        fit(theo, OneCptOral(), subjects=["1"], error="additive", ci="bootstrap")


def test_back_transformed_bounds_overflow_to_inf_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est, se, rse, lo, hi = wald(np.array([700.0, 1.0]), np.array([50.0, 0.1]),
                                    np.array([True, False]))
    assert hi[0] == np.inf and np.isfinite(lo[0]) and lo[1] == pytest.approx(1 - 0.196, 1e-5)


def test_switch_time_on_a_sample_is_flagged():
    model = SimpleNamespace(switch_names=("Tmax",))
    specs = (ParamSpec("Cmax", "model", 1, 1, 10, True, model_name="Cmax"),
             ParamSpec("Tmax", "model", 9, 1, 40, True, model_name="Tmax"))
    subj = SimpleNamespace(analytes=(AnalyteData("q", np.array([1.0, 7.0, 14.0]), None, None),))
    assert _switch_at_sample(model, specs, np.array([7.0, 7.0]), subj) == [1]
    assert _switch_at_sample(model, specs, np.array([7.0, 7.5]), subj) == []
    assert _switch_at_sample(SimpleNamespace(), specs, np.array([7.0, 7.0]), subj) == []
