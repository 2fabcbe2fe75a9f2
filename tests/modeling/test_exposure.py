"""Model-based exposure metrics against closed forms and brute-force references."""
import numpy as np
import pytest

from ctkinetics.modeling import load_model
from ctkinetics.modeling.compiled import compiled_quadrature
from ctkinetics.modeling.exposure import METRICS, model_exposure


def _stein_population(n=6, seed=4):
    m = load_model("stein2019")
    rng = np.random.default_rng(seed)
    p = {q.name: np.clip(q.default * np.exp(0.4 * rng.standard_normal(n)), q.lower, q.upper)
         for q in m.parameters}
    return m, p


def test_stein_cmax_tmax_auc_equal_the_closed_form():
    # Stein's peak is at the switch time Tmax with value Cmax (parameters), its AUC0-28 the
    # model file's closed-form integral (DOMAIN.md 3.1: 1.718e5 for the typical subject)
    m, p = _stein_population()
    e = model_exposure(m, p)
    np.testing.assert_allclose(e.values[("qpcr", "Cmax")], p["Cmax"], rtol=1e-12)
    np.testing.assert_allclose(e.values[("qpcr", "Tmax")], p["Tmax"], rtol=1e-12)
    np.testing.assert_allclose(e.values[("qpcr", "AUC0-28")], m.derived(p)["AUC0_28"], rtol=1e-10)
    typical = model_exposure(m)
    assert typical.values[("qpcr", "AUC0-28")][0] == pytest.approx(1.718e5, rel=1e-3)


def test_quadrature_state_equals_the_closed_form_integral():
    # the ODE path of the AUC (dQ/dt = C integrated with the states) on a model whose
    # integral is known in closed form
    m, p = _stein_population()
    auc = compiled_quadrature(m, ["qpcr"]).auc(p, None, 0.0, 28.0, 6)["qpcr"]
    np.testing.assert_allclose(auc, m.derived(p)["AUC0_28"], rtol=1e-7)
    inf = compiled_quadrature(m, ["qpcr"]).auc(p, None, 0.0, 20000.0, 6)["qpcr"]
    np.testing.assert_allclose(inf, m.derived(p)["AUC0_inf"], rtol=1e-6)


def test_smooth_ode_peak_and_auc_against_a_fine_grid():
    m = load_model("cart_bcell_sle")
    e = model_exposure(m, thresholds={"bcell": 1.0})
    t = np.linspace(0.0, 28.0, 28 * 2000 + 1)
    c = m.predict(None, t)
    # a 0.0005-day grid: the peak value to ~1e-8, the trapezoids to ~1e-7
    assert e.values[("qpcr", "Cmax")][0] == pytest.approx(c["qpcr"].max(), rel=1e-7)
    assert e.values[("qpcr", "Tmax")][0] == pytest.approx(t[np.argmax(c["qpcr"])], abs=1e-3)
    assert e.values[("qpcr", "AUC0-28")][0] == pytest.approx(np.trapezoid(c["qpcr"], t), rel=1e-6)
    assert e.values[("flow", "AUC0-28")][0] == pytest.approx(np.trapezoid(c["flow"], t), rel=1e-6)


def test_aplasia_onset_and_reconstitution_against_a_fine_grid():
    m = load_model("cart_bcell_sle")
    e = model_exposure(m, thresholds={"bcell": 1.0})
    t = np.linspace(0.0, 365.0, 365 * 200 + 1)
    b = m.predict(None, t)["bcell"]
    below = np.flatnonzero(b < 1.0)
    onset, back = t[below[0]], t[below[-1] + 1]
    assert e.values[("bcell", "aplasia_onset")][0] == pytest.approx(onset, abs=0.006)
    assert e.values[("bcell", "reconstitution")][0] == pytest.approx(back, abs=0.006)
    assert e.values[("bcell", "aplasia_days")][0] == pytest.approx(back - onset, abs=0.012)
    # the calibration target of the model file: B cells back around day 110
    assert 95 < e.values[("bcell", "reconstitution")][0] < 125


def test_censored_aplasia_is_flagged_not_invented():
    m = load_model("cart_bcell_sle")
    e = model_exposure(m, thresholds={"bcell": 1.0}, t_end=60.0)
    assert np.isnan(e.values[("bcell", "reconstitution")][0])
    assert e.values[("bcell", "aplasia_days")][0] == pytest.approx(
        60.0 - e.values[("bcell", "aplasia_onset")][0])
    assert "not reconstituted by 60" in e.flags[("bcell", "aplasia_days")][0]


def test_every_metric_is_registered_with_a_unit_and_definition():
    for name, metric in METRICS.items():
        assert metric.name == name and metric.definition and metric.label
        assert "{level}" in metric.unit or "{time}" in metric.unit
    m, p = _stein_population(n=2)
    frame = model_exposure(m, p).to_frame(["a", "b"], units={"qpcr": "copies/ug"})
    assert set(frame.metric) == {"Cmax", "Tmax", "AUC0-28"}
    assert set(frame.loc[frame.metric == "AUC0-28", "unit"]) == {"copies/ug*day"}


def test_a_subjects_metrics_do_not_depend_on_its_batch():
    # the same subject alone, with others, and shuffled: identical bits (virtual trials
    # compare exposures computed in different batches)
    m, p = _stein_population(n=6, seed=8)
    steep = dict(p)
    steep["foldx"] = np.where(np.arange(6) == 5, 1e8, p["foldx"])   # pads the others' panels
    together = model_exposure(m, steep)
    for i in range(6):
        alone = model_exposure(m, {k: v[i:i + 1] for k, v in steep.items()})
        for key, v in together.values.items():
            assert alone.values[key][0] == v[i], (key, i)


def _fine(m, p, t0, t1, doses=None, covariates=None, kind="qpcr", n=40001):
    """A fine grid's values of one subject (dense output of the same engine at rtol 1e-10)."""
    t = np.linspace(t0, t1, n)
    tight = m.with_tolerances(1e-10, 1e-16)
    return t, tight.predict(p, t, covariates, doses=doses)[kind].ravel()


def test_reinfusion_peak_and_auc_follow_the_second_infusion():
    # cart_bcell_sle re-infused on day 20 with twice the first dose inside the AUC window:
    # the AUC0-28 is the sum over both courses (Simpson on a 0.0007-day grid of a tight
    # solve, split at the dose where the curve jumps), Cmax/Tmax the highest point of the
    # whole course (here still the first peak: the B cells that drive expansion are gone)
    m = load_model("cart_bcell_sle")
    p = m.defaults()
    doses = np.array([[20.0, 9.0e8]])
    e = model_exposure(m, p, doses=doses, t_end=60.0, thresholds={"bcell": 1.0})
    from scipy.integrate import simpson

    t1, v1 = _fine(m, p, 0.0, 20.0, doses)
    t2, v2 = _fine(m, p, 20.0, 28.0, doses)
    t2, v2 = t2[1:], v2[1:]  # the value at the dose time is pre-dose
    post = m.with_tolerances(1e-10, 1e-16).predict(p, np.array([20.0 + 1e-9]), doses=doses)["qpcr"].ravel()[0]
    auc_ref = simpson(v1, x=t1) + simpson(np.r_[post, v2], x=np.r_[20.0, t2])
    assert e.values[("qpcr", "AUC0-28")][0] == pytest.approx(auc_ref, rel=1e-6)
    t, v = _fine(m, p, 0.0, 60.0, doses, n=60001)
    assert e.values[("qpcr", "Cmax")][0] == pytest.approx(v.max(), rel=1e-6)
    assert e.values[("qpcr", "Tmax")][0] == pytest.approx(t[np.argmax(v)], abs=2e-3)
    without = model_exposure(m, p, t_end=60.0)
    assert e.values[("qpcr", "AUC0-28")][0] > 1.005 * without.values[("qpcr", "AUC0-28")][0]


def test_doses_after_the_window_leave_the_window_alone_and_per_subject_doses():
    # a re-infusion on day 40 does not change AUC0-28 or the first course's peak; doses
    # given per subject (a list) apply to their own subject only
    m = load_model("cart_bcell_sle")
    p = {k: np.array([v, v]) for k, v in m.defaults().items()}
    late = model_exposure(m, p, doses=[np.array([[40.0, 1.0e8]]), np.zeros((0, 2))], t_end=35.0)
    plain = model_exposure(m, p, t_end=35.0)
    # (without doses the peak comes from the dense-output search, with them from the
    # landing refinement: Tmax equal to the two methods' accuracy, ~1e-5 day)
    # (two searches of one solution at the model's tolerance: equal to its accuracy, 1e-6)
    for key in [("qpcr", "AUC0-28"), ("qpcr", "Cmax")]:
        np.testing.assert_allclose(late.values[key], plain.values[key], rtol=1e-6)
    np.testing.assert_allclose(late.values[("qpcr", "Tmax")], plain.values[("qpcr", "Tmax")], atol=1e-4)


def test_time_varying_covariate_course_is_followed():
    # cart_bcell_sle_dna reads alc (linear time course): qPCR = vcn*1.5e5*(E+M+X)/(alc+W0);
    # with alc doubling over days 0-28 the AUC0-28 equals Simpson on a fine grid of the same
    # course, and differs from the constant-alc AUC
    from ctkinetics.modeling.solution import TimeCourse
    from scipy.integrate import simpson

    m = load_model("cart_bcell_sle_dna")
    p = m.defaults()
    course = TimeCourse([0.0, 28.0], [1000.0, 2000.0])
    e = model_exposure(m, p, {"alc": course}, t_end=28.0, metrics=["AUC", "Cmax"])
    t, v = _fine(m, p, 0.0, 28.0, covariates={"alc": course})
    assert e.values[("qpcr", "AUC0-28")][0] == pytest.approx(simpson(v, x=t), rel=1e-6)
    assert e.values[("qpcr", "Cmax")][0] == pytest.approx(v.max(), rel=1e-6)
    const = model_exposure(m, p, {"alc": 1000.0}, t_end=28.0, metrics=["AUC"])
    assert e.values[("qpcr", "AUC0-28")][0] < 0.95 * const.values[("qpcr", "AUC0-28")][0]


def test_peak_in_the_last_grid_step_before_t_end_is_refined():
    # cart_bcell_sle peaks at ~8.87 d: with t_end = 9 the peak lies in the last half-day
    # step (8.5, 9.0] of the grid, bracketed by that step alone (no neighbour beyond t_end)
    m = load_model("cart_bcell_sle")
    e = model_exposure(m, t_end=9.0, metrics=["Cmax", "Tmax"])
    t = np.linspace(8.0, 9.0, 100001)
    c = m.with_tolerances(1e-10, 1e-16).predict(None, t)["qpcr"].ravel()
    # the engine's accuracy at the model's tolerance (benchmarks/bench_ode.py): 1e-6
    assert e.values[("qpcr", "Cmax")][0] == pytest.approx(c.max(), rel=1e-6)
    assert e.values[("qpcr", "Tmax")][0] == pytest.approx(t[np.argmax(c)], abs=1e-3)


def test_closed_form_auc_and_kink_peak_on_wide_draws():
    # Stein subjects drawn with 1.5x the model's IIV SD (steep expansions: up to ~400
    # Gauss-Legendre panels' worth of log-slope): AUC0-28 against the model file's
    # closed-form integral to 1e-12 (the 16-point rule's panels are at ~1e-15); the peak is
    # the kink at Tmax, taken as it is (no refinement), so Cmax/Tmax are the parameters
    m = load_model("stein2019")
    rng = np.random.default_rng(3)
    n = 300
    p = {q.name: np.clip(q.default * np.exp(1.5 * np.sqrt(q.omega2) * rng.standard_normal(n)),
                         q.lower, q.upper) for q in m.parameters}
    e = model_exposure(m, p, t_end=28.0)
    np.testing.assert_allclose(e.values[("qpcr", "AUC0-28")], m.derived(p)["AUC0_28"], rtol=1e-12)
    inside = p["Tmax"] <= 28.0
    assert inside.sum() > 200
    np.testing.assert_allclose(e.values[("qpcr", "Cmax")][inside], p["Cmax"][inside], rtol=1e-14)
    np.testing.assert_allclose(e.values[("qpcr", "Tmax")][inside], p["Tmax"][inside], rtol=1e-14)


def test_smooth_closed_form_auc_and_peak_against_quad():
    # onecpt_oral (a difference of exponentials, hours): AUC0-24 against scipy's adaptive
    # quad of the model curve (epsrel 1e-12) and Tmax against ln(ka/ke)/(ka-ke)
    from scipy.integrate import quad

    m = load_model("onecpt_oral")
    p = {"ka": np.array([0.3, 1.5, 8.0]), "ke": np.array([0.05, 0.09, 0.2]), "CL": np.array([2.0, 3.0, 4.0])}
    e = model_exposure(m, p, {"dose": 4.0}, t_end=24.0, window=(0.0, 24.0))
    for i in range(3):
        pi = {k: v[i] for k, v in p.items()}
        ref = quad(lambda t: m.predict(pi, np.array([t]), {"dose": 4.0})["conc"].ravel()[0],
                   0.0, 24.0, epsabs=0.0, epsrel=1e-12, limit=200)[0]
        assert e.values[("conc", "AUC0-24")][i] == pytest.approx(ref, rel=1e-10)
    tmax = np.log(p["ka"] / p["ke"]) / (p["ka"] - p["ke"])
    np.testing.assert_allclose(e.values[("conc", "Tmax")], tmax, rtol=1e-6)


def test_a_curve_still_rising_at_its_end_time_peaks_there():
    # Stein peaks at Tmax = 9.3: with each subject's own end time 5, 9.3 and 20 days the
    # maximum is C(5) at 5 (still rising: the end point, no refinement), the kink, the kink
    m = load_model("stein2019")
    p = {k: np.full(3, v) for k, v in m.defaults().items()}
    e = model_exposure(m, p, t_end=np.array([5.0, 9.3, 20.0]), metrics=["Cmax", "Tmax"])
    c5 = m.predict(m.defaults(), np.array([5.0]))["qpcr"].ravel()[0]
    np.testing.assert_allclose(e.values[("qpcr", "Cmax")], [c5, 24000.0, 24000.0], rtol=1e-14)
    np.testing.assert_allclose(e.values[("qpcr", "Tmax")], [5.0, 9.3, 9.3], rtol=1e-14)


def test_ode_peak_of_random_subjects_against_a_tight_fine_grid():
    # cart_bcell_sle subjects drawn with the model's omega^2: the dense-output peak search
    # against a solve at rtol 1e-10 on a 0.01-day grid refined to 1e-5 day around its best
    # point (Cmax to ~1e-10); the registry's Cmax is ~3e-8 (dense output), Tmax ~1e-5 day
    m = load_model("cart_bcell_sle")
    rng = np.random.default_rng(5)
    n = 4
    p = {q.name: np.clip(q.default * np.exp(np.sqrt(q.omega2 or 0.0) * rng.standard_normal(n)),
                         q.lower, q.upper) for q in m.parameters}
    e = model_exposure(m, p, t_end=28.0, metrics=["Cmax", "Tmax"])
    tight = m.with_tolerances(1e-10, 1e-16)
    t = np.linspace(0.0, 28.0, 2801)
    c = tight.predict(p, t)["qpcr"]
    for i in range(n):
        k = int(np.argmax(c[i]))
        tt = np.linspace(t[max(k - 1, 0)], t[min(k + 1, t.size - 1)], 2001)
        cc = tight.predict({q: v[i] for q, v in p.items()}, tt)["qpcr"].ravel()
        assert e.values[("qpcr", "Cmax")][i] == pytest.approx(cc.max(), rel=1e-7)
        assert e.values[("qpcr", "Tmax")][i] == pytest.approx(tt[np.argmax(cc)], abs=2e-4)


@pytest.mark.parametrize("name", ["em_firstorder", "stein2019_lag"])
def test_multiphase_closed_form_auc_against_quad_on_wide_draws(name):
    # the Gauss-Legendre panels are sized phase by phase (each phase by its own steepest
    # log-slope); the reference is scipy's adaptive quad of the model curve on each phase
    # (split at the subject's switch times, epsrel 1e-13), draws with 1.5x the model's IIV SD
    from scipy.integrate import quad

    from ctkinetics.modeling.exposure import _switches

    m = load_model(name)
    rng = np.random.default_rng(11)
    n = 12
    p = {q.name: np.clip(q.default * np.exp(1.5 * np.sqrt(q.omega2 or 0.0) * rng.standard_normal(n)),
                         q.lower, q.upper) for q in m.parameters}
    e = model_exposure(m, p, t_end=28.0, metrics=["AUC"])
    sw = _switches(m, p, None, n)
    for i in range(n):
        pi = {k: v[i] for k, v in p.items()}
        edges = np.unique(np.clip(np.concatenate([[0.0, 28.0], sw[:, i]]), 0.0, 28.0))
        ref = sum(quad(lambda t: m.predict(pi, np.array([t]))["qpcr"].ravel()[0], lo, hi,
                       epsabs=0.0, epsrel=1e-13, limit=200)[0] for lo, hi in zip(edges[:-1], edges[1:]))
        assert e.values[("qpcr", "AUC0-28")][i] == pytest.approx(ref, rel=1e-12)
