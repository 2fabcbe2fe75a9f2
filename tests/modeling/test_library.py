"""One suite over every model of the library, plus published reference values."""
import math

import numpy as np
import pytest
from scipy import integrate

from ctkinetics.modeling import list_models, load_model, simulate, simulate_population

MODELS = list_models()


def test_library_has_the_promised_models():
    assert {"stein2019", "cart_bcell_sle", "em_firstorder", "onecpt_oral"} <= set(MODELS)


def _grid(m):
    h = m.horizon
    t = np.concatenate([np.linspace(0, h, 60), [0.5, 1.0, 2.0]])
    return np.sort(t)


def _population_params(m, n=5, seed=3):
    pop = simulate_population(m, n, times=[0.0], seed=seed)
    return {k: pop.parameters[k].to_numpy() for k in m.param_names}


@pytest.mark.parametrize("name", MODELS)
def test_parameters_are_documented_and_within_bounds(name):
    m = load_model(name)
    assert m.reference and m.title
    for p in m.parameters:
        assert p.lower <= p.default <= p.upper
        assert p.source and p.unit and p.description, p.name


@pytest.mark.parametrize("name", [n for n in MODELS if load_model(n).has_closed_form])
def test_closed_form_equals_ode(name):
    m = load_model(name)
    t = _grid(m)
    for params in (None, _population_params(m)):
        closed = m.predict(params, t, method="closed")
        ode = m.predict(params, t, method="ode")
        for kind in closed:
            scale = np.abs(closed[kind]) + 1e-9 * np.max(np.abs(closed[kind]))
            assert np.max(np.abs(ode[kind] - closed[kind]) / scale) < 1e-6, kind


@pytest.mark.parametrize("name", MODELS)
def test_states_continuous_at_switch_times(name):
    m = load_model(name)
    env, _ = m.environment()
    eps = 1e-10
    scale = {x: np.max(np.abs(v)) for x, v in m.predict_states(None, _grid(m)).items()}
    for phase in m.phases[:-1]:
        s = float(phase.end(env))
        for method in ("closed", "ode") if m.has_closed_form else ("ode",):
            states = m.predict_states(None, [s - eps, s + eps], method=method)
            for x, v in states.items():
                # a jump would be a sizeable fraction of the state's range; slope * 2 eps is not
                assert abs(v[1] - v[0]) <= 1e-6 * scale[x] + 1e-12, (x, method)


@pytest.mark.parametrize("name", MODELS)
def test_states_are_non_negative(name):
    m = load_model(name)
    t = _grid(m)
    for params in (None, _population_params(m, n=8, seed=11)):
        states = m.predict_states(params, t)
        for x, v in states.items():
            assert np.all(v >= -10 * m.atol), x


@pytest.mark.parametrize("name", MODELS)
def test_vectorised_prediction_equals_one_subject_at_a_time(name):
    m = load_model(name)
    t = _grid(m)[::4]
    params = _population_params(m, n=3)
    together = m.predict(params, t)
    for i in range(3):
        alone = m.predict({k: v[i] for k, v in params.items()}, t)
        for kind in alone:
            assert together[kind].shape == (3, t.size)
            np.testing.assert_allclose(together[kind][i], alone[kind], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", [n for n in MODELS if "AUC0_inf" in load_model(n).derived()])
def test_auc_formula_equals_numerical_integral(name):
    m = load_model(name)
    kind = next(iter(m.observables))
    env, _ = m.environment()
    breaks = [float(p.end(env)) for p in m.phases[:-1]]
    f = lambda x: m.predict(None, [x])[kind][0]
    edges = [0.0, *breaks, np.inf]
    total = sum(integrate.quad(f, a, b, limit=200, epsabs=0, epsrel=1e-10)[0] for a, b in zip(edges, edges[1:]))
    assert m.derived()["AUC0_inf"] == pytest.approx(total, rel=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_half_lives_and_doubling_times_match_the_curve(name):
    """A derived t_half / doubling time is checked against the simulated curve itself."""
    m = load_model(name)
    d = m.derived()
    if name == "stein2019":
        t = np.array([1.0, 1.0 + d["doubling_time"]])
        c = m.predict(None, t)["qpcr"]
        assert c[1] / c[0] == pytest.approx(2.0, rel=1e-9)
        # far into the persistence phase the curve halves every ln2/beta
        t = np.array([2000.0, 2000.0 + d["t_half_beta"]])
        c = m.predict(None, t)["qpcr"]
        assert c[0] / c[1] == pytest.approx(2.0, rel=1e-6)
    elif name == "onecpt_oral":
        t = np.array([60.0, 60.0 + d["t_half"]])
        c = m.predict(None, t)["conc"]
        assert c[0] / c[1] == pytest.approx(2.0, rel=1e-9)
        tt = np.linspace(d["Tmax"] - 1e-3, d["Tmax"] + 1e-3, 3)
        c = m.predict(None, tt)["conc"]
        assert c[1] >= c[0] and c[1] >= c[2]
    elif name == "em_firstorder":
        assert d["Cmax"] == pytest.approx(m.predict(None, [m.defaults()["Tmax"]])["qpcr"][0], rel=1e-12)
    elif name == "cart_bcell_sle":
        env, _ = m.environment()
        assert d["E0"] == pytest.approx(m.predict_states(None, [0.0])["E"][0])
        assert d["B_nadir"] == pytest.approx(env["kin"] / (env["kout"] + env["kkill"]))


# ---- published / independent reference values -------------------------------------------
def test_stein2019_typical_subject_reference_values():
    m = load_model("stein2019")
    d = m.derived()
    assert d["R0"] == pytest.approx(6.15, abs=0.005)
    assert d["rho"] == pytest.approx(0.889, abs=0.0005)
    assert round(d["doubling_time"], 2) == 0.78
    assert round(d["t_half_alpha"], 1) == 4.3
    assert d["t_half_beta"] == pytest.approx(217, abs=0.5)
    assert d["AUC0_inf"] == pytest.approx(2.351e5, rel=1e-3)
    assert d["AUC0_28"] == pytest.approx(1.718e5, rel=1e-3)
    # AUC0-28 by integrating the predicted curve, an independent route to the same number
    f = lambda x: m.predict(None, [x])["qpcr"][0]
    auc28 = integrate.quad(f, 0, 9.3, epsrel=1e-11)[0] + integrate.quad(f, 9.3, 28, epsrel=1e-11)[0]
    assert auc28 == pytest.approx(1.718e5, rel=1e-3)
    assert auc28 == pytest.approx(d["AUC0_28"], rel=1e-8)
    peak = m.predict(None, [9.3])["qpcr"][0]
    assert peak == pytest.approx(24000, rel=1e-12)


def test_em_firstorder_reproduces_stein_with_mapped_defaults():
    a, b = load_model("em_firstorder"), load_model("stein2019")
    t = np.linspace(0, 365, 200)
    np.testing.assert_allclose(a.predict(None, t)["qpcr"], b.predict(None, t)["qpcr"], rtol=2e-6)
    assert a.derived()["FB"] == pytest.approx(0.0079, rel=1e-6)


def _ssfol(dose, t, lKe, lKa, lCl):
    """R's SSfol, written out: Dose*exp(lKe+lKa-lCl)*(exp(-exp(lKe)t)-exp(-exp(lKa)t))/(exp(lKa)-exp(lKe))."""
    ke, ka = math.exp(lKe), math.exp(lKa)
    return dose * math.exp(lKe + lKa - lCl) * (np.exp(-ke * t) - np.exp(-ka * t)) / (ka - ke)


def test_onecpt_oral_equals_ssfol_and_is_exact_when_ka_equals_ke():
    m = load_model("onecpt_oral")
    t = np.array([0.25, 0.57, 1.12, 2.02, 3.82, 5.1, 7.03, 9.05, 12.12, 24.37])
    # Theoph subject 1 nls estimates (DOMAIN.md 4)
    lKe, lKa, lCl = -2.9196, 0.5752, -3.9159
    params = {"ke": math.exp(lKe), "ka": math.exp(lKa), "CL": math.exp(lCl)}
    got = m.predict(params, t, {"dose": 4.02})["conc"]
    np.testing.assert_allclose(got, _ssfol(4.02, t, lKe, lKa, lCl), rtol=1e-12)
    # ka == ke: the limit dose*k^2/CL * t * exp(-k t), no 0/0
    k, cl = 0.3, 0.04
    same = m.predict({"ka": k, "ke": k, "CL": cl}, t, {"dose": 4.0})["conc"]
    np.testing.assert_allclose(same, 4.0 * k * k / cl * t * np.exp(-k * t), rtol=1e-12)
    near = m.predict({"ka": k * (1 + 1e-9), "ke": k, "CL": cl}, t, {"dose": 4.0})["conc"]
    np.testing.assert_allclose(near, same, rtol=1e-7)
    assert m.derived({"ka": k, "ke": k, "CL": cl})["Tmax"] == pytest.approx(1 / k)


def test_cart_bcell_sle_typical_course_matches_the_sle_targets():
    """Peak day 7-12 with flow 10-100 cells/uL and qPCR 1e3-1e5 copies/ug; B cells deeply
    depleted within a week, back above 1 cell/uL within 110 +- 32 days (Mackensen 2022)."""
    m = load_model("cart_bcell_sle")
    t = np.arange(0, 366.0, 0.5)
    for dose in (3.0e8, 4.5e8, 6.0e8):
        p = m.predict(None, t, {"dose": dose})
        i = int(np.argmax(p["flow"]))
        assert 7 <= t[i] <= 12
        assert 10 <= p["flow"][i] <= 100
        assert 1e3 <= p["qpcr"][i] <= 1e5
        assert p["bcell"][0] == pytest.approx(200.0)
        assert np.all(p["bcell"][(t >= 7) & (t <= 60)] < 1.0)
        below = np.nonzero(p["bcell"] < 1.0)[0]
        reappear = t[below[-1] + 1]
        assert 110 - 32 <= reappear <= 110 + 32
    # a higher dose gives a higher peak
    peaks = [m.predict(None, t, {"dose": d})["flow"].max() for d in (3.0e8, 6.0e8)]
    assert peaks[0] < peaks[1]


def test_simulate_returns_tidy_defaults_and_population_is_reproducible():
    df = simulate("stein2019", times=[0.0, 9.3])
    assert list(df.columns) == ["time", "observable", "value"]
    assert df["value"].iloc[1] == pytest.approx(24000)
    a = simulate_population("stein2019", 50, times=[0, 9.3, 28], seed=7)
    b = simulate_population("stein2019", 50, times=[0, 9.3, 28], seed=7)
    assert a.profiles.equals(b.profiles) and a.parameters.equals(b.parameters)
    # log-normal IIV: var of ln Cmax across many subjects ~ omega^2 0.65
    big = simulate_population("stein2019", 20000, times=[9.0], seed=1)
    assert np.var(np.log(big.parameters["Cmax"])) == pytest.approx(0.65, rel=0.05)
    assert set(a.to_frame().columns) == {"subject", "time", "observable", "value"}


def test_population_dose_per_subject():
    doses = np.repeat([3.0e8, 4.5e8, 6.0e8], 2)
    pop = simulate_population("cart_bcell_sle", 6, omega={}, times=[0.0], seed=1, covariates={"dose": doses})
    e0 = load_model("cart_bcell_sle").derived({}, {"dose": doses})["E0"]
    flow0 = pop.profiles.query("observable == 'flow'")["value"].to_numpy()
    np.testing.assert_allclose(flow0, e0)


def test_observe_from_solved_states_equals_predict():
    # Model.observe evaluates the observables on states solved once: an assay-only parameter
    # (qpcr_per_cell) changes the qPCR without a new solve, exactly as predict would give it
    import numpy as np

    from ctkinetics.modeling import load_model

    m = load_model("cart_bcell_sle")
    t = np.array([0.0, 3.0, 9.0, 28.0, 90.0])
    p = {k: np.array([v, 1.5 * v]) for k, v in m.defaults().items()}
    states = m.predict_states(p, t)
    q = dict(p, qpcr_per_cell=np.array([40.0, 400.0]))
    got = m.observe(states, q, t)
    want = m.predict(q, t)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12)
    assert got["qpcr"][1, 2] / m.observe(states, p, t)["qpcr"][1, 2] == pytest.approx(400.0 / 150.0)
