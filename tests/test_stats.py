"""ctkinetics.stats against PKNCA's business rules computed in R (tests/data/pknca/).

business_rules.csv holds PKNCA 0.12.1's business.geomean / geocv / mean / sd / cv / median /
min / max of small vectors (zeros and NAs included), written by business_rules.R in the same
folder; quantiles_type7.csv holds R's quantile(type = 7).
"""
import doctest
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctkinetics import stats

PKNCA = Path(__file__).resolve().parent / "data" / "pknca"
REFERENCE = pd.read_csv(PKNCA / "business_rules.csv")


def _values(text):
    return np.array([np.nan if v.strip() == "NA" else float(v) for v in text.split(";")])


@pytest.mark.parametrize("case", REFERENCE["case"])
def test_summary_statistics_match_pknca_business_rules(case):
    ref = REFERENCE.set_index("case").loc[case]
    got = stats.summary_statistics(_values(ref["values"]))
    for col in ("geo_mean", "geo_cv_pct", "mean", "sd", "cv_pct", "median", "min", "max"):
        if np.isnan(ref[col]):
            assert np.isnan(got[col]), (case, col)
        else:
            assert got[col] == pytest.approx(ref[col], rel=1e-12), (case, col)


def test_grouped_statistics_equal_the_single_group_function():
    groups = [_values(v) for v in REFERENCE["values"]]
    frame = pd.DataFrame({"case": np.repeat(REFERENCE["case"], [g.size for g in groups]),
                          "x": np.concatenate(groups)})
    table = stats.grouped_statistics(frame, ["case"], "x").set_index("case")
    assert list(table.index) == list(REFERENCE["case"])
    for case, g in zip(REFERENCE["case"], groups):
        one = stats.summary_statistics(g)
        np.testing.assert_allclose(table.loc[case, list(stats.STATISTICS)].to_numpy(float),
                                   [one[k] for k in stats.STATISTICS], rtol=1e-14)


def test_quantiles_are_r_type_7():
    ref = pd.read_csv(PKNCA / "quantiles_type7.csv")
    got = stats.quantile([3.1, 7.4, 0.52, 12.9, 5.5, np.nan], ref["q"].to_numpy())
    np.testing.assert_allclose(got, ref["value"], rtol=1e-12)


def test_geometric_cv_of_a_lognormal_sample_matches_its_omega():
    # a log-normal with SD of ln x = 0.5 has CV = sqrt(exp(0.25) − 1) (closed form)
    x = np.exp(np.random.default_rng(1).normal(0.0, 0.5, 200_000))
    cv = stats.summary_statistics(x)["geo_cv_pct"]
    assert cv == pytest.approx(100 * np.sqrt(np.exp(0.25) - 1), rel=0.01)


def test_max_missing_is_a_choice():
    x = [10.0, np.nan, np.nan, np.nan, 40.0]
    assert np.isnan(stats.summary_statistics(x)["geo_mean"])
    assert stats.summary_statistics(x, max_missing=0.75)["geo_mean"] == pytest.approx(20.0)


def test_docstring_examples_run():
    assert doctest.testmod(stats).failed == 0


def test_layer_zero_imports_nothing_from_ctkinetics():
    import ast

    tree = ast.parse(Path(stats.__file__).read_text(encoding="utf-8"))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in names if m.startswith("ctkinetics")]


def test_t_quantile_against_scipy_and_printed_tables():
    from scipy import stats as sps

    for df in [*range(1, 41), 60, 120, 299, 300, 301, 1000, 10_000, 1_000_000]:
        for p in (1e-6, 0.05, 0.6, 0.9, 0.95, 0.975, 0.995, 1 - 1e-6):
            assert stats.t_quantile(p, df) == pytest.approx(sps.t.ppf(p, df), rel=1e-9), (p, df)
    # Student t tables (e.g. Abramowitz & Stegun table 26.10), 6 decimals
    for p, df, want in ((0.95, 2, 2.919986), (0.95, 10, 1.812461), (0.975, 1, 12.706205),
                        (0.975, 30, 2.042272), (0.995, 5, 4.032143)):
        assert stats.t_quantile(p, df) == pytest.approx(want, abs=5e-7)
    assert np.isnan(stats.t_quantile(0.95, 0)) and np.isnan(stats.t_quantile(1.0, 5))


@pytest.mark.parametrize("seed", range(3))
def test_group_codes_number_groups_as_pandas_groupby_does(seed):
    """group_codes against pandas' own grouping (ngroup with sort=False, dropna=False) and
    first_rows against drop_duplicates, on keys with missing values, 0.0/-0.0 and text."""
    from ctkinetics.stats import first_rows, group_codes

    rng = np.random.default_rng(seed)
    n = 500
    d = pd.DataFrame({
        "s": pd.array(rng.choice(["a", "b", "c", None], n), dtype="str"),
        "o": rng.choice(np.array(["x", "y", None], dtype=object), n),
        "f": rng.choice([0.0, -0.0, 28.0, np.inf, np.nan], n),
        "i": rng.integers(0, 3, n),
    })
    for keys in (["s"], ["f"], ["s", "f"], ["o", "i", "f", "s"]):
        expected = d.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
        codes = group_codes(d, keys)
        assert np.array_equal(codes, expected)
        dedup = d[keys].drop_duplicates()
        assert np.array_equal(d.index[first_rows(codes)], dedup.index)


def test_weighted_quantile_against_numpy_hazen_and_by_hand():
    from ctkinetics.stats import weighted_quantile

    rng = np.random.default_rng(3)
    x = rng.normal(size=37)
    q = [0.0, 0.025, 0.3, 0.5, 0.975, 1.0]
    # equal weights: Hazen's plotting positions, numpy's method "hazen" (R type 5)
    np.testing.assert_allclose(weighted_quantile(x, np.full(37, 2.5), q),
                               np.quantile(x, q, method="hazen"), rtol=1e-12)
    # by hand: values 1, 2, 3 with weights 1, 1, 2 sit at positions 1/8, 3/8, 3/4
    assert weighted_quantile([3.0, 1.0, 2.0], [2, 1, 1], 0.5) == pytest.approx(2 + 1 / 3)
    assert weighted_quantile([3.0, 1.0, 2.0], [2, 1, 1], 0.9) == 3.0
    # zero, NaN and infinite weights or values are left out; nothing left -> NaN
    assert weighted_quantile([1.0, 5.0, np.nan, 9.0], [1, 1, 1, 0], 0.5) == pytest.approx(3.0)
    assert np.isnan(weighted_quantile([1.0, 2.0], [0, 0], 0.5))
    assert np.all(np.isnan(weighted_quantile([], [], [0.1, 0.9])))
