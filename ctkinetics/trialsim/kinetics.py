"""Each virtual participant's CAR-T kinetics and exposure, from the model library.

For participant i at dose level j, parameter θ (log-normal between-subject variability, the
NONMEM / Monolix convention used by :func:`ctkinetics.modeling.simulate_population`)::

    θ_ij = TV_j(θ) · exp(η_iθ),   η_iθ ~ N(0, ω²_θ),   clipped to θ's [lower, upper]

TV_j is the spec's typical value at level j (or the model default). One η per participant is
shared by all dose levels, so the participant's exposure at any level the trial might give
them is computed in one vectorised :meth:`Model.predict` call and the decision of the trial
only picks the column of the level actually given (common random numbers across rules).
Models with a ``dose`` covariate get each level's dose in cells.

Exposure metrics (registry :data:`METRICS`) are computed from the prediction on a regular grid
0, h, 2h, …, ``until_day`` (h = ``grid_step_days``, default 0.25 d):

- ``cmax``     highest predicted level on the grid (copies/µg for qPCR), over days 0–``until_day``
- ``tmax``     first grid time of that peak (days)
- ``auc0_28``  AUC from day 0 to 28 by the NCA layer's lin-up/log-down rule
  (:func:`ctkinetics.nca.auc.segment_area`), on the same grid

Steps (each its own function, so one can be swapped without touching the others):
:func:`individual_parameters` (θ_ij), :func:`predict_curves` (the model / engine call) and
:func:`exposure_metrics` (the exposure rule). Curves are never kept: only these numbers leave
this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from ctkinetics.nca.auc import AUC_METHODS, segment_area


@lru_cache(maxsize=16)
def cached_model(ref: str):
    """A model loaded once per process (Dask workers load it on their first batch)."""
    from ctkinetics.modeling import load_model

    return load_model(ref)


def _cmax(t, c):
    return c.max(axis=-1)


def _tmax(t, c):
    return t[c.argmax(axis=-1)]


def _auc0_28(t, c):
    keep = t <= 28.0 + 1e-9
    t, c = t[keep], c[..., keep]
    c1, c2 = c[..., :-1], c[..., 1:]
    is_log = AUC_METHODS["lin-up/log-down"].use_log(c1, c2, None)
    return segment_area(t[:-1], c1, t[1:], c2, is_log).sum(axis=-1)


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # relative to the observable: "level", "day" or "level*day"
    description: str
    compute: Callable  # (grid times (T,), curves (..., T)) -> (...)


METRICS = {m.name: m for m in (
    Metric("cmax", "level", "peak of the predicted curve over the grid", _cmax),
    Metric("tmax", "day", "time of the peak on the grid", _tmax),
    Metric("auc0_28", "level*day", "AUC day 0-28, lin-up/log-down on the grid", _auc0_28),
)}


@dataclass(frozen=True)
class KineticsSpec:
    """The kinetic population of a trial spec.

    Attributes
    ----------
    model : str
        Library model name or path to a model file.
    observable : str
        Observable kind whose curve defines exposure (e.g. ``qpcr``).
    typical : tuple of (name, (value per level, ...))
        Typical values by dose level; other parameters keep the model defaults.
    omega2 : tuple of (name, ω²)
        Variances of η (log scale); parameters not listed have no variability.
    grid_step_days, until_day : float
        Exposure grid (must reach day 28 for ``auc0_28``).
    """

    model: str
    observable: str
    typical: tuple = ()
    omega2: tuple = ()
    grid_step_days: float = 0.25
    until_day: float = 28.0

    @property
    def variable(self) -> tuple:
        """Names of parameters with between-subject variability, in a fixed order."""
        return tuple(name for name, w in self.omega2 if w > 0)

    def grid(self) -> np.ndarray:
        n = int(round(self.until_day / self.grid_step_days))
        t = np.linspace(0.0, n * self.grid_step_days, n + 1)
        return np.union1d(t, [28.0]) if self.until_day >= 28.0 else t


def individual_parameters(spec: KineticsSpec, model, eta: np.ndarray, doses) -> tuple:
    """Each participant's parameters at every dose level, flattened participant-major.

    Returns ``(params, covariates)``: dicts name -> ndarray (N·D,), row ``i·D + j`` being
    participant i at level j (θ_ij = TV_j · exp(ω·η_i), clipped to the parameter's bounds).
    """
    n, d = eta.shape[0], len(doses)
    omega = dict(spec.omega2)
    typical = dict(spec.typical)
    params = {}
    for p in model.parameters:
        tv = np.asarray(typical.get(p.name, (p.default,) * d), dtype=float)  # (D,)
        value = np.broadcast_to(tv[None, :], (n, d))
        if p.name in spec.variable:
            col = spec.variable.index(p.name)
            value = value * np.exp(np.sqrt(omega[p.name]) * eta[:, col])[:, None]
        params[p.name] = np.ascontiguousarray(np.clip(value, p.lower, p.upper).ravel())
    covs = {}
    if "dose" in model.covariates:
        covs["dose"] = np.ascontiguousarray(
            np.broadcast_to(np.asarray(doses, dtype=float)[None, :], (n, d)).ravel())
    return params, covs


def predict_curves(spec: KineticsSpec, model, params: dict, covariates: dict, times: np.ndarray) -> np.ndarray:
    """The model step: curves (K, T) of ``spec.observable`` for K parameter sets.

    The one place that calls the kinetic engine: swapping the model or the engine (closed form,
    the compiled ODE engine) changes only this function.
    """
    return model.predict(params, times, covariates, observables=[spec.observable])[spec.observable]


def exposure_metrics(times: np.ndarray, curves: np.ndarray) -> dict:
    """Exposure metrics of curves (K, T) on the grid ``times``: dict metric -> (K,).

    The one home of trial-sim's exposure rule (:data:`METRICS`): grid maximum, its time, and
    AUC0-28 by lin-up/log-down on the grid. To be switched to the project's exposure-metric
    registry in :mod:`ctkinetics.modeling` when it exists.
    """
    return {name: m.compute(times, curves) for name, m in METRICS.items()}


def exposures(spec: KineticsSpec, eta: np.ndarray, doses, chunk: int = 20_000) -> dict:
    """Exposure metrics of every participant at every dose level.

    Parameters
    ----------
    spec : KineticsSpec
    eta : ndarray (N, P)
        Standard normal draws, one column per ``spec.variable`` (scaled by ω here).
    doses : sequence of float (D,)
        Dose of each level (cells).
    chunk : int
        Curves per model call (bounds the memory of the curves, ``chunk × grid`` floats).
        Each participant's numbers do not depend on it.

    Returns
    -------
    dict metric -> ndarray (N, D)

    Examples
    --------
    >>> e = exposures(KineticsSpec("stein2019", "qpcr"), np.zeros((1, 0)), [1.0])
    >>> round(float(e["cmax"][0, 0]))  # typical Cmax 24,000 at 9.3 d; the 0.25-d grid misses the peak
    23250
    """
    model = cached_model(spec.model)
    n, d = eta.shape[0], len(doses)
    t = spec.grid()
    rows = max(1, chunk // max(d, 1))  # participants per model call
    parts = []
    for i in range(0, n, rows):
        params, covs = individual_parameters(spec, model, eta[i:i + rows], doses)
        parts.append(exposure_metrics(t, predict_curves(spec, model, params, covs, t)))
    if not parts:
        return {name: np.zeros((0, d)) for name in METRICS}
    return {name: np.concatenate([p[name] for p in parts]).reshape(n, d) for name in METRICS}
