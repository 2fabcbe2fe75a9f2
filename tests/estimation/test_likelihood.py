"""The −2LL terms against scipy.stats densities and distribution functions, by hand."""
import numpy as np
import pytest
from scipy import stats

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.likelihood import (
    CENSORED, EXCLUDED, QUANTIFIED, BLQ_METHODS, ERROR_MODELS, check_compatible,
    get_blq_method, get_error_model, m2ll_terms, pseudo_residuals, weighted_residuals,
)

Y = np.array([120.0, 35.0, 20.0, 8.0])      # last two: censored limits
F = np.array([100.0, 40.0, 30.0, 5.0])
MODE = np.array([QUANTIFIED, QUANTIFIED, CENSORED, CENSORED])


def test_proportional_terms_are_lognormal_density_and_cdf():
    e = ERROR_MODELS["proportional"]
    s = 0.4
    t = m2ll_terms(e, Y, F, np.full(4, s), MODE)
    # quantified: −2 ln of the log-normal density of y (with its 1/y Jacobian)
    for i in (0, 1):
        assert t[i] == pytest.approx(-2 * stats.lognorm.logpdf(Y[i], s, scale=F[i]), rel=1e-12)
    # M3: −2 ln P(Y < L) with ln Y ~ N(ln f, s²)
    for i in (2, 3):
        assert t[i] == pytest.approx(-2 * stats.lognorm.logcdf(Y[i], s, scale=F[i]), rel=1e-12)


def test_additive_and_combined_terms_are_normal_density_and_cdf():
    add = ERROR_MODELS["additive"]
    t = m2ll_terms(add, Y, F, np.full(4, 7.0), MODE)
    assert t[0] == pytest.approx(-2 * stats.norm.logpdf(120, 100, 7.0), rel=1e-12)
    assert t[2] == pytest.approx(-2 * stats.norm.logcdf(20, 30, 7.0), rel=1e-12)
    comb = ERROR_MODELS["combined"]
    sd = comb.sd(F, (0.2, 3.0))
    assert sd[1] == pytest.approx(np.sqrt(3.0**2 + (0.2 * 40) ** 2))
    t = m2ll_terms(comb, Y, F, sd, MODE)
    assert t[1] == pytest.approx(-2 * stats.norm.logpdf(35, 40, sd[1]), rel=1e-12)
    assert t[3] == pytest.approx(-2 * stats.norm.logcdf(8, 5, sd[3]), rel=1e-12)


def test_censored_term_stays_finite_far_below_the_limit():
    e = ERROR_MODELS["proportional"]
    t = m2ll_terms(e, np.array([1.0]), np.array([1e12]), np.array([0.3]), np.array([CENSORED]))
    z = (0 - np.log(1e12)) / 0.3
    assert np.isfinite(t[0]) and t[0] == pytest.approx(-2 * stats.norm.logcdf(z), rel=1e-10)


def test_pseudo_residuals_sum_to_m2ll_up_to_a_constant():
    e = ERROR_MODELS["proportional"]
    floor = 2 * np.log(1e-3)
    total = []
    for s in (0.2, 0.5, 1.1):
        for f_scale in (0.5, 1.0, 2.0):
            f = F * f_scale
            r = pseudo_residuals(e, Y, f, np.full(4, s), MODE, floor)
            terms = m2ll_terms(e, Y, f, np.full(4, s), MODE)
            total.append(terms.sum() - (r**2).sum())
    assert np.ptp(total) < 1e-9


def test_iwres_and_probability_blq():
    e = ERROR_MODELS["proportional"]
    iwres, p = weighted_residuals(e, Y, F, np.full(4, 0.5), MODE)
    assert iwres[0] == pytest.approx(np.log(120 / 100) / 0.5)
    assert np.isnan(iwres[2]) and np.isnan(p[0])
    assert p[2] == pytest.approx(stats.norm.cdf(np.log(20 / 30) / 0.5))


def test_blq_methods_label_samples():
    value = np.array([100, np.nan, np.nan, 50, np.nan, np.nan, np.nan])
    blq = np.isnan(value)
    lloq = np.array([10, 10, 12, 10, 20, 20, np.nan])
    y, mode, why = BLQ_METHODS["M1"].prepare(value, lloq, blq)
    assert list(mode) == [1, 0, 0, 1, 0, 0, 0] and all("M1" in w for w in why[blq])
    y, mode, why = BLQ_METHODS["M3"].prepare(value, lloq, blq)
    assert list(mode) == [1, 2, 2, 1, 2, 2, 0]
    assert list(y[[1, 2, 4]]) == [10, 12, 20]           # each sample's own LLOQ
    assert "unknown LLOQ" in why[6]
    y, mode, why = BLQ_METHODS["M5"].prepare(value, lloq, blq)
    assert list(y[[1, 2, 4, 5]]) == [5, 6, 10, 10] and mode[6] == EXCLUDED
    y, mode, why = BLQ_METHODS["M6"].prepare(value, lloq, blq)
    assert list(mode) == [1, 1, 0, 1, 1, 0, 0] and y[1] == 5 and y[4] == 10
    assert "M6" in why[2]
    y, mode, why = BLQ_METHODS["M7"].prepare(value, lloq, blq)
    assert y[1] == 0 and y[4] == 0 and list(mode) == [1, 1, 0, 1, 1, 0, 0]


def test_registries_reject_unknown_names_and_m7_on_log_scale():
    assert get_blq_method("m3").name == "M3"
    with pytest.raises(SettingsError, match="M3"):
        get_blq_method("M4")
    with pytest.raises(SettingsError, match="proportional"):
        get_error_model("exponentialish")
    with pytest.raises(SettingsError, match="M7"):
        check_compatible(get_error_model("proportional"), get_blq_method("M7"))
