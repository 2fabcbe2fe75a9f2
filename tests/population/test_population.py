"""FOCE-I against an exact marginal likelihood, M3 + covariate recovery, VPC, CLI, errors."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.likelihood import get_blq_method, get_error_model
from ctkinetics.estimation.population import fit_population, vpc
from ctkinetics.estimation.population.data import build_data
from ctkinetics.estimation.population.inner import foce_terms
from ctkinetics.estimation.population.simulate import simulate_study
from ctkinetics.estimation.population.structure import PopModel, make_spec

from .theoph import dataset as theoph, onecpt_model, study_folder


@dataclass(frozen=True)
class _P:
    name: str
    default: float
    lower: float
    upper: float
    unit: str = ""
    scale: str = "linear"
    omega2: float = 0.5


@dataclass(frozen=True)
class LinearModel:
    """f(t) = a + b·t with linear-scale parameters: a model linear in its random effects."""

    name: str = "linear"
    parameters: tuple = (_P("a", 5.0, -100, 100), _P("b", 1.0, -100, 100))
    covariates: tuple = ()
    observables: dict = field(default_factory=lambda: {"conc": "a + b t"})

    def predict(self, params, times, covariates=None, observables=None):
        a, b = (np.asarray(params[k], float)[..., None] for k in ("a", "b"))
        return {"conc": a + b * np.asarray(times, float)}


def _linear_data(seed=0):
    rng = np.random.default_rng(seed)
    t = np.array([0.0, 1.0, 2.0, 4.0])
    rows = []
    for i in range(6):
        a, b = 5 + rng.normal(0, 0.8), 1 + rng.normal(0, 0.3)
        for tt in t[: 3 + i % 2]:
            rows.append((f"S{i}", tt, a + b * tt + rng.normal(0, 0.4)))
    obs = pd.DataFrame(rows, columns=["subject", "time", "value"]).assign(
        analyte="conc", unit="", lloq=np.nan, blq=False, pre_infusion=False,
        source_file="x", source_row=0)
    subj = pd.DataFrame({"subject": [f"S{i}" for i in range(6)], "dose_level": "1"})
    an = {"conc": SimpleNamespace(name="conc", unit="", lloq=np.nan, kind="conc")}
    return SimpleNamespace(observations=obs, subjects=subj, study=SimpleNamespace(analytes=an))


def test_focei_is_exact_for_a_model_linear_in_eta():
    """y_i ~ N(X_i θ, Z_i Ω Z_iᵀ + σ² I): the Laplace approximation is exact."""
    model, ds = LinearModel(), _linear_data()
    err = get_error_model("additive")
    data = build_data(ds, model, err, get_blq_method("M3"))
    spec, _ = make_spec(data, model, ["a", "b"], ())
    pm = PopModel(model, data, spec, err)
    omega = np.array([[0.6, 0.1], [0.1, 0.2]])
    theta, sigma = np.array([4.8, 1.1]), 0.45
    terms, _ = foce_terms(pm, pm.phi_pop(theta, []), omega, np.array([sigma]), tol=1e-10)
    exact = 0.0
    for s, d in ds.observations.groupby("subject"):
        Z = np.column_stack([np.ones(len(d)), d["time"]])
        cov = Z @ omega @ Z.T + sigma**2 * np.eye(len(d))
        exact += -2 * multivariate_normal(Z @ theta, cov).logpdf(d["value"].to_numpy())
    assert np.sum(terms) == pytest.approx(exact, abs=1e-6)


def test_block_omega_and_covariate_recovery_with_m3():
    """30 simulated subjects, ~25 % BLQ, CL ∝ wt^0.75: FOCE-I M3 recovers the truth."""
    m = onecpt_model()
    rng = np.random.default_rng(7)
    wt = rng.uniform(50, 100, 30)
    times = np.array([0.5, 1, 2, 4, 8, 12, 24.0])
    ds = simulate_study(m, 30, times, analyte="conc", unit="mg/L", lloq=2.0,
                        typical={"ka": 1.5, "ke": 0.08, "CL": 0.04},
                        omega2={"ka": 0.3, "CL": 0.1, "ke": 0.0}, sigma=0.15,
                        covariates={"wt": wt, "dose": np.full(30, 4.0)},
                        effects={("CL", "wt"): (0.75, 75.0)}, seed=11)
    frac = ds.observations["blq"].mean()
    assert 0.1 < frac < 0.5
    res = fit_population(ds, m, random_effects="ka,CL", covariates="CL~wt", blq="M3")
    assert res.converged and res.n_censored == int(ds.observations["blq"].sum())
    p = res.parameters.set_index("parameter")
    beta, se = p.loc["beta_CL_wt", "estimate"], p.loc["beta_CL_wt", "se"]
    assert abs(beta - 0.75) < 3 * se
    # the typical CL refers to the median weight: truth 0.04·(median/75)^0.75
    cl_true = 0.04 * (np.median(wt) / 75) ** 0.75
    assert abs(p.loc["CL", "estimate_transformed"] - np.log(cl_true)) < 3 * p.loc[
        "CL", "se_transformed"]
    for name, truth in (("ke", 0.08), ("ka", 1.5)):
        assert abs(p.loc[name, "estimate_transformed"] - np.log(truth)) < 3 * p.loc[
            name, "se_transformed"]
    assert abs(p.loc["sigma_conc", "estimate"] - 0.15) < 3 * p.loc["sigma_conc", "se"]
    # censored samples carry P(BLQ) = Φ((ln LLOQ − ln IPRED)/σ)
    from scipy.stats import norm
    c = res.predictions[res.predictions["status"] == "censored"]
    sig = p.loc["sigma_conc", "estimate"]
    np.testing.assert_allclose(c["p_blq"], norm.cdf((np.log(2.0) - np.log(c["ipred"])) / sig),
                               rtol=1e-8)


def test_vpc_statistics_match_a_direct_computation():
    ds = theoph()
    res = fit_population(ds, onecpt_model(), random_effects="ka,CL", error="additive",
                         covariance=False, init={"ka": 1.62, "ke": 0.085, "CL": 0.0395})
    v = vpc(res, ds, onecpt_model(), n_replicates=50, seed=3,
            bins=[0, 0.4, 1.5, 4, 8, 13, 25])
    t = v.table
    obs = ds.observations
    for k, (lo, hi) in enumerate([(0, 0.4), (0.4, 1.5), (1.5, 4), (4, 8), (8, 13)]):
        vals = obs[(obs["time"] >= lo) & (obs["time"] < hi)]["value"]
        row = t[(t["bin"] == k) & (t["statistic"] == "p50")].iloc[0]
        assert row["observed"] == pytest.approx(np.percentile(vals, 50))
        assert row["n"] == len(vals)
        # a correct model's simulated median interval covers most observed medians
    p50 = t[t["statistic"] == "p50"]
    inside = ((p50["observed"] >= p50["sim_low"]) & (p50["observed"] <= p50["sim_high"]))
    assert inside.mean() >= 0.6
    assert (t[t["statistic"] == "blq_fraction"]["observed"] == 0).all()
    from ctkinetics.plots.vpc import vpc_figure
    fig = vpc_figure(v)
    assert {tr.yaxis for tr in fig.data} == {"y", "y2"}


def test_errors():
    ds, m = theoph(), onecpt_model()
    with pytest.raises(SettingsError, match="method"):
        fit_population(ds, m, method="fo")
    with pytest.raises(SettingsError, match="PARAM~COVARIATE"):
        fit_population(ds, m, covariates="CL*wt")
    with pytest.raises(SettingsError, match="not a column"):
        fit_population(ds, m, covariates="CL~height", covariance=False)
    with pytest.raises(SettingsError, match="unknown parameter"):
        fit_population(ds, m, random_effects="ka,V")


def test_cli_popfit(tmp_path, capsys):
    """ctk popfit on a tidy study folder written here (Theoph as a study)."""
    study = study_folder(tmp_path)
    from ctkinetics.cli.main import main
    out = tmp_path / "out"
    model = str(onecpt_model().source_file or "onecpt_oral")
    code = main(["popfit", str(study), "--model", model, "--out", str(out),
                 "--random-effects", "ka,CL", "--error", "additive", "--no-covariance"])
    captured = capsys.readouterr()
    if code != 0:
        pytest.fail(captured.err)
    for f in ("theta.csv", "omega.csv", "individual.csv", "predictions.csv", "fit.json"):
        assert (out / f).exists()
    fit = json.loads((out / "fit.json").read_text())
    # the same data as the Theoph tests: nlme's logLik −177.02 within FOCE-I's difference
    assert fit["log_likelihood"] == pytest.approx(-177.02, abs=0.1)
    assert "FOCEI" in captured.err
    theta = pd.read_csv(out / "theta.csv")
    assert set(theta["parameter"]) >= {"ka", "ke", "CL", "sigma_conc"}


def test_ctk_popfit_summary_names_its_flags(tmp_path, capsys):
    # Theoph with a random effect on ke, which has next to no between-subject variability:
    # ω²(ke) goes to its bound and the ke EBEs shrink to 0 (the "converged" with ω
    # 8e-7 and shrinkage 99.4 %) — the summary must say so, by name
    from ctkinetics.cli.main import main

    model = str(onecpt_model().source_file or "onecpt_oral")
    code = main(["popfit", str(study_folder(tmp_path)), "--model", model, "--out",
                 str(tmp_path / "p"), "--random-effects", "ka,ke,CL", "--error", "additive",
                 "--no-covariance"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert "converged with 2 flag(s)" in out[0], out[0]
    assert any(x.strip().startswith("at_bound (omega_ke)") for x in out)
    assert any(x.strip().startswith("shrinkage>30% (omega2_ke 99") for x in out)
    fit = json.loads((tmp_path / "p" / "fit.json").read_text())
    assert fit["diagnostics"]["flags"] == ["at_bound", "shrinkage>30%"]


def test_subjects_taken_alone_equal_their_rows_of_the_stack():
    """PopModel.take (what an EBE iteration predicts once some subjects have stopped):
    Theoph's subjects 4, 1 and 8 alone predict and score as their rows of all 12, and the
    EBE search of all 12 at once — where subjects stop at different iterations and only the
    others are predicted again — ends at each subject's own mode, searched alone."""
    from ctkinetics.estimation.population.inner import ebe

    err = get_error_model("additive")
    data = build_data(theoph(), onecpt_model(), err, get_blq_method("M3"))
    spec, x0 = make_spec(data, onecpt_model(), ["ka", "CL"], ())
    pm = PopModel(onecpt_model(), data, spec, err)
    theta, beta, omega, sigma = spec.split(x0)
    phi_pop = pm.phi_pop(theta, beta)
    eta = np.random.default_rng(3).normal(0, 0.3, (pm.n, spec.q))
    rows = np.array([3, 0, 7])
    sub = pm.take(rows)
    assert sub.data.subjects == tuple(data.subjects[i] for i in rows)
    full = pm.predict(pm.with_eta(phi_pop, eta))
    part = sub.predict(sub.with_eta(phi_pop[rows], eta[rows]))
    np.testing.assert_allclose(part[0], full[0][rows], rtol=1e-14)
    np.testing.assert_allclose(sub.data_m2ll(sub.with_eta(phi_pop[rows], eta[rows]), sigma),
                               pm.data_m2ll(pm.with_eta(phi_pop, eta), sigma)[rows], rtol=1e-14)
    together = ebe(pm, phi_pop, omega, sigma, eta, tol=1e-10)
    assert together.converged.all()
    for i in rows:
        alone = ebe(pm.take([i]), phi_pop[[i]], omega, sigma, eta[[i]], tol=1e-10)
        np.testing.assert_allclose(alone.eta[0], together.eta[i], rtol=0, atol=1e-8)
        assert alone.h[0] == pytest.approx(together.h[i], rel=1e-12)
