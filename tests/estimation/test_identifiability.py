"""The identifiability check from the sensitivity matrix at the start values (issue 12.4)."""
import numpy as np
import pandas as pd

from ctkinetics.estimation import fit
from ctkinetics.estimation.results_io import read_fit, write_fit
from est_fakes import Stein, dataset


def _expansion_only(n=3):
    """Samples on days 1-7 only: before stein2019's typical Tmax (9.3 d) the curve is
    Cmax/foldx·exp(ln(foldx)·t/Tmax) — alpha, FB and beta (the contraction) play no part."""
    times = np.array([1.0, 2.0, 4.0, 7.0])
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        p = {"Cmax": 20000.0, "Tmax": 9.3, "foldx": 3000.0, "alpha": 0.2, "FB": 0.01,
             "beta": 0.003}
        f = np.ravel(Stein().predict(p, times)["qpcr"])
        rows.append(pd.DataFrame({"subject": f"S{i}", "time": times, "analyte": "qpcr",
                                  "value": f * np.exp(rng.normal(0, 0.2, times.size))}))
    return dataset(pd.concat(rows, ignore_index=True),
                   pd.DataFrame({"subject": [f"S{i}" for i in range(n)], "dose_level": "1"}),
                   {"qpcr": ("copies/ug", np.nan, "qpcr")})


def test_parameters_the_samples_cannot_inform_are_named_before_fitting(tmp_path):
    res = fit(_expansion_only(), "stein2019", starts=1, derived=False)
    t = res.identifiability
    cohort = t[t["subject"] == "*"]
    missing = set(cohort.loc[cohort["check"] == "not_informed", "parameters"])
    assert missing == {"alpha", "FB", "beta"}
    assert cohort.loc[cohort["check"] == "not_informed", "advice"].str.contains(
        "3 of 3 subjects").all()
    assert (t.loc[t["check"] == "not_informed", "value"] < 1e-3).all()
    # the informed ones are not named
    assert not (t["parameters"].str.contains("Cmax") & (t["check"] == "not_informed")).any()
    # recorded in the outputs, and read back
    write_fit(res, tmp_path / "out")
    assert read_fit(tmp_path / "out") == res
    assert "alpha" in (tmp_path / "out" / "identifiability.csv").read_text()
