"""MAP individual fits with a prior (issue 12.4): the objective and optimum against a
hand-written −2 log posterior minimised by scipy, the prior's two limits, and shrinkage."""
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from ctkinetics.estimation import fit
from ctkinetics.estimation.prior import Prior, from_model
from ctkinetics.estimation.results_io import read_fit, write_fit
from ctkinetics.modeling import load_model
from est_fakes import Stein, dataset

TIMES = np.array([1, 4, 7, 14, 28, 60, 90.0])
NAMES = ["Cmax", "Tmax", "foldx", "alpha", "FB", "beta"]


def _sparse(n=4, seed=3):
    """Sparse subjects (7 samples for 6 kinetic parameters + σ): where a prior matters."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        p = {"Cmax": 20000 * np.exp(rng.normal(0, 0.5)), "Tmax": 8 * np.exp(rng.normal(0, 0.3)),
             "foldx": 2000.0, "alpha": 0.2, "FB": 0.01, "beta": 0.004}
        f = np.ravel(Stein().predict(p, TIMES)["qpcr"])
        rows.append(pd.DataFrame({"subject": f"S{i}", "time": TIMES, "analyte": "qpcr",
                                  "value": f * np.exp(rng.normal(0, 0.3, TIMES.size))}))
    return dataset(pd.concat(rows, ignore_index=True),
                   pd.DataFrame({"subject": [f"S{i}" for i in range(n)], "dose_level": "1"}),
                   {"qpcr": ("copies/ug", np.nan, "qpcr")})


def _m2lp(x, y, prior):
    """−2 ln p(y, φ) by hand: log-normal data (est_fakes' Stein), normal prior on ln φ."""
    phi, s = x[:6], np.exp(x[6])
    f = np.ravel(Stein().predict(dict(zip(NAMES, np.exp(phi))), TIMES)["qpcr"])
    data = -2 * np.sum(stats.norm.logpdf(np.log(y), np.log(f), s) - np.log(y))
    pri = -2 * stats.multivariate_normal(prior.default, prior.omega).logpdf(phi)
    return data + pri


def test_map_fit_is_the_minimum_of_the_log_posterior():
    ds = _sparse()
    model = load_model("stein2019")
    res = fit(ds, model, prior="model", starts=2, derived=False)
    prior = from_model(model, NAMES)
    assert res.settings["prior"] == "model" and list(res.prior["parameter"]) == NAMES
    for f in res:
        y = ds.observations.query("subject == @f.subject")["value"].to_numpy()
        x = f.parameters["estimate_transformed"].to_numpy(float)
        assert f.ofv == pytest.approx(_m2lp(x, y, prior), rel=1e-9)
        # scipy from a perturbed start comes back to the same minimum
        best = optimize.minimize(_m2lp, x + 0.05, args=(y, prior), method="BFGS",
                                 options=dict(gtol=1e-8))
        assert best.fun >= f.ofv - 1e-4
        assert np.max(np.abs(best.x - x)) < 2e-3
    # shrinkage: 100·(1 − SD(φ̂ − μ)/ω) over the subjects, by hand
    wide = res.to_frame().pivot(index="subject", columns="parameter",
                                values="estimate_transformed")
    row = res.prior.set_index("parameter").loc["Tmax"]
    sd = np.std(wide["Tmax"] - np.log(9.3), ddof=1)
    assert row["shrinkage_pct"] == pytest.approx(100 * (1 - sd / np.sqrt(0.38)), rel=1e-9)


def test_the_prior_limits_ml_and_the_typical_value(tmp_path):
    ds = _sparse(n=2)
    model = load_model("stein2019")
    ml = fit(ds, model, starts=2, derived=False)
    wide = Prior(tuple(NAMES), np.eye(6) * 1e6,
                 np.log([24000, 9.3, 3900, 0.16, 0.0079, 0.0032]))
    loose = fit(ds, model, prior=wide, starts=2, derived=False)
    for s in ("S0", "S1"):
        a, b = ml[s].estimates(), loose[s].estimates()
        assert b["Cmax"] == pytest.approx(a["Cmax"], rel=2e-3)
        assert b["Tmax"] == pytest.approx(a["Tmax"], rel=2e-3)
    tight = Prior(tuple(NAMES), np.eye(6) * 1e-8, wide.default)
    held = fit(ds, model, prior=tight, starts=1, derived=False)
    for f in held:
        np.testing.assert_allclose(f.parameters["estimate_transformed"].to_numpy()[:6],
                                   wide.default, atol=1e-3)
    assert (held.prior["shrinkage_pct"] > 99).all()
    write_fit(loose, tmp_path / "out")
    assert read_fit(tmp_path / "out") == loose
