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
    return sequential_sum(segment_area(t[:-1], c1, t[1:], c2, is_log))


def sequential_sum(x):
    """Sum along the last axis, term by term from the first: the same bits for a row whatever
    the array's shape and memory layout (numpy's ``sum`` adds pairwise on contiguous rows but
    in another order on strided ones, so a participant's AUC would depend on its batch)."""
    return np.cumsum(x, axis=-1)[..., -1] if x.shape[-1] else np.zeros(x.shape[:-1])


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


def individual_parameters(spec: KineticsSpec, model, eta: np.ndarray, doses, levels) -> tuple:
    """Parameters of K (participant, dose level) pairs.

    ``eta`` (K, P) are the participants' standard normal draws, ``levels`` (K,) the levels:
    θ_k = TV_level(θ) · exp(ω_θ · η_kθ), clipped to θ's bounds. Returns ``(params,
    covariates)``, dicts name -> ndarray (K,).
    """
    levels = np.asarray(levels, dtype=int)
    omega = dict(spec.omega2)
    typical = dict(spec.typical)
    params = {}
    for p in model.parameters:
        tv = np.asarray(typical.get(p.name, (p.default,) * len(doses)), dtype=float)[levels]
        if p.name in spec.variable:
            tv = tv * np.exp(np.sqrt(omega[p.name]) * eta[:, spec.variable.index(p.name)])
        params[p.name] = np.ascontiguousarray(np.clip(tv, p.lower, p.upper))
    covs = {}
    if "dose" in model.covariates:
        covs["dose"] = np.ascontiguousarray(np.asarray(doses, dtype=float)[levels])
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


def pair_exposures(spec: KineticsSpec, eta: np.ndarray, doses, levels, chunk: int = 20_000) -> dict:
    """Exposure metrics of K (participant, dose level) pairs: dict metric -> (K,).

    ``eta`` (K, P): each pair's participant's draws (one column per ``spec.variable``, scaled
    by ω here); ``levels`` (K,). ``chunk`` curves per model call bound the memory of the
    curves (``chunk × grid`` floats); each pair's numbers depend only on its own inputs.
    """
    model = cached_model(spec.model)
    levels = np.asarray(levels, dtype=int)
    t = spec.grid()
    parts = []
    for i in range(0, len(levels), chunk):
        params, covs = individual_parameters(spec, model, eta[i:i + chunk], doses, levels[i:i + chunk])
        parts.append(exposure_metrics(t, predict_curves(spec, model, params, covs, t)))
    if not parts:
        return {name: np.zeros(0) for name in METRICS}
    return {name: np.concatenate([p[name] for p in parts]) for name in METRICS}


def exposures(spec: KineticsSpec, eta: np.ndarray, doses) -> dict:
    """Exposure metrics of every participant at every dose level: dict metric -> (N, D)
    (``eta`` (N, P) as in :func:`pair_exposures`).

    Examples
    --------
    >>> e = exposures(KineticsSpec("stein2019", "qpcr"), np.zeros((1, 0)), [1.0])
    >>> round(float(e["cmax"][0, 0]))  # typical Cmax 24,000 at 9.3 d; the 0.25-d grid misses the peak
    23250
    """
    n, d = eta.shape[0], len(doses)
    out = pair_exposures(spec, np.repeat(eta, d, axis=0), doses, np.tile(np.arange(d), n))
    return {name: v.reshape(n, d) for name, v in out.items()}


class ExposureTable:
    """Exposures of a batch's participants, computed on first use, one model call per request.

    A trial needs a participant's exposure only at the level actually given (for the DLT, the
    guards and the summaries), so pairs are computed when asked for and kept: about a third of
    all (participant, level) pairs, in one vectorised call per round of the calendar. Values
    do not depend on when or with which other pairs they were computed.
    """

    def __init__(self, spec: KineticsSpec, eta: np.ndarray, doses):
        self.spec, self.eta, self.doses = spec, eta, tuple(doses)  # eta (m, P, n_eta)
        m, p = eta.shape[:2]
        self.values = {name: np.full((m, p, len(doses)), np.nan) for name in METRICS}
        self.known = np.zeros((m, p, len(doses)), dtype=bool)

    def at(self, rows, slots, levels) -> dict:
        """metric -> exposures at the (trial row, participant slot, level) index arrays
        (broadcast together; the result has their shape)."""
        rows, slots, levels = np.broadcast_arrays(rows, slots, levels)
        need = ~self.known[rows, slots, levels]
        if need.any():
            key = np.unique(np.ravel_multi_index((rows[need], slots[need], levels[need]), self.known.shape))
            r, s, lv = np.unravel_index(key, self.known.shape)
            new = pair_exposures(self.spec, self.eta[r, s], self.doses, lv)
            for name, v in new.items():
                self.values[name][r, s, lv] = v
            self.known[r, s, lv] = True
        return {name: v[rows, slots, levels] for name, v in self.values.items()}
