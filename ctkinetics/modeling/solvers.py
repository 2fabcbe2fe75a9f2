"""State trajectories of a model: the closed form, or the ODE restarted at switch times.

Both engines take an *environment*: a dict of parameter, covariate and definition values,
each a Python float (one subject) or an array of shape (n,) (n subjects), and return the
states at the requested times as arrays of shape (n, T).

ODE engine
----------
``scipy.integrate.odeint`` (ODEPACK LSODA: switches between Adams and BDF, so it is
stiff-safe) with tight tolerances (model file ``[solver]``; default rtol 1e-8, atol 1e-10).
Integration stops exactly at every switch time (``tcrit``) and restarts there with the
states carried over, so the discontinuity of the right-hand side never sits inside a step.

Subjects are solved *together* as one stacked system (state vector ordered subject by
subject) whenever their switch times coincide (always true for models without switches,
such as ``cart_bcell_sle``). The Jacobian of the stacked system is block diagonal, so it is
passed to LSODA as banded (``ml = mu = n_states - 1``): a stiff step then costs a few
right-hand-side evaluations and a banded LU, not an (n·k)² matrix. LSODA's error test is a
weighted max-norm, so each subject meets the tolerance on its own. Subjects with different
switch times are solved one by one.
"""
from __future__ import annotations

import numpy as np
from scipy.integrate import odeint

MAX_STEPS = 100_000


def switch_times(phases, env, n):
    """Phase boundaries, shape (n_phases - 1, n): cumulative maxima, never below 0.

    A switch time that is NaN (an undefined parameter) is treated as never reached.
    """
    ends = np.empty((len(phases) - 1, n))
    previous = np.zeros(n)
    for i, phase in enumerate(phases[:-1]):
        value = np.broadcast_to(np.asarray(phase.end(env), dtype=float), (n,))
        previous = np.maximum(previous, np.where(np.isnan(value), np.inf, value))
        ends[i] = previous
    return ends


def closed_form(phases, state_names, env, times, n):
    """States from the per-phase closed-form solutions.

    ``n`` None means every value in ``env`` is a scalar: arrays of shape (T,) are returned
    and each phase is evaluated on its own times only (the fast path of individual fits).
    Otherwise arrays of shape (n, T).
    """
    t = np.asarray(times, dtype=float)
    if n is None:
        return _closed_form_scalar(phases, state_names, env, t)
    col = {k: (v[:, None] if isinstance(v, np.ndarray) else v) for k, v in env.items()}
    bounds = switch_times(phases, env, n)[:, :, None]  # (n_phases-1, n, 1)
    shape = (n, t.size)
    t = t[None, :]
    index = np.zeros(shape, dtype=int)
    for b in bounds:
        index += t >= b
    out = {s: np.zeros(shape) for s in state_names}
    for p, phase in enumerate(phases):
        mask = index == p
        if not mask.any():
            continue
        start = 0.0 if p == 0 else bounds[p - 1]
        col["t"] = t
        col["tau"] = t - start
        for s in state_names:
            out[s] = np.where(mask, phase.solution[s](col), out[s])
    return out


def _closed_form_scalar(phases, state_names, env, t):
    out = {s: np.zeros(t.size) for s in state_names}
    start = 0.0
    local = dict(env)
    size = t.size
    for phase in phases:
        end = np.inf
        if phase.end is not None:
            end = float(phase.end(env))
            end = np.inf if end != end else max(end, start)
        if end > start:
            # times are >= 0 (checked by the model), so the first phase needs one comparison
            if start == 0.0:
                mask = t < end
            else:
                mask = (t >= start) & (t < end)
            count = np.count_nonzero(mask)
            if count == size:
                local["t"] = t
                local["tau"] = t - start if start else t
                for s in state_names:
                    out[s] = out[s] + phase.solution[s](local)
                break
            if count:
                tp = t[mask]
                local["t"] = tp
                local["tau"] = tp - start
                for s in state_names:
                    out[s][mask] = phase.solution[s](local)
        start = end
    return out


def ode(phases, states, env, times, n, rtol, atol):
    """States from the ODE, restarted at every switch time, arrays of shape (n, T)."""
    times = np.asarray(times, dtype=float)
    bounds = switch_times(phases, env, n)
    if n == 1 or np.all(bounds == bounds[:, :1]):
        return _stacked(phases, states, env, times, n, bounds[:, 0], rtol, atol)
    out = {s.name: np.empty((n, times.size)) for s in states}
    for i in range(n):
        env_i = {k: (v[i : i + 1] if isinstance(v, np.ndarray) and v.ndim == 1 else v) for k, v in env.items()}
        one = _stacked(phases, states, env_i, times, 1, bounds[:, i], rtol, atol)
        for s in out:
            out[s][i] = one[s][0]
    return out


def _stacked(phases, states, env, times, n, bounds, rtol, atol):
    names = [s.name for s in states]
    ns = len(names)
    uniq, inverse = np.unique(times, return_inverse=True)
    result = np.full((n, ns, uniq.size), np.nan)
    y = np.empty((n, ns))
    for j, s in enumerate(states):
        y[:, j] = s.initial(env)
    edges = [0.0, *[float(b) for b in bounds], np.inf]
    t_last = uniq[-1] if uniq.size else 0.0
    banded = {"ml": ns - 1, "mu": ns - 1} if n > 1 and ns > 1 else {}
    ok = True
    for p, phase in enumerate(phases):
        start, end = edges[p], edges[p + 1]
        if start > t_last:
            break
        in_phase = (uniq >= start) & (uniq < end)
        if end == start:
            continue
        stop = end if (np.isfinite(end) and end <= t_last) else None
        grid = np.unique(np.concatenate([[start], uniq[in_phase], [stop] if stop is not None else []]))
        if grid.size < 2:
            if in_phase.any():
                result[:, :, in_phase] = y[:, :, None]
            continue
        rhs = _rhs(phase, names, env, n, ns, start)
        if ok:
            sol, info = odeint(
                rhs, y.ravel(), grid, rtol=rtol, atol=atol, mxstep=MAX_STEPS, full_output=True,
                tcrit=[stop] if stop is not None else None, **banded,
            )
            ok = info["message"].startswith("Integration successful")
        if not ok:
            break
        sol = sol.reshape(grid.size, n, ns)
        where = np.searchsorted(grid, uniq[in_phase])
        result[:, :, in_phase] = np.moveaxis(sol[where], 0, -1)
        y = sol[-1].copy()
    return {s: result[:, j, :][:, inverse] for j, s in enumerate(names)}


def _rhs(phase, names, env, n, ns, start):
    exprs = [phase.ode[s] for s in names]
    if n == 1:
        # One subject: plain Python floats make every operation of the expression tree take
        # tens of nanoseconds instead of a microsecond (numpy call on a 1-element array).
        base = {k: (float(v.reshape(-1)[0]) if isinstance(v, np.ndarray) else float(v)) for k, v in env.items()}
        pairs = list(zip(names, range(ns)))

        def f1(y, t):
            local = dict(base)
            values = y.tolist()
            for s, j in pairs:
                local[s] = values[j]
            local["t"] = t
            local["tau"] = t - start
            return np.array([e(local) for e in exprs], dtype=float)

        return f1

    base = dict(env)

    def f(y, t):
        Y = y.reshape(n, ns)
        local = dict(base)
        for j, s in enumerate(names):
            local[s] = Y[:, j]
        local["t"] = t
        local["tau"] = t - start
        dY = np.empty((n, ns))
        for j, e in enumerate(exprs):
            dY[:, j] = e(local)
        return dY.ravel()

    return f
