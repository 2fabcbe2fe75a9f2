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
class TimeCourse:
    """A time-varying covariate of one subject: ``values[k]`` from ``times[k]`` on (step
    interpolation) or linearly between consecutive times (linear), constant before the
    first and after the last time. Times in the model's time unit, since the first infusion.
    """

    times: np.ndarray
    values: np.ndarray

    def __post_init__(self):
        t = np.asarray(self.times, dtype=float).ravel()
        v = np.asarray(self.values, dtype=float).ravel()
        if t.size == 0 or t.size != v.size:
            raise SettingsError("a time course needs as many values as times (at least one)")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(v))):
            raise SettingsError("a time course's times and values must be finite numbers")
        if np.any(np.diff(t) <= 0):
            raise SettingsError("a time course's times must be strictly increasing")
        object.__setattr__(self, "times", t)
        object.__setattr__(self, "values", v)

    def at_zero(self, linear: bool) -> tuple:
        """(value or intercept, slope) of the segment holding at t = 0."""
        t, v = self.times, self.values
        if not linear:
            k = np.searchsorted(t, 0.0, side="right") - 1
            return float(v[max(k, 0)]), 0.0
        return self._segment(max(np.searchsorted(t, 0.0, side="right") - 1, -1))

    def _segment(self, k):
        t, v = self.times, self.values
        if k < 0 or k >= t.size - 1:
            return float(v[0] if k < 0 else v[-1]), 0.0
        slope = (v[k + 1] - v[k]) / (t[k + 1] - t[k])
        return float(v[k] - slope * t[k]), float(slope)

    def changes(self, linear: bool):
        """[(time > 0, value or intercept, slope)] where the covariate changes."""
        out = []
        for k, tk in enumerate(self.times):
            if tk <= 0:
                continue
            a, b = self._segment(k) if linear else (float(self.values[k]), 0.0)
            out.append((float(tk), a, b))
        return out


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


@dataclass(frozen=True)
class Ragged:
    """Each subject's own times, flat: subject i's are ``times[offsets[i]:offsets[i + 1]]``
    (the layout of ragged results; cheaper than a list of arrays for large stacks)."""

    times: np.ndarray
    offsets: np.ndarray

    @staticmethod
    def from_padded(padded):
        """From an (n, W) array whose unused cells are NaN or inf (each row's used cells
        first, in any order)."""
        padded = np.asarray(padded, dtype=float)
        used = np.isfinite(padded)
        counts = used.sum(axis=1)
        return Ragged(padded[used], np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def _times(times):
    """(flat times, offsets or None, shared T or None) from shared or per-subject times."""
    if times is None:
        raise SettingsError("solve needs the times at which to predict")
    if isinstance(times, Ragged):
        return (np.ascontiguousarray(times.times, dtype=float),
                np.ascontiguousarray(times.offsets, dtype=np.int64), None)
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


def _per_subject(value, n, what):
    """A per-subject list (length n, or 1 broadcast) from one item or a sequence of items."""
    if isinstance(value, (list, tuple)):
        items = list(value)
        if len(items) == 1 and n > 1:
            items = items * n
        if len(items) != n:
            raise SettingsError(f"{what}: {len(items)} entries for {n} subjects")
        return items
    return [value] * n


def _dose_lists(doses, n):
    """Per-subject (m_i, 2) dose arrays from one regimen (m, 2) for every subject or a
    sequence of n regimens."""
    try:
        arr = np.asarray(doses, dtype=float)
    except (TypeError, ValueError):
        arr = None  # ragged: one regimen per subject
    if arr is not None and arr.ndim == 2 and arr.shape[1] == 2:
        return [arr] * n
    if arr is not None and arr.ndim == 2 and arr.size == 0:
        return [arr.reshape(0, 2)] * n
    return [np.asarray(d, dtype=float).reshape(-1, 2) for d in _per_subject(list(doses), n, "doses")]


def _split_covariates(model, covariates):
    """(static covariates, time-varying name -> item or list of TimeCourse)."""
    static, varying = {}, {}
    specs = {c.name: c for c in model.covariate_specs}
    for name, value in (covariates or {}).items():
        is_tc = isinstance(value, TimeCourse) or (
            isinstance(value, (list, tuple)) and value and isinstance(value[0], TimeCourse))
        if is_tc:
            spec = specs.get(name)
            if spec is None:
                continue  # a dataset carries more than a model reads
            if not spec.time_varying:
                raise SettingsError(f"covariate '{name}' of model {model.name} is not "
                                    "time-varying (declare time_varying = true in the model file)")
            varying[name] = value
        else:
            static[name] = value
    return static, varying


def _events(cm, model, env, n, N, doses, varying):
    """Events (doses after the first, covariate changes) of N subjects, and the covariate
    slots at t = 0 (updated in ``env``); None when there are none."""
    from ctkinetics.modeling.compiled import Events

    if doses is None and not varying:
        return None, {}
    if doses is not None and not model.dosing:
        raise SettingsError(f"model {model.name} does not say what a later dose does to its "
                            "states (no [dosing] table in the model file)")
    linear = set(cm.graph.linear)
    names = list(cm.covariate_names)
    K = cm.n_slots
    slopes = {}
    courses = {c: _per_subject(v, N, f"covariate '{c}'") for c, v in varying.items()}
    for c, items in courses.items():
        first = [tc.at_zero(c in linear) for tc in items]
        env[c] = np.array([a for a, _ in first])
        if c in linear:
            slopes[c] = np.array([b for _, b in first])
    dose_list = _dose_lists(doses, N) if doses is not None else [None] * N
    offs, ts, amts, slots = [0], [], [], []
    for i in range(N):
        rows = {}
        if dose_list[i] is not None:
            d = np.asarray(dose_list[i], dtype=float).reshape(-1, 2)
            if not np.all(np.isfinite(d)) or np.any(d[:, 0] <= 0) or np.any(d[:, 1] < 0):
                raise SettingsError("doses after the first must have finite times > 0 (since "
                                    "the first infusion) and amounts >= 0")
            for tk, amt in d:
                r = rows.setdefault(float(tk), [np.nan, np.full(K, np.nan)])
                r[0] = (0.0 if np.isnan(r[0]) else r[0]) + amt
        for c, items in courses.items():
            j = names.index(c)
            for tk, a, b in items[i].changes(c in linear):
                r = rows.setdefault(tk, [np.nan, np.full(K, np.nan)])
                r[1][j] = a
                if c in linear:
                    r[1][len(names) + cm.graph.linear.index(c)] = b
        for tk in sorted(rows):
            amt, sl = rows[tk]
            ts.append(tk)
            amts.append(amt)          # NaN where only a covariate changes
            slots.append(sl)
        offs.append(len(ts))
    return Events(np.asarray(offs, dtype=np.int64), np.asarray(ts, dtype=float),
                  np.asarray(amts, dtype=float),
                  np.ascontiguousarray(np.reshape(slots, (len(slots), K)) if slots
                                       else np.zeros((0, K)))), slopes


def _check_names(model, observables, wrt):
    """(observables, parameters of the derivatives), each name checked against the model."""
    kinds = list(model.observable_exprs) if observables is None else list(observables)
    for k in kinds:
        if k not in model.observable_exprs:
            raise SettingsError(f"model {model.name} has no observable '{k}' "
                                f"(it has: {', '.join(model.observable_exprs)})")
    names = model.param_names if wrt is None else tuple(wrt)
    for w in names:
        model.parameter(w)  # raises for an unknown name
    return kinds, names


def _path(model, method, has_events, sensitivities, ragged) -> str:
    """'lsoda', 'closed' or 'ode': the solver of a call, or a SettingsError saying why the
    requested one cannot solve it."""
    closed = method == "closed" or (method == "auto" and model.has_closed_form and not has_events)
    if method == "closed" and not model.has_closed_form:
        raise SettingsError(f"model {model.name} has no closed form")
    if closed and has_events:
        raise SettingsError("the closed form holds for one dose and constant covariates; solve "
                            "doses and time-varying covariates with method 'ode'")
    if method == "lsoda":
        if has_events:
            raise SettingsError("method 'lsoda' (the reference) has no doses or time-varying "
                                "covariates")
        if sensitivities or ragged:
            raise SettingsError("method 'lsoda' (the reference) has no sensitivities and no "
                                "per-subject times")
        return "lsoda"
    return "closed" if closed else "ode"


def _unpack(sol, cm, kinds, names, sensitivities, offsets, n, N, T):
    """dict kind -> values (and derivatives) from the engine's flat arrays: (T,) or (N, T)
    for shared times, flat for ragged ones."""
    values, derivs = {}, ({} if sensitivities else None)
    for k in kinds:
        j = cm.output_names.index(k)
        v = sol.values[:, j]
        d = sol.sens[:, j, :] if sensitivities else None
        if offsets is None:
            shape = (T,) if n is None else (N, T)
            v = v.reshape(shape)
            d = d.reshape(shape + (len(names),)) if sensitivities else None
        values[k] = np.ascontiguousarray(v)
        if sensitivities:
            derivs[k] = np.ascontiguousarray(d)
    return values, derivs


def solve_model(model, params, times, covariates, observables, sensitivities, wrt, method,
                max_steps, doses=None) -> ModelSolution:
    from ctkinetics.modeling.compiled import compiled
    from ctkinetics.modeling.model import METHODS

    if method not in METHODS:
        raise SettingsError(f"method must be one of {METHODS}, got {method!r}")
    covariates, varying = _split_covariates(model, covariates)
    env, n = model.environment(params, covariates)
    flat, offsets, T = _times(times)
    _check_times(model, flat)
    kinds, names = _check_names(model, observables, wrt)
    N = n or 1
    if offsets is not None and len(offsets) - 1 != N:
        if n is None:
            N = len(offsets) - 1   # one parameter set, many subjects' times
        else:
            raise SettingsError(f"{len(offsets) - 1} time sequences for {n} subjects")
    path = _path(model, method, doses is not None or bool(varying), sensitivities, offsets is not None)
    if path == "lsoda" or (path == "closed" and not sensitivities and offsets is None):
        values = model.predict(params, flat, covariates, kinds, method=path)
        return ModelSolution(values, None, (), np.zeros(N, dtype=np.int64))
    cm = compiled(model)
    events, slopes = _events(cm, model, env, n, N, doses, varying)
    pc = cm.pc_matrix({p: env[p] for p in cm.param_names},
                      {c: env[c] for c in cm.covariate_names}, N, slopes)
    if offsets is None:
        flat_all = np.tile(flat, N)
        offs = np.arange(N + 1, dtype=np.int64) * T
    else:
        flat_all, offs = flat, offsets
    with quiet():
        if path == "closed":
            sol = cm.solve_closed(pc, flat_all, offs, wrt=names, sens=sensitivities)
        else:
            sol = cm.solve(pc, flat_all, offs, wrt=names, sens=sensitivities,
                           max_steps=max_steps, events=events)
    values, derivs = _unpack(sol, cm, kinds, names, sensitivities, offsets, n, N, T)
    return ModelSolution(values, derivs, tuple(names) if sensitivities else (),
                         sol.status, offs if offsets is not None else None,
                         None if path == "closed" else sol.steps[:, 0])
