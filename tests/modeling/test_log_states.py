"""States declared ``positive``: the compiled Radau integrates ln(x + c) once a state is
established (:func:`ctkinetics.modeling.radau._switch_to_log`). Checked against closed forms
of small models written here (values, sensitivities, a dose), against the same integrator in
the states' own units, and the failure of a model file that declares a state positive
wrongly."""
import numpy as np
import pytest

from ctkinetics.errors import ModelFileError
from ctkinetics.modeling import load_model
from ctkinetics.modeling.model import Model
from ctkinetics.modeling.modelfile import parse_model_text

# E decays (or grows) exponentially; M starts at 0 and is fed by E:
#   E = E0 exp(-k t),  M = a E0 (exp(-k t) - exp(-d t)) / (d - k)
_CHAIN = """
name = "chain"
title = "E' = -k E, M' = a E - d M"
reference = "test"
[parameters.E0]
default = 5.0
lower = 1e-3
upper = 1e3
unit = "1"
source = "test"
[parameters.k]
default = 0.3
lower = -2.0
upper = 2.0
unit = "1/day"
scale = "linear"
source = "test"
[parameters.a]
default = 0.05
lower = 1e-4
upper = 1.0
unit = "1/day"
source = "test"
[parameters.d]
default = 0.02
lower = 1e-4
upper = 1.0
unit = "1/day"
source = "test"
[states.E]
initial = "E0"
positive = true
[states.M]
initial = 0
positive = true
[[phases]]
ode = { E = "-k * E", M = "a * E - d * M" }
[observables]
flow = "E + M"
[dosing]
E = "amt"
[solver]
rtol = 1e-6
atol = 1e-16
"""


def _chain():
    return Model(**parse_model_text(_CHAIN))


def _closed(p, t):
    E0, k, a, d = (np.asarray(p[n], float)[:, None] for n in ("E0", "k", "a", "d"))
    E = E0 * np.exp(-k * t)
    M = a * E0 * (np.exp(-k * t) - np.exp(-d * t)) / (d - k)
    return E, M


T = np.array([0.01, 0.1, 0.5, 1.0, 3.0, 10.0, 30.0, 60.0, 120.0, 365.0])
P = {"E0": np.array([5.0, 0.02, 300.0]), "k": np.array([0.3, -0.04, 1.5]),
     "a": np.array([0.05, 0.2, 0.01]), "d": np.array([0.02, 0.5, 0.3])}


def test_values_equal_the_closed_form_and_take_fewer_steps_than_in_the_states_units():
    m = _chain()
    E, M = _closed(P, T)
    got = m.solve(P, T)
    assert got.ok
    # relative down to 1e-9 (below c = atol/rtol = 1e-10, ln(x + c) is linear in x, whose
    # error is then absolute, ~atol: subject 3 falls to 1e-50 by day 365)
    rel = np.abs(got.values["flow"] - (E + M)) / (E + M + 1e-9)
    assert rel.max() < 1e-6
    # the exponential decay is a straight line in ln E: far fewer steps than in E itself
    lin = m.with_tolerances(log_states=False).solve(P, T)
    assert lin.ok
    assert np.all(got.steps < 0.6 * lin.steps)


def test_sensitivities_equal_the_closed_forms_derivatives():
    # central differences of the closed form (exact to ~1e-9 at this step) vs the integrator's
    # sensitivities, which pass through ln E and ln M and back
    m = _chain()
    sol = m.solve(P, T, sensitivities=True)
    for j, name in enumerate(m.param_names):
        h = 1e-5 * np.maximum(np.abs(P[name]), 1e-3)
        up, dn = dict(P), dict(P)
        up[name] = P[name] + h
        dn[name] = P[name] - h
        fd = (sum(_closed(up, T)) - sum(_closed(dn, T))) / (2 * h[:, None])
        value = sum(_closed(P, T))
        # relative to the derivative, or to value/parameter; below c (values under 1e-10)
        # absolutely, as the values
        scale = np.abs(fd) + 1e-6 * value / np.maximum(np.abs(P[name]), 1e-3)[:, None] + 1e-12
        assert np.max(np.abs(sol.derivs["flow"][:, :, j] - fd) / scale) < 1e-4, name


def test_a_dose_in_log_coordinates_adds_to_the_state():
    # E0 at t = 0 and another amt at t = 20: E = E0 e^{-kt} + amt e^{-k(t-20)} after it, and M
    # the sum of the two courses (the model is linear)
    m = _chain()
    p = {k: v[:1] for k, v in P.items()}
    t = np.array([10.0, 20.0, 20.5, 40.0, 200.0])
    sol = m.solve(p, t, doses=[[20.0, 7.0]])
    E1, M1 = _closed(p, t)
    second = dict(p, E0=np.array([7.0]))
    E2, M2 = _closed(second, np.maximum(t - 20.0, 0.0))
    want = E1 + M1 + np.where(t > 20.0, E2 + M2, 0.0)   # the sample at the dose time is pre-dose
    assert np.max(np.abs(sol.values["flow"] - want) / want) < 1e-6


def test_library_models_agree_in_log_and_in_their_own_units():
    # two discretisations of one ODE at one tolerance: equal to that tolerance's accuracy
    for name in ("cart_bcell_sle", "cart_bcell_sle_dna", "cart_bcell_sle_allo"):
        m = load_model(name)
        assert all(s.positive for s in m.states), name
        t = np.array([0.25, 1, 4, 9, 14, 28, 60, 120, 180, 365.0]) * m.horizon / 365.0
        a = m.solve(None, t, sensitivities=True)
        b = m.with_tolerances(log_states=False).solve(None, t, sensitivities=True)
        assert a.ok and b.ok
        assert a.steps[0] < b.steps[0], name
        for kind in a.values:
            v, w = a.values[kind], b.values[kind]
            assert np.max(np.abs(v - w) / np.abs(w)) < 3e-6, (name, kind)
            d, e = a.derivs[kind], b.derivs[kind]
            scale = np.abs(e) + 1e-6 * np.abs(w)[..., None] / np.abs(
                np.array([m.parameter(p).default for p in m.param_names]))
            assert np.max(np.abs(d - e) / scale) < 1e-3, (name, kind)


_WRONG = _CHAIN.replace('ode = { E = "-k * E", M = "a * E - d * M" }',
                        'ode = { E = "-k", M = "a * E - d * M" }')


def test_a_state_declared_positive_that_goes_negative_fails_with_a_status():
    # E' = -k: E crosses 0 at t = E0/k, which ln(E + c) cannot: the subject stops with a
    # status and NaN from there, never a value; undeclared, the same model integrates through
    m = Model(**parse_model_text(_WRONG))
    p = {"E0": np.array([1.0]), "k": np.array([0.5]), "a": np.array([0.05]), "d": np.array([0.02])}
    t = np.array([1.0, 5.0])
    sol = m.solve(p, t)
    assert sol.status[0] != 0
    assert sol.values["flow"][0, 0] == pytest.approx(0.5 + 0.05 * (1.0 - 0.25) / 1.0, rel=1e-2)
    assert np.isnan(sol.values["flow"][0, 1])
    lin = m.with_tolerances(log_states=False).solve(p, t)
    assert lin.ok and lin.values["flow"][0, 1] < 0.0


def test_positive_must_be_true_or_false():
    text = _CHAIN.replace("[states.M]\ninitial = 0\npositive = true", '[states.M]\ninitial = 0\npositive = "yes"')
    with pytest.raises(ModelFileError) as info:
        parse_model_text(text, "m.toml")
    assert [p.key for p in info.value.problems] == ["states.M.positive"]


def test_a_models_solver_settings_travel_to_the_workers():
    # resampling and covariate-search workers rebuild the model from its file: a copy made by
    # with_tolerances keeps its settings there (loaded again, the same solution bit for bit)
    from ctkinetics.estimation.resampling import ModelRef

    m = load_model("cart_bcell_sle").with_tolerances(1e-7, 1e-18, log_states=False, max_step=5.0)
    back = ModelRef.of(m).load()
    assert (back.rtol, back.atol, back.log_states, back.max_step) == (1e-7, 1e-18, False, 5.0)
    t = np.array([1.0, 30.0, 200.0])
    np.testing.assert_array_equal(back.solve(None, t).values["bcell"], m.solve(None, t).values["bcell"])
    assert load_model("cart_bcell_sle").max_step == 10.0 and ModelRef.of(load_model("cart_bcell_sle")).load().max_step == 10.0


def test_nonnegative_expressions_and_the_auc_states_in_log_coordinates():
    # the sufficient check behind the AUC (quadrature) states: sums, products, quotients,
    # powers and exp of non-negative symbols are non-negative; a difference, a negative
    # constant or an unknown symbol is not known to be
    from ctkinetics.modeling.compiled import Quadrature
    from ctkinetics.modeling.expressions import compile_expression, nonnegative

    names = {"E", "M", "k"}
    def check(text):
        return nonnegative(compile_expression(text, names | {"alc", "t"}).tree, names)
    assert check("k * (E + M)") and check("E / (k + M)") and check("exp(-k * t) * E")
    assert check("E ** 2.5") and check("hill(E, k, M)") and check("ln2 * E")
    assert not check("E - M") and not check("-E") and not check("E / (alc + k)")
    assert not check("log(E)") and not check("E * t")
    # cart_bcell_sle's observables are built from its positive states and positive
    # parameters; cart_bcell_sle_dna's qPCR divides by a covariate (no bounds): linear
    q = Quadrature(load_model("cart_bcell_sle"), ["qpcr", "bcell"])
    assert [s.positive for s in q.model.states[-2:]] == [True, True]
    q = Quadrature(load_model("cart_bcell_sle_dna"), ["qpcr", "flow"])
    assert [s.positive for s in q.model.states[-2:]] == [False, True]


def test_sensitivities_in_the_error_test_in_log_coordinates():
    # errcon (CVODES' errconS) estimates the sensitivities' error with the transformed
    # df/dtheta: the derivatives still equal the closed form's, and no fewer steps are taken
    from ctkinetics.modeling.compiled import compiled

    m = _chain()
    cm = compiled(m)
    pc = cm.pc_matrix(P, {}, 3)
    off = np.arange(4, dtype=np.int64) * T.size
    plain = cm.solve(pc, np.tile(T, 3), off, sens=True)
    tight = cm.solve(pc, np.tile(T, 3), off, sens=True, errcon=True)
    assert np.all(tight.status == 0) and np.all(tight.steps[:, 0] >= plain.steps[:, 0])
    j = cm.output_names.index("flow")
    for k, name in enumerate(cm.param_names):
        h = 1e-5 * np.maximum(np.abs(P[name]), 1e-3)
        up, dn = dict(P), dict(P)
        up[name] = P[name] + h
        dn[name] = P[name] - h
        fd = ((sum(_closed(up, T)) - sum(_closed(dn, T))) / (2 * h[:, None])).ravel()
        value = sum(_closed(P, T)).ravel()
        scale = np.abs(fd) + 1e-6 * value / np.repeat(np.maximum(np.abs(P[name]), 1e-3), T.size) + 1e-12
        assert np.max(np.abs(tight.sens[:, j, k] - fd) / scale) < 1e-4, name
