"""Doses after the first infusion and time-varying covariates in the compiled engine,
against closed-form superposition (a linear one-compartment model) and central differences."""
import numpy as np
import pytest

from ctkinetics.errors import ModelFileError, SettingsError
from ctkinetics.modeling import load_model
from ctkinetics.modeling.model import Model
from ctkinetics.modeling.modelfile import parse_model_text
from ctkinetics.modeling.solution import TimeCourse

ONECPT = """
name = "onecpt_bolus"
title = "One compartment with bolus doses and time-varying covariates"
reference = "test model: dA/dt = -k (1 + inh) A + rate, conc = A/V"
[parameters.k]
default = 0.1
lower = 0.001
upper = 10.0
unit = "1/day"
source = "test"
[parameters.V]
default = 2.0
lower = 0.1
upper = 100.0
unit = "L"
source = "test"
[covariates.dose]
default = 100.0
[covariates.inh]
default = 0.0
time_varying = true
[covariates.rate]
default = 0.0
time_varying = true
interpolation = "linear"
[states.A]
initial = "dose"
[[phases]]
ode = { A = "-k * (1 + inh) * A + rate" }
[observables]
conc = "A / V"
[dosing]
A = "amt"
"""
T = np.array([0.0, 1, 5, 9.999, 10, 10.5, 20, 30])
K, V = 0.1, 2.0


@pytest.fixture(scope="module")
def model():
    return Model(**parse_model_text(ONECPT))


def _superposition(t, doses, k=K):
    a = np.zeros_like(t)
    for td, amt in doses:
        a += np.where(t > td if td > 0 else t >= 0, amt * np.exp(-k * (t - td)), 0.0)
    return a


def test_bolus_doses_superpose_and_are_taken_pre_dose(model):
    doses = [[10.0, 50.0], [20.0, 25.0]]
    sol = model.solve(None, T, doses=doses, sensitivities=True)
    assert sol.ok
    A = _superposition(T, [(0.0, 100.0), (10.0, 50.0), (20.0, 25.0)])
    np.testing.assert_allclose(sol.values["conc"], A / V, rtol=1e-7)
    # the sample at t = 10 is pre-dose (the 50 is not in it)
    assert sol.values["conc"][4] == pytest.approx(100 * np.exp(-1.0) / V, rel=1e-7)
    # d conc / dk and / dV against the differentiated superposition
    dk = sum(np.where(T > td if td > 0 else T >= 0, -(T - td) * amt * np.exp(-K * (T - td)), 0.0)
             for td, amt in [(0.0, 100.0), (10.0, 50.0), (20.0, 25.0)]) / V
    np.testing.assert_allclose(sol.derivs["conc"][:, 0], dk, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(sol.derivs["conc"][:, 1], -A / V ** 2, rtol=1e-7)


def test_doses_per_subject_in_one_ragged_stack(model):
    sol = model.solve({"k": np.array([0.1, 0.3])}, [T, T[:4]],
                      doses=[np.array([[10.0, 50.0]]), np.zeros((0, 2))])
    np.testing.assert_allclose(sol.values["conc"][:8],
                               _superposition(T, [(0.0, 100.0), (10.0, 50.0)]) / V, rtol=1e-7)
    np.testing.assert_allclose(sol.values["conc"][8:],
                               _superposition(T[:4], [(0.0, 100.0)], k=0.3) / V, rtol=1e-7)


def test_step_covariate_changes_the_rate_from_its_time_on(model):
    sol = model.solve(None, T, covariates={"inh": TimeCourse([0.0, 5.0], [0.0, 1.0])})
    want = np.where(T <= 5, 100 * np.exp(-K * T), 100 * np.exp(-K * 5) * np.exp(-2 * K * (T - 5)))
    np.testing.assert_allclose(sol.values["conc"], want / V, rtol=1e-7)


def test_linear_covariate_is_interpolated_between_its_times(model):
    # with k ~ 0 the state integrates the input: A = 100 + ∫ rate, rate 0 -> 10 over 10 days
    sol = model.solve({"k": 0.001}, T, covariates={"rate": TimeCourse([0.0, 10.0], [0.0, 10.0])})
    ref = model.with_tolerances(1e-10, 1e-14)
    fine = ref.solve({"k": 0.001}, T, covariates={"rate": TimeCourse([0.0, 10.0], [0.0, 10.0])})
    np.testing.assert_allclose(sol.values["conc"], fine.values["conc"], rtol=1e-7)
    no_decay = 100 + np.where(T <= 10, 0.5 * T ** 2, 50 + 10 * (T - 10))
    np.testing.assert_allclose(sol.values["conc"], no_decay / V, rtol=2e-2)


def test_sensitivities_through_doses_equal_central_differences():
    m = load_model("cart_bcell_sle")
    t = np.array([1.0, 7, 28, 60, 61, 67, 90, 180])
    doses = [[60.0, 4.5e8]]
    sol = m.solve(None, t, doses=doses, sensitivities=True, wrt=["fE", "kkill", "dM"])
    tight = m.with_tolerances(1e-12, 1e-16)
    for j, pn in enumerate(["fE", "kkill", "dM"]):
        p0 = m.defaults()[pn]
        h = 1e-3 * p0
        f = {k: tight.predict({pn: p0 + k * h}, t, doses=doses) for k in (-2, -1, 1, 2)}
        for kind, d in sol.derivs.items():
            fd = (8 * (f[1][kind] - f[-1][kind]) - (f[2][kind] - f[-2][kind])) / (12 * h)
            scale = np.abs(fd) + 1e-5 * np.abs(sol.values[kind]) / p0
            assert np.max(np.abs(d[:, j] - fd) / scale) < 1e-4, (pn, kind)


def test_reinfusion_adds_effectors():
    # the SLE model's [dosing]: a later infusion adds fE·amt/Vblood circulating effectors
    m = load_model("cart_bcell_sle")
    t = np.array([59.999, 60.0, 60.001])
    base = m.predict(None, t)
    again = m.predict(None, t, doses=[[60.0, 4.5e8]])
    assert again["flow"][1] == pytest.approx(base["flow"][1], rel=1e-9)     # pre-dose sample
    jump = again["flow"][2] - base["flow"][2]
    assert jump == pytest.approx(0.003 * 4.5e8 / 5.0e6, rel=1e-2)


def test_inputs_that_cannot_be_honoured_are_refused(model):
    with pytest.raises(SettingsError, match="not time-varying"):
        load_model("cart_bcell_sle").solve(None, T, covariates={"dose": TimeCourse([0.0], [1.0])})
    with pytest.raises(SettingsError, match=r"\[dosing\]"):
        load_model("stein2019").solve(None, T, doses=[[10.0, 1.0]])
    with pytest.raises(SettingsError, match="closed form"):
        load_model("em_firstorder").solve(None, T, doses=[[10.0, 1.0]], method="closed")
    with pytest.raises(SettingsError, match="times > 0"):
        model.solve(None, T, doses=[[-1.0, 1.0]])
    with pytest.raises(SettingsError, match="increasing"):
        TimeCourse([1.0, 1.0], [0.0, 1.0])
    bad = ONECPT.replace('[dosing]\nA = "amt"', '[dosing]\nB = "amt"')
    with pytest.raises(ModelFileError, match="not a state"):
        parse_model_text(bad)
    with pytest.raises(ModelFileError, match="reserved"):
        parse_model_text(ONECPT.replace("[parameters.V]", "[parameters.amt]").replace(
            "A / V", "A / amt"))
