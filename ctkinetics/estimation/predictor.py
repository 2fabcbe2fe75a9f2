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

Parameters read only by the observables (cart_bcell_sle's ``qpcr_per_cell``: qPCR =
qpcr_per_cell·(E + M + X)) do not change the ODE's states: an ODE model's predictions at
parameter sets that differ only in those reuse the states of the last few solves (SAEM's
numeric M-step moves qpcr_per_cell and the residual SDs with the individual parameters held:
one ODE solve per step instead of one per trial point).

A stack of subjects predicted on a shared time grid (a population fit's union of sampling
times) may say which grid times each row ``needed``: an ODE model is then solved for each
row at those times only (each subject to its own last sample, not to the cohort's last;
the sample SLE cohort's subjects end at days 14 to 180: 19-23 % fewer ODE steps), as one
ragged call of the engine. A row's values at the times it needs are those of the shared
grid's solve whenever its times are the grid's up to its last one (the integrator takes
the same steps up to there); other cells are NaN.
"""
from __future__ import annotations

from collections import OrderedDict

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
        self.observation_only = observation_only_parameters(model)
        self._states = {}     # the last few ODE solves' states, by their state inputs
        self._rows = OrderedDict()   # states (S, T) of recently solved rows (_row_states)
        self._row_floats = 0

    def predict(self, params, times, covariates=None, needed=None) -> dict:
        """kind -> array (n, T) (or (T,) for scalar parameters), NaN for parameter sets
        whose switch time is not a finite number. ``covariates`` may hold time courses and,
        under :data:`~ctkinetics.estimation.events.DOSES`, each row's later doses.
        ``needed`` (n, T) bool, optional: the times each row needs (see the module; NaN
        elsewhere when the model is solved row by row)."""
        covariates, doses = events.split(covariates)
        mask = self._ragged(needed, doses, covariates)

        def call(p, c, d, m):
            if d is None and _numeric(c) and (self.observation_only or m is not None):
                return self._observe(p, times, c, m)
            more = {} if d is None else {"doses": d}
            return self.model.predict(p, times, covariates=c or None, observables=self.kinds,
                                      **more)

        out = _guarded(call, params, covariates, doses, len(np.atleast_1d(times)), None,
                       self.kinds, mask)
        if self.switches:
            bad = self.bad_switch_rows(params, covariates)
            if bad is not None and np.any(bad):
                out = {k: _nan_rows(v, bad) for k, v in out.items()}
        return out

    def _ragged(self, needed, doses, covariates):
        """The ``needed`` mask when the rows can be solved each on its own (an ODE model,
        no doses or time courses), else None (one solve on the shared grid)."""
        if needed is None or doses is not None or not _numeric(covariates):
            return None
        if getattr(self.model, "has_closed_form", True) or not callable(
                getattr(self.model, "solve", None)):
            return None
        mask = np.asarray(needed, bool)
        return mask if mask.ndim == 2 else None

    def _observe(self, params, times, covariates, mask=None):
        """The observables from the states of a recent solve with the same state inputs
        (every parameter but :attr:`observation_only`, covariates, times), else from a new
        solve; evaluated as ``Model.predict`` evaluates them. With a ``mask`` the states
        are kept row by row (:meth:`_row_states`)."""
        if mask is not None:
            states = self._row_states(params, times, covariates, mask)
        else:
            key = (_key(np.atleast_1d(np.asarray(times, float))),
                   tuple((k, _key(v)) for k, v in sorted(params.items())
                         if k not in self.observation_only),
                   tuple((k, _key(v)) for k, v in sorted((covariates or {}).items())))
            states = self._states.get(key)
            if states is None:
                states = self.model.predict_states(params, times, covariates or None)
                if len(self._states) >= _STATE_CACHE:
                    self._states.pop(next(iter(self._states)))
                self._states[key] = states
        with np.errstate(all="ignore"):
            return self.model.observe(states, params, times, covariates or None, self.kinds)

    def _row_states(self, params, times, covariates, mask):
        """States (n, T) of a stack whose rows are solved each at its ``mask`` times: a row
        with the state inputs (every parameter but :attr:`observation_only`, covariates,
        mask) of a recently solved row reuses its states; only the others are solved, in
        one ragged call. A row's solve does not depend on the rows beside it, so the stack
        is the same as one solve of all rows — SAEM's chains are rows of earlier candidate
        stacks: its numeric M-step and the final step over the stored chains solve nothing.
        Up to :data:`_ROW_CACHE_FLOATS` state values are kept, least recently used first
        out."""
        n = mask.shape[0]
        names = sorted(k for k in params if k not in self.observation_only)
        covs = sorted(covariates or {})
        cols = [np.broadcast_to(np.asarray(params[k], float), (n,)) for k in names]
        cols += [np.broadcast_to(np.asarray(covariates[k], float), (n,)) for k in covs]
        inputs = np.column_stack(cols + [mask.astype(float)])
        head = (_key(np.asarray(times, float)), tuple(names), tuple(covs))
        keys = [(head, row.tobytes()) for row in inputs]
        rows = [self._rows.get(k) for k in keys]
        todo = [i for i, r in enumerate(rows) if r is None]
        if todo:
            p, c, _, m = _take((params, covariates, None, mask), np.array(todo), n)
            solved = self._ragged_states(p, times, c, m)
            block = np.stack([solved[s] for s in self.model.state_names], axis=1)  # (k, S, T)
            for j, i in enumerate(todo):
                rows[i] = block[j]
                if keys[i] not in self._rows:
                    self._row_floats += block[j].size
                self._rows[keys[i]] = block[j]
            while self._row_floats > _ROW_CACHE_FLOATS and self._rows:
                self._row_floats -= self._rows.popitem(last=False)[1].size
        solved_now = set(todo)
        for i, k in enumerate(keys):
            if i not in solved_now and k in self._rows:
                self._rows.move_to_end(k)
        states = np.stack(rows)
        return {s: states[:, j] for j, s in enumerate(self.model.state_names)}

    def _ragged_states(self, params, times, covariates, mask):
        """States (n, T) as :meth:`Model.predict_states`, each row solved at its ``mask``
        times only (NaN elsewhere): the compiled engine's ragged call, whose outputs start
        with the states."""
        from ctkinetics.modeling.compiled import compiled

        cm = compiled(self.model)
        env, n = self.model.environment(params, covariates or None)
        pc = cm.pc_matrix({p: env[p] for p in cm.param_names},
                          {c: env[c] for c in cm.covariate_names}, n)
        r = _ragged_times(times, mask)
        with np.errstate(all="ignore"):
            sol = cm.solve(pc, r.times, r.offsets)
        return _padded({s: sol.values[:, j] for j, s in enumerate(self.model.state_names)},
                       mask)

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

    def sensitivities(self, params, times, covariates=None, wrt=None, needed=None):
        """(values, derivatives) from the model's forward sensitivities: values as
        :meth:`predict`, derivatives kind -> values.shape + (len(wrt),), natural scale;
        ``needed`` as :meth:`predict`."""
        covariates, doses = events.split(covariates)
        mask = self._ragged(needed, doses, covariates)

        def call(p, c, d, m):
            if m is not None:
                sol = self.model.solve(p, _ragged_times(times, m), c or None, self.kinds,
                                       sensitivities=True, wrt=wrt)
                return _padded(sol.values, m), _padded(sol.derivs, m)
            if d is None:
                return self.model.sensitivities(p, times, covariates=c or None,
                                                observables=self.kinds, wrt=wrt)
            sol = self.model.solve(p, times, c or None, self.kinds, sensitivities=True,
                                   wrt=wrt, doses=d)
            return sol.values, sol.derivs

        q = len(wrt) if wrt is not None else len(self.model.parameters)
        values, derivs = _guarded(call, params, covariates, doses, len(np.atleast_1d(times)), q,
                                  self.kinds, mask)
        if self.switches:
            bad = self.bad_switch_rows(params, covariates)
            if bad is not None and np.any(bad):
                values = {k: _nan_rows(v, bad) for k, v in values.items()}
        return values, derivs


#: ODE solves whose states :meth:`ModelPredictor.predict` keeps for reuse.
_STATE_CACHE = 4
#: State values of solved rows kept for reuse (32 MB; a SAEM run of the sample SLE cohort
#: solves ~30,000 rows of 55 values).
_ROW_CACHE_FLOATS = 4_000_000


def observation_only_parameters(model) -> frozenset:
    """Parameters of an ODE model read by its observables and by nothing that moves the
    states (initial values, right-hand sides, switch times, doses, or the definitions those
    read); empty for a closed-form model or one without that structure."""
    try:
        if model.has_closed_form:
            return frozenset()
        exprs = [s.initial for s in model.states] + list(model.dosing.values())
        for ph in model.phases:
            exprs += list(ph.ode.values()) + [ph.end]
        defs = dict(model.definitions)
        needed, todo = set(), [n for e in exprs if e is not None for n in e.names]
        while todo:
            name = todo.pop()
            if name not in needed:
                needed.add(name)
                if name in defs:
                    todo += list(defs[name].names)
        return frozenset(p.name for p in model.parameters) - needed
    except (AttributeError, TypeError):   # not a library model: no reuse
        return frozenset()


def _numeric(covariates):
    """Covariates that are plain numbers or arrays (no time courses)."""
    return all(isinstance(v, (int, float, np.floating, np.ndarray))
               for v in (covariates or {}).values())


def _ragged_times(times, mask):
    """Each row's ``mask`` times of the shared grid ``times``, flat (the engine's ragged
    layout: row after row, in grid order)."""
    from ctkinetics.modeling.solution import Ragged

    grid = np.broadcast_to(np.asarray(times, float), mask.shape)
    counts = mask.sum(axis=1)
    return Ragged(grid[mask], np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def _padded(flat, mask):
    """kind -> (n, T, ...) arrays from a ragged call's flat outputs (row-major ``mask``
    order), NaN in the cells not solved."""
    out = {}
    for k, v in flat.items():
        v = np.asarray(v, float)
        full = np.full(mask.shape + v.shape[1:], np.nan)
        full[mask] = v
        out[k] = full
    return out


def _key(v):
    a = np.asarray(v, float)
    return a.shape, a.tobytes()


#: Errors of a model call that mean "this parameter set cannot be solved" (an integrator
#: dividing by zero on an exploding solution, an overflow): the set's predictions are NaN.
SOLVER_ERRORS = (ArithmeticError, np.linalg.LinAlgError)


def _guarded(call, params, covariates, doses, T, q, kinds, mask=None):
    """``call(params, covariates, doses, mask)`` for a stack of parameter sets; when the model
    raises a solver error, the stack is split in halves until the sets that fail are alone,
    and those get NaN predictions (and derivatives) — the rest of the stack is unaffected,
    and the fit of that subject fails with the reason instead of the whole batch falling back
    to one subject at a time."""
    try:
        return call(params, covariates, doses, mask)
    except SOLVER_ERRORS:
        n = _rows(params, covariates)
        if n is None or n <= 1:
            return _nan_output(kinds, n is None, T, q)
        half = n // 2
        parts = []
        for rows in (np.arange(half), np.arange(half, n)):
            p, c, d, m = _take((params, covariates, doses, mask), rows, n)
            parts.append(_guarded(call, p, c, d, T, q, kinds, m))
        if q is None:
            return {k: np.concatenate([np.atleast_2d(p[k]) for p in parts]) for k in parts[0]}
        return tuple({k: np.concatenate([p[i][k] for p in parts]) for k in parts[0][i]}
                     for i in (0, 1))


def _rows(params, covariates):
    for d in (params, covariates or {}):
        for v in d.values():
            if isinstance(v, np.ndarray) and v.ndim == 1:
                return v.shape[0]
    return None


def _take(items, rows, n):
    def pick(v):
        if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n:
            return v[rows]
        if isinstance(v, list) and len(v) == n:
            return [v[i] for i in rows]
        return v

    params, covariates, doses, mask = items
    return ({k: pick(v) for k, v in params.items()},
            None if covariates is None else {k: pick(v) for k, v in covariates.items()},
            None if doses is None else pick(doses), None if mask is None else pick(mask))


def _nan_output(kinds, scalar, T, q):
    """What a parameter set that cannot be solved predicts: NaN values ((T,) or (1, T))
    and, with ``q`` sensitivities, NaN derivatives."""
    shape = (T,) if scalar else (1, T)
    values = {k: np.full(shape, np.nan) for k in kinds}
    if q is None:
        return values
    return values, {k: np.full(shape + (q,), np.nan) for k in kinds}


def _nan_rows(values, bad):
    v = np.array(values, dtype=float)
    if v.ndim == 1:
        return np.full_like(v, np.nan) if np.all(bad) else v
    v[np.asarray(bad, bool)] = np.nan
    return v


__all__ = ["ModelPredictor"]
