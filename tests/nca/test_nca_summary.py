"""Per-dose-level summaries and dose proportionality against hand / closed-form numbers."""
import numpy as np
import pandas as pd
import pytest
from nca_helpers import profile

from ctkinetics.nca import nca, power_model
from ctkinetics.nca.summary import summarise


def _long(values, parameter="CMAX", level="L1"):
    return pd.DataFrame({"subject": [f"S{i}" for i in range(len(values))], "dose_level": level,
                         "analyte": "qpcr", "parameter": parameter, "start": 0.0, "end": np.inf,
                         "value": values, "unit": "", "exclude": ""})


def test_geometric_statistics_by_hand():
    s = summarise(_long([1.0, 4.0, 16.0])).iloc[0]
    # ln values 0, ln4, 2 ln4: mean ln4 → geo mean 4; SD of ln = ln4 → CV = 100·sqrt(e^(ln4²) − 1)
    assert s["n"] == 3 and s["geo_mean"] == pytest.approx(4.0, rel=1e-12)
    assert s["geo_cv_pct"] == pytest.approx(100 * np.sqrt(np.exp(np.log(4) ** 2) - 1), rel=1e-12)
    assert s["mean"] == pytest.approx(7.0) and s["median"] == 4.0
    assert s["sd"] == pytest.approx(np.sqrt(((1 - 7) ** 2 + (4 - 7) ** 2 + (16 - 7) ** 2) / 2))
    assert (s["min"], s["max"]) == (1.0, 16.0)


def test_tmax_is_median_and_range_only_and_excluded_rows_are_left_out():
    d = _long([7.0, 9.0, 14.0, 10.0], parameter="TMAX")
    d.loc[3, "exclude"] = "no quantifiable sample (all BLQ)"
    s = summarise(d).iloc[0]
    assert s["n"] == 3 and s["median"] == 9.0 and np.isnan(s["mean"]) and np.isnan(s["geo_mean"])
    assert s["display"] == "9 [7, 14]"


def test_zero_values_count_as_missing_for_the_geometric_mean_only():
    # PKNCA business.geomean: zeros are missing, up to max.missing = 50 % of the values
    s = summarise(_long([0.0, 2.0, 4.0])).iloc[0]
    assert s["geo_mean"] == pytest.approx(np.sqrt(8.0), rel=1e-12) and s["mean"] == pytest.approx(2.0)
    assert s["geo_cv_pct"] == pytest.approx(100 * np.sqrt(np.expm1(np.log(2) ** 2 / 2)), rel=1e-12)
    half = summarise(_long([0.0, 0.0, 2.0, 4.0])).iloc[0]       # 2 of 4 missing: still summarised
    assert half["geo_mean"] == pytest.approx(np.sqrt(8.0), rel=1e-12)
    most = summarise(_long([0.0, 0.0, 0.0, 2.0])).iloc[0]       # 3 of 4 missing: not calculated
    assert np.isnan(most["geo_mean"]) and most["mean"] == pytest.approx(0.5)


def test_more_than_half_excluded_is_not_calculated():
    d = _long([10.0, 20.0, 40.0, 80.0])
    d.loc[[0, 1, 2], "exclude"] = "adj.r.squared < 0.9"
    s = summarise(d).iloc[0]
    assert s["n"] == 1 and s["n_missing"] == 3
    assert np.isnan(s["geo_mean"]) and np.isnan(s["median"]) and s["display"] == "NC"
    d.loc[2, "exclude"] = ""                                     # 2 of 4 excluded: summarised
    s = summarise(d).iloc[0]
    assert s["n"] == 2 and s["geo_mean"] == pytest.approx(np.sqrt(40 * 80), rel=1e-12)


def test_power_model_against_closed_form_ols():
    dose = np.array([1.0, 2.0, 4.0, 8.0])
    value = np.array([2.0, 3.0, 7.0, 11.0])
    fit = power_model(dose, value, level=0.90)
    # closed form with x = ln dose = (0, 1, 2, 3)·ln2, y = ln value
    x, y = np.arange(4) * np.log(2), np.log(value)
    b = (4 * (x * y).sum() - x.sum() * y.sum()) / (4 * (x * x).sum() - x.sum() ** 2)
    a = y.mean() - b * x.mean()
    se = np.sqrt(((y - a - b * x) ** 2).sum() / 2 / ((x - x.mean()) ** 2).sum())
    t_95_2df = 2.919986  # Student t, 0.95 quantile, 2 df (printed tables)
    assert fit["slope"] == pytest.approx(b, rel=1e-12) and fit["intercept"] == pytest.approx(a, rel=1e-12)
    assert fit["slope_se"] == pytest.approx(se, rel=1e-12)
    assert fit["ci_low"] == pytest.approx(b - t_95_2df * se, rel=1e-6)
    assert fit["ci_high"] == pytest.approx(b + t_95_2df * se, rel=1e-6)


def test_exactly_proportional_data_give_slope_one():
    fit = power_model([1e8, 2e8, 3e8, 3e8], [10.0, 20.0, 30.0, 30.0])
    assert fit["slope"] == pytest.approx(1.0, abs=1e-12) and fit["slope_se"] == pytest.approx(0, abs=1e-10)
    assert power_model([1, 1, 1], [1, 2, 3])["note"].startswith("needs")


def test_nca_result_summary_and_proportionality_end_to_end():
    # Cmax = 3·dose^0.5·k with k = (1, 2) per dose pair: slope of ln Cmax on ln dose is 0.5
    obs, rows = [], []
    doses = {"A": 1e8, "B": 1e8, "C": 4e8, "D": 4e8}
    k = {"A": 1.0, "B": 2.0, "C": 1.0, "D": 2.0}
    for s, dose in doses.items():
        peak = 3 * np.sqrt(dose) * k[s]
        obs.append(profile(s, [(-1, None, True), (7, peak), (14, peak / 2), (28, peak / 8)]))
        rows.append({"subject": s, "dose_level": "DL1" if dose == 1e8 else "DL2", "dose": dose})
    res = nca(pd.concat(obs, ignore_index=True), pd.DataFrame(rows))
    dp = res.dose_proportionality()
    cmax = dp[dp["parameter"] == "CMAX"].iloc[0]
    assert cmax["slope"] == pytest.approx(0.5, rel=1e-10) and cmax["n"] == 4
    auc = dp[dp["parameter"] == "AUCINT_LAST"].iloc[0]
    assert (auc["start"], auc["end"]) == (0.0, 28.0) and auc["slope"] == pytest.approx(0.5, rel=1e-10)
    summ = res.summary()
    assert list(dict.fromkeys(summ["dose_level"])) == ["DL1", "DL2"]
    c1 = summ[(summ["dose_level"] == "DL1") & (summ["parameter"] == "CMAX")].iloc[0]
    assert c1["geo_mean"] == pytest.approx(3e4 * np.sqrt(2), rel=1e-12)  # sqrt(3e4 · 6e4)
    assert len(res.exclusions) == 4  # the four pre-infusion samples, each listed


def test_top_level_nca_is_callable_even_after_submodule_imports():
    import ctkinetics
    import ctkinetics.nca.engine  # noqa: F401  binds the package as ctkinetics.nca

    obs = pd.DataFrame({"subject": "1", "time": [0.0, 1.0, 2.0], "value": [0.0, 2.0, 1.0]})
    res = ctkinetics.nca(obs, auc_method="linear")
    assert float(res.get("AUCLST").iloc[0]) == pytest.approx(1.0 + 1.5)


def test_dataset_input_skips_b_cells_unless_asked():
    from types import SimpleNamespace

    obs = pd.concat([profile("S1", [(-1, 5.0, True), (7, 100), (14, 50)]),
                     profile("S1", [(-1, 300.0, True), (7, 2), (14, 1)], analyte="bcell")],
                    ignore_index=True)
    ds = SimpleNamespace(observations=obs,
                         subjects=pd.DataFrame({"subject": ["S1"], "dose_level": ["1"], "dose": [3e8]}),
                         analyte_kind=lambda a: "bcell" if a == "bcell" else "qpcr")
    assert set(nca(ds).results["analyte"]) == {"qpcr"}
    assert set(nca(ds, analytes=["bcell"]).results["analyte"]) == {"bcell"}
    assert set(nca(ds).results["dose_level"]) == {"1"}


def test_ctkinetics_nca_is_always_the_package_and_run_nca_the_function():
    """In a fresh interpreter: the same object on first access and after submodule imports."""
    import subprocess
    import sys

    code = (
        "import types, ctkinetics\n"
        "first = ctkinetics.nca\n"
        "assert isinstance(first, types.ModuleType) and first.__name__ == 'ctkinetics.nca'\n"
        "import ctkinetics.nca.engine\n"
        "assert ctkinetics.nca is first\n"
        "assert isinstance(ctkinetics.run_nca, types.FunctionType)\n"
        "assert ctkinetics.run_nca is first.run_nca is first.nca\n"
        "import pandas as pd\n"
        "obs = pd.DataFrame({'subject': '1', 'time': [0.0, 1.0, 2.0], 'value': [0.0, 2.0, 1.0]})\n"
        "a = ctkinetics.nca(obs, auc_method='linear').results\n"
        "b = ctkinetics.run_nca(obs, auc_method='linear').results\n"
        "assert a.equals(b) and float(b.loc[b.parameter == 'AUCLST', 'value'].iloc[0]) == 2.5\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
