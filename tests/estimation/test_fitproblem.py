"""The fit problem built once (issue 18) and the estimated / fixed parameters (issue 12.4):
``estimate = false`` in a model file, ``estimate=`` / ``fixed=`` in the API, ``--estimate`` /
``--fix`` on the command line."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ctkinetics.errors import InputError, ModelFileError, SettingsError
from ctkinetics.estimation import fit
from ctkinetics.estimation.fitproblem import FitProblem, parse_fixed, resolve_fixed
from ctkinetics.modeling import load_model
from est_fakes import Stein, dataset

MODELS = Path(__file__).parents[2] / "models"
COHORT = Path(__file__).parents[2] / "data" / "sample" / "sle_cohort"
TIMES = np.array([1, 2, 4, 7, 9, 11, 14, 21, 28, 42, 60, 90, 180.0])


def _model_file(tmp_path, text_edit):
    text = (MODELS / "stein2019.toml").read_text()
    path = tmp_path / "stein_fixed_fb.toml"
    path.write_text(text_edit(text.replace('name = "stein2019"', 'name = "stein_fixed_fb"')))
    return path


def _with_fb_fixed(text):
    return text.replace('[parameters.FB]\n', '[parameters.FB]\nestimate = false\n')


def _simulated(seed=5, sigma=0.2):
    m = Stein()
    rng = np.random.default_rng(seed)
    p = {"Cmax": 30000.0, "Tmax": 8.0, "foldx": 2000.0, "alpha": 0.2, "FB": 0.0079,
         "beta": 0.004}
    f = np.ravel(m.predict(p, TIMES)["qpcr"])
    y = f * np.exp(rng.normal(0, sigma, f.size))
    obs = pd.DataFrame({"subject": "A", "time": TIMES, "analyte": "qpcr", "value": y})
    return dataset(obs, pd.DataFrame({"subject": ["A"], "dose_level": ["1"]}),
                   {"qpcr": ("copies/ug", np.nan, "qpcr")})


def test_a_parameter_declared_estimate_false_is_held_at_its_default(tmp_path):
    model = load_model(_model_file(tmp_path, _with_fb_fixed))
    assert [p.estimate for p in model.parameters if p.name == "FB"] == [False]
    ds = _simulated()
    res = fit(ds, model, starts=2, derived=False)
    f = res["A"]
    assert "FB" not in f.param_names and res.settings["fixed"] == {"FB": 0.0079}
    assert res.settings["estimate"] == ["Cmax", "Tmax", "foldx", "alpha", "beta"]
    # the −2LL at the estimates, by hand with FB = 0.0079 (est_fakes' Stein formula, scipy)
    e = f.estimates()
    pred = np.ravel(Stein().predict({**e, "FB": 0.0079}, TIMES)["qpcr"])
    y = ds.observations["value"].to_numpy()
    m2ll = -2 * np.sum(stats.norm.logpdf(np.log(y), np.log(pred), e["sigma_qpcr"]) - np.log(y))
    assert f.ofv == pytest.approx(m2ll, rel=1e-9)
    # naming it estimates it again
    again = fit(ds, model, starts=1, derived=False, estimate="Cmax,Tmax,foldx,alpha,FB,beta")
    assert "FB" in again["A"].param_names and again.settings["fixed"] == {}


def test_estimate_and_fixed_pick_exactly_the_estimated_parameters():
    ds = _simulated()
    res = fit(ds, "stein2019", starts=1, derived=False, estimate=["Cmax", "Tmax", "alpha"],
              fixed=["foldx=2000", "FB=0.0079"])
    assert res["A"].param_names == ["Cmax", "Tmax", "alpha", "sigma_qpcr"]
    assert res.settings["fixed"] == {"foldx": 2000.0, "FB": 0.0079, "beta": 0.0032}
    assert parse_fixed("FB=0.01, beta=1e-3") == {"FB": 0.01, "beta": 0.001}
    model = load_model("stein2019")
    assert resolve_fixed(model, None, {"FB": 0.01}) == {"FB": 0.01}


@pytest.mark.parametrize("kw,match", [
    (dict(fixed={"Vd": 1.0}), "unknown parameter"),
    (dict(estimate="Cmax,Vd"), "unknown parameter"),
    (dict(estimate="Cmax,FB", fixed={"FB": 0.01}), "both estimated and fixed"),
    (dict(fixed=["FB"]), "NAME=VALUE"),
    (dict(fixed=["FB=abc"]), "must be a number"),
    (dict(fixed={"FB": 2.0}), "outside its bounds"),
])
def test_bad_estimate_or_fixed_is_a_settings_error(kw, match):
    with pytest.raises(SettingsError, match=match):
        FitProblem.build(_simulated(), "stein2019", **kw)


def test_estimate_must_be_a_boolean_in_a_model_file(tmp_path):
    path = _model_file(tmp_path, lambda t: t.replace('[parameters.FB]\n',
                                                     '[parameters.FB]\nestimate = "no"\n'))
    with pytest.raises(ModelFileError, match="estimate"):
        load_model(path)


def test_the_problem_is_built_once_for_individual_and_population_fits():
    from ctkinetics.estimation.population.data import lay_out

    ds = _simulated()
    both = dataset(pd.concat([ds.observations, ds.observations.assign(subject="B")]),
                   pd.DataFrame({"subject": ["A", "B"], "dose_level": ["1", "2"]}),
                   {"qpcr": ("copies/ug", np.nan, "qpcr")})
    p = FitProblem.build(both, "stein2019", fixed="FB=0.0079")
    assert p.subject_ids == ["A", "B"] and p.analytes == ("qpcr",)
    assert p.dose_levels() == {"A": "1", "B": "2"}
    assert [m.unit for m in p.maps] == ["copies/ug"]
    pop = lay_out(p)
    assert pop.layout is p.layout and list(pop.subjects) == ["A", "B"]
    assert pop.n_obs == sum(d.n_obs for d in p.subjects) == 2 * len(TIMES)


@pytest.mark.skipif(not COHORT.exists(), reason="sample cohort not present")
def test_cli_estimate_and_fix(tmp_path, capsys):
    from ctkinetics.cli.main import main

    out = tmp_path / "f"
    code = main(["fit", str(COHORT), "--model", "stein2019", "--out", str(out), "--starts", "1",
                 "--subjects", "SLE-101,SLE-102", "--estimate", "Cmax,Tmax,alpha",
                 "--fix", "FB=0.01", "--fix", "foldx=100"])
    assert code == 0, capsys.readouterr().err
    params = pd.read_csv(out / "parameters.csv")
    assert set(params["parameter"]) == {"Cmax", "Tmax", "alpha", "sigma_transgene"}
    meta = json.loads((out / "fit.json").read_text())
    assert meta["settings"]["fixed"] == {"foldx": 100.0, "FB": 0.01, "beta": 0.0032}
    code = main(["fit", str(COHORT), "--model", "stein2019", "--out", str(tmp_path / "g"),
                 "--fix", "FB"])
    assert code == 2 and "NAME=VALUE" in capsys.readouterr().err
    with pytest.raises(InputError):
        FitProblem.build(_simulated(), "stein2019", estimate="nope")
