"""ctk popfit with the uncertainty options: files written into the fit's folder read back into
the results, the covariate search's final model is the fit written, bad options exit 2."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from ctkinetics.cli.main import main

from population.theoph import study_folder


def test_popfit_with_covariate_search_bootstrap_npde_and_exposure_intervals(tmp_path, capsys):
    from ctkinetics.estimation.bootstrap import BootstrapResult
    from ctkinetics.estimation.covsearch import CovariateSearchResult
    from ctkinetics.estimation.exposure_ci import ExposureCI
    from ctkinetics.estimation.population.npde import NPDEResult

    study, out = study_folder(tmp_path), tmp_path / "out"
    code = main(["popfit", str(study), "--model", "onecpt_oral", "--random-effects", "ka,CL",
                 "--error", "additive", "--out", str(out), "--covariate-search",
                 "--search-parameters", "CL", "--search-covariates", "wt", "--bootstrap", "2",
                 "--no-bca", "--workers", "0", "--npde", "100", "--exposure-ci", "--draws",
                 "20", "--seed", "3"])
    text = capsys.readouterr().out
    assert code == 0, text
    s = CovariateSearchResult.read(out)
    fit = json.loads((out / "fit.json").read_text())
    effects = [e["parameter"] + "~" + e["covariate"] for e in fit["spec"]["effects"]]
    assert effects == [r.split(":")[0] for r in s.relations]
    assert "CL~wt:power" in set(s.log["relation"])
    b = BootstrapResult.read(out)
    assert b.settings["n_replicates"] == 2 and b.settings["seed"] == 3
    assert len(b.replicates) == 2 and "bootstrap:" in text
    n = NPDEResult.read(out)
    assert len(n.table) == 132 and set(n.tests["statistic"]) == {"npde", "npd"}
    e = ExposureCI.read(out)
    assert set(e.participants["metric"]) == {"Cmax", "Tmax", "AUC0-28"}
    assert "bootstrap replicates" in e.settings["method"]
    manifest = json.loads((out / "manifest.json").read_text())
    names = {f["name"] if isinstance(f, dict) else f for f in manifest["files"]}
    assert {"bootstrap_intervals.csv", "npde.csv", "exposure_ci.csv",
            "covariate_search.csv"} <= names


@pytest.mark.parametrize("extra, message", [
    (["--bootstrap", "1"], "at least 2 replicates"),
    (["--npde", "20"], "at least 100"),
    (["--sir", "--sir-samples", "100,100", "--sir-resamples", "50"], "as many of each"),
    (["--sir", "--sir-inflation", "0"], "--sir-inflation must be a number > 0"),
    (["--covariate-search", "--covariate", "CL~wt"], "leave out --covariate"),
])
def test_bad_uncertainty_options_exit_2(tmp_path, capsys, extra, message):
    study = study_folder(tmp_path)
    code = main(["popfit", str(study), "--model", "onecpt_oral", "--out",
                 str(tmp_path / "o"), *extra])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_fit_with_exposure_intervals(tmp_path, capsys):
    from ctkinetics.estimation import FitResult
    from ctkinetics.estimation.exposure_ci import ExposureCI

    study, out = study_folder(tmp_path), tmp_path / "fit"
    code = main(["fit", str(study), "--model", "onecpt_oral", "--error", "additive", "--out",
                 str(out), "--starts", "1", "--exposure-ci", "--draws", "40"])
    assert code in (0, 3), capsys.readouterr().err
    e = ExposureCI.read(out)
    d = FitResult.read(out).derived_frame().set_index(["subject", "quantity"])["value"]
    p = e.participants[e.participants["metric"] == "AUC0-28"]
    for r in p.itertuples():     # the point estimates are the fit's derived values
        assert r.estimate == pytest.approx(d[(r.subject, "AUC0-28")], rel=1e-9)
    assert main(["fit", str(study), "--model", "onecpt_oral", "--out", str(tmp_path / "x"),
                 "--exposure-ci", "--draws", "5"]) == 2


def test_popfit_init_starts_the_fit_where_asked(tmp_path, capsys):
    """--init NAME=VALUE (θ, σ and omega2_ names of theta.csv) sets the start the fit records
    in fit.json; restarted at its own estimates, a fit ends at its objective (±0.01)."""
    study = study_folder(tmp_path)
    base = ["popfit", str(study), "--model", "onecpt_oral", "--random-effects", "ka,CL",
            "--error", "additive", "--no-covariance"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    a = json.loads((tmp_path / "a" / "fit.json").read_text())
    theta = pd.read_csv(tmp_path / "a" / "theta.csv").set_index("parameter")["estimate"]
    omega = pd.read_csv(tmp_path / "a" / "omega.csv")
    omega = omega[omega["parameter"] == omega["parameter2"]].set_index("parameter")["estimate"]
    inits = [f"{p}={v!r}" for p, v in theta.items()] + \
        [f"omega2_{p}={v!r}" for p, v in omega.items()]
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "b"),
                 *[x for i in inits for x in ("--init", i)]]) == 0, capsys.readouterr().err
    b = json.loads((tmp_path / "b" / "fit.json").read_text())
    start = b["settings"]["start"]
    for p, v in theta.items():
        assert start[p] == pytest.approx(v, rel=1e-9)
    for p, v in omega.items():
        assert start[f"omega2_{p}"] == pytest.approx(v, rel=1e-9)
    assert a["settings"]["start"]["ka"] != pytest.approx(theta["ka"], rel=1e-3)
    assert b["ofv"] == pytest.approx(a["ofv"], abs=0.01)


@pytest.mark.parametrize("extra, message", [
    (["--init", "CL"], "--init 'CL' must read NAME=VALUE"),
    (["--init", "CL=x"], "start value of 'CL' must be a number"),
    (["--init", "omega2_ke=0.1"], "without a random effect ['ke']"),
    (["--init", "omega2_ka=0"], "a variance must be > 0"),
    (["--init", "Vd=3"], "unknown parameter(s) ['Vd']"),
])
def test_bad_init_exits_2(tmp_path, capsys, extra, message):
    study = study_folder(tmp_path)
    code = main(["popfit", str(study), "--model", "onecpt_oral", "--random-effects", "ka,CL",
                 "--out", str(tmp_path / "o"), *extra])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_init_options_round_trip_and_name_what_they_cannot_set():
    """The --init options printed for SIR's lowest proposal read back (start_values) as the
    proposal's values to 6 significant digits; covariate effects and Ω covariances, which
    --init cannot set, are named apart."""
    import shlex

    from ctkinetics.cli.commands.popfit import init_options, start_values

    class Spec:                       # the attributes init_options reads
        theta_names = ["ka", "CL"]
        random = ["ka", "CL"]
        sigmas = [type("S", (), {"name": "sigma_conc"})()]

    values = {"ka": 1.2345678, "CL": 0.0401234, "beta_CL_wt": 0.75, "omega2_ka": 0.4321,
              "omega2_CL": 0.0712, "omega_CL_ka": 0.01, "sigma_conc": 0.6789}
    opts, rest = init_options(Spec, values)
    words = shlex.split(opts)
    assert words[::2] == ["--init"] * 5 and rest == ["beta_CL_wt", "omega_CL_ka"]
    init, omega = start_values(words[1::2])
    assert set(init) == {"ka", "CL", "sigma_conc"} and set(omega) == {"ka", "CL"}
    for k, v in init.items():
        assert v == pytest.approx(values[k], rel=5e-6)
    for k, v in omega.items():
        assert v == pytest.approx(values[f"omega2_{k}"], rel=5e-6)
