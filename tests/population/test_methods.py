"""Population methods and Ω structures as objects carrying their own options, the former
keywords deprecated, fixed parameters, and ``ctk popfit`` output read back (issue 18)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.population import PopulationResult, fit_population, vpc
from ctkinetics.estimation.population.methods import FOCEI, SAEM, resolve_method
from ctkinetics.estimation.population.omega import Block, Diagonal, resolve_omega

from .theoph import dataset as theoph, onecpt_model, study_folder


def test_method_objects_carry_their_options_and_old_keywords_still_work():
    ds, m = theoph(), onecpt_model()
    kw = dict(random_effects="ka,CL", error="additive", covariance=False)
    new = fit_population(ds, m, method=SAEM(n_burn=30, n_iter=20, seed=4), **kw)
    assert new.method == "saem"
    assert new.settings["method_options"] == {"method": "saem", "n_burn": 30, "n_iter": 20,
                                              "seed": 4}
    with pytest.warns(DeprecationWarning) as caught:
        old = fit_population(ds, m, method="saem", saem_iterations=(30, 20), seed=4, **kw)
    said = " ".join(str(w.message) for w in caught)
    assert "SAEM(n_burn=..., n_iter=...)" in said and "SAEM(seed=...)" in said
    np.testing.assert_array_equal(old.x, new.x)
    assert resolve_method("focei") == FOCEI() and resolve_method(FOCEI(max_iter=5)).max_iter == 5
    with pytest.warns(DeprecationWarning, match="FOCEI\\(max_iter"):
        assert resolve_method("focei", max_iter=7) == FOCEI(max_iter=7)
    with pytest.raises(SettingsError, match="unknown population method"):
        resolve_method("fo")
    with pytest.raises(SettingsError):
        SAEM(n_iter=0)


def test_omega_structures_round_trip_their_parameterisation():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 3))
    omega = a @ a.T + 0.1 * np.eye(3)
    b = Block()
    part = b.to_part(omega)
    assert part.size == b.size(3) == 6
    np.testing.assert_allclose(b.from_part(part, 3), omega, rtol=1e-12)
    # the Cholesky factor by numpy: its log-diagonal and off-diagonals are the part
    L = np.linalg.cholesky(omega)
    assert part[0] == pytest.approx(np.log(L[0, 0])) and part[1] == pytest.approx(L[1, 0])
    d = Diagonal()
    np.testing.assert_allclose(d.from_part(d.to_part(np.diag([0.2, 0.5])), 2),
                               np.diag([0.2, 0.5]), rtol=1e-12)
    assert resolve_omega("block") == Block() and resolve_omega(b) is b
    assert Block() != Diagonal()
    with pytest.raises(SettingsError, match="omega must be one of"):
        resolve_omega("full")


def test_fixed_parameters_are_not_estimated():
    res = fit_population(theoph(), onecpt_model(), random_effects="ka,CL", error="additive",
                         covariance=False, fixed={"ke": 0.085})
    assert "ke" not in set(res.parameters["parameter"])
    assert res.settings["fixed"] == {"ke": 0.085} and res.spec.fixed == {"ke": 0.085}
    ind = res.individual
    assert "ke" not in set(ind["parameter"])


def test_ctk_popfit_output_reads_back_into_an_equal_result(tmp_path, capsys):
    from ctkinetics.cli.main import main
    from ctkinetics.data import load_study

    study = study_folder(tmp_path)
    model = str(onecpt_model().source_file or "onecpt_oral")
    out = tmp_path / "pop"
    assert main(["popfit", str(study), "--model", model, "--out", str(out), "--random-effects",
                 "ka,CL", "--error", "additive", "--omega", "block"]) == 0
    back = PopulationResult.read(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # Theoph's doses are per kg, not the level's
        ds = load_study(study)
        same = fit_population(ds, model, random_effects="ka,CL", error="additive",
                              omega=Block())
    assert back == same
    assert back.spec.block and np.all(np.isfinite(back.covariance.to_numpy()))
    # the read-back result simulates the same VPC
    a = vpc(back, ds, model, n_replicates=20, seed=2).table
    b = vpc(same, ds, model, n_replicates=20, seed=2).table
    np.testing.assert_array_equal(a["sim_median"].to_numpy(), b["sim_median"].to_numpy())


def test_map_fits_with_a_population_prior(tmp_path, capsys):
    """ctk fit --prior DIR: the prior is the ctk popfit folder's θ and Ω."""
    from ctkinetics.cli.main import main

    study = study_folder(tmp_path)
    model = str(onecpt_model().source_file or "onecpt_oral")
    pop = tmp_path / "pop"
    assert main(["popfit", str(study), "--model", model, "--out", str(pop), "--random-effects",
                 "ka,CL", "--error", "additive", "--no-covariance"]) == 0
    out = tmp_path / "map"
    assert main(["fit", str(study), "--model", model, "--out", str(out), "--starts", "1",
                 "--error", "additive", "--prior", str(pop)]) == 0
    printed = capsys.readouterr().out
    assert "MAP fits, prior" in printed and "eta-shrinkage ka" in printed
    from ctkinetics.estimation import FitResult

    res, fitted = FitResult.read(out), PopulationResult.read(pop)
    theta, _, omega, _ = fitted.spec.split(fitted.x)
    prior = res.prior.set_index("parameter")
    assert list(prior.index) == ["ka", "CL"]
    names = fitted.spec.theta_names
    np.testing.assert_allclose(prior["mean"], [theta[names.index("ka")],
                                               theta[names.index("CL")]], rtol=1e-12)
    np.testing.assert_allclose(prior["omega2"], np.diag(omega), rtol=1e-12)
    assert res.settings["prior"] == str(pop)
    # POSTHOC: every participant's residual SD is exactly the population fit's estimate
    _, _, _, sigma = fitted.spec.split(fitted.x)
    pars = res.to_frame()
    rows = pars[pars["role"] == "sigma"]
    assert list(rows["parameter"].unique()) == [fitted.spec.sigmas[0].name] == ["sigma_conc"]
    assert (rows["ci_method"] == "fixed").all() and rows["se"].isna().all()
    np.testing.assert_array_equal(rows["estimate"].to_numpy(), np.full(len(rows), sigma[0]))
    assert res.settings["fixed"]["sigma_conc"] == sigma[0]
    assert str(pop) in res.settings["sigma_sources"]["sigma_conc"]
    assert "Residual SDs fixed (not estimated) at the population fit" in printed
    # --estimate-sigma: each participant's own SD again
    own = tmp_path / "own"
    assert main(["fit", str(study), "--model", model, "--out", str(own), "--starts", "1",
                 "--error", "additive", "--prior", str(pop), "--estimate-sigma"]) == 0
    own_pars = FitResult.read(own).to_frame()
    own_sigma = own_pars[own_pars["role"] == "sigma"]
    assert (own_sigma["ci_method"] != "fixed").all() and own_sigma["se"].notna().any()
    assert own_sigma["estimate"].nunique() > 1
