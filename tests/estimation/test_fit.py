"""Individual fits against R's nls, hand calculations and simulated truth."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from ctkinetics.estimation import compare_models, fit, two_stage_summary
from ctkinetics.estimation.uncertainty import Profile
from est_fakes import OneCptOral, Stein, dataset, theoph

THEOPH = Path(__file__).parents[1] / "data" / "theoph.csv"


@pytest.fixture(scope="module")
def theo():
    return theoph(THEOPH)


@pytest.fixture(scope="module")
def theo1(theo):
    return fit(theo, OneCptOral(), subjects=["1"], error="additive", starts=3,
               ci=Profile("CL"))


def test_theoph_subject1_reproduces_r_nls_ssfol(theo1):
    # R: nls(conc ~ SSfol(Dose, Time, lKe, lKa, lCl), Theoph[Subject == 1])
    f = theo1["1"]
    t = f.parameters.set_index("parameter")["estimate_transformed"]
    assert t["ke"] == pytest.approx(-2.9196, abs=5e-5)
    assert t["ka"] == pytest.approx(0.5752, abs=5e-5)
    assert t["CL"] == pytest.approx(-3.9159, abs=5e-5)
    # logLik(fit) = -10.42435788 in R (ML sigma), so -2LL = 20.84872 and AIC 28.84872
    assert f.ofv == pytest.approx(20.848716, abs=1e-5)
    assert f.aic == pytest.approx(28.848716, abs=1e-5)
    assert f.success and f.n_starts_at_best >= 1 and f.blq_method == "M3"


def test_theoph_subject1_standard_errors_match_r_hessian(theo1):
    # R: optimHess of the same -2LL in (lKe, lKa, lCl, log sigma), SE = sqrt(diag(solve(H/2)))
    se = theo1["1"].parameters.set_index("parameter")["se_transformed"]
    assert se["ke"] == pytest.approx(0.14427049, rel=2e-3)
    assert se["ka"] == pytest.approx(0.12939803, rel=2e-3)
    assert se["CL"] == pytest.approx(0.10898874, rel=2e-3)
    assert se["sigma_conc"] == pytest.approx(0.21320057, rel=2e-3)
    corr = theo1["1"].correlation
    # R: cov2cor(solve(H/2))
    assert corr.loc["ke", "CL"] == pytest.approx(0.962254, abs=2e-3)
    assert corr.loc["ka", "ke"] == pytest.approx(-0.518386, abs=2e-3)
    flags = theo1["1"].parameters.set_index("parameter")["flags"]
    assert "corr>0.95" in flags["CL"] and "corr>0.95" not in flags["sigma_conc"]


def test_profile_ci_bound_is_where_the_profile_rises_by_3_84(theo, theo1):
    row = theo1["1"].parameters.set_index("parameter").loc["CL"]
    assert row["ci_method"] == "profile"
    obs = theo.observations[theo.observations.subject == "1"]
    t, y, dose = obs.time.to_numpy(), obs.value.to_numpy(), 4.02

    def m2ll(lka, lke, lcl, ls):
        ka, ke, cl, s = np.exp([lka, lke, lcl, ls])
        f = dose * ke * ka / (cl * (ka - ke)) * (np.exp(-ke * t) - np.exp(-ka * t))
        return -2 * stats.norm.logpdf(y, f, s).sum()

    best = theo1["1"].parameters.set_index("parameter")["estimate_transformed"]
    for bound in (row["ci_low"], row["ci_high"]):
        prof = optimize.minimize(lambda x: m2ll(x[0], x[1], np.log(bound), x[2]),
                                 best[["ka", "ke", "sigma_conc"]].to_numpy(), method="BFGS")
        assert prof.fun - theo1["1"].ofv == pytest.approx(3.841, abs=0.02)


def test_error_models_compare_by_aic_on_the_same_data(theo):
    subs = ["2", "3"]
    add = fit(theo, OneCptOral(), subjects=subs, error="additive", starts=1, derived=False)
    prop = fit(theo, OneCptOral(), subjects=subs, error="proportional", starts=1,
               derived=False)
    # proportional fits drop the zero concentrations at time 0: not the same data
    if (add.fits_frame().n_obs != prop.fits_frame().n_obs).any():
        with pytest.raises(Exception, match="same observations"):
            compare_models(add, prop)
    comb = fit(theo, OneCptOral(), subjects=subs, error="combined", starts=1, derived=False)
    table = compare_models(add, comb)
    assert set(table.error_model) == {"additive", "combined"}
    # combined error nests additive (sigma_prop -> 0): its -2LL cannot be worse by more
    # than optimiser noise
    o = table.pivot(index="subject", columns="error_model", values="ofv")
    assert (o["combined"] <= o["additive"] + 1e-3).all()
    assert (table.groupby("subject")["delta_aic"].min() == 0).all()


def test_a_failing_subject_does_not_stop_the_batch(theo):
    @dataclass(frozen=True)
    class Fragile(OneCptOral):
        def predict(self, params, times, covariates=None, observables=None):
            if np.any(np.asarray((covariates or {}).get("dose", 0)) > 5.5):
                raise RuntimeError("cannot predict this subject")
            return super().predict(params, times, covariates, observables)

    res = fit(theo, Fragile(), subjects=["1", "5", "2"], error="additive", starts=1,
              derived=False)
    ff = res.fits_frame().set_index("subject")
    assert not ff.loc["5", "success"] and "cannot predict" in ff.loc["5", "message"]
    assert ff.loc["1", "success"] and ff.loc["2", "success"]
    assert res.to_frame().query("subject == '5'")["estimate"].isna().all()


def test_pre_infusion_and_dropped_samples_are_listed_with_reasons():
    times = np.array([-1.0, 0.5, 1, 2, 4, 8, 12, 24])
    m = OneCptOral()
    f = m.predict({"ka": 1.5, "ke": 0.08, "CL": 0.04}, times[1:], {"dose": 4.0})["conc"]
    value = np.concatenate([[np.nan], f * np.exp([0.05, -0.03, 0.02, 0.0, -0.04, 0.03, 0.01])])
    value[-1] = np.nan
    obs = pd.DataFrame({"subject": "A", "time": times, "analyte": "conc", "value": value,
                        "lloq": 5.0, "blq": np.isnan(value),
                        "pre_infusion": times < 0})
    ds = dataset(obs, pd.DataFrame({"subject": ["A"], "dose_level": ["x"], "dose": [4.0]}),
                 {"conc": ("mg/L", 5.0, "conc")})
    res = fit(ds, m, blq="M1", starts=1, derived=False)
    ex = res.excluded_frame()
    assert list(ex.time) == [-1.0, 24.0]
    assert "pre-infusion" in ex.reason.iloc[0] and "M1" in ex.reason.iloc[1]
    assert res["A"].n_obs == 6 and res["A"].n_blq == 1
    m3 = fit(ds, m, blq="M3", starts=1, derived=False)
    pred = m3.predictions_frame().set_index("time")
    assert m3["A"].n_obs == 7 and pred.loc[24.0, "status"] == "censored"
    # the censored sample's diagnostic is its predicted probability of being BLQ
    sd = m3["A"].parameters.set_index("parameter").loc["sigma_conc", "estimate"]
    p = stats.norm.cdf(np.log(5.0 / pred.loc[24.0, "ipred"]) / sd)
    assert pred.loc[24.0, "p_blq"] == pytest.approx(p, rel=1e-9)


def simulate_stein(n, seed, sigma=0.1, lloq=100.0, omega=0.05):
    m = Stein()
    rng = np.random.default_rng(seed)
    times = np.array([1, 2, 4, 7, 9, 11, 14, 21, 28, 42, 60, 90, 120, 180, 270, 365.0])
    names = [p.name for p in m.parameters]
    typ = np.array([p.default for p in m.parameters])
    truth = typ * np.exp(rng.normal(0, np.sqrt(omega), (n, len(typ))))
    pred = m.predict({k: truth[:, i] for i, k in enumerate(names)}, times)["qpcr"]
    y = pred * np.exp(rng.normal(0, sigma, pred.shape))
    obs = pd.DataFrame({
        "subject": np.repeat([f"S{i}" for i in range(n)], len(times)),
        "time": np.tile(times, n), "analyte": "qpcr", "value": y.ravel(),
        "lloq": lloq})
    obs["blq"] = obs.value < lloq
    obs.loc[obs.blq, "value"] = np.nan
    subj = pd.DataFrame({"subject": [f"S{i}" for i in range(n)],
                         "dose_level": ["low", "high"] * (n // 2) + ["low"] * (n % 2),
                         "dose": 1.0})
    return dataset(obs, subj, {"qpcr": ("copies/ug", lloq, "qpcr")}), truth, names


def test_stein_fits_recover_simulated_truth_with_m3():
    ds, truth, names = simulate_stein(3, seed=7)
    assert ds.observations.blq.mean() > 0.1
    res = fit(ds, Stein(), blq="M3", starts=2, seed=1)
    est = res.estimates_wide().loc[[f"S{i}" for i in range(3)], names].to_numpy(float)
    rel = est / truth - 1
    assert np.all(np.abs(rel[:, :2]) < 0.1)        # Cmax, Tmax
    assert np.all(np.abs(rel[:, 3]) < 0.15)        # alpha
    for f in res:
        assert f.success and f.blq_method == "M3"
        # a stand-in model (predict only) has no exposure rows, only its own derived values
        d = f.derived.set_index("quantity")["value"]
        p = f.estimates()
        assert "Cmax" not in d.index
        assert d["doubling_time"] == pytest.approx(p["Tmax"] * np.log(2) / np.log(p["foldx"]),
                                                   rel=1e-12)
    # Wald CIs cover the truth for (nearly) all parameters
    t = res.to_frame()
    t = t[t.role == "model"].assign(truth=truth.ravel())
    assert ((t.ci_low <= t.truth) & (t.truth <= t.ci_high)).mean() >= 0.8
    summary = two_stage_summary(res)
    low = summary.query("dose_level == 'low' and parameter == 'Cmax'").iloc[0]
    vals = res.estimates_wide().loc[["S0", "S2"], "Cmax"].to_numpy(float)
    assert low["n"] == 2
    assert low["geo_mean"] == pytest.approx(np.sqrt(vals[0] * vals[1]), rel=1e-12)
    s = np.std(np.log(vals), ddof=1)
    # expm1: exp(s²) − 1 loses ~1e-11 relative precision for s² ~ 1e-6
    assert low["geo_cv_pct"] == pytest.approx(100 * np.sqrt(np.expm1(s**2)), rel=1e-12)


def test_stein_derived_auc_matches_domain_typical_values():
    from ctkinetics.estimation.derived import derived_table
    from ctkinetics.estimation.problem import AnalyteMap
    from ctkinetics.modeling import load_model

    m = load_model("stein2019")
    d = derived_table("typical", m, m.defaults(), {}, [AnalyteMap("q", "qpcr", "")], {},
                      28.0).set_index("quantity")["value"]
    # DOMAIN.md §3.1: AUC0-28 = 1.718e5 copies·d/µg for the typical subject
    assert d["AUC0-28"] == pytest.approx(1.718e5, rel=1e-3)
    assert d["Cmax"] == pytest.approx(24000, rel=1e-12) and d["Tmax"] == pytest.approx(9.3)
