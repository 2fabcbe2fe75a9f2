"""How the estimation layer asks a model for predictions: the one place between the fits
(individual and population) and ``model.predict``.

A :class:`ModelPredictor` evaluates the fitted observables for a stack of parameter sets and
guards what the model alone cannot: a phase switch time given by an expression (not a bare
parameter) that evaluates to NaN or ±inf for some parameters makes those rows' predictions
NaN, so the likelihood is not finite there — the optimiser steps back, and a fit that ends
there fails with that reason — instead of a finite but meaningless curve (the model would
otherwise stay in its first phase for ever: 3.2e8 where 4,481 is right).

The model's forward sensitivities (d observable / d parameter), when the model offers
``sensitivities``, come through :meth:`ModelPredictor.sensitivities` too, so the residual
Jacobians of the fits can use them instead of finite differences.
"""
from __future__ import annotations

import numpy as np

from ctkinetics.estimation import events


def _expression_switches(model) -> list:
    """Switch-time expressions of the model that are not a bare parameter name."""
    phases = getattr(model, "phases", None) or ()
    names = {p.name for p in getattr(model, "parameters", ())}
    out = []
    for phase in tuple(phases)[:-1]:
        end = getattr(phase, "end", None)
        if end is not None and callable(end) and getattr(end, "text", None) not in names:
            out.append(end)
    return out


class ModelPredictor:
    """Predictions of ``kinds`` by ``model`` (see the module).

    Parameters
    ----------
    model : model object (``predict(params, times, covariates=None, observables=None)``)
    kinds : list of str
        Observables the fit uses.
    """

    def __init__(self, model, kinds):
        self.model = model
        self.kinds = list(kinds)
        self.switches = _expression_switches(model)
        self.has_sensitivities = callable(getattr(model, "sensitivities", None))

    def predict(self, params, times, covariates=None) -> dict:
        """kind -> array (n, T) (or (T,) for scalar parameters), NaN for parameter sets
        whose switch time is not a finite number. ``covariates`` may hold time courses and,
        under :data:`~ctkinetics.estimation.events.DOSES`, each row's later doses."""
        covariates, doses = events.split(covariates)
        more = {} if doses is None else {"doses": doses}
        out = self.model.predict(params, times, covariates=covariates or None,
                                 observables=self.kinds, **more)
        if self.switches:
            bad = self.bad_switch_rows(params, covariates)
            if bad is not None and np.any(bad):
                out = {k: _nan_rows(v, bad) for k, v in out.items()}
        return out

    def bad_switch_rows(self, params, covariates=None):
        """Bool per parameter set: a switch time that is not finite (None: cannot tell)."""
        environment = getattr(self.model, "environment", None)
        if environment is None:
            return None
        try:
            env, n = environment(params, events.static(covariates) or None)
            with np.errstate(all="ignore"):
                values = [np.asarray(e(env), float) for e in self.switches]
        except Exception:  # noqa: BLE001 - the prediction itself reports its own errors
            return None
        bad = np.zeros(() if n is None else (n,), bool)
        for v in values:
            bad = bad | ~np.isfinite(np.broadcast_to(v, bad.shape))
        return bad

    def sensitivities(self, params, times, covariates=None, wrt=None):
        """(values, derivatives) from the model's forward sensitivities: values as
        :meth:`predict`, derivatives kind -> values.shape + (len(wrt),), natural scale."""
        covariates, doses = events.split(covariates)
        if doses is None:
            values, derivs = self.model.sensitivities(params, times, covariates=covariates or None,
                                                      observables=self.kinds, wrt=wrt)
        else:
            sol = self.model.solve(params, times, covariates or None, self.kinds, sensitivities=True,
                                   wrt=wrt, doses=doses)
            values, derivs = sol.values, sol.derivs
        if self.switches:
            bad = self.bad_switch_rows(params, covariates)
            if bad is not None and np.any(bad):
                values = {k: _nan_rows(v, bad) for k, v in values.items()}
        return values, derivs


def _nan_rows(values, bad):
    v = np.array(values, dtype=float)
    if v.ndim == 1:
        return np.full_like(v, np.nan) if np.all(bad) else v
    v[np.asarray(bad, bool)] = np.nan
    return v


__all__ = ["ModelPredictor"]
