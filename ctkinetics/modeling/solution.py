"""Model solutions with sensitivities and solver status (``Model.solve``).

One place turns a model, parameters, covariates and times into the compiled engine's
inputs and its outputs back into observables: shared times give arrays of shape (T,) or
(n, T) as ``Model.predict``; per-subject (*ragged*) times give flat arrays, subject after
subject, delimited by ``offsets``. The closed form runs through compiled closed-form
kernels when derivatives or ragged times are asked for (values agree with the numpy path
of ``predict`` to rounding), the ODE through the Radau engine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.errors import SettingsError
from ctkinetics.modeling.expressions import quiet


@dataclass(frozen=True)
class ModelSolution:
    """Observables of n subjects, optionally with their parameter derivatives.

    Attributes
    ----------
    values : dict kind -> ndarray
        (T,) for one subject, (n, T) for n subjects at shared times, (M,) flat when ragged.
    derivs : dict kind -> ndarray or None
        ``values[kind].shape + (q,)``: d value / d parameter for the parameters ``wrt``.
    wrt : tuple of str
    status : ndarray (n,) of int
        0 where the solver succeeded; see :attr:`messages`. Values of a failed subject are
        NaN from the time it failed.
    offsets : ndarray (n + 1,) or None
        Ragged layout: subject i's values are ``values[kind][offsets[i]:offsets[i + 1]]``.
    steps : ndarray (n,) or None
        ODE steps taken per subject (None for the closed form).
    """

    values: dict
    derivs: dict | None
    wrt: tuple
    status: np.ndarray
    offsets: np.ndarray | None = None
    steps: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return bool(np.all(self.status == 0))

    @property
    def failed(self) -> np.ndarray:
        """Indices of the subjects whose solve failed."""
        return np.flatnonzero(self.status != 0)

    @property
    def messages(self) -> list:
        """One message per subject ('ok' or why the solver stopped)."""
        from ctkinetics.modeling.status import message

        return [message(c) for c in self.status]


def _env_matrix(cm, env, n):
    return cm.pc_matrix({p: env[p] for p in cm.param_names},
                        {c: env[c] for c in cm.covariate_names}, n)


def _times(times):
    """(flat times, offsets or None, shared T or None) from shared or per-subject times."""
    if times is None:
        raise SettingsError("solve needs the times at which to predict")
    if isinstance(times, (list, tuple)) and times and np.ndim(times[0]) == 1:
        parts = [np.asarray(t, dtype=float).ravel() for t in times]
        offsets = np.concatenate([[0], np.cumsum([p.size for p in parts])]).astype(np.int64)
        flat = np.concatenate(parts) if parts else np.zeros(0)
        return flat, offsets, None
    t = np.atleast_1d(np.asarray(times, dtype=float))
    if t.ndim != 1:
        raise SettingsError("times must be a 1-D sequence, or one 1-D sequence per subject")
    return t, None, t.size


def _check_times(model, flat):
    if flat.size and not (np.min(flat) >= 0 and np.max(flat) < np.inf):
        raise SettingsError(f"times must be finite and >= 0 ({model.time_unit} since infusion/dose)")


def ode_states(model, env, n, t) -> dict:
    """States (n, T) from the compiled ODE engine (``Model.predict``'s ODE path)."""
    from ctkinetics.modeling.compiled import compiled

    cm = compiled(model)
    pc = _env_matrix(cm, env, n)
    T = t.size
    sol = cm.solve(pc, np.tile(t, n), np.arange(n + 1, dtype=np.int64) * T)
    ns = cm.n_states
    vals = sol.values[:, :ns].reshape(n, T, ns)
    return {s: vals[:, :, j] for j, s in enumerate(model.state_names)}


def solve_model(model, params, times, covariates, observables, sensitivities, wrt, method,
                max_steps) -> ModelSolution:
    from ctkinetics.modeling.compiled import compiled
    from ctkinetics.modeling.model import METHODS

    if method not in METHODS:
        raise SettingsError(f"method must be one of {METHODS}, got {method!r}")
    env, n = model.environment(params, covariates)
    flat, offsets, T = _times(times)
    _check_times(model, flat)
    kinds = list(model.observable_exprs) if observables is None else list(observables)
    for k in kinds:
        if k not in model.observable_exprs:
            raise SettingsError(f"model {model.name} has no observable '{k}' "
                                f"(it has: {', '.join(model.observable_exprs)})")
    names = model.param_names if wrt is None else tuple(wrt)
    for w in names:
        model.parameter(w)  # raises for an unknown name
    N = n or 1
    if offsets is not None and len(offsets) - 1 != N:
        if n is None:
            N = len(offsets) - 1   # one parameter set, many subjects' times
        else:
            raise SettingsError(f"{len(offsets) - 1} time sequences for {n} subjects")
    closed = method == "closed" or (method == "auto" and model.has_closed_form)
    if method == "closed" and not model.has_closed_form:
        raise SettingsError(f"model {model.name} has no closed form")
    if method == "lsoda":
        if sensitivities or offsets is not None:
            raise SettingsError("method 'lsoda' (the reference) has no sensitivities and no "
                                "per-subject times")
        values = model.predict(params, flat, covariates, kinds, method="lsoda")
        return ModelSolution(values, None, (), np.zeros(N, dtype=np.int64))
    if closed and not sensitivities and offsets is None:
        values = model.predict(params, flat, covariates, kinds, method="closed")
        return ModelSolution(values, None, (), np.zeros(N, dtype=np.int64))
    cm = compiled(model)
    pc = _env_matrix(cm, env, N)
    if offsets is None:
        flat_all = np.tile(flat, N)
        offs = np.arange(N + 1, dtype=np.int64) * T
    else:
        flat_all, offs = flat, offsets
    with quiet():
        if closed:
            sol = cm.solve_closed(pc, flat_all, offs, wrt=names, sens=sensitivities)
        else:
            sol = cm.solve(pc, flat_all, offs, wrt=names, sens=sensitivities,
                           max_steps=max_steps)
    idx = [cm.output_names.index(k) for k in kinds]
    values, derivs = {}, ({} if sensitivities else None)
    for k, j in zip(kinds, idx):
        v = sol.values[:, j]
        d = sol.sens[:, j, :] if sensitivities else None
        if offsets is None:
            shape = (T,) if n is None else (N, T)
            v = v.reshape(shape)
            d = d.reshape(shape + (len(names),)) if sensitivities else None
        values[k] = np.ascontiguousarray(v)
        if sensitivities:
            derivs[k] = np.ascontiguousarray(d)
    return ModelSolution(values, derivs, tuple(names) if sensitivities else (),
                         sol.status, offs if offsets is not None else None,
                         None if closed else sol.steps[:, 0])
