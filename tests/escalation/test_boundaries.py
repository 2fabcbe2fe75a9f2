"""BOIN boundaries against the published tables and an independent computation of the formulas."""
from fractions import Fraction
import math

import pytest
from scipy.stats import binom

from ctkinetics.errors import SettingsError
from ctkinetics.escalation import BoinDesign, boundaries


def test_published_table_target_030_cohort_3():
    # Liu & Yuan (2015) / BOIN package get.boundary(target=0.3, ncohort=4, cohortsize=3)
    t = boundaries(0.30, cohort_size=3, n_cohorts=4).to_frame()
    assert t["n"].tolist() == [3, 6, 9, 12]
    assert t["escalate_if_le"].tolist() == [0, 1, 2, 2]
    assert t["deescalate_if_ge"].tolist() == [2, 3, 4, 5]
    assert t["eliminate_if_ge"].tolist() == [3, 4, 5, 7]


def test_lambdas_match_domain_values():
    d = BoinDesign(0.30)
    assert d.lambda_e == pytest.approx(0.2365, abs=5e-5)
    assert d.lambda_d == pytest.approx(0.3585, abs=5e-5)


def _independent_row(target, n):
    """Boundaries for one n computed from scratch: logs of the formulas, exact rational
    comparison of y/n, and elimination through the Beta-binomial identity
    Pr(p > phi | Beta(y+1, n-y+1)) = Pr(Binomial(n+1, phi) <= y)."""
    phi1, phi2 = 0.6 * target, 1.4 * target
    le = math.log((1 - phi1) / (1 - target)) / math.log(target * (1 - phi1) / (phi1 * (1 - target)))
    ld = math.log((1 - target) / (1 - phi2)) / math.log(phi2 * (1 - target) / (target * (1 - phi2)))
    esc = max(y for y in range(n + 1) if Fraction(y, n) <= Fraction(le))
    deesc = min(y for y in range(n + 2) if y > n or Fraction(y, n) > Fraction(ld))
    elim = None
    if n >= 3:
        hits = [y for y in range(n + 1) if binom.cdf(y, n + 1, target) > 0.95]
        elim = hits[0] if hits else None
    if elim is not None:
        deesc = min(deesc, elim)
    return esc, deesc, elim


@pytest.mark.parametrize("target", [0.15, 0.20, 0.25, 0.30, 0.33, 0.40])
@pytest.mark.parametrize("cohort_size", [1, 2, 3, 4])
def test_tables_against_formulas(target, cohort_size):
    t = boundaries(target, cohort_size=cohort_size, n_cohorts=6).to_frame()
    for row in t.itertuples(index=False):
        esc, deesc, elim = _independent_row(target, int(row.n))
        assert row.escalate_if_le == esc, (target, row.n)
        assert row.deescalate_if_ge == deesc, (target, row.n)
        if elim is None:
            assert row.eliminate_if_ge is None or str(row.eliminate_if_ge) == "<NA>"
        else:
            assert row.eliminate_if_ge == elim


def test_target_025_cohort_1_known_rows():
    # get.boundary(target=0.25, ncohort=12, cohortsize=1): elimination 3/3, 3/4, 3/5, 4/6
    t = boundaries(0.25, cohort_size=1, n_cohorts=6).to_frame()
    assert t["eliminate_if_ge"].tolist()[2:] == [3, 3, 3, 4]


def test_custom_phi_changes_lambdas():
    d = BoinDesign(0.3, phi1=0.2, phi2=0.4)
    le = math.log(0.8 / 0.7) / math.log(0.3 * 0.8 / (0.2 * 0.7))
    assert d.lambda_e == pytest.approx(le, rel=1e-12)


@pytest.mark.parametrize("kw", [dict(target=1.3), dict(target=0.0), dict(target=0.3, phi1=0.35),
                                dict(target=0.3, cohort_size=0), dict(target=0.8)])
def test_bad_settings_raise(kw):
    with pytest.raises(SettingsError):
        boundaries(**kw)
