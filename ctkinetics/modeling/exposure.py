"""Model-based exposure: one registry of metrics and one numerical rule for each.

Fits (model-based Cmax/Tmax/AUC0-28 of every participant), the cohort report and virtual
trials all call :func:`model_exposure`, so "AUC0-28" means the same number everywhere:

==================  ==========================================================================
``Cmax``            max C(t) on [0, t_end]: C on a grid (step ``horizon``/1460 to day 28
                    equivalent, ``horizon``/365 after) plus every switch time (a peak at a kink
                    is exact), refined twice by a parabola through the best point and its
                    neighbours (a smooth peak to ~1e-10 relative)
``Tmax``            the time of that maximum
``AUC``             ∫ C(t) dt over a window (default 0-28): exact to the solver's tolerance —
                    a quadrature state dQ/dt = C(t) integrated with the ODE, or 16-point
                    Gauss–Legendre panels split at the switch times for a closed form
``aplasia_onset``   first time C falls below a threshold (B cells below the LLOQ): grid
                    bracket, refined to 1/256 of a grid step, then linear interpolation
``reconstitution``  first time after the onset that C is back at or above the threshold
``aplasia_days``    reconstitution − onset (NaN when never below; censored at ``t_end``
                    when never back, flagged)
==================  ==========================================================================

Metric values of a subject whose solve failed are NaN, with the solver's message.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ctkinetics.errors import SettingsError


@dataclass(frozen=True)
class Metric:
    """An exposure metric. ``unit`` is a template: ``{level}`` is the observable's unit,
    ``{time}`` the model's time unit."""

    name: str
    label: str
    unit: str
    definition: str
    cdisc: str = ""


METRICS = {m.name: m for m in (
    Metric("Cmax", "Maximum predicted level", "{level}",
           "Highest value of the fitted model curve up to the end time (grid + switch times, "
           "refined by parabolas)", "CMAX"),
    Metric("Tmax", "Time of the maximum", "{time}", "Time at which the fitted curve peaks",
           "TMAX"),
    Metric("AUC", "Area under the predicted curve", "{level}*{time}",
           "Exact integral of the fitted curve over the window (quadrature state or "
           "Gauss-Legendre), e.g. AUC0-28", "AUCINT"),
    Metric("aplasia_onset", "Onset of aplasia", "{time}",
           "First time the predicted level falls below the threshold (e.g. B cells below "
           "the LLOQ)"),
    Metric("reconstitution", "Reconstitution day", "{time}",
           "First time after the onset that the predicted level is back at the threshold"),
    Metric("aplasia_days", "Duration of aplasia", "{time}",
           "Reconstitution minus onset; censored at the end time when not reconstituted"),
)}


@dataclass(frozen=True)
class Exposure:
    """Metric values of n subjects.

    ``values[(kind, metric)]``: (n,) array (metric names as :data:`METRICS`; the AUC is
    stored under ``AUC{a:g}-{b:g}``, e.g. ``AUC0-28``). ``flags[(kind, metric)]``: (n,)
    array of str ('' or why a value is censored/missing). ``status``: solver status per
    subject (0 ok), ``messages`` its text.
    """

    values: dict
    flags: dict
    status: np.ndarray
    messages: list
    time_unit: str
    window: tuple
    threshold: dict = field(default_factory=dict)

    def to_frame(self, subjects=None, units=None):
        """Long table: subject, kind, metric, value, unit, flag (``units``: kind -> the
        observable's unit, for the unit column)."""
        import pandas as pd

        n = self.status.size
        subjects = list(range(n)) if subjects is None else list(subjects)
        rows = []
        for (kind, name), v in self.values.items():
            base = "AUC" if name.startswith("AUC") else name
            unit = METRICS[base].unit.format(level=(units or {}).get(kind, ""), time=self.time_unit)
            flag = self.flags.get((kind, name), np.full(n, "", dtype=object))
            rows.append(pd.DataFrame({"subject": subjects, "kind": kind, "metric": name,
                                      "value": v, "unit": unit, "flag": flag}))
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
            columns=["subject", "kind", "metric", "value", "unit", "flag"])


def auc_name(window) -> str:
    a, b = window
    return f"AUC{a:g}-{b:g}"


# --------------------------------------------------------------------------------------
def _n_subjects(model, params, covariates):
    _, n = model.environment(params, covariates)
    return n or 1


def _switches(model, params, covariates, n):
    from ctkinetics.modeling.solvers import switch_times

    env, _ = model.environment(params, covariates)
    if len(model.phases) < 2:
        return np.zeros((0, n))
    with np.errstate(all="ignore"):
        return switch_times(model.phases, env, n)


def _grid(model, t_end):
    day = model.horizon / 365.0
    early = min(t_end, 28.0 * day)
    fine = np.arange(0.0, early + 1e-12, 0.25 * day)
    coarse = np.arange(early, t_end + 1e-12, day) if t_end > early else np.zeros(0)
    return np.unique(np.concatenate([fine, coarse, [t_end]]))


def _ragged(model, params, covariates, times_list, kinds):
    sol = model.solve(params, [np.asarray(t, float) for t in times_list], covariates, kinds)
    return sol


def model_exposure(model, params=None, covariates=None, *, kinds=None, t_end=None,
                   window=(0.0, 28.0), thresholds=None, metrics=None) -> Exposure:
    """Exposure metrics of n subjects (parameters/covariates as for ``Model.predict``).

    Parameters
    ----------
    kinds : iterable of str, optional
        Observables (default all of the model's).
    t_end : float or (n,) array, optional
        End of the peak search and of the aplasia follow-up (default the model horizon), in
        the model's time unit; e.g. each participant's last sample.
    window : (a, b)
        AUC window (default 0-28).
    thresholds : mapping kind -> float, optional
        Aplasia threshold per kind (e.g. ``{'bcell': 1.0}``); aplasia metrics are computed
        only for these kinds.
    metrics : iterable of str, optional
        Subset of :data:`METRICS` (default all that apply).
    """
    kinds = list(model.observable_exprs) if kinds is None else list(kinds)
    wanted = set(METRICS) if metrics is None else set(metrics)
    unknown = wanted - set(METRICS)
    if unknown:
        raise SettingsError(f"unknown exposure metric(s) {sorted(unknown)}; known: {sorted(METRICS)}")
    thresholds = dict(thresholds or {})
    n = _n_subjects(model, params, covariates)
    t_end = np.broadcast_to(np.asarray(model.horizon if t_end is None else t_end, float), (n,))
    if not np.all(np.isfinite(t_end) & (t_end > 0)):
        raise SettingsError("t_end must be finite and > 0")
    a, b = (float(window[0]), float(window[1]))
    if not (0 <= a < b < np.inf):
        raise SettingsError(f"AUC window must satisfy 0 <= a < b, got {window}")
    sw = _switches(model, params, covariates, n)               # (n_phases-1, n)
    grid = _grid(model, float(t_end.max()))
    times = []
    for i in range(n):
        g = grid[grid <= t_end[i] + 1e-12]
        extra = sw[:, i][np.isfinite(sw[:, i]) & (sw[:, i] <= t_end[i])]
        times.append(np.unique(np.concatenate([g, extra])))
    sol = _ragged(model, params, covariates, times, kinds)
    status = np.asarray(sol.status).copy()
    values, flags = {}, {}
    off = sol.offsets
    for kind in kinds:
        flat = sol.values[kind]
        if {"Cmax", "Tmax"} & wanted:
            cmax, tmax = _peak(model, params, covariates, kind, times, flat, off, t_end)
            if "Cmax" in wanted:
                values[(kind, "Cmax")] = cmax
            if "Tmax" in wanted:
                values[(kind, "Tmax")] = tmax
        if kind in thresholds and {"aplasia_onset", "reconstitution", "aplasia_days"} & wanted:
            onset, recon, fl = _aplasia(model, params, covariates, kind, times, flat, off,
                                        t_end, float(thresholds[kind]))
            dur = recon - onset
            censored = np.isfinite(onset) & ~np.isfinite(recon)
            dur = np.where(censored, t_end - onset, dur)
            for name, v in (("aplasia_onset", onset), ("reconstitution", recon),
                            ("aplasia_days", dur)):
                if name in wanted:
                    values[(kind, name)] = v
                    flags[(kind, name)] = fl if name != "aplasia_onset" else np.where(
                        np.isfinite(onset), "", "never below the threshold").astype(object)
    if "AUC" in wanted:
        auc = _auc(model, params, covariates, kinds, (a, b), sw, n)
        for kind in kinds:
            values[(kind, auc_name((a, b)))] = auc[kind]
    bad = status != 0
    for key, v in values.items():
        v[bad] = np.nan
    from ctkinetics.modeling.status import message

    messages = [message(c) for c in status]
    return Exposure(values, flags, status, messages, model.time_unit or "day", (a, b),
                    {k: float(v) for k, v in thresholds.items()})


# --------------------------------------------------------------------------------------
def _segments(flat, off):
    return [flat[off[i]:off[i + 1]] for i in range(len(off) - 1)]


def _peak(model, params, covariates, kind, times, flat, off, t_end):
    n = len(times)
    cmax = np.full(n, np.nan)
    tmax = np.full(n, np.nan)
    refine_at, who = [], []
    for i, (t, c) in enumerate(zip(times, _segments(flat, off))):
        if not np.any(np.isfinite(c)):
            continue
        k = int(np.nanargmax(c))
        cmax[i], tmax[i] = c[k], t[k]
        if 0 < k < len(t) - 1:
            refine_at.append((t[k - 1], t[k], t[k + 1], c[k - 1], c[k], c[k + 1]))
            who.append(i)
    # two rounds of parabolas through the best point and its neighbours
    for _round in range(2):
        if not who:
            break
        cand, keep = [], []
        for (t0, t1, t2, c0, c1, c2), i in zip(refine_at, who):
            v = _vertex(t0, t1, t2, c0, c1, c2)
            if v is None:
                continue
            d = 1e-3 * (t2 - t0)
            pts = np.array([max(v - d, 0.0), v, min(v + d, t_end[i])])
            cand.append(pts)
            keep.append(i)
        if not keep:
            break
        sub = _subset(params, covariates, keep, n)
        s = model.solve(sub[0], cand, sub[1], [kind])
        vals = _segments(s.values[kind], s.offsets)
        refine_at, who = [], []
        for i, pts, c in zip(keep, cand, vals):
            j = int(np.nanargmax(c)) if np.any(np.isfinite(c)) else -1
            if j >= 0 and c[j] > cmax[i]:
                cmax[i], tmax[i] = c[j], pts[j]
            if j == 1 and np.all(np.isfinite(c)):
                refine_at.append((pts[0], pts[1], pts[2], c[0], c[1], c[2]))
                who.append(i)
    return cmax, tmax


def _vertex(t0, t1, t2, c0, c1, c2):
    """Abscissa of the parabola's maximum through three points, if it is inside."""
    den = (t0 - t1) * (t0 - t2) * (t1 - t2)
    if den == 0:
        return None
    A = (t2 * (c1 - c0) + t1 * (c0 - c2) + t0 * (c2 - c1)) / den
    B = (t2 * t2 * (c0 - c1) + t1 * t1 * (c2 - c0) + t0 * t0 * (c1 - c2)) / den
    if not (A < 0) or not np.isfinite(A) or not np.isfinite(B):
        return None
    v = -B / (2 * A)
    return v if t0 < v < t2 else None


def _subset(params, covariates, rows, n):
    def pick(d):
        out = {}
        for k, v in (d or {}).items():
            arr = np.asarray(v, float)
            out[k] = arr[rows] if arr.ndim == 1 and arr.size == n else v
        return out

    rows = np.asarray(rows, int)
    return pick(params), pick(covariates)


def _aplasia(model, params, covariates, kind, times, flat, off, t_end, thr):
    """(onset, reconstitution, flags) of the first stretch below ``thr``."""
    n = len(times)
    onset = np.full(n, np.nan)
    recon = np.full(n, np.nan)
    flags = np.full(n, "", dtype=object)
    brackets = {"down": [], "up": []}
    for i, (t, c) in enumerate(zip(times, _segments(flat, off))):
        below = c < thr
        if not below.any():
            flags[i] = "never below the threshold"
            continue
        k = int(np.argmax(below))
        if k == 0:
            onset[i] = t[0]
        else:
            brackets["down"].append((i, t[k - 1], t[k]))
        after = ~below[k:]
        if after.any():
            j = k + int(np.argmax(after))
            brackets["up"].append((i, t[j - 1], t[j]))
        else:
            flags[i] = f"not reconstituted by {t_end[i]:g}"
    for direction, store in (("down", onset), ("up", recon)):
        items = brackets[direction]
        for _round in range(2):
            if not items:
                break
            rows = [it[0] for it in items]
            cand = [np.linspace(lo, hi, 17) for _, lo, hi in items]
            sub = _subset(params, covariates, rows, n)
            s = model.solve(sub[0], cand, sub[1], [kind])
            vals = _segments(s.values[kind], s.offsets)
            new = []
            for (i, lo, hi), pts, c in zip(items, cand, vals):
                hit = (c < thr) if direction == "down" else (c >= thr)
                if not hit.any() or not np.all(np.isfinite(c)):
                    continue
                m = max(int(np.argmax(hit)), 1)
                new.append((i, pts[m - 1], pts[m], c[m - 1], c[m]))
            if _round == 0:
                items = [(i, lo, hi) for i, lo, hi, _, _ in new]
            else:
                for i, lo, hi, c0, c1 in new:
                    w = (thr - c0) / (c1 - c0) if c1 != c0 else 0.5
                    store[i] = lo + min(max(w, 0.0), 1.0) * (hi - lo)
    return onset, recon, flags


def _auc(model, params, covariates, kinds, window, sw, n):
    a, b = window
    if model.has_closed_form:
        return _auc_gauss(model, params, covariates, kinds, window, sw, n)
    from ctkinetics.modeling.compiled import compiled_quadrature

    return compiled_quadrature(model, kinds).auc(params, covariates, a, b, n)


_GL_X, _GL_W = np.polynomial.legendre.leggauss(16)


def _auc_gauss(model, params, covariates, kinds, window, sw, n):
    a, b = window
    day = model.horizon / 365.0
    panels = max(int(np.ceil((b - a) / day)), 1)
    base = np.linspace(a, b, panels + 1)
    nodes, weights = [], []
    for i in range(n):
        cuts = sw[:, i][np.isfinite(sw[:, i]) & (sw[:, i] > a) & (sw[:, i] < b)]
        edges = np.unique(np.concatenate([base, cuts]))
        lo, hi = edges[:-1, None], edges[1:, None]
        half = (hi - lo) / 2
        nodes.append((lo + half * (_GL_X[None, :] + 1)).ravel())
        weights.append((half * _GL_W[None, :]).ravel())
    s = model.solve(params, nodes, covariates, kinds)
    out = {}
    for k in kinds:
        vals = _segments(s.values[k], s.offsets)
        out[k] = np.array([float(np.dot(w, v)) for w, v in zip(weights, vals)])
    return out
