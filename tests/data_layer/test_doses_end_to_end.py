"""Issue 17, done-when 1: a study with two infusions reads from all three formats identically,
is simulated and fitted, and the re-expansion after the second infusion is reproduced.

Participants are simulated here from cart_bcell_sle_allo with known parameters, a re-infusion on
day 120 (after B-cell return) and a tocilizumab record (a time-varying covariate the model does
not read); the study is written as a tidy folder, converted to NONMEM and SDTM by ``ctk convert``
and each rendering is fitted. The truth is the simulation's, so the fit is checked against it."""
import numpy as np
import pandas as pd
import pytest

from ctkinetics.cli.main import main
from ctkinetics.data import load_study
from ctkinetics.estimation import fit
from ctkinetics.estimation.curves import fitted_curves
from ctkinetics.modeling import load_model
from test_doses import TOML   # the mini study's definition with B cells

TIMES = np.array([1, 4, 7, 10, 14, 21, 28, 42, 56, 90, 119, 121, 124, 127, 130, 134, 141, 148, 162, 180.0])
REDOSE = 120.0
TRUTH = {"P1": dict(fE=0.010, krej=0.8, kexp=0.5, Bbase=200.0, kkill=30.0, vcn=1.5),
         "P2": dict(fE=0.005, krej=1.3, kexp=0.45, Bbase=260.0, kkill=25.0, vcn=1.2)}
ESTIMATE = "fE,kexp,krej,Bbase,kkill,vcn"
KINDS = {"transgene": ("qpcr", 20.0, "copies/ug"), "car_flow": ("flow", 0.5, "cells/uL"),
         "bcell": ("bcell", 1.0, "cells/uL")}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = tmp_path_factory.mktemp("redose") / "tidy"
    d.mkdir()
    (d / "study.toml").write_text(TOML)
    m = load_model("cart_bcell_sle_allo")
    rng = np.random.default_rng(11)
    rows = []
    for s, p in TRUTH.items():
        y = m.predict(p, TIMES, {"dose": 4.5e8}, doses=[[REDOSE, 4.5e8]])
        for a, (kind, lloq, unit) in KINDS.items():
            rows.append((s, "-1", a, f"{200.0:g}" if kind == "bcell" else "BLQ", unit))
            for t, v in zip(TIMES, y[kind] * np.exp(rng.normal(0, 0.15, TIMES.size))):
                rows.append((s, f"{t:g}", a, f"{v:.6g}" if v >= lloq else "BLQ", unit))
    pd.DataFrame(rows, columns=["subject", "time", "analyte", "value", "unit"]).to_csv(d / "observations.csv", index=False)
    (d / "subjects.csv").write_text("subject,dose_level,dose,lot\nP1,2,4.5e8,L7\nP2,2,4.5e8,L9\n")
    (d / "doses.csv").write_text(f"subject,time,amount\nP1,{REDOSE:g},4.5e8\nP2,{REDOSE:g},4.5e8\n")
    (d / "covariates_tv.csv").write_text("subject,time,covariate,value\nP1,0,toci,0\nP1,6,toci,1\n")
    return d


@pytest.fixture(scope="module")
def renderings(study, tmp_path_factory):
    out = {"tidy": load_study(study, warn=False)}
    for fmt in ("nonmem", "sdtm"):
        target = tmp_path_factory.mktemp(fmt) / fmt
        assert main(["convert", str(study), str(target), "--to", fmt]) == 0
        out[fmt] = load_study(target, warn=False)
    return out


def test_two_infusions_read_identically_from_every_format(renderings):
    tidy = renderings["tidy"]
    for fmt in ("nonmem", "sdtm"):
        assert renderings[fmt].format == fmt
        assert tidy.differences(renderings[fmt]) == []
        for s in TRUTH:
            np.testing.assert_array_equal(renderings[fmt].later_doses(s), [[REDOSE, 4.5e8]])
    assert tidy.covariate_course("P1", "toci")[1].tolist() == [0.0, 1.0]


@pytest.fixture(scope="module")
def fits(renderings):
    m = load_model("cart_bcell_sle_allo")
    return {fmt: fit(ds, m, estimate=ESTIMATE, starts=2, seed=1, derived=False) for fmt, ds in renderings.items()}


def test_fit_of_the_two_infusion_study_recovers_the_simulation(fits):
    tidy = fits["tidy"]
    for s, truth in TRUTH.items():
        f = tidy[s]
        assert f.success and not f.flags, (s, f.flags)
        est = f.estimates()
        p = f.parameters.set_index("parameter")
        for name in ("fE", "krej", "kexp", "Bbase"):
            # within 4 SE or 25 % (15 % residual noise on 3 x 20 samples)
            assert abs(est[name] - truth[name]) < max(4 * p.loc[name, "se"], 0.25 * truth[name]), (s, name)
    # every rendering gives the same fit (same data, same seed)
    for fmt in ("nonmem", "sdtm"):
        for s in TRUTH:
            assert fits[fmt][s].ofv == pytest.approx(tidy[s].ofv, rel=1e-6, abs=1e-6)


def test_the_re_expansion_after_the_second_infusion_is_reproduced(fits, renderings):
    """The fitted curve rises again after day 120 to the observed second peak, which a fit that
    ignored the re-infusion could not follow."""
    ds = renderings["tidy"]
    curves = fitted_curves(fits["tidy"], ds, load_model("cart_bcell_sle_allo"), draws=0)
    for s in TRUTH:
        c = curves[(curves["subject"] == s) & (curves["analyte"] == "car_flow")]
        before = c.loc[(c["time"] > 60) & (c["time"] < REDOSE), "pred"].max()
        second = c.loc[c["time"] > REDOSE, "pred"].max()
        obs = ds.samples(s, "car_flow").set_index("time")["value"]
        observed_second = obs[(obs.index > REDOSE) & (obs.index < REDOSE + 20)].max()
        assert second > 20 * before                      # a second expansion, not a tail
        assert second == pytest.approx(observed_second, rel=0.35)
    # the same model and data without the re-infusion: B cells back, no CAR-T to kill them,
    # the second peak missed -> a much worse fit
    m = load_model("cart_bcell_sle_allo")
    data = ds.observations
    one = data[data["subject"] == "P1"]
    est = {k: v for k, v in fits["tidy"]["P1"].estimates().items() if k in m.param_names}
    pred = m.predict(est, one["time"].clip(lower=0).to_numpy(), {"dose": 4.5e8})
    flow = one["analyte"] == "car_flow"
    late = flow & (one["time"] > REDOSE) & (one["time"] < REDOSE + 20) & ~one["blq"]
    assert np.all(pred["flow"][late.to_numpy()] < 0.05 * one.loc[late, "value"].to_numpy())


def test_ctk_simulate_takes_reinfusions_and_covariate_courses(tmp_path):
    """ctk simulate --reinfuse / --covariate: the profiles of Model.predict with those doses and
    courses, for the population simulate_population draws with the same seed."""
    from ctkinetics.modeling import simulate_population
    from ctkinetics.modeling.solution import TimeCourse

    out, par = tmp_path / "sim.csv", tmp_path / "par.csv"
    assert main(["simulate", "cart_bcell_sle_allo", "--n", "3", "--seed", "4", "--days", "0:180",
                 "--reinfuse", "120:3e8", "--out", str(out), "--params-out", str(par)]) == 0
    table = pd.read_csv(out)
    m = load_model("cart_bcell_sle_allo")
    pop = simulate_population(m, 3, times=[0.0], seed=4)
    params = {k: pop.parameters[k].to_numpy(float) for k in m.param_names}
    want = m.predict(params, np.arange(0.0, 181.0), doses=[[120.0, 3e8]])["flow"]
    got = table[table["observable"] == "flow"].pivot(index="subject", columns="time", values="value").to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert np.all(got[:, 130] > 10 * got[:, 119])                    # the re-infusion re-expands
    assert pd.read_csv(par)["fE"].to_numpy() == pytest.approx(params["fE"])
    # a time-varying covariate: tocilizumab from day 5.7 (0 before: the model's default)
    assert main(["simulate", "stein2019_comed", "--days", "0:10", "--covariate", "toci=5.7:1", "--out", str(out)]) == 0
    q = pd.read_csv(out).set_index("time")["value"]
    ref = load_model("stein2019_comed").predict(None, np.arange(0.0, 11.0), {"toci": TimeCourse([0, 5.7], [0, 1])})["qpcr"]
    np.testing.assert_allclose(q.to_numpy(), ref, rtol=1e-12)
    # refused with the option named: a model without [dosing], a covariate the model does not vary
    assert main(["simulate", "stein2019", "--reinfuse", "60:1e8", "--out", str(out)]) == 2
    assert main(["simulate", "stein2019_comed", "--covariate", "dose=1:2", "--out", str(out)]) == 2
    assert main(["simulate", "cart_bcell_sle_allo", "--reinfuse", "sixty:1e8", "--out", str(out)]) == 2


def test_a_model_without_dosing_is_fitted_up_to_the_re_infusion(renderings):
    """stein2019 cannot say what a second infusion does: the samples after it are excluded, each
    with the reason, and the participant is fitted on the first course (nothing dropped silently)."""
    from ctkinetics.errors import SettingsError

    ds = renderings["tidy"]
    r = fit(ds, "stein2019", analytes="transgene", subjects=["P1"], starts=1, derived=False)
    f = r["P1"]
    assert f.success
    ex = r.excluded_frame()
    after = ex[ex["reason"].str.startswith("after the re-infusion on day 120")]
    obs = ds.samples("P1", "transgene")
    assert sorted(after["time"]) == sorted(obs.loc[obs["time"] > REDOSE, "time"])
    assert f.n_obs == int(((obs["time"] > 0) & (obs["time"] <= REDOSE)).sum())
    # a covariate that changes with time in the data but is constant in the model: refused
    with pytest.raises(SettingsError, match="reads them as constant"):
        _fit_with_constant_toci(ds)


def _fit_with_constant_toci(ds):
    """cart_bcell_sle_allo with a constant covariate named like the data's time-varying one."""
    from pathlib import Path

    from ctkinetics.modeling import Model
    from ctkinetics.modeling.modelfile import parse_model_text

    text = (Path(__file__).resolve().parents[2] / "models" / "cart_bcell_sle_allo.toml").read_text()
    text = text.replace("[definitions]", '[covariates.toci]\ndefault = 0.0\nunit = "1"\n\n[definitions]', 1)
    return fit(ds, Model(**parse_model_text(text)), subjects=["P1"], starts=1, derived=False)


def test_fitted_exposure_follows_the_re_infusion(renderings):
    """The fits' model-based Cmax/Tmax (derived.csv) are those of the curve the fit predicted,
    second infusion included: the highest point of a fine grid of that curve (a second
    method), not the first course's peak alone."""
    m = load_model("cart_bcell_sle_allo")
    res = fit(renderings["tidy"], m, estimate=ESTIMATE, starts=2, seed=1)
    fine = np.linspace(0.0, 180.0, 90001)
    for s in TRUTH:
        f = res[s]
        est = {k: v for k, v in f.estimates().items() if k in m.param_names}
        curve = m.with_tolerances(1e-10, 1e-16).predict(est, fine, {"dose": 4.5e8},
                                                        doses=[[REDOSE, 4.5e8]])["flow"].ravel()
        d = f.derived.set_index(["analyte", "quantity"])["value"]
        assert d[("car_flow", "Cmax")] == pytest.approx(curve.max(), rel=1e-5)
        assert d[("car_flow", "Tmax")] == pytest.approx(fine[np.argmax(curve)], abs=0.01)


def test_exposure_rows_read_the_doses_the_fit_carries():
    """exposure_rows (what derived.csv is built from) takes the doses the estimation stack
    carries under events.DOSES: a re-infusion on day 14 with 10x the first dose raises
    AUC0-28 (by ~5 %) to Simpson's value on a fine grid of the re-dosed curve (split at the dose)."""
    from types import SimpleNamespace

    from scipy.integrate import simpson

    from ctkinetics.estimation.derived import exposure_rows
    from ctkinetics.estimation.events import DOSES

    m = load_model("cart_bcell_sle")
    p = {k: np.array([v]) for k, v in m.defaults().items()}
    doses = [np.array([[14.0, 4.5e9]])]
    maps = [SimpleNamespace(kind="flow", analyte="car_flow", unit="cells/uL")]
    rows = {q: v[0] for _, q, v, _ in exposure_rows(m, p, {"dose": np.array([4.5e8]), DOSES: doses},
                                                     maps, {}, np.array([28.0]))}
    tight = m.with_tolerances(1e-10, 1e-16)
    t1, t2 = np.linspace(0, 14, 28001), np.linspace(14, 28, 28001)
    v1 = tight.predict(p, t1, {"dose": 4.5e8}, doses=doses)["flow"].ravel()
    v2 = tight.predict(p, np.r_[14 + 1e-9, t2[1:]], {"dose": 4.5e8}, doses=doses)["flow"].ravel()
    ref = simpson(v1, x=t1) + simpson(v2, x=np.r_[14.0, t2[1:]])
    assert rows["AUC0-28"] == pytest.approx(ref, rel=1e-6)
    plain = {q: v[0] for _, q, v, _ in exposure_rows(m, p, {"dose": np.array([4.5e8])}, maps, {},
                                                      np.array([28.0]))}
    assert rows["AUC0-28"] > 1.02 * plain["AUC0-28"]   # the re-dosed course differs
