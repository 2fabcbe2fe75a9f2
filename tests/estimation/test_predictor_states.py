"""ModelPredictor reuses the ODE states when only observation parameters change.

cart_bcell_sle reads ``qpcr_per_cell`` only in ``[observables]`` (qpcr = qpcr_per_cell *
(E + M + X)): a prediction at another qpcr_per_cell must equal the model's own prediction
without a new ODE solve; any other parameter (here kexp) needs one.
"""
import numpy as np
import pytest

from ctkinetics.estimation.predictor import ModelPredictor, observation_only_parameters

modeling = pytest.importorskip("ctkinetics.modeling")
KINDS = ["qpcr", "flow", "bcell"]
TIMES = np.array([1.0, 4.0, 9.0, 28.0, 90.0, 180.0])


def test_observation_only_parameters_are_read_by_the_observables_alone():
    # cart_bcell_sle.toml: qpcr_per_cell appears in [observables] and nowhere else
    assert observation_only_parameters(modeling.load_model("cart_bcell_sle")) == \
        {"qpcr_per_cell"}
    # a closed form (its states are the solution itself): nothing to reuse
    assert observation_only_parameters(modeling.load_model("stein2019")) == frozenset()


def test_a_new_qpcr_per_cell_reuses_the_states_and_equals_model_predict(monkeypatch):
    model = modeling.load_model("cart_bcell_sle")
    solves = []
    original = type(model).predict_states

    def counting(self, *args, **kwargs):
        solves.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "predict_states", counting)
    pred = ModelPredictor(model, KINDS)
    params = dict(model.defaults(), fE=np.array([0.002, 0.003, 0.004]),
                  kexp=np.array([1.8, 2.0, 2.2]))
    cov = {"dose": np.array([3e8, 4.5e8, 6e8])}
    first = pred.predict(params, TIMES, cov)
    assert len(solves) == 1
    other = dict(params, qpcr_per_cell=np.array([50.0, 100.0, 400.0]))
    again = pred.predict(other, TIMES, cov)
    assert len(solves) == 1                             # no new ODE solve
    direct = model.predict(other, TIMES, covariates=cov, observables=KINDS)
    for k in KINDS:
        np.testing.assert_allclose(again[k], direct[k], rtol=1e-12, atol=0)
    np.testing.assert_allclose(again["qpcr"], first["qpcr"] * np.array([0.5, 1.0, 4.0])[:, None],
                               rtol=1e-12)
    np.testing.assert_array_equal(again["flow"], first["flow"])
    # a parameter of the ODE is a new solve
    moved = dict(other, kexp=np.array([1.9, 2.0, 2.2]))
    out = pred.predict(moved, TIMES, cov)
    assert len(solves) == 2
    np.testing.assert_allclose(out["flow"], model.predict(moved, TIMES, covariates=cov,
                                                          observables=["flow"])["flow"],
                               rtol=1e-12, atol=0)
