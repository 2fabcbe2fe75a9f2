"""The model file's [residual_error] (issue 12): validated like the rest of the file (line and
key in every error), the same SD names as the fits' error models, and what it is for — a MAP
fit of a sparse participant with σ held at the declared assay precision no longer runs
sigma_bcell to its bound and recovers the simulated truth."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctkinetics.errors import ModelFileError
from ctkinetics.estimation import fit
from ctkinetics.estimation.likelihood import ERROR_MODELS
from ctkinetics.modeling import load_model
from ctkinetics.modeling.modelfile import parse_model_text
from ctkinetics.modeling.modelfile_schema import RESIDUAL_SDS
from est_fakes import dataset

#: a library model file without a [residual_error] table (it observes qpcr only); the tables
#: below are appended to it, so their lines are counted from its end
HEAD = (Path(__file__).resolve().parents[2] / "models" / "stein2019.toml").read_text(
    encoding="utf-8")
N = len(HEAD.splitlines())


def _problems(text):
    with pytest.raises(ModelFileError) as info:
        parse_model_text(HEAD + text, "m.toml")
    return [(p.line, p.key, p.message) for p in info.value.problems]


def test_residual_error_tables_are_validated_with_line_and_key():
    # lines counted by hand from the end of HEAD: the blank line is N + 1, the table N + 2
    assert "[residual_error" not in HEAD and "\n[observables]\nqpcr = " in HEAD
    assert _problems('''
[residual_error.qpcr]
model = "proportional"
sigma = 0.2
cv = 0.2
source = "assumed"
''') == [(N + 5, "residual_error.qpcr.cv", "unknown key 'cv' in [residual_error.qpcr]: its "
          "settings would be ignored (known: model, sigma, sigma_prop, sigma_add, unit, "
          "description, source)")]
    found = _problems('''
[residual_error.qpcr]
model = "propotional"
sigma = -0.3
source = ""
''')
    assert [(line, key) for line, key, _ in found] == [
        (N + 3, "residual_error.qpcr.model"), (N + 4, "residual_error.qpcr.sigma"),
        (N + 5, "residual_error.qpcr.source")]
    assert "expected 'proportional', 'additive' or 'combined', got 'propotional'" in found[0][2]
    assert "expected a residual SD > 0, got -0.3" in found[1][2]
    # the model's own rule: an observable it declares
    found = _problems('''
[residual_error.flow]
model = "proportional"
sigma = 0.3
source = "assumed"
''')
    assert found == [(N + 2, "residual_error.flow", "[residual_error.flow]: 'flow' is not an "
                      "observable of the model (it has qpcr)")]


def test_combined_model_needs_both_sds_and_no_other():
    found = _problems('''
[residual_error.qpcr]
model = "combined"
sigma = 0.2
sigma_prop = 0.1
source = "assumed"
''')
    assert [(line, key) for line, key, _ in found] == [
        (N + 2, "residual_error.qpcr.sigma_add"), (N + 4, "residual_error.qpcr.sigma")]
    assert found[0][2] == "the combined error model needs 'sigma_add'"
    assert found[1][2] == ("'sigma' is not an SD of the combined error model (it has "
                           "sigma_prop, sigma_add)")


def test_the_schema_names_the_fits_residual_sds():
    assert dict(RESIDUAL_SDS) == \
        {k: e.sigma_names for k, e in ERROR_MODELS.items()}


# ---------------------------------------------------------------------------------------
TIMES = np.array([1, 4, 7, 10, 14, 21, 28, 42, 56, 90, 180.0])   # the sample cohort's days
#: name -> (kind, unit, LLOQ, proportional SD): the sample cohort's (data/sample/generate.py)
ANALYTES = {"transgene": ("qpcr", "copies/ug", 20.0, 0.25),
            "car_flow": ("flow", "cells/uL", 0.5, 0.30),
            "bcell": ("bcell", "cells/uL", 1.0, 0.20)}
ESTIMATED = ["fE", "kexp", "kfade", "dM", "Bbase", "kkill", "qpcr_per_cell"]


def _sparse_participant(model, truth, seed=1):
    """One participant simulated from cart_bcell_sle at the sample schedule with the sample
    cohort's LLOQs and SDs: 9 of 11 B-cell samples BLQ."""
    rng = np.random.default_rng(seed)
    f = model.predict(truth, TIMES, covariates={"dose": 4.5e8})
    rows = []
    for a, (kind, _, lloq, sd) in ANALYTES.items():
        y = np.ravel(f[kind]) * np.exp(sd * rng.standard_normal(TIMES.size))
        blq = y < lloq
        rows.append(pd.DataFrame({"subject": "P1", "time": TIMES, "analyte": a,
                                  "value": np.where(blq, np.nan, y), "blq": blq,
                                  "lloq": lloq}))
    obs = pd.concat(rows, ignore_index=True)
    subjects = pd.DataFrame({"subject": ["P1"], "dose_level": "2", "dose": [4.5e8]})
    return dataset(obs, subjects, {a: (u, lo, k) for a, (k, u, lo, _) in ANALYTES.items()}), obs


def test_map_fit_with_the_declared_sigma_recovers_a_sparse_participant():
    model = load_model("cart_bcell_sle")
    truth = {p.name: p.default for p in model.parameters}
    truth.update(fE=0.004, dM=0.024, Bbase=160.0, kkill=25.0)
    ds, obs = _sparse_participant(model, truth)
    assert obs[obs["analyte"] == "bcell"]["blq"].sum() == 9
    # the problem: σ of the B cells from the participant's 2 quantified values runs to its
    # lower bound (one value fitted exactly)
    own = fit(ds, model, prior="model", estimate_sigma=True, starts=2, derived=False)["P1"]
    assert "at_bound" in own.flags
    t = own.parameters.set_index("parameter")
    assert "at_bound" in t.loc["sigma_bcell", "flags"]
    # held at the model file's [residual_error]: no flag, σ as declared
    held = fit(ds, model, prior="model", starts=2, derived=False)["P1"]
    assert held.success and held.flags == ()
    t = held.parameters.set_index("parameter")
    declared = {f"sigma_{a}": v[3] for a, v in ANALYTES.items()}
    for name, v in declared.items():
        assert t.loc[name, "estimate"] == v and t.loc[name, "ci_method"] == "fixed"
    # against the truth: the MAP estimates of one participant (11 samples per analyte, SD
    # 0.2-0.3 on ln, shrunk towards the typical values) within 0.5 on the ln scale (a factor
    # 1.65); the peak's timing (kexp, kfade: ω² 0.004) within 0.1
    est = t.loc[ESTIMATED, "estimate"].astype(float)
    err = np.abs(np.log(est / pd.Series({k: truth[k] for k in ESTIMATED})))
    assert (err < 0.5).all(), err
    assert err["kexp"] < 0.1 and err["kfade"] < 0.1
