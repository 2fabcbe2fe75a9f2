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


def test_rows_solved_at_their_needed_times_only_equal_the_shared_grid():
    """``needed`` (a population fit: each subject to its own last sample) against the
    model's own shared-grid solve: a row whose times are the grid's up to its last one
    takes the integrator's same steps (equal to rounding); a row that skips a middle time
    agrees within the solver's tolerance (rtol 7e-7 in the model file); cells not needed
    are NaN; values and sensitivities, with and without a new qpcr_per_cell."""
    model = modeling.load_model("cart_bcell_sle")
    pred = ModelPredictor(model, KINDS)
    params = dict(model.defaults(), fE=np.array([0.002, 0.003, 0.004]),
                  kexp=np.array([1.8, 2.0, 2.2]), qpcr_per_cell=np.array([50.0, 100.0, 400.0]))
    cov = {"dose": np.array([3e8, 4.5e8, 6e8])}
    needed = np.ones((3, TIMES.size), bool)
    needed[1, 4:] = False                  # ends at day 28
    needed[2, 2] = False                   # misses day 9, then goes on to day 180
    out = pred.predict(params, TIMES, cov, needed=needed)
    ref = model.predict(params, TIMES, covariates=cov, observables=KINDS)
    values, derivs = pred.sensitivities(params, TIMES, cov, wrt=["fE", "kexp"], needed=needed)
    ref_v, ref_d = model.sensitivities(params, TIMES, covariates=cov, observables=KINDS,
                                       wrt=["fE", "kexp"])
    for k in KINDS:
        for got in (out[k], values[k]):
            assert np.all(np.isnan(got[~needed]))
            np.testing.assert_allclose(got[:2][needed[:2]], ref[k][:2][needed[:2]],
                                       rtol=1e-13, atol=0)
            np.testing.assert_allclose(got[2][needed[2]], ref[k][2][needed[2]], rtol=1e-5,
                                       atol=0)
        np.testing.assert_allclose(derivs[k][:2][needed[:2]], ref_d[k][:2][needed[:2]],
                                   rtol=1e-13, atol=0)
        np.testing.assert_allclose(derivs[k][2][needed[2]], ref_d[k][2][needed[2]],
                                   rtol=1e-4, atol=1e-12 * np.abs(ref_d[k]).max())
    # the reused states of a new observation-only parameter keep the mask
    other = dict(params, qpcr_per_cell=np.array([100.0, 100.0, 100.0]))
    again = pred.predict(other, TIMES, cov, needed=needed)
    np.testing.assert_allclose(again["qpcr"][needed], (out["qpcr"] * np.array(
        [2.0, 1.0, 0.25])[:, None])[needed], rtol=1e-12)


def test_rows_solved_before_are_not_solved_again(monkeypatch):
    """A stack with a ``needed`` mask keeps its states row by row: a later stack mixing
    rows of two earlier ones (SAEM's chains after accepting some candidates) solves only
    its new rows, and every row equals the model's own prediction."""
    model = modeling.load_model("cart_bcell_sle")
    pred = ModelPredictor(model, KINDS)
    solved = []
    original = ModelPredictor._ragged_states

    def counting(self, params, times, covariates, mask):
        solved.append(mask.shape[0])
        return original(self, params, times, covariates, mask)

    monkeypatch.setattr(ModelPredictor, "_ragged_states", counting)
    cov = {"dose": np.array([3e8, 4.5e8, 6e8])}
    needed = np.ones((3, TIMES.size), bool)
    needed[2, 4:] = False
    a = dict(model.defaults(), fE=np.array([0.002, 0.003, 0.004]))
    b = dict(model.defaults(), fE=np.array([0.005, 0.006, 0.007]))
    mixed = dict(model.defaults(), fE=np.array([0.005, 0.003, 0.009]),
                 qpcr_per_cell=np.array([80.0, 90.0, 100.0]))
    pred.predict(a, TIMES, cov, needed=needed)
    pred.predict(b, TIMES, cov, needed=needed)
    assert solved == [3, 3]
    out = pred.predict(mixed, TIMES, cov, needed=needed)
    assert solved == [3, 3, 1]              # rows 0 and 1 were solved before; row 2 is new
    ref = model.predict(mixed, TIMES, covariates=cov, observables=KINDS)
    for k in KINDS:
        np.testing.assert_allclose(out[k][needed], ref[k][needed], rtol=1e-13, atol=0)
        assert np.all(np.isnan(out[k][~needed]))
