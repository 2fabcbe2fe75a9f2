"""Issue 17.2: the model variants against hand-derived references (closed forms written out
here, the parent model they reduce to, the mechanism each was built for)."""
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate

from ctkinetics.modeling import load_model
from ctkinetics.modeling.solution import TimeCourse

MODELS = Path(__file__).resolve().parents[2] / "models"


def _stein_by_hand(t, R0, rho, Tmax, Cmax, alpha, FB, beta, tlag=0.0):
    """Stein 2019 Eq. 1 (with a flat lag phase before the expansion)."""
    t = np.asarray(t, float)
    tau = t - Tmax
    up = R0 * np.exp(rho * np.clip(t - tlag, 0.0, None))
    down = Cmax * ((1 - FB) * np.exp(-alpha * tau) + FB * np.exp(-beta * tau))
    return np.where(t < Tmax, up, down)


def test_stein2019_comed_without_comedication_is_stein2019():
    t = np.linspace(0.0, 365.0, 300)
    a = load_model("stein2019").predict(None, t)["qpcr"]
    b = load_model("stein2019_comed").predict(None, t)["qpcr"]
    np.testing.assert_allclose(b, a, rtol=1e-6)


def test_tocilizumab_multiplies_the_expansion_rate_from_its_first_dose():
    m = load_model("stein2019_comed")
    R0, rho = 24000 / 3900, np.log(3900) / 9.3
    t1, Tmax = 5.7, 9.3
    toci = TimeCourse([0.0, t1], [0.0, 1.0])
    t = np.array([3.0, t1, 8.0, Tmax, 20.0, 100.0])
    got = m.predict(None, t, {"toci": toci})["qpcr"]
    peak = R0 * np.exp(rho * t1 + 1.2 * rho * (Tmax - t1))
    want = np.array([R0 * np.exp(rho * 3.0), R0 * np.exp(rho * t1), R0 * np.exp(rho * t1 + 1.2 * rho * (8.0 - t1)),
                     peak, *(peak * ((1 - 0.0079) * np.exp(-0.16 * (t[4:] - Tmax))
                                     + 0.0079 * np.exp(-0.0032 * (t[4:] - Tmax))))])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # Fster = 1.0: corticosteroids change nothing; a dose after Tmax changes nothing either
    same = m.predict(None, t, {"steroid": TimeCourse([0.0, 2.0], [0.0, 1.0])})["qpcr"]
    np.testing.assert_allclose(same, m.predict(None, t)["qpcr"], rtol=1e-6)
    late = m.predict(None, t, {"toci": TimeCourse([0.0, 12.0], [0.0, 1.0])})["qpcr"]
    np.testing.assert_allclose(late, m.predict(None, t)["qpcr"], rtol=1e-6)


def test_stein2019_lag_is_flat_then_stein():
    m = load_model("stein2019_lag")
    d = m.defaults()
    Tmax = d["tlag"] + d["texp"]
    rho = np.log(d["foldx"]) / d["texp"]
    R0 = d["Cmax"] / d["foldx"]
    t = np.array([0.0, 1.0, 3.0, 3.27, 5.0, 9.0, 9.29, 15.0, 60.0, 300.0])
    want = _stein_by_hand(t, R0, rho, Tmax, d["Cmax"], d["alpha"], d["FB"], d["beta"], tlag=d["tlag"])
    for method in ("closed", "ode"):
        np.testing.assert_allclose(m.predict(None, t, method=method)["qpcr"], want, rtol=1e-6)
    # AUC0-inf of the derived formula against the integral of the curve
    f = lambda x: m.predict(None, [x])["qpcr"][0]  # noqa: E731
    auc = sum(integrate.quad(f, a, b, epsrel=1e-10, limit=200)[0]
              for a, b in ((0, d["tlag"]), (d["tlag"], Tmax), (Tmax, 400), (400, 2e4)))
    tail = d["Cmax"] * d["FB"] * np.exp(-d["beta"] * (2e4 - Tmax)) / d["beta"]
    assert auc + tail == pytest.approx(m.derived()["AUC0_inf"], rel=1e-6)
    # with tlag -> 0 the file is stein2019's structure: its closed form at Stein's own values
    s = {"Cmax": 24000.0, "tlag": 1e-9, "texp": 9.3, "foldx": 3900.0, "alpha": 0.16, "FB": 0.0079, "beta": 0.0032}
    t2 = np.linspace(0.0, 365.0, 50)
    np.testing.assert_allclose(m.predict(s, t2)["qpcr"], load_model("stein2019").predict(None, t2)["qpcr"], rtol=1e-6)


def test_dna_denominator_follows_the_lymphocyte_count():
    sle, dna = load_model("cart_bcell_sle"), load_model("cart_bcell_sle_dna")
    t = np.linspace(0.0, 365.0, 120)
    a, b = sle.predict(None, t), dna.predict(None, t)
    for kind in a:   # alc 1000 + W0 500 with vcn 1: the fixed ratio 100 of cart_bcell_sle
        np.testing.assert_allclose(b[kind], a[kind], rtol=1e-9)
    # lymphodepleted then recovering: the ratio copies/ug per cell/uL is 1.5e5/(alc(t) + 500),
    # alc interpolated linearly by hand between the records
    rec_t, rec_v = np.array([-1.0, 3.0, 28.0]), np.array([900.0, 120.0, 1100.0])
    y = dna.predict(None, t, {"alc": TimeCourse(rec_t, rec_v)})
    alc = np.interp(t, rec_t, rec_v)
    np.testing.assert_allclose(y["qpcr"] / y["flow"], 1.5e5 / (alc + 500.0), rtol=1e-9)
    np.testing.assert_allclose(y["flow"], a["flow"], rtol=1e-9)   # the cells do not depend on it


def _states_model(observed: dict):
    """cart_bcell_sle_allo with its states as observables (predict_states has no doses=)."""
    from ctkinetics.modeling import Model
    from ctkinetics.modeling.modelfile import parse_model_text

    text = (MODELS / "cart_bcell_sle_allo.toml").read_text()
    head, tail = text.split("[observables]")
    rest = tail[tail.index("[derived"):]
    obs = "".join(f'{k} = "{v}"\n' for k, v in observed.items())
    return Model(**parse_model_text(head + "[observables]\n" + obs + "\n" + rest))


def test_allogeneic_qpcr_denominator_and_reinfusion_reset():
    m = load_model("cart_bcell_sle_allo")
    d = m.defaults()
    t = np.array([1.0, 9.0, 40.0, 119.999, 120.0, 120.001])
    doses = [[120.0, 3.0e8]]
    cov = {"dose": 4.5e8}
    states = {"conc": "E", "flow": "M", "bcell": "L", "qpcr": "H"}   # one extra compiled model
    got = _states_model(states).predict(None, t, cov, doses=doses)
    s = {x: got[k] for k, x in states.items()}
    y = m.predict(None, t, cov, doses=doses)
    s["B"] = y["bcell"]
    car = s["E"] + s["M"]
    np.testing.assert_allclose(y["flow"], car, rtol=1e-9)
    np.testing.assert_allclose(y["qpcr"], d["vcn"] * 1.5e5 * car / (s["H"] + s["B"] + car + d["W0"]), rtol=1e-9)
    # a later infusion after repeat lymphodepletion: effectors jump by fE*amt/Vblood, the
    # lymphodepletion drive is back at 1 and host lymphocytes at their nadir
    assert s["E"][5] - s["E"][3] == pytest.approx(d["fE"] * 3.0e8 / 5.0e6, rel=1e-3)
    assert s["L"][5] == pytest.approx(1.0, abs=1e-3) and s["L"][3] < 1e-6
    assert s["H"][5] == pytest.approx(d["fH"] * d["Hbase"], rel=1e-3) and s["H"][3] > 0.99 * d["Hbase"]
    assert s["E"][4] == pytest.approx(s["E"][3], rel=1e-3)   # a sample at the dose time is pre-dose


def test_allogeneic_host_lymphocytes_recover_logistically():
    m = load_model("cart_bcell_sle_allo")
    d = m.defaults()
    t = np.array([0.0, 10.0, 22.0, 40.0])
    h = m.predict_states(None, t)["H"]
    want = d["Hbase"] / (1 + (1 / d["fH"] - 1) * np.exp(-d["kH"] * t))
    np.testing.assert_allclose(h, want, rtol=1e-6)
    assert m.derived()["t_host_half_recovered"] == pytest.approx(np.log(9) / 0.1)


def _return_day(m, params, t):
    b = m.predict(params, t)["bcell"]
    below = np.flatnonzero(b < 1.0)
    return t[below[-1] + 1]


def test_allogeneic_rejection_shortens_aplasia_and_memory_reactivates_without_it():
    m = load_model("cart_bcell_sle_allo")
    t = np.arange(0.0, 731.0, 0.5)
    with_rejection = _return_day(m, None, t)
    without = _return_day(m, {"krej": 1e-5}, t)
    assert with_rejection < 70 < 150 < without
    # no rejection: memory cells persist, and when B cells come back they turn effector and
    # expand again (a second rise of CAR-T cells after the first contraction) and deplete B
    # cells again; with rejection there is nothing left to reactivate
    f = m.predict({"krej": 1e-5}, t)["flow"]
    late = t > without
    trough = f[(t > 30) & (t <= without)].min()
    assert f[late].max() > 3 * trough
    b = m.predict({"krej": 1e-5}, t)["bcell"]
    assert b[late].min() < 0.5 * b[late].max()
    f_rej = m.predict(None, t)["flow"]
    assert f_rej[t > with_rejection].max() < 1e-2 * f_rej.max()


def test_allogeneic_return_day_depends_little_on_baseline_b_cells():
    """cart_bcell_sle's return day falls from 123 to 41 d between 50 and 1,000 B cells/uL
    (issue 17); the allogeneic model's stays within a fortnight over that range."""
    t = np.arange(0.0, 400.0, 0.25)
    allo, sle = load_model("cart_bcell_sle_allo"), load_model("cart_bcell_sle")
    days = [_return_day(allo, {"Bbase": b}, t) for b in (50.0, 200.0, 1000.0)]
    assert max(days) - min(days) < 20
    old = [_return_day(sle, {"Bbase": b}, t) for b in (50.0, 200.0, 1000.0)]
    assert old[0] - old[2] > 60
    # and more antigen means more expansion (target burden drives it)
    peaks = [allo.predict({"Bbase": b}, t)["flow"].max() for b in (50.0, 200.0, 1000.0)]
    assert peaks[0] < peaks[1] < peaks[2]
