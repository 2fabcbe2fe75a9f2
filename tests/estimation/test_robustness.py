"""Fit robustness (issue 14.3): the optimum a few starts reach, counted honestly.

The hidden-style cases are simulated here with the Stein closed form written in
``est_fakes.Stein`` (independent of the model library) and fitted with the library's
stein2019, whose switch time Tmax makes the −2LL piecewise in the sampling intervals.
"""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctkinetics.estimation import fit
from ctkinetics.modeling import load_model
from est_fakes import Stein, dataset

COHORT = Path(__file__).parents[2] / "data" / "sample" / "sle_cohort"
TIMES = np.array([1, 4, 7, 14, 21, 28, 42, 56, 90, 180.0])   # no sample from day 7 to 14
CASES = (10.5, 4.2, 7.05)


def _hidden_style(seed=3, n=6, sigma=0.3, lloq=5.0):
    """n subjects per case: the peak between two samples (Tmax ≈ 10.5, samples on days 7
    and 14) and Tmax near a sampling time (≈ 4.2 and 7.05, samples on days 4 and 7). Without
    the switch-interval screen, 4 random starts missed the best optimum of 7 of 24 such
    subjects with Tmax ≈ 4.2 and 1 of 24 with Tmax ≈ 7.05 (8 subjects, seeds 0-2; measured
    while building the screen)."""
    m = Stein()
    rng = np.random.default_rng(seed)
    rows = []
    for tmax in CASES:
        for i in range(n):
            p = {"Tmax": tmax * np.exp(rng.normal(0, 0.03)),
                 "Cmax": 5000 * np.exp(rng.normal(0, 0.5)),
                 "foldx": 500 * np.exp(rng.normal(0, 0.8)),
                 "alpha": 0.2 * np.exp(rng.normal(0, 0.3)),
                 "FB": 0.02 * np.exp(rng.normal(0, 0.3)),
                 "beta": 0.01 * np.exp(rng.normal(0, 0.3))}
            f = np.ravel(m.predict(p, TIMES)["qpcr"])
            y = f * np.exp(rng.normal(0, sigma, f.size))
            for t, v in zip(TIMES, y):
                rows.append((f"T{tmax}-{i}", t, "qpcr", v if v >= lloq else np.nan, lloq,
                             bool(v < lloq)))
    obs = pd.DataFrame(rows, columns=["subject", "time", "analyte", "value", "lloq", "blq"])
    subjects = pd.DataFrame({"subject": obs["subject"].unique(), "dose_level": "1"})
    return dataset(obs, subjects, {"qpcr": ("copies/ug", lloq, "qpcr")})


@pytest.fixture(scope="module")
def hidden():
    ds = _hidden_style()
    model = load_model("stein2019")
    best = fit(ds, model, starts=200, seed=99, derived=False)
    return ds, model, best


@pytest.fixture(scope="module")
def four(hidden):
    ds, model, _ = hidden
    return fit(ds, model, starts=4, seed=0, derived=False)


def test_four_starts_reach_the_best_of_200_starts(hidden, four):
    ds, model, best = hidden
    ref = best.fits_frame().set_index("subject")["ofv"]
    assert ref.notna().all() and len(ref) == 6 * len(CASES)
    for seed in (0, 1, 2):
        res = four if seed == 0 else fit(ds, model, starts=4, seed=seed, derived=False)
        got = res.fits_frame().set_index("subject")["ofv"]
        # the best optimum, not a worse one: −2LL within the stated tolerance 0.01
        assert (got - ref).max() < 0.01, (seed, (got - ref)[got - ref >= 0.01])
        assert (got - ref).min() > -0.01       # and 200 starts find what 4 find


def test_residual_sd_is_at_its_own_optimum(four):
    # At the ML σ of the proportional model ∂(−2LL)/∂ln σ = 0, with z = (ln y − ln f)/σ:
    #   quantified samples contribute 2 − 2z², censored ones 2·z·φ(z)/Φ(z) (z at the LLOQ),
    # so Σ_q (z² − 1) = Σ_c z·φ(z)/Φ(z) — computed here from the IWRES, the censored samples'
    # LLOQ and IPRED and σ̂, with scipy.stats, also where Tmax sits on a sample (a kink).
    from scipy.stats import norm

    res = four
    checked = 0
    for f in res:
        if "at_bound" in f.parameters.set_index("parameter").loc["sigma_qpcr", "flags"]:
            continue   # an exact fit drives σ to its bound (flagged): no interior optimum
        checked += 1
        p = f.predictions
        z = p.loc[p["status"] == "quantified", "iwres"].to_numpy(float)
        c = p[p["status"] == "censored"]
        sigma = f.estimates()["sigma_qpcr"]
        zc = (np.log(c["lloq"].to_numpy(float)) - np.log(c["ipred"].to_numpy(float))) / sigma
        lhs = np.sum(z ** 2 - 1)
        rhs = np.sum(zc * np.exp(norm.logpdf(zc) - norm.logcdf(zc)))
        assert lhs == pytest.approx(rhs, abs=1e-3 * len(p)), f.subject
    assert checked >= 12


def test_starts_at_best_and_second_optimum_are_counted_honestly(four):
    res = four
    for f in res:
        st = f.starts
        # every run is in the history; n_starts_at_best counts those within 0.01 of the best
        assert f.n_starts == len(st)
        assert f.n_starts_at_best == int((st["success"] & ((st["ofv"] - f.ofv).abs() <= 0.01))
                                         .sum())
        assert (st["ofv"] >= f.ofv - 1e-6 * abs(f.ofv)).all()   # ties keep the earlier run
        if np.isfinite(f.ofv_second):
            assert f.ofv_second > f.ofv + 0.01
            assert ("second_optimum" in f.flags) == (f.ofv_second - f.ofv <= 3.84)
        else:
            assert "second_optimum" not in f.flags
    # a model with a switch time is screened interval by interval: the history names them
    labels = " ".join(res.fits[0].starts["start"].astype(str))
    assert "Tmax in [7, 14]" in labels and "Tmax in [4, 7]" in labels


@pytest.mark.skipif(not COHORT.exists(), reason="sample cohort not present")
def test_sample_cohort_reaches_the_same_optimum_with_4_and_8_starts():
    from ctkinetics.data import load_study

    ds = load_study(COHORT)
    model = load_model("stein2019")
    four = fit(ds, model, starts=4, derived=False).fits_frame().set_index("subject")
    eight = fit(ds, model, starts=8, derived=False).fits_frame().set_index("subject")
    assert (four["ofv"] - eight["ofv"]).abs().max() < 0.01
    # SLE-203: 164.23 with 4 starts and 157.86 with 8 before the screen (issue 14); the
    # screen finds a lower one with either
    assert four.loc["SLE-203", "ofv"] <= 157.86
