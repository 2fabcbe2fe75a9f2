"""Fits with the model library itself (ctkinetics.modeling): Theoph with onecpt_oral and a
joint qPCR + flow + B-cell fit of cart_bcell_sle recovering simulated truth."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ctkinetics.estimation import fit
from est_fakes import theoph

modeling = pytest.importorskip("ctkinetics.modeling")
THEOPH = Path(__file__).parents[1] / "data" / "theoph.csv"


def test_theoph_subject1_onecpt_oral_matches_r_nls():
    res = fit(theoph(THEOPH), "onecpt_oral", subjects=["1"], error="additive", starts=1)
    t = res["1"].parameters.set_index("parameter")["estimate_transformed"]
    # R nls SSfol: lKe -2.9196, lKa 0.5752, lCl -3.9159 (SSfol's Dose = Theoph Dose, mg/kg)
    assert t["ke"] == pytest.approx(-2.9196, abs=5e-5)
    assert t["ka"] == pytest.approx(0.5752, abs=5e-5)
    assert t["CL"] == pytest.approx(-3.9159, abs=5e-5)
    assert res["1"].ofv == pytest.approx(20.848716, abs=1e-4)


def test_cart_bcell_sle_joint_fit_recovers_truth():
    m = modeling.load_model("cart_bcell_sle")
    times = np.array([1, 4, 7, 10, 14, 21, 28, 60, 90, 180.0])
    d = m.defaults()
    truth = dict(d, kexp=2.6, dE=0.09, kkill=45.0)
    out = m.predict(truth, times, covariates={"dose": 4.5e8})
    rng = np.random.default_rng(5)
    kinds = {"tg": "qpcr", "fl": "flow", "bc": "bcell"}
    obs = pd.concat([pd.DataFrame({
        "subject": "P1", "time": times, "analyte": a, "lloq": 1e-3, "blq": False,
        "value": np.asarray(out[k]) * np.exp(rng.normal(0, 0.1, len(times)))})
        for a, k in kinds.items()], ignore_index=True)
    ds = SimpleNamespace(
        observations=obs,
        subjects=pd.DataFrame({"subject": ["P1"], "dose_level": ["2"], "dose": [4.5e8]}),
        study=SimpleNamespace(analytes={a: SimpleNamespace(kind=k, unit="")
                                        for a, k in kinds.items()}))
    # dE is not estimated by default (estimate = false in the model file): name the three
    res = fit(ds, m, estimate=["kexp", "dE", "kkill"], starts=1, derived=False)
    assert set(res.settings["fixed"]) == set(d) - {"kexp", "dE", "kkill"}
    f = res["P1"]
    assert f.success
    p = f.parameters.set_index("parameter")
    for name in ("kexp", "dE", "kkill"):
        est, se = p.loc[name, "estimate"], p.loc[name, "se"]
        assert abs(est - truth[name]) < max(3 * se, 0.02 * truth[name]), name
    # one residual SD per assay, each near the simulated 0.1
    for a in kinds:
        assert 0.04 < p.loc[f"sigma_{a}", "estimate"] < 0.2


def test_derived_tmax_is_in_the_model_time_unit_and_matches_the_closed_form():
    # onecpt_oral runs in hours: Tmax = ln(ka/ke)/(ka - ke) h, not days
    res = fit(theoph(THEOPH), "onecpt_oral", subjects=["1"], error="additive", starts=1)
    d = res["1"].derived.query("analyte == 'conc'").set_index("quantity")
    p = res["1"].estimates()
    assert d.loc["Tmax", "unit"] == "hour"
    tmax = np.log(p["ka"] / p["ke"]) / (p["ka"] - p["ke"])
    assert d.loc["Tmax", "value"] == pytest.approx(tmax, rel=1e-6)


def test_stein2019_batch_derived_auc_equals_the_closed_form_integral():
    # the exposure registry's AUC0-28 of each fitted subject against the model file's
    # closed-form AUC0_28 (DOMAIN.md), and its Cmax/Tmax against the parameters (the peak
    # of the Stein curve is the kink at Tmax, one of the exposure grid's times)
    m = modeling.load_model("stein2019")
    times = np.array([1, 4, 7, 10, 14, 21, 28, 60, 90, 180, 270, 365.0])
    rng = np.random.default_rng(11)
    names = list(m.param_names)
    truth = np.array([p.default for p in m.parameters]) * np.exp(rng.normal(0, 0.2, (4, 6)))
    pred = m.predict({k: truth[:, i] for i, k in enumerate(names)}, times)["qpcr"]
    y = np.asarray(pred) * np.exp(rng.normal(0, 0.3, pred.shape))
    ids = [f"V{i}" for i in range(4)]
    obs = pd.DataFrame({"subject": np.repeat(ids, times.size), "time": np.tile(times, 4),
                        "analyte": "qpcr", "value": y.ravel(), "lloq": 1.0, "blq": False})
    ds = SimpleNamespace(observations=obs,
                         subjects=pd.DataFrame({"subject": ids, "dose_level": "1"}),
                         study=SimpleNamespace(analytes={"qpcr": SimpleNamespace(
                             kind="qpcr", unit="copies/ug")}))
    res = fit(ds, m, starts=1)
    assert set(res.fits_frame().engine) == {"batched"}
    d = res.derived_frame()
    for s in ids:
        row = d[d.subject == s].set_index("quantity")["value"]
        assert row["AUC0-28"] == pytest.approx(row["AUC0_28"], rel=1e-9)
        assert row["Cmax"] == pytest.approx(res[s].estimates()["Cmax"], rel=1e-9)
        assert row["Tmax"] == pytest.approx(res[s].estimates()["Tmax"], rel=1e-9)
