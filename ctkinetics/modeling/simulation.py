"""Simulating typical subjects and populations from a model.

``simulate`` gives one subject's noise-free profiles; ``simulate_population`` draws n
subjects with log-normal between-subject variability,
    θ_i = θ_typical · exp(η_i),   η_i ~ N(0, ω²),
(the NONMEM / Monolix convention for positive parameters) and solves all of them in one
vectorised call. Draws outside a parameter's [lower, upper] are clipped to the bound (the
parameter table records the values actually used). No residual error is added: that belongs
to the error model of the data generator or fitter.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.errors import SettingsError
from ctkinetics.modeling.registry import load_model


def default_times(model, step: float | None = None):
    """0, 1, ..., horizon in the model's time unit (daily for the CAR-T models)."""
    step = step or max(model.horizon / 365.0, 1e-3)
    return np.arange(0.0, model.horizon + step / 2, step)


def simulate(model, params=None, times=None, covariates=None, observables=None, method="auto"):
    """Profiles of one subject as a tidy table.

    Parameters
    ----------
    model : Model or str
        A model or the name/path of one.
    params : mapping, optional
        Parameter values; defaults (the typical subject) when None or for missing names.
    times : array-like, optional
        Times (model time unit); default 0..horizon, step horizon/365.
    covariates : mapping, optional
    observables : iterable of str, optional

    Returns
    -------
    pandas.DataFrame
        Columns ``time, observable, value`` (one row per time and observable kind).

    Examples
    --------
    >>> df = simulate("stein2019", times=[0, 9.3])
    >>> list(df.columns)
    ['time', 'observable', 'value']
    """
    import pandas as pd

    model = load_model(model)
    t = default_times(model) if times is None else np.atleast_1d(np.asarray(times, dtype=float))
    pred = model.predict(params, t, covariates, observables, method=method)
    if any(np.ndim(v) > 1 for v in pred.values()):
        raise SettingsError("simulate is for one subject; use simulate_population for arrays of parameters")
    frames = [pd.DataFrame({"time": t, "observable": kind, "value": v}) for kind, v in pred.items()]
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class PopulationSimulation:
    """A simulated population.

    Attributes
    ----------
    model : str
        Model name.
    seed : int or None
    parameters : pandas.DataFrame
        One row per subject: ``subject`` then every parameter and covariate value used.
    profiles : pandas.DataFrame
        ``subject, time, observable, value`` (noise-free model predictions).
    """

    model: str
    seed: int | None
    parameters: object
    profiles: object

    def to_frame(self):
        """The tidy profiles table (a copy)."""
        return self.profiles.copy()


def simulate_population(model, n, omega=None, times=None, seed=None, covariates=None, observables=None):
    """Simulate ``n`` subjects with log-normal between-subject variability.

    Parameters
    ----------
    model : Model or str
    n : int
        Number of subjects (>= 1).
    omega : mapping name -> float, optional
        ω² (variance of η on the log scale) per parameter. None uses the model's ``omega2``
        defaults; parameters not named have no variability.
    times : array-like, optional
        Sampling times (default 0..horizon).
    seed : int, optional
        Seed of ``numpy.random.default_rng``; the same seed gives the same population.
    covariates : mapping name -> float or array (n,), optional
        E.g. ``{'dose': doses}`` with one dose (cells) per subject.

    Returns
    -------
    PopulationSimulation
    """
    import pandas as pd

    model = load_model(model)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise SettingsError(f"n must be a positive integer, got {n!r}")
    if omega is None:
        omega = {p.name: p.omega2 for p in model.parameters if p.omega2}
    omega = dict(omega)
    for name, w in omega.items():
        model.parameter(name)
        if not np.isfinite(w) or w < 0:
            raise SettingsError(f"omega of '{name}' must be a variance >= 0, got {w!r}")
    t = default_times(model) if times is None else np.atleast_1d(np.asarray(times, dtype=float))
    rng = np.random.default_rng(seed)
    params = {}
    # Draw in the fixed parameter order so the population depends on the seed only.
    for p in model.parameters:
        w = float(omega.get(p.name, 0.0))
        eta = rng.standard_normal(n) * np.sqrt(w)
        params[p.name] = np.clip(p.default * np.exp(eta), p.lower, p.upper)
    covs = {}
    for name, default in model.covariates.items():
        value = (covariates or {}).get(name, default)
        arr = np.broadcast_to(np.asarray(value, dtype=float), (n,)) if np.ndim(value) <= 1 else None
        if arr is None or arr.shape != (n,):
            raise SettingsError(f"covariate '{name}' must be a number or one value per subject ({n})")
        covs[name] = np.array(arr)
    pred = model.predict(params, t, covs, observables)
    width = max(3, len(str(n)))
    subjects = np.array([f"S{i + 1:0{width}d}" for i in range(n)])
    table = pd.DataFrame({"subject": subjects, **params, **covs})
    frames = [
        pd.DataFrame({
            "subject": np.repeat(subjects, t.size),
            "time": np.tile(t, n),
            "observable": kind,
            "value": values.ravel(),
        })
        for kind, values in pred.items()
    ]
    profiles = pd.concat(frames, ignore_index=True).sort_values(["subject", "observable", "time"], kind="stable")
    return PopulationSimulation(model.name, seed, table, profiles.reset_index(drop=True))
