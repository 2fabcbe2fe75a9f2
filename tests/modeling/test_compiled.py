"""The compiled engine against independent references.

- symbolic derivatives of every function of the expression language against central
  differences of the numpy semantics;
- generated kernels against the interpreted expressions of the model file;
- the compiled Radau ODE against SciPy's LSODA at tight tolerance (rtol 1e-10), and against
  the closed form where a model has one;
- sensitivities against central differences of tight-tolerance solutions, and (for the
  switch-time jump condition) against the exact derivatives of the closed form;
- ragged stacks against one subject at a time, solver failures as statuses.
The 1,000-draw version of the accuracy checks is ``benchmarks/bench_ode.py``.
"""
import math
import re

import numpy as np
import pytest

from ctkinetics.modeling import list_models, load_model
from ctkinetics.modeling.compiled import compiled
from ctkinetics.modeling.expressions import compile_expression
from ctkinetics.modeling.modelfile import parse_model_text
from ctkinetics.modeling.model import Model
from ctkinetics.modeling.symbolic import Graph

MODELS = list_models()
ODE_MODELS = MODELS  # every model can be solved as an ODE


# ---- symbolic differentiation ----------------------------------------------------------
@pytest.mark.parametrize("text", [
    "a * exp(-k * t)", "x ** 2 / y + log10(a)", "sqrt(a * x) - log1p(y)", "expm1(a * t) * log(x)",
    "hill(x, a, y)", "hill(x, 2.5, 0.3)", "bateman(a, k, t)", "bateman(a, a, t)", "exprel(a * t)",
    "exprel(1e-7 * x)", "max(a, k) + min(x, y)", "abs(a - k)", "where(x > y, x * a, y * k)",
    "a if t >= 2 else k * t", "x ** y", "(a + x) ** (0.5 * y)", "step(t - 1) * a + pi * ln2",
])
def test_symbolic_derivatives_equal_central_differences(text):
    names = {"a", "k", "t", "x", "y"}
    g = Graph()
    node = g.from_tree(compile_expression(text, names).tree)
    rng = np.random.default_rng(1)
    for _ in range(5):
        env = {n: float(v) for n, v in zip(sorted(names), rng.uniform(0.2, 3.0, len(names)))}
        for v in names:
            d = float(g.evaluate(g.diff(node, v), env))
            h = 1e-6 * max(1.0, abs(env[v]))
            hi, lo = dict(env), dict(env)
            hi[v] += h
            lo[v] -= h
            fd = (float(g.evaluate(node, hi)) - float(g.evaluate(node, lo))) / (2 * h)
            assert d == pytest.approx(fd, rel=1e-6, abs=1e-7), (text, v)


def test_symbolic_values_equal_the_expression_language():
    names = {"a", "x", "y"}
    g = Graph()
    for text in ("hill(x, a, y)", "bateman(a, y, x)", "exprel(a - y)", "x ** a", "-x ** a"):
        e = compile_expression(text, names)
        node = g.from_tree(e.tree)
        for x in (-1.0, 0.0, 0.5, 2.0):
            env = {"a": 1.5, "x": x, "y": 0.7}
            with np.errstate(all="ignore"):
                want = float(e(env))
            got = float(g.evaluate(node, env))
            assert (math.isnan(want) and math.isnan(got)) or got == pytest.approx(want, rel=1e-14)


def test_common_subexpressions_are_shared():
    g = Graph()
    e = compile_expression("exp(-k * t) * a + exp(-k * t) * b", {"a", "b", "k", "t"})
    node = g.from_tree(e.tree)
    exps = [i for i in g.ancestors([node]) if g.op(i) == "exp"]
    assert len(exps) == 1


# ---- generated code ---------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_generated_source_names_no_text_of_the_model_file(name):
    src = compiled(load_model(name)).source
    body = src.split("KERNEL_VERSION", 1)[1]
    identifiers = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", body))
    allowed = {"njit", "def", "if", "elif", "else", "for", "in", "range", "math", "exp", "expm1",
               "log", "log1p", "log10", "sqrt", "abs", "pass", "inf", "nan", "isfinite", "and",
               "or", "not", "sens", "t", "tau", "y", "pc", "out", "dout", "work", "ph", "start",
               "prev", "src", "srcph", "v", "j", "isnan", "_O"}
    allowed |= {n for n in identifiers if re.fullmatch(r"(_v|sw|dtau)\d+", n)}
    allowed |= {n for n in identifiers if n.endswith("_SIG") or n.startswith("k")}
    allowed |= {"rhs", "jac", "rhs_p", "init", "init_p", "switches", "switches_p", "outputs",
                "outputs_y", "outputs_p", "closed", "e", "dose", "dose_y", "dose_p", "amt",
                "kernel", "op", "o1", "o2", "jac_p_f", "f"}
    leaked = identifiers - allowed
    assert not leaked, leaked


@pytest.mark.parametrize("name", MODELS)
def test_kernels_equal_the_interpreted_right_hand_side(name):
    m = load_model(name)
    cm = compiled(m)
    k = cm.kernels
    env, _ = m.environment()
    pc = cm.pc_matrix(m.defaults(), dict(m.covariates), 1)[0]
    rng = np.random.default_rng(7)
    for p, phase in enumerate(m.phases):
        for _ in range(5):
            y = rng.uniform(0.01, 50.0, len(m.states))
            t = float(rng.uniform(0, 30))
            local = dict(env, t=t, tau=t / 2, **dict(zip(m.state_names, y)))
            want = np.array([float(phase.ode[s](local)) for s in m.state_names])
            got = np.empty(len(m.states))
            k.rhs(p, t, t / 2, np.ascontiguousarray(y), pc, got)
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)
            # the Jacobian against central differences of the same kernel
            J = np.empty((len(y), len(y)))
            k.jac(p, t, t / 2, np.ascontiguousarray(y), pc, J)
            for j in range(len(y)):
                h = 1e-6 * y[j]
                hi, lo = y.copy(), y.copy()
                hi[j] += h
                lo[j] -= h
                fh, fl = np.empty(len(y)), np.empty(len(y))
                k.rhs(p, t, t / 2, hi, pc, fh)
                k.rhs(p, t, t / 2, lo, pc, fl)
                np.testing.assert_allclose(J[:, j], (fh - fl) / (2 * h), rtol=1e-5,
                                           atol=1e-7 * np.max(np.abs(J)) + 1e-12)


@pytest.mark.parametrize("name", MODELS + ["tau_phases"])
def test_combined_jacobian_kernel_is_the_two_kernels_side_by_side(name):
    # jac_p_f (one pass, shared terms) must give exactly [jac | rhs_p] and rhs: the
    # integrator's sensitivities use it at every stage, the next step's Newton matrix takes
    # its J and the next step its f
    if name == "tau_phases":   # a phase reading τ: rhs_p's shift by d(start)/dθ
        from ctkinetics.modeling.model import Model
        from ctkinetics.modeling.modelfile import parse_model_text
        from test_phase_time import TEXT   # its model, tested there against a closed form
        m = Model(**parse_model_text(TEXT))
    else:
        m = load_model(name)
    k = compiled(m).kernels
    pc = compiled(m).pc_matrix(m.defaults(), dict(m.covariates), 1)[0]
    n, P = len(m.states), len(m.param_names)
    rng = np.random.default_rng(11)
    for p in range(len(m.phases)):
        for _ in range(5):
            y = np.ascontiguousarray(rng.uniform(0.01, 50.0, n))
            t = float(rng.uniform(0, 30))
            J, Fp, both = np.empty((n, n)), np.empty((n, P)), np.empty((n, n + P))
            f, f_both = np.empty(n), np.empty(n)
            k.jac(p, t, t / 2, y, pc, J)
            k.rhs_p(p, t, t / 2, y, pc, Fp)
            k.rhs(p, t, t / 2, y, pc, f)
            k.jac_p_f(p, t, t / 2, y, pc, f_both, both)
            np.testing.assert_array_equal(both, np.hstack([J, Fp]))
            np.testing.assert_array_equal(f_both, f)


# ---- the ODE against LSODA and the closed form ------------------------------------------
def _draws(m, n, seed):
    """Subjects drawn around the typical values (log-normal, sd 0.5, inside the bounds)."""
    rng = np.random.default_rng(seed)
    out = {}
    for p in m.parameters:
        if p.scale == "log":
            v = p.default * np.exp(0.5 * rng.standard_normal(n))
        else:
            v = p.default + 0.1 * abs(p.default) * rng.standard_normal(n)
        out[p.name] = np.clip(v, p.lower, p.upper)
    return out


def _times(m):
    return np.array([0.0, 0.25, 1, 2, 4, 7, 10, 14, 21, 28, 42, 60, 90, 180, 270, 365]) \
        * (m.horizon / 365.0)


def _close(got, want):
    """Largest |got − want| / max(|want|, 1e-6·peak) over subjects and times: relative error,
    with values more than six decades below the subject's peak (three or more decades under
    any assay's LLOQ) compared absolutely at 1e-6 × peak."""
    floor = 1e-6 * np.max(np.abs(want), axis=-1, keepdims=True)
    return np.max(np.abs(got - want) / np.maximum(np.abs(want), floor))


@pytest.mark.parametrize("name", ODE_MODELS)
def test_compiled_ode_equals_tight_lsoda(name):
    m = load_model(name)
    t = _times(m)
    params = _draws(m, 12, seed=5)
    ref = m.with_tolerances(1e-10, 1e-14).predict(params, t, method="lsoda")
    got = m.predict(params, t, method="ode")
    for kind in ref:
        assert _close(got[kind], ref[kind]) < 1e-6, kind


@pytest.mark.parametrize("name", [n for n in MODELS if load_model(n).has_closed_form])
def test_ode_sensitivities_equal_closed_form_derivatives(name):
    # the ODE's switch-time jump condition S+ = S- + (f_a - f_b) dtau/dtheta against the
    # symbolic derivative of the closed form (away from the switch itself)
    m = load_model(name)
    t = _times(m)
    params = _draws(m, 6, seed=9)
    c = m.solve(params, t, sensitivities=True, method="closed")
    o = m.solve(params, t, sensitivities=True, method="ode")
    assert o.ok
    for kind in c.values:
        scale = np.abs(c.values[kind])[..., None] * np.abs(
            np.array([params[p] for p in m.param_names]).T)[:, None, :]
        err = np.abs(o.derivs[kind] - c.derivs[kind]) / (np.abs(c.derivs[kind]) + 1e-6 * scale
                                                          + 1e-300)
        assert np.max(err) < 1e-4, kind


@pytest.mark.parametrize("name", MODELS)
def test_sensitivities_equal_central_differences(name):
    m = load_model(name)
    # central differences of solutions at rtol 1e-12 (noise ~1e-12 of the value, far below
    # the derivative × step); LSODA at its tightest is ~1e-11 noisy, which divided by a
    # 1e-3 step is 1e-4 of a small derivative. The states themselves are checked against
    # LSODA above; this checks the forward-sensitivity equations and the jump conditions.
    tight = m.with_tolerances(1e-12, 1e-16)
    t = _times(m)[1:]
    p0 = {k: float(v[0]) for k, v in _draws(m, 1, seed=3).items()}
    sol = m.solve(p0, t, sensitivities=True)
    for j, pn in enumerate(m.param_names):
        # five-point central difference (truncation O(h^4)) with a step large enough that
        # the reference's own error (rtol 1e-12) stays far below the derivative
        h = 1e-3 * abs(p0[pn])
        f = {}
        for k in (-2, -1, 1, 2):
            pk = dict(p0)
            pk[pn] += k * h
            f[k] = tight.predict(pk, t, method="ode")
        for kind, d in sol.derivs.items():
            fd = (8 * (f[1][kind] - f[-1][kind]) - (f[2][kind] - f[-2][kind])) / (12 * h)
            # relative to the derivative, or to value/parameter (a parameter that barely
            # matters has a derivative that is noise against the solution's size)
            scale = np.abs(fd) + 1e-5 * np.abs(sol.values[kind]) / abs(p0[pn])
            assert np.max(np.abs(d[:, j] - fd) / scale) < 1e-4, (pn, kind)


@pytest.mark.parametrize("name", MODELS)
def test_closed_form_sensitivities_equal_central_differences(name):
    m = load_model(name)
    if not m.has_closed_form:
        pytest.skip("no closed form")
    t = _times(m)[1:]
    p0 = m.defaults()
    sol = m.solve(p0, t, sensitivities=True, method="closed")
    for j, pn in enumerate(m.param_names):
        h = 1e-6 * abs(p0[pn])
        hi, lo = dict(p0), dict(p0)
        hi[pn] += h
        lo[pn] -= h
        fh, fl = m.predict(hi, t, method="closed"), m.predict(lo, t, method="closed")
        for kind, d in sol.derivs.items():
            fd = (fh[kind] - fl[kind]) / (2 * h)
            np.testing.assert_allclose(d[:, j], fd, rtol=1e-5,
                                       atol=1e-8 * np.max(np.abs(sol.values[kind])) / abs(p0[pn]))


def test_closed_form_values_through_kernels_equal_numpy_path():
    for name in MODELS:
        m = load_model(name)
        if not m.has_closed_form:
            continue
        t = _times(m)
        params = _draws(m, 4, seed=2)
        kern = m.solve(params, t, sensitivities=True, method="closed").values
        ref = m.predict(params, t, method="closed")
        for kind in ref:
            np.testing.assert_allclose(kern[kind], ref[kind], rtol=1e-12)


# ---- stacks ---------------------------------------------------------------------------
def test_ragged_stack_equals_one_subject_at_a_time():
    m = load_model("cart_bcell_sle")
    params = _draws(m, 3, seed=4)
    dose = np.array([3.0e8, 4.5e8, 6.0e8])
    times = [np.array([0.0, 1, 7, 28]), np.array([2.0, 14, 90, 180, 3]), np.array([365.0])]
    sol = m.solve(params, times, covariates={"dose": dose}, sensitivities=True,
                  wrt=["fE", "kkill"])
    for i, ti in enumerate(times):
        one = m.solve({k: v[i] for k, v in params.items()}, ti, covariates={"dose": dose[i]},
                      sensitivities=True, wrt=["fE", "kkill"])
        sl = slice(sol.offsets[i], sol.offsets[i + 1])
        for kind in one.values:
            np.testing.assert_allclose(sol.values[kind][sl], one.values[kind], rtol=1e-12)
            np.testing.assert_allclose(sol.derivs[kind][sl], one.derivs[kind], rtol=1e-12)


def test_dose_covariate_scales_the_initial_effectors():
    # E(0) = fE·dose/Vblood: at t = 0 the flow observable is linear in dose
    m = load_model("cart_bcell_sle")
    out = m.predict(None, [0.0], covariates={"dose": np.array([3.0e8, 6.0e8])}, method="ode")
    assert out["flow"][1, 0] == pytest.approx(2 * out["flow"][0, 0], rel=1e-14)
    assert out["flow"][0, 0] == pytest.approx(0.003 * 3.0e8 / 5.0e6, rel=1e-14)


# ---- failures are statuses ------------------------------------------------------------
_BLOWUP = """
name = "blowup"
title = "y' = y^2, y(0) = 1: y = 1/(1 - t) blows up at t = 1"
reference = "test"
[parameters.a]
default = 1.0
lower = 0.1
upper = 10.0
unit = "1"
source = "test"
[states.y]
initial = "a"
[[phases]]
ode = { y = "y * y" }
[observables]
conc = "y"
"""


def test_blow_up_is_a_status_and_nan_not_a_number():
    m = Model(**parse_model_text(_BLOWUP))
    sol = m.solve({"a": np.array([1.0, 0.1])}, [0.5, 2.0, 5.0])
    # subject 1 (a = 1) blows up at t = 1; subject 2 (a = 0.1) at t = 10
    assert list(sol.status != 0) == [True, False]
    assert sol.values["conc"][0, 0] == pytest.approx(2.0, rel=1e-6)
    assert np.all(np.isnan(sol.values["conc"][0, 1:]))
    np.testing.assert_allclose(sol.values["conc"][1], 1 / (10 - np.array([0.5, 2, 5])), rtol=1e-6)
    assert "blow-up" in sol.messages[0] or "too small" in sol.messages[0]


def test_step_cap_stops_a_subject_with_a_status():
    m = load_model("cart_bcell_sle")
    sol = m.solve(None, [365.0], max_steps=20)
    assert sol.status[0] != 0 and np.isnan(sol.values["qpcr"][0])
    assert "too many steps" in sol.messages[0]


def test_dense_output_of_a_plotting_grid_equals_landing_within_the_tolerance():
    # more output times than DENSE_ABOVE: interpolated inside the steps (collocation
    # polynomial), not one step per time; values and sensitivities agree with a solve that
    # lands on a few of the same times, to the order of the tolerance
    from ctkinetics.modeling.compiled import DENSE_ABOVE

    m = load_model("cart_bcell_sle")
    grid = np.linspace(0.0, 365.0, 4 * DENSE_ABOVE + 1)
    dense = m.solve(None, grid, sensitivities=True, wrt=["fE", "kkill"])
    assert dense.steps[0] < 1000
    pick = np.arange(0, grid.size, 397)
    land = m.solve(None, grid[pick], sensitivities=True, wrt=["fE", "kkill"])
    for kind in land.values:
        assert _close(dense.values[kind][pick][None], land.values[kind][None]) < 1e-5, kind
        for j in range(2):
            d, ref = dense.derivs[kind][pick, j], land.derivs[kind][:, j]
            assert _close(d[None], ref[None]) < 1e-4, kind


def test_an_exploding_subject_is_a_status_and_the_stack_goes_on():
    # kexp 20/day with a drive that never fades: the effectors overflow; that subject ends
    # with a status (no exception out of the compiled solver), the others are solved
    m = load_model("cart_bcell_sle")
    p = {"kexp": np.array([20.0, 2.0]), "kfade": np.array([0.001, 0.25]),
         "B50": np.array([1e-4, 0.05])}
    sol = m.solve(p, [1.0, 30.0, 365.0], sensitivities=True, wrt=["fE", "kexp"])
    assert sol.status[0] != 0 and sol.status[1] == 0
    ok = m.solve({k: v[1] for k, v in p.items()}, [1.0, 30.0, 365.0])
    np.testing.assert_allclose(sol.values["qpcr"][1], ok.values["qpcr"], rtol=1e-12)


def test_the_integrator_compiled_for_the_state_count_gives_the_same_numbers():
    """A mechanistic model's integrator is compiled for its number of states (loops of fixed
    length): the same operations as the integrator of any size, so the same numbers, bit for
    bit, states and sensitivities alike."""
    m = load_model("cart_bcell_sle")
    cm = compiled(m)
    assert cm.specialised
    pc = cm.pc_matrix(m.defaults(), dict(m.covariates), 1)
    t = np.array([0.0, 1.0, 7.0, 28.0, 180.0])
    off = np.array([0, t.size], dtype=np.int64)
    a = cm.solve(pc, t, off, sens=True, wrt=("fE", "kexp", "kkill"))
    cm.specialised = False
    try:
        b = cm.solve(pc, t, off, sens=True, wrt=("fE", "kexp", "kkill"))
    finally:
        cm.specialised = True
    assert (a.status == 0).all() and a.steps[0, 0] > 100
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.sens, b.sens)
    np.testing.assert_array_equal(a.steps, b.steps)
