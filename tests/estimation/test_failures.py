"""Runtime failures are results (issue 19.5): a solver failure, a non-finite prediction or a
switch time that is not a number, and the time limit mark the subject (or population run)
as failed with the reason — never "fitted"."""
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctkinetics.estimation import fit
from ctkinetics.estimation.predictor import ModelPredictor
from ctkinetics.modeling import load_model
from est_fakes import OneCptOral, Stein, dataset, theoph

MODELS = Path(__file__).parents[2] / "models"
THEOPH = Path(__file__).parents[1] / "data" / "theoph.csv"
TIMES = np.array([1, 2, 4, 7, 9, 11, 14, 21, 28, 42, 60, 90, 180.0])


def _nan_switch_model(tmp_path):
    """stein2019 whose switch time is sqrt(Tmax − 5) days: not a number for Tmax < 5."""
    text = (MODELS / "stein2019.toml").read_text().replace('name = "stein2019"',
                                                           'name = "stein_sqrt_switch"')
    text = text.replace('end = "Tmax"', 'end = "sqrt(Tmax - 5)"')
    path = tmp_path / "stein_sqrt_switch.toml"
    path.write_text(text)
    return load_model(path)


def _two_subjects():
    rng = np.random.default_rng(2)
    rows = []
    for s, cmax in (("A", 4481.0), ("B", 9000.0)):
        p = {"Cmax": cmax, "Tmax": 3.0, "foldx": 300.0, "alpha": 0.2, "FB": 0.01, "beta": 0.005}
        f = np.ravel(Stein().predict(p, TIMES)["qpcr"])
        rows.append(pd.DataFrame({"subject": s, "time": TIMES, "analyte": "qpcr",
                                  "value": f * np.exp(rng.normal(0, 0.2, f.size))}))
    return dataset(pd.concat(rows), pd.DataFrame({"subject": ["A", "B"], "dose_level": "1"}),
                   {"qpcr": ("copies/ug", np.nan, "qpcr")})


def test_a_switch_time_that_is_not_a_number_gives_no_prediction(tmp_path):
    m = _nan_switch_model(tmp_path)
    pred = ModelPredictor(m, ["qpcr"])
    out = pred.predict({"Tmax": np.array([4.0, 9.0])}, TIMES)["qpcr"]
    assert np.isnan(out[0]).all()
    # where the switch is a number the prediction is the model's own (switch at 2 days)
    assert out[1] == pytest.approx(m.predict({"Tmax": 9.0}, TIMES)["qpcr"], rel=1e-12)
    # the model alone stays in its expansion phase for ever: a huge, finite curve
    raw = m.predict({"Tmax": 4.0}, TIMES)["qpcr"]
    assert np.isfinite(raw).all() and raw[-1] > 1e20


def test_a_fit_held_where_the_switch_is_not_a_number_fails_with_the_reason(tmp_path):
    m = _nan_switch_model(tmp_path)
    res = fit(_two_subjects(), m, starts=1, fixed={"Tmax": 4.0})
    assert res.failed == ["A", "B"] and res.n_failed == 2
    for f in res:
        assert not f.success and f.failed and f.flags == ("failed",)
        assert "switch time" in f.message and "non-finite prediction" in f.message
        assert f.parameters["estimate"].isna().all() and f.derived.empty
    ff = res.fits_frame()
    assert ff["failed"].all() and not ff["success"].any()
    # free, the optimiser stays where the switch is a number
    free = fit(_two_subjects(), m, starts=2)
    assert free.failed == [] and all(f.estimates()["Tmax"] > 5 for f in free)
    assert np.isfinite(free.predictions_frame()["ipred"]).all()


@dataclass(frozen=True)
class Slow(OneCptOral):
    def predict(self, params, times, covariates=None, observables=None):
        time.sleep(0.02)
        return super().predict(params, times, covariates, observables)


def test_the_time_limit_fails_the_fits_still_running():
    t0 = time.perf_counter()
    res = fit(theoph(THEOPH), Slow(), subjects=["1", "2"], error="additive", starts=1,
              derived=False, time_limit=0.3)
    assert time.perf_counter() - t0 < 10
    assert res.failed == ["1", "2"]
    assert all("time limit of 0.3 s" in f.message for f in res)
    with pytest.raises(Exception, match="time_limit"):
        fit(theoph(THEOPH), OneCptOral(), subjects=["1"], time_limit=0)


def test_a_population_run_past_its_time_limit_is_failed():
    from ctkinetics.estimation.population import fit_population

    res = fit_population(theoph(THEOPH), Slow(), random_effects="ka,CL", error="additive",
                         covariance=False, time_limit=0.05)
    assert res.failed and not res.converged and "time limit" in res.failure
    assert res.diagnostics["flags"] == ["failed"] and res.parameters.empty
