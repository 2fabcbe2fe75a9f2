"""Issue 17.3: each model's calibration targets hold in simulations of its own population.

The targets (published value, tolerance, source) are data: ``models/calibration/<model>.toml``
until model files accept a ``[[calibration]]`` table (SCI_NEEDS.md), then ``model.calibration``.
Each target is checked here from the model file's population (``simulate_population`` with
the file's omega^2, exposure metrics from the one registry ``model_exposure``) or from its
typical participant; the published numbers are independent of the code.
"""
from __future__ import annotations

import functools
import tomllib
from pathlib import Path

import numpy as np
import pytest

from ctkinetics.modeling import list_models, load_model, simulate_population
from ctkinetics.modeling.exposure import METRICS, model_exposure
from ctkinetics.modeling.solution import TimeCourse

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
STATISTICS = ("median", "mean", "sd", "sd_log", "typical")
#: quantities beyond the exposure registry's metrics (see ``quantity``)
EXTRA = ("level_ratio", "reexpansion_ratio", "reexpansion_day", "Cmax_ratio")
#: the models that must state targets (issue 17: the SLE family and the Stein family)
CALIBRATED = ("cart_bcell_sle", "cart_bcell_sle_allo", "cart_bcell_sle_dna", "stein2019",
              "stein2019_comed", "stein2019_lag")


def calibration(name: str) -> dict:
    """The model's calibration table: ``model.calibration`` when the model file has one, else
    ``models/calibration/<name>.toml``."""
    m = load_model(name)
    table = getattr(m, "calibration", None)
    if table:
        return {"model": name, "target": [dict(t) for t in table]}
    path = MODELS_DIR / "calibration" / f"{name}.toml"
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


TARGETS = [(name, t["name"]) for name in list_models() for t in calibration(name).get("target", [])]


def _target(name, target_name) -> tuple[dict, dict]:
    cfg = calibration(name)
    return cfg, next(t for t in cfg["target"] if t["name"] == target_name)


def test_the_sle_and_stein_models_state_sourced_targets():
    for name in CALIBRATED:
        cfg = calibration(name)
        assert cfg.get("target"), f"{name} has no calibration targets"
        assert cfg["model"] == name
        for t in cfg["target"]:
            assert t["statistic"] in STATISTICS, t
            q = t["quantity"]
            assert q in METRICS or q.startswith("AUC") or q.startswith("derived:") or q in EXTRA, t
            assert t["tolerance"] > 0 and np.isfinite(t["value"]) and t["unit"], t
            assert len(t["source"]) > 20, t
    # the autologous benchmark is named as such wherever it is used
    for name in CALIBRATED:
        for t in calibration(name)["target"]:
            if "Mackensen" in t["source"]:
                assert "AUTOLOGOUS" in t["source"].upper(), (name, t["name"])


@functools.lru_cache(maxsize=None)
def _population(name):
    """(model, params, covariates, n) of the model's calibration population."""
    m = load_model(name)
    cfg = calibration(name)
    n = int(cfg.get("n", 300))
    covs = {"dose": np.full(n, float(cfg["dose"]))} if "dose" in m.covariates and "dose" in cfg else None
    sim = simulate_population(m, n, times=[0.0], seed=int(cfg.get("seed", 1)), covariates=covs)
    params = {k: sim.parameters[k].to_numpy(float) for k in m.param_names}
    return m, params, covs, n


@functools.lru_cache(maxsize=None)
def _exposure(name, typical):
    """One exposure computation per model and population: every kind and threshold its
    targets use."""
    cfg = calibration(name)
    m = load_model(name)
    kinds = sorted({t["kind"] for t in cfg["target"] if t.get("kind")})
    th = {t["kind"]: float(t["threshold"]) for t in cfg["target"] if "threshold" in t}
    if typical:
        params = None
        covs = {"dose": float(cfg["dose"])} if "dose" in m.covariates and "dose" in cfg else None
    else:
        m, params, covs, _ = _population(name)
    e = model_exposure(m, params, covs, kinds=kinds, t_end=float(cfg.get("t_end", m.horizon)), thresholds=th or None)
    assert np.all(e.status == 0), e.messages
    return e


def quantity(name, t) -> np.ndarray:
    """The target's quantity for every simulated participant (one value when typical)."""
    cfg = calibration(name)
    m = load_model(name)
    typical = t["statistic"] == "typical"
    q, kind = t["quantity"], t.get("kind")
    if q.startswith("derived:"):
        if typical:
            return np.atleast_1d(m.derived()[q[len("derived:"):]])
        _, params, covs, _ = _population(name)
        return np.atleast_1d(m.derived(params, covs)[q[len("derived:"):]])
    if q in METRICS or q.startswith("AUC"):
        e = _exposure(name, typical)
        return np.asarray(e.values[(kind, q)], float)
    dose = {"dose": float(cfg["dose"])} if "dose" in m.covariates and "dose" in cfg else {}
    if q == "level_ratio":
        peak = _exposure(name, True).values[(kind, "Cmax")]
        return np.atleast_1d(m.predict(None, [float(t["at"])], dose or None)[kind][0] / peak)
    if q in ("reexpansion_ratio", "reexpansion_day"):
        day, amount = (float(x) for x in t["redose"])
        grid = np.arange(0.0, day + 60.0, 0.05)
        y = m.predict(None, grid, dose or None, doses=[[day, amount]])[kind]
        before, after = y[grid < day], y[grid >= day]
        if q == "reexpansion_ratio":
            return np.atleast_1d(after.max() / before.max())
        return np.atleast_1d(grid[grid >= day][np.argmax(after)] - day)
    if q == "Cmax_ratio":
        times, values = np.array(t["course"], float).T
        grid = np.unique(np.concatenate([np.arange(0.0, 28.0, 0.01), [m.defaults().get("Tmax", 0.0)]]))
        with_ = m.predict(None, grid, {t["covariate"]: TimeCourse(times, values)})[kind]
        without = m.predict(None, grid)[kind]
        return np.atleast_1d(with_.max() / without.max())
    raise AssertionError(f"unknown quantity {q}")


def statistic(values: np.ndarray, how: str) -> float:
    assert np.all(np.isfinite(values)), "a participant has no value (never reached / never back)"
    if how in ("median", "typical"):
        return float(np.median(values))
    if how == "mean":
        return float(np.mean(values))
    if how == "sd":
        return float(np.std(values, ddof=1))
    if how == "sd_log":
        return float(np.std(np.log(values), ddof=1))
    raise AssertionError(how)


@pytest.mark.parametrize("name, target", TARGETS, ids=[f"{m}:{t}" for m, t in TARGETS])
def test_calibration_target_holds(name, target):
    _, t = _target(name, target)
    got = statistic(quantity(name, t), t["statistic"])
    assert abs(got - t["value"]) <= t["tolerance"], (
        f"{name} {t['name']}: {t['statistic']} {t['quantity']} = {got:.4g} {t['unit']}, target "
        f"{t['value']:g} +- {t['tolerance']:g} ({t['source']})")
