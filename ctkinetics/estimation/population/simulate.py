"""Simulated studies for simulation–estimation (recovery checks, benchmarks, tests).

Individual parameters ``P_i = TV·exp(η_i)``, ``η_i ~ N(0, diag(ω²))`` (the model's declared
ω² by default), optional power covariate effects ``P_i ∝ (x_i/ref)^β``, log-normal
residual error ``y = f·exp(σ·ε)`` and left-censoring at the LLOQ: a value below it is
reported BLQ (value NaN, ``blq`` True), as an assay would.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SimulatedStudy:
    """Anything :func:`fit_population` and the individual fits accept as a data set."""

    observations: pd.DataFrame
    subjects: pd.DataFrame
    study: object
    truth: pd.DataFrame   # subject, parameter, value (the individual parameters used)


def simulate_study(model, n, times, analyte="transgene", kind=None, unit="", lloq=np.nan,
                   typical=None, omega2=None, sigma=0.5, error="proportional",
                   covariates=None, effects=None, seed=0, analytes=None) -> SimulatedStudy:
    """Simulate ``n`` subjects sampled at ``times`` (model time unit).

    Parameters
    ----------
    model : Model
    n : int
    times : array-like
    analyte, kind, unit : str
        Analyte name, its kind (default: the model's first observable) and unit.
    lloq : float
    typical : dict, optional
        Typical values (default: the model's defaults).
    omega2 : dict, optional
        ω² per parameter (default: the model's declared ω²; 0 for parameters without).
    sigma : float
        Residual SD (on ln for ``proportional``, in the analyte's unit for ``additive``).
    covariates : dict name -> array (n,), optional
        Subject covariates (columns of the subjects table; those the model reads are passed
        to it too).
    effects : dict (parameter, covariate) -> (beta, reference), optional
        Power covariate effects.
    seed : int
    analytes : dict name -> (kind, unit, lloq, sigma), optional
        Several assays of the same subjects (e.g. qPCR, flow and B cells of
        ``cart_bcell_sle``), each with its own LLOQ and residual SD; replaces ``analyte``,
        ``kind``, ``unit``, ``lloq`` and ``sigma``.
    """
    rng = np.random.default_rng(seed)
    times = np.asarray(times, float)
    kind = kind or list(model.observables)[0]
    typical = dict(model.defaults(), **(typical or {}))
    w2 = {p.name: (p.omega2 or 0.0) for p in model.parameters}
    w2.update(omega2 or {})
    covariates = {k: np.asarray(v, float) for k, v in (covariates or {}).items()}
    params = {}
    for p in model.parameters:
        v = typical[p.name] * np.exp(np.sqrt(w2.get(p.name, 0.0)) * rng.standard_normal(n))
        for (par, cov), (beta, ref) in (effects or {}).items():
            if par == p.name:
                v = v * (covariates[cov] / ref) ** beta
        params[p.name] = v
    mcov = {c: covariates[c] for c in getattr(model, "covariates", {}) if c in covariates}
    assays = analytes or {analyte: (kind, unit, lloq, sigma)}
    out = model.predict(params, times, covariates=mcov or None,
                        observables=sorted({a[0] for a in assays.values()}))
    ids = [f"S{i + 1:03d}" for i in range(n)]
    frames = []
    for name, (k, u, limit, sd) in assays.items():
        f = np.reshape(out[k], (n, -1))
        eps = rng.standard_normal(f.shape)
        y = f * np.exp(sd * eps) if error == "proportional" else f + sd * eps
        blq = y < limit if np.isfinite(limit) else np.zeros_like(y, bool)
        frames.append(pd.DataFrame({
            "subject": np.repeat(ids, times.size), "time": np.tile(times, n),
            "analyte": name, "value": np.where(blq, np.nan, y).ravel(), "unit": u,
            "lloq": float(limit), "blq": blq.ravel()}))
    obs = pd.concat(frames, ignore_index=True)
    obs["pre_infusion"] = False
    obs["source_file"] = "simulated"
    obs["source_row"] = np.arange(2, len(obs) + 2)
    subjects = pd.DataFrame({"subject": ids, "dose_level": "1",
                             "dose": covariates.get("dose", np.full(n, np.nan))})
    for c, v in covariates.items():
        subjects[c] = v
    analytes = {name: SimpleNamespace(name=name, unit=u, lloq=limit, kind=k)
                for name, (k, u, limit, _) in assays.items()}
    truth = pd.DataFrame([{"subject": s, "parameter": k, "value": float(v[i])}
                          for k, v in params.items() for i, s in enumerate(ids)])
    return SimulatedStudy(obs, subjects, SimpleNamespace(name="simulated", analytes=analytes),
                          truth)
