"""Each virtual participant's CAR-T kinetics and exposure, from the model library.

For participant i at dose level j, parameter θ (log-normal between-subject variability, the
NONMEM / Monolix convention used by :func:`ctkinetics.modeling.simulate_population`)::

    θ_ij = TV_j(θ) · exp(η_iθ),   η_iθ ~ N(0, ω²_θ),   clipped to θ's [lower, upper]

TV_j is the spec's typical value at level j (or the model default). One η per participant is
shared by all dose levels (common random numbers across levels and rules). Models with a
``dose`` covariate get each level's dose in cells.

Exposure comes from the project's one exposure rule, :func:`ctkinetics.modeling.exposure.
model_exposure` (the numbers fits and the report show), on the spec's observable; trial-sim's
names for them (:data:`METRICS`, also the summary columns):

- ``cmax``     the curve's maximum over days 0–``until_day`` (registry ``Cmax``)
- ``tmax``     its time (registry ``Tmax``)
- ``auc0_28``  the exact AUC over days 0–28 (registry ``AUC``, window 0–28)

:func:`pair_exposures` is the one function that calls the model (through the registry) and
:class:`ExposureTable` computes a batch's pairs on first use. Curves never leave this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ctkinetics.trialsim.failures import ExposureError

AUC_WINDOW = (0.0, 28.0)


@lru_cache(maxsize=16)
def cached_model(ref: str, rtol: float | None = None, atol: float | None = None):
    """A model loaded once per process (Dask workers load it on their first batch), at the
    solver tolerances given (None: the model file's)."""
    from ctkinetics.modeling import load_model

    if rtol is None and atol is None:
        return load_model(ref)
    return cached_model(ref).with_tolerances(rtol, atol)


@dataclass(frozen=True)
class Metric:
    """A trial-sim exposure metric: its name here, unit relative to the observable ("level",
    "day" or "level*day"), description, and the registry metric it is."""

    name: str
    unit: str
    description: str
    registry: str


METRICS = {m.name: m for m in (
    Metric("cmax", "level", "peak of the model curve (days 0 to until_day)", "Cmax"),
    Metric("tmax", "day", "time of the peak of the model curve", "Tmax"),
    Metric("auc0_28", "level*day", "AUC of the model curve, days 0-28 (exact integral)", "AUC"),
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
    until_day : float
        End of the peak search (days; at least 28).
    rtol, atol : float or None
        Tolerances of the ODE solver for the virtual participants (None: the model file's
        ``[solver]`` values, those of fits and the report). Closed-form models ignore them.
    """

    model: str
    observable: str
    typical: tuple = ()
    omega2: tuple = ()
    until_day: float = 28.0
    rtol: float | None = None
    atol: float | None = None

    @property
    def variable(self) -> tuple:
        """Names of parameters with between-subject variability, in a fixed order."""
        return tuple(name for name, w in self.omega2 if w > 0)


def individual_parameters(spec: KineticsSpec, model, eta: np.ndarray, doses, levels, fraction=None) -> tuple:
    """Parameters of K (participant, dose level) pairs.

    ``eta`` (K, P) are the participants' standard normal draws, ``levels`` (K,) the levels:
    θ_k = TV_level(θ) · exp(ω_θ · η_kθ), clipped to θ's bounds; a ``dose`` covariate is the
    level's dose times ``fraction`` (K,; the share of it the product delivered, default 1).
    Returns ``(params, covariates)``, dicts name -> ndarray (K,).
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
        dose = np.asarray(doses, dtype=float)[levels]
        covs["dose"] = np.ascontiguousarray(dose if fraction is None else dose * np.asarray(fraction, dtype=float))
    return params, covs


def pair_exposures(spec: KineticsSpec, eta: np.ndarray, doses, levels, fraction=None, peak_by_day=None,
                   chunk: int = 2_500) -> dict:
    """Exposure metrics (:data:`METRICS`) of K (participant, dose level) pairs: dict name -> (K,).

    ``eta`` (K, P): each pair's participant's draws (one column per ``spec.variable``, scaled
    by ω here); ``levels`` (K,); ``fraction`` (K,) the share of the level's dose delivered
    (:func:`individual_parameters`). With ``peak_by_day`` also ``peak_by_day``: the curve's
    maximum from infusion to that day (the no-expansion criterion): ``cmax`` where the curve
    peaks by that day (``tmax`` <= ``peak_by_day``: the maximum over days 0–``until_day`` lies
    inside 0–``peak_by_day``), else a second registry call ending on that day for those pairs
    only. The model is solved through the exposure registry in calls of at most ``chunk``
    pairs (memory); each pair's numbers depend only on its own inputs.

    Raises
    ------
    ExposureError
        The model could not be solved for a pair (the solver's message is given).
    """
    from ctkinetics.modeling.exposure import auc_name

    model = cached_model(spec.model, spec.rtol, spec.atol)
    levels = np.asarray(levels, dtype=int)
    names = list(METRICS) + ([] if peak_by_day is None else ["peak_by_day"])
    if levels.size == 0:
        return {name: np.zeros(0) for name in names}
    obs = spec.observable
    keys = {"cmax": (obs, "Cmax"), "tmax": (obs, "Tmax"), "auc0_28": (obs, auc_name(AUC_WINDOW))}
    out = {name: np.empty(len(levels)) for name in names}
    for i in range(0, len(levels), chunk):
        part = slice(i, i + chunk)
        params, covs = individual_parameters(spec, model, eta[part], doses, levels[part],
                                             None if fraction is None else np.asarray(fraction)[part])
        e = _registry(model, obs, params, covs, spec.until_day, [m.registry for m in METRICS.values()])
        for name in METRICS:
            out[name][part] = e.values[keys[name]]
        if peak_by_day is not None:
            cmax, tmax = out["cmax"][part], out["tmax"][part]
            peak = cmax.copy()
            later = np.flatnonzero(~(tmax <= peak_by_day))  # peaks after the day (or not solved)
            if later.size:
                e = _registry(model, obs, {k: v[later] for k, v in params.items()},
                              {k: v[later] for k, v in covs.items()}, peak_by_day, ["Cmax"])
                peak[later] = e.values[(obs, "Cmax")]
            out["peak_by_day"][part] = peak
    return out


def _registry(model, obs, params, covs, t_end, metrics):
    """The exposure registry's ``metrics`` of ``obs`` up to ``t_end``; a failed solve raises."""
    from ctkinetics.modeling.exposure import model_exposure

    e = model_exposure(model, params, covs or None, kinds=[obs], t_end=t_end, window=AUC_WINDOW, metrics=metrics)
    if np.any(e.status != 0):
        bad = int(np.flatnonzero(e.status != 0)[0])
        raise ExposureError(f"model {model.name} could not be solved for a virtual participant "
                            f"({e.messages[bad]}; parameters "
                            + ", ".join(f"{k}={v[bad]:.4g}" for k, v in params.items()) + ")")
    return e


def exposures(spec: KineticsSpec, eta: np.ndarray, doses) -> dict:
    """Exposure metrics of every participant at every dose level: dict metric -> (N, D)
    (``eta`` (N, P) as in :func:`pair_exposures`).

    Examples
    --------
    >>> e = exposures(KineticsSpec("stein2019", "qpcr"), np.zeros((1, 0)), [1.0])
    >>> round(float(e["cmax"][0, 0])), round(float(e["tmax"][0, 0]), 6)  # stein2019's typical values
    (24000, 9.3)
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

    def __init__(self, spec: KineticsSpec, eta: np.ndarray, doses, fraction=None, peak_by_day=None):
        self.spec, self.eta, self.doses = spec, eta, tuple(doses)  # eta (m, P, n_eta)
        m, p = eta.shape[:2]
        self.fraction = np.ones((m, p)) if fraction is None else np.asarray(fraction, dtype=float)
        self.peak_by_day = peak_by_day
        names = list(METRICS) + ([] if peak_by_day is None else ["peak_by_day"])
        self.values = {name: np.full((m, p, len(doses)), np.nan) for name in names}
        self.known = np.zeros((m, p, len(doses)), dtype=bool)

    def at(self, rows, slots, levels) -> dict:
        """metric -> exposures at the (trial row, participant slot, level) index arrays
        (broadcast together; the result has their shape)."""
        rows, slots, levels = np.broadcast_arrays(rows, slots, levels)
        need = ~self.known[rows, slots, levels]
        if need.any():
            key = np.unique(np.ravel_multi_index((rows[need], slots[need], levels[need]), self.known.shape))
            r, s, lv = np.unravel_index(key, self.known.shape)
            new = pair_exposures(self.spec, self.eta[r, s], self.doses, lv, self.fraction[r, s], self.peak_by_day)
            for name, v in new.items():
                self.values[name][r, s, lv] = v
            self.known[r, s, lv] = True
        return {name: v[rows, slots, levels] for name, v in self.values.items()}
