"""Stepwise covariate search (PsN scm conventions).

- candidates: forms by covariate type, the most frequent category as reference, covariates
  left out with their reason;
- on a simulated study with a strong planted effect (CL ∝ (wt/75)^1.5) and a noise covariate,
  the search keeps CL~wt and not the noise; the logged dOFV of the first forward step equals
  the difference of two fits made directly with fit_population (a second route to the number)
  and its p-value the chi-square tail; a categorical relation is the exponential effect of a
  0/1 indicator (same −2LL).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

from ctkinetics.estimation.covsearch import Relation, candidate_relations, covariate_search
from ctkinetics.estimation.population import fit_population
from ctkinetics.estimation.population.simulate import simulate_study
from ctkinetics.modeling import load_model


def test_candidates_by_covariate_type():
    t = pd.DataFrame({"subject": list("abcdef"), "dose_level": list("112233"),
                      "dose": [1, 1, 3, 3, 10, 10.0], "age": [30, 41, 52, 28, 60, 45.0],
                      "delta": [-1, 0, 2, 1, -3, 0.5], "sex": list("FFMFMF"),
                      "ld": ["Flu/Cy", "Flu/Cy", "Benda", "Flu/Cy", "Benda", "none"],
                      "site": list("abcdef"), "wt": [70, np.nan, 80, 60, 75, 90.0],
                      "arm": ["x"] * 6})
    rels, skipped = candidate_relations(t, ["CL"])
    forms = {r.covariate: r.form for r in rels}
    assert forms == {"dose": "power", "age": "power", "delta": "exponential",
                     "sex": "categorical", "ld": "categorical"}
    sex = next(r for r in rels if r.covariate == "sex")
    assert sex.reference == "F" and sex.levels == ("M",) and sex.df == 1
    ld = next(r for r in rels if r.covariate == "ld")
    assert ld.reference == "Flu/Cy" and set(ld.levels) == {"Benda", "none"} and ld.df == 2
    why = dict(skipped)
    assert "missing for 1" in why["wt"] and "same value" in why["arm"]
    assert "6 categories" in why["site"]


@pytest.fixture(scope="module")
def study():
    m = load_model("onecpt_oral")
    rng = np.random.default_rng(0)
    n = 20
    wt = rng.uniform(45, 110, n)
    noise = rng.normal(10, 2, n)
    times = np.array([0.5, 1, 2, 4, 7, 12, 24.0])
    ds = simulate_study(m, n, times, analyte="conc", kind="conc", unit="mg/L", sigma=0.15,
                        omega2={"ka": 0.3, "CL": 0.1, "ke": 0.0},
                        covariates={"dose": np.full(n, 4.0), "wt": wt, "noise": noise},
                        effects={("CL", "wt"): (1.5, 75.0)}, seed=3)
    ds.subjects["sex"] = np.where(rng.uniform(size=n) < 0.5, "F", "M")
    return ds, m


def test_search_keeps_the_planted_effect_and_drops_the_noise(study):
    ds, m = study
    s = covariate_search(ds, m, random_effects="ka,CL", parameters="CL",
                         covariates="wt,noise", covariance=False)
    assert s.relations == ["CL~wt:power"]
    log = s.log
    first = log[(log["step"] == 1) & (log["direction"] == "forward")].set_index("relation")
    # a second route to the same numbers: two fits made directly
    base = fit_population(ds, m, random_effects="ka,CL", covariance=False)
    wt = fit_population(ds, m, random_effects="ka,CL", covariates="CL~wt", covariance=False)
    assert first.loc["CL~wt:power", "dofv"] == pytest.approx(base.ofv - wt.ofv, abs=0.05)
    d = first.loc["CL~wt:power", "dofv"]
    assert first.loc["CL~wt:power", "p_value"] == pytest.approx(chi2.sf(d, 1), rel=1e-9)
    assert d > 20 and bool(first.loc["CL~wt:power", "selected"])
    assert not log[log["relation"] == "CL~noise:power"]["selected"].any()
    back = log[log["direction"] == "backward"]
    assert len(back) == 1 and not back["selected"].iloc[0] and back["p_value"].iloc[0] < 0.01
    beta = s.final.parameters.set_index("parameter").loc["beta_CL_wt", "estimate"]
    assert beta == pytest.approx(1.5, abs=0.5)


def test_categorical_relation_is_an_indicator_effect(study):
    from ctkinetics.estimation.covsearch import FitData, ModelRef, fit_models, with_indicators

    ds, m = study
    rel = Relation("CL", "sex", "categorical", ("M",), "F")
    data = with_indicators(FitData.of(ds, strata=()), [rel])
    got = fit_models(data, ModelRef.of(m), {"random_effects": "ka,CL"}, [(rel,)])[0]
    ind = ds.subjects.assign(male=(ds.subjects["sex"] == "M").astype(float))
    direct = fit_population(type(ds)(ds.observations, ind, ds.study, ds.truth), m,
                            random_effects="ka,CL", covariance=False,
                            covariates="CL~male:exponential")
    assert got["ofv"] == pytest.approx(direct.ofv, abs=1e-6)
