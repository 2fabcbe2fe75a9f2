"""Number formatting (ctkinetics.formatting) against hand-written expectations.

Each expected string was written by hand from the rule (3 significant digits, plain decimals
for 1e-3 <= |x| < 1e5, powers of ten outside, trailing zeros dropped as R's signif prints
them; doses with one decimal in the mantissa; probabilities to 3 decimals).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ctkinetics import formatting as F


@pytest.mark.parametrize("value, html, plain", [
    (1486.3, "1490", "1490"),
    (14863.2, "14900", "14900"),          # not 1.486e+04
    (0.016129032258064516, "0.0161", "0.0161"),
    (48.0, "48", "48"),
    (1.50, "1.5", "1.5"),
    (123.456, "123", "123"),
    (0.1234, "0.123", "0.123"),
    (9.996, "10", "10"),                  # the carry: 3 significant digits of 9.996
    (99996.0, "1×10⁵", "1e5"),
    (5217962.020854554, "5.22×10⁶", "5.22e6"),
    (2.0517509844799945e-33, "2.05×10⁻³³", "2.05e-33"),   # not 2.052e-33
    (3.0e8, "3×10⁸", "3e8"),              # not 3e+08
    (-2.5e-7, "−2.5×10⁻⁷", "-2.5e-7"),
    (-0.5, "−0.5", "-0.5"),
    (0.0, "0", "0"),
    (math.inf, "∞", "∞"),
    (-math.inf, "−∞", "-∞"),
    (math.nan, "", ""),
    (None, "", ""),
])
def test_number_three_significant_digits(value, html, plain):
    assert F.number(value) == html
    assert F.number(value, html=False) == plain


def test_no_python_exponent_form_anywhere():
    for v in np.geomspace(1e-40, 1e40, 161):
        for s in (F.number(v), F.number(v, html=False), F.number(-v, html=False), F.dose(v, html=False)):
            assert "e+" not in s and "e-0" not in s and "E" not in s, s


@pytest.mark.parametrize("value, html, plain", [
    (3.0e8, "3.0×10⁸", "3.0e8"),
    (4.5e8, "4.5×10⁸", "4.5e8"),
    (6.0e8, "6.0×10⁸", "6.0e8"),
    (3.25e8, "3.25×10⁸", "3.25e8"),
    (3.333e8, "3.33×10⁸", "3.33e8"),
    (1.0e9, "1.0×10⁹", "1.0e9"),
    (9.999e8, "1.0×10⁹", "1.0e9"),
    (250.0, "250", "250"),
    (math.nan, "", ""),
])
def test_dose(value, html, plain):
    assert F.dose(value) == html
    assert F.dose(value, html=False) == plain


@pytest.mark.parametrize("value, text", [
    (0.016129032258064516, "0.016"), (2.0517509844799945e-33, "<0.001"), (0.9999, ">0.999"),
    (0.5265853489737866, "0.527"), (0.0, "0"), (1.0, "1"), (math.nan, ""),
])
def test_probability(value, text):
    assert F.probability(value) == text


def test_interval_not_estimable():
    assert F.interval(3e-130, 2.6e133) == F.NOT_ESTIMABLE          # foldx of issue 14
    assert F.interval(0.0556, 5217962.0) == F.NOT_ESTIMABLE         # 9.4e7-fold
    assert F.interval(1.0, math.inf) == F.NOT_ESTIMABLE
    assert F.interval(math.nan, 2.0) == F.NOT_ESTIMABLE
    assert F.interval(1842.3, 6626.3, html=False) == "[1840, 6630]"
    assert F.interval(-1.86, 4.08) == "[−1.86, 4.08]"              # a slope CI crossing 0
    # exactly a million-fold is still shown; just beyond it is not
    assert F.interval(1.0, 1.0e6, html=False) == "[1, 1e6]"
    assert F.interval(1.0, 1.0000001e6) == F.NOT_ESTIMABLE


def test_geometric_mean_with_cv():
    assert F.geo_mean_cv(14863.2, 94.97) == "14900 (95 %)"         # not 1.486e+04 (94.97%)
    assert F.geo_mean_cv(0.0032, 7.1e12) == "0.0032 (CV not estimable)"   # 7.1e10 %
    assert F.geo_mean_cv(2.5, 30.0, estimable=False) == "2.5 (CV not estimable)"
    assert F.geo_mean_cv(2.5, math.nan) == "2.5"
    assert F.geo_mean_cv(math.nan, 30.0) == ""
    assert F.median_range(7.0, 7.0, 10.0) == "7 [7, 10]"


def test_cell_types():
    assert F.cell(True) == "yes" and F.cell(np.bool_(False)) == "no"
    assert F.cell(np.int64(123456)) == "123456"     # integers are counts: never rounded
    assert F.cell(pd.NA) == "" and F.cell(None) == "" and F.cell(np.float64("nan")) == ""
    assert F.cell("<b>x</b>") == "<b>x</b>"        # text unchanged (escaped by the caller)
    assert F.cell(3.0e8, kind="dose") == "3.0×10⁸"
    assert F.cell(2.05e-33, kind="probability") == "<0.001"
    assert F.cell(1486.3) == "1490"


def test_objective_function_values_keep_one_decimal():
    # −2LL 1720.3449 and 1718.9 differ by 1.4: 3 significant digits (1720, 1720) would hide it
    assert F.objective(1720.3449) == "1720.3" and F.objective(1718.9) == "1718.9"
    assert F.objective(-12.04) == "−12.0" and F.objective(-12.04, html=False) == "-12.0"
    assert F.cell(164.2345, kind="objective") == "164.2"
    assert F.objective(math.nan) == ""
