"""Model-based exposure: one registry of metrics and one numerical rule for each.

Fits (model-based Cmax/Tmax/AUC0-28 of every participant), the cohort report and virtual
trials all call :func:`model_exposure`, so "AUC0-28" means the same number everywhere:

==================  ==========================================================================
``Cmax``            max C(t) on [0, t_end]: C on a grid (half a day to day 28, two days
                    after, in day-equivalents of the model's horizon; a tenth of a day to
                    day 28 for an ODE) plus every switch time and 1e-6 day either side, and
                    the end time and 1e-6 day before it (a peak at a kink or at the end is
                    exact, not refined); a smooth peak is refined in the bracket of the best
                    point — closed forms and solves with doses: bracket rounds and
                    successive parabolic interpolation (~1e-10); an ODE without doses: its
                    dense output at 201 times in the bracket and the vertex of a parabola
                    through the best three (~3e-8, Tmax ~1e-5 day)
``Tmax``            the time of that maximum
``AUC``             ∫ C(t) dt over a window (default 0-28): exact to the solver's tolerance —
                    a quadrature state dQ/dt = C(t) integrated with the ODE (the same solve
                    as the grid), or 16-point Gauss–Legendre panels split at the switch
                    times for a closed form (each phase's panel width from its own steepest
                    log-slope: ~1e-15 relative) and at doses / time-course knots (width from
                    the curve's steepest log-slope)
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


_APLASIA = frozenset({"aplasia_onset", "reconstitution", "aplasia_days"})


def auc_name(window) -> str:
    a, b = window
    return f"AUC{a:g}-{b:g}"


# --------------------------------------------------------------------------------------
# Everything below is vectorised over subjects: per-subject times are padded (n, W) arrays
# (unused cells +inf) solved as one ragged stack; no Python loop runs per subject.
def _at_zero(model, covariates):
    """The covariates with each time course replaced by its value at t = 0 (what switch
    times and the subject count read)."""
    from ctkinetics.modeling.solution import _split_covariates

    static, varying = _split_covariates(model, covariates)
    for name, v in varying.items():
        static[name] = (np.array([c.at_zero(False)[0] for c in v]) if isinstance(v, (list, tuple))
                        else v.at_zero(False)[0])
    return static


def _n_subjects(model, params, covariates, doses=None):
    _, n = model.environment(params, _at_zero(model, covariates))
    if n is None and isinstance(doses, (list, tuple)) and doses and np.ndim(doses[0]) == 2:
        n = len(doses)
    return n or 1


def _switches(model, params, covariates, n):
    from ctkinetics.modeling.solvers import switch_times

    env, _ = model.environment(params, _at_zero(model, covariates))
    if len(model.phases) < 2:
        return np.zeros((0, n))
    with np.errstate(all="ignore"):
        sw = switch_times(model.phases, env, n)
    return np.broadcast_to(sw, (sw.shape[0], n)) if sw.ndim == 2 else sw


def _grid(model, t_end, step=0.5):
    """``step``-day steps (half a day) to day 28 (day-equivalents of the model's horizon),
    two-day steps after: enough to bracket the peak of a CAR-T curve, which the parabolas
    then refine."""
    day = model.horizon / 365.0
    early = min(t_end, 28.0 * day)
    fine = np.arange(0.0, early + 1e-12, step * day)
    coarse = np.arange(early, t_end + 1e-12, 2.0 * day) if t_end > early else np.zeros(0)
    return np.unique(np.concatenate([fine, coarse, [t_end]]))


@dataclass(frozen=True)
class _Subjects:
    """The n subjects' parameters, covariates (numbers, arrays (n,), or time courses: one
    shared or a list of n) and later doses (None or a list of n (m, 2) arrays)."""

    params: object
    covariates: object
    doses: object = None

    def subset(self, rows) -> "_Subjects":
        rows = np.asarray(rows, int)

        def pick(d):
            out = {}
            for k, v in (d or {}).items():
                if isinstance(v, (list, tuple)):
                    out[k] = [v[i] for i in rows]
                    continue
                arr = np.asarray(v, float) if not hasattr(v, "times") else None
                out[k] = arr[rows] if arr is not None and arr.ndim == 1 and arr.size > 1 else v
            return out

        doses = None if self.doses is None else [self.doses[i] for i in rows]
        return _Subjects(pick(self.params), pick(self.covariates), doses)

    def solve_padded(self, model, kind, T, rows=None):
        """Values (same shape as the padded times ``T``, -inf where unused) of ``kind`` (or
        of each of a list of kinds: a dict kind -> values, one solve for them all) for the
        subjects ``rows`` (default all), in one ragged solve; and each subject's status."""
        from ctkinetics.modeling.solution import Ragged

        sub = self if rows is None else self.subset(rows)
        r = Ragged.from_padded(T)
        kinds = [kind] if isinstance(kind, str) else list(kind)
        s = model.solve(sub.params, r, sub.covariates, kinds, doses=sub.doses)
        used = np.isfinite(T)
        out = {k: _padded(T.shape, used, s.values[k]) for k in kinds}
        return (out[kind] if isinstance(kind, str) else out), np.asarray(s.status)

    def breaks(self, n) -> np.ndarray:
        """(n, K) times where a subject's solution may jump or kink besides the switch times:
        its later doses and the knots of its covariates' time courses (+inf padding)."""
        per = [[] for _ in range(n)]
        if self.doses is not None:
            for i, d in enumerate(self.doses):
                per[i] += list(d[:, 0])   # (m, 2) arrays from _dose_lists
        for v in (self.covariates or {}).values():
            courses = v if isinstance(v, (list, tuple)) else [v] * n if hasattr(v, "times") else []
            for i, c in enumerate(courses):
                if hasattr(c, "times"):
                    per[i] += list(c.times)
        K = max((len(b) for b in per), default=0)
        out = np.full((n, K), np.inf)
        for i, b in enumerate(per):
            out[i, :len(b)] = b
        return out

    @property
    def timed(self) -> bool:
        from ctkinetics.modeling.model import _has_time_course

        return self.doses is not None or _has_time_course(self.covariates)


def model_exposure(model, params=None, covariates=None, *, kinds=None, t_end=None,
                   window=(0.0, 28.0), thresholds=None, metrics=None, doses=None) -> Exposure:
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
    doses : optional
        Doses after the first infusion, as :meth:`Model.solve` takes them (one (m, 2) array
        of (time, amount) rows for every subject, or a list of n); covariates may be time
        courses (:class:`~ctkinetics.modeling.solution.TimeCourse`). The metrics then follow
        the whole course: Cmax is the highest peak (after any infusion), aplasia the first
        stretch below the threshold, and the AUC is integrated piecewise between the doses
        and the time courses' knots (where the solution jumps or kinks).
    """
    kinds = list(model.observable_exprs) if kinds is None else list(kinds)
    wanted = set(METRICS) if metrics is None else set(metrics)
    unknown = wanted - set(METRICS)
    if unknown:
        raise SettingsError(f"unknown exposure metric(s) {sorted(unknown)}; known: {sorted(METRICS)}")
    thresholds = dict(thresholds or {})
    n = _n_subjects(model, params, covariates, doses)
    from ctkinetics.modeling.solution import _dose_lists

    subj = _Subjects(params, covariates, None if doses is None else _dose_lists(doses, n))
    t_end = np.broadcast_to(np.asarray(model.horizon if t_end is None else t_end, float), (n,))
    if not np.all(np.isfinite(t_end) & (t_end > 0)):
        raise SettingsError("t_end must be finite and > 0")
    a, b = (float(window[0]), float(window[1]))
    if not (0 <= a < b < np.inf):
        raise SettingsError(f"AUC window must satisfy 0 <= a < b, got {window}")
    sw = _switches(model, params, covariates, n)               # (n_phases-1, n)
    dense = not (model.has_closed_form or subj.timed)           # an ODE's dense output
    T = _subject_grids(model, subj, sw, t_end, n, 0.1 if dense else 0.5)
    status = np.zeros(n, dtype=np.int64)
    values, flags = {}, {}
    on_grid = [k for k in kinds if {"Cmax", "Tmax"} & wanted or (k in thresholds and _APLASIA & wanted)]
    auc = None
    if dense and (on_grid or "AUC" in wanted):
        grid_values, auc, status = _dense_solve(model, subj, kinds, T, (a, b))
    else:    # one solve gives every observable on the grid
        grid_values, status = subj.solve_padded(model, on_grid, T) if on_grid else ({}, status)
    rates = _grid_metrics(model, subj, {k: grid_values[k] for k in on_grid}, T, t_end, sw,
                          (a, b), wanted, thresholds, dense, values, flags)
    if "AUC" in wanted:
        if auc is None:
            auc, st = _auc(model, subj, kinds, (a, b), sw, n, rates)
            status = np.maximum(status, st)
        for kind in kinds:
            values[(kind, auc_name((a, b)))] = auc[kind]
    bad = status != 0
    for v in values.values():
        v[bad] = np.nan
    from ctkinetics.modeling.status import message

    text = {c: message(c) for c in np.unique(status).tolist()}
    messages = [text[c] for c in status.tolist()]
    return Exposure(values, flags, status, messages, model.time_unit or "day", (a, b),
                    {k: float(v) for k, v in thresholds.items()})


def _grid_metrics(model, subj, grid_values, T, t_end, sw, window, wanted, thresholds, dense,
                  values, flags):
    """Cmax/Tmax and the aplasia metrics of each kind from its values on the grid (stored in
    ``values``/``flags``); returns the subjects' steepest log-slope over the kinds in each
    phase of the AUC window ((n, S), :func:`_log_slopes`: the Gauss-Legendre panels' width),
    None without kinds."""
    rates = None
    for kind, V in grid_values.items():
        r = _log_slopes(T, V, *window, cuts=sw)
        rates = r if rates is None else np.maximum(rates, r)
        if {"Cmax", "Tmax"} & wanted:
            cmax, tmax = (_peak_dense(model, subj, kind, T, V, sw) if dense
                          else _peak(model, subj, kind, T, V, t_end, sw))
            for name, v in (("Cmax", cmax), ("Tmax", tmax)):
                if name in wanted:
                    values[(kind, name)] = v
        if kind in thresholds and _APLASIA & wanted:
            for name, (v, fl) in _aplasia_metrics(model, subj, kind, T, V, t_end,
                                                  float(thresholds[kind])).items():
                if name in wanted:
                    values[(kind, name)], flags[(kind, name)] = v, fl
    return rates


#: Distance (day-equivalents) of the probes either side of a switch time: a switch time
#: higher than both is a peak at the kink (its Cmax/Tmax exact, no refinement).
_KINK_PROBE = 1e-6


def _subject_grids(model, subj, sw, t_end, n, step=0.5):
    """(n, W) padded times (+inf unused): the exposure grid up to each subject's end time,
    its switch times (a peak at a kink) and 1e-6 day either side of them (which tells a peak
    at the kink from a smooth peak nearby), its own end time and 1e-6 day before it (a curve
    still rising there) and, with doses or time courses, each of their times
    and just after (the peak search sees each infusion's rise)."""
    grid = _grid(model, float(t_end.max()), step)
    eps = _KINK_PROBE * (model.horizon / 365.0)
    own_end = np.where(t_end < grid[-1], t_end, np.inf)     # the grid ends at the largest
    T = np.concatenate([np.broadcast_to(grid, (n, grid.size)), sw.T, sw.T - eps, sw.T + eps,
                        own_end[:, None], (t_end - eps)[:, None]], axis=1)
    if subj.timed:
        br = subj.breaks(n)
        T = np.concatenate([T, br, br + eps], axis=1)
    T = np.where(np.isfinite(T) & (T >= 0) & (T <= t_end[:, None] + 1e-12), T, np.inf)
    return np.sort(T, axis=1)


def _dense(model, subj, kinds, C):
    """kind -> (n, W) values at the padded times ``C`` (+inf unused, a row's used cells
    first) from ONE solve of ``model`` (an ODE without doses or time courses) with dense
    output: each step's collocation polynomial evaluated at the times inside it (no forced
    steps; ~2e-7 relative on cart_bcell_sle at its tolerances, ~3e-8 near the peak; the
    last time of a row is a step end); and each subject's status (failed rows NaN)."""
    from ctkinetics.modeling.compiled import _env_parts, compiled
    from ctkinetics.modeling.expressions import quiet
    from ctkinetics.modeling.solution import Ragged

    cm = compiled(model)
    r = Ragged.from_padded(C)
    pc = cm.pc_matrix(*_env_parts(model, subj.params, subj.covariates, cm), C.shape[0])
    with quiet():
        s = cm.solve(pc, r.times, r.offsets, dense_above=0)
    used = np.isfinite(C)
    status = np.asarray(s.status, dtype=np.int64)
    out = {k: _padded(C.shape, used, s.values[:, cm.output_names.index(k)], status != 0)
           for k in kinds}
    return out, status


def _padded(shape, used, flat, failed=None):
    """Values on padded times: ``flat`` (a ragged solve's values, row by row) in the
    ``used`` cells, -inf in the padding, the rows ``failed`` (bool (n,)) NaN."""
    V = np.full(shape, -np.inf)
    V[used] = flat
    if failed is not None:
        V[failed] = np.nan
    return V


def _dense_solve(model, subj, kinds, T, window):
    """One dense-output solve (:func:`_dense`) of the ODE model augmented with quadrature
    states Q_k (dQ_k/dt = observable k): every kind on the subjects' grids ``T`` (to bracket
    the peak and the crossings) and each AUC = Q(b) - Q(a) (b a step end when it is the
    last time, else ~3e-8). Returns (kind -> (n, W) values, kind -> (n,) AUC, status)."""
    from ctkinetics.modeling.compiled import compiled_quadrature

    quad = compiled_quadrature(model, kinds)
    ends = np.broadcast_to(np.asarray(window, float), (T.shape[0], 2))
    V, status = _dense(quad.model, subj, list(quad.kinds) + list(quad.names),
                       np.concatenate([ends, T], axis=1))
    grid = {k: V[k][:, 2:] for k in quad.kinds}
    auc = {k: V[q][:, 1] - V[q][:, 0] for k, q in zip(quad.kinds, quad.names)}
    return grid, auc, status


def _peak_dense(model, subj, kind, T, V, sw, points=201):
    """Peak of an ODE curve from its dense grid ``V``: the best grid point's bracket (its
    neighbours, 0.2 day) solved again densely at ``points`` times (0.001 day apart), then
    the vertex of the parabola through the best three of them (Tmax to ~1e-5 day, Cmax to
    the dense output's ~3e-8). A peak at a kink (:func:`_kink_peak`) is taken as it is."""
    n = T.shape[0]
    rows = np.arange(n)
    Vm = np.where(np.isnan(V), -np.inf, V)
    k = np.argmax(Vm, axis=1)
    cmax, tmax = Vm[rows, k].copy(), T[rows, k].copy()
    none = ~np.isfinite(cmax)
    cmax[none], tmax[none] = np.nan, np.nan
    last = np.maximum(np.sum(np.isfinite(T), axis=1) - 1, 0)
    kl, kr = np.maximum(k - 1, 0), np.minimum(k + 1, last)
    lo, hi = T[rows, kl], T[rows, kr]
    idx = np.flatnonzero(~none & (hi > lo) & ~_kink_peak(model, T, Vm, k, kl, kr, sw))
    if not idx.size:
        return cmax, tmax
    pts = lo[idx, None] + (hi - lo)[idx, None] * np.linspace(0.0, 1.0, points)[None, :]
    Vc = _dense(model, subj.subset(idx), [kind], pts)[0][kind]
    Vc = np.where(np.isfinite(Vc), Vc, -np.inf)
    r = np.arange(idx.size)
    j = np.argmax(Vc, axis=1)
    best_t, best_v = pts[r, j], Vc[r, j]
    jm = np.clip(j, 1, points - 2)
    with np.errstate(all="ignore"):
        v = _vertex(pts[r, jm - 1], pts[r, jm], pts[r, jm + 1], Vc[r, jm - 1], Vc[r, jm], Vc[r, jm + 1])
        h = pts[r, jm + 1] - pts[r, jm]
        A = (Vc[r, jm + 1] - 2 * Vc[r, jm] + Vc[r, jm - 1]) / (2 * h * h)
        top = Vc[r, jm] + A * (v - pts[r, jm]) ** 2 + (Vc[r, jm + 1] - Vc[r, jm - 1]) / (2 * h) * (v - pts[r, jm])
    ok = np.isfinite(v) & np.isfinite(top) & (top >= best_v)
    best_t, best_v = np.where(ok, v, best_t), np.where(ok, top, best_v)
    better = np.isfinite(best_v) & (best_v > cmax[idx])
    cmax[idx[better]], tmax[idx[better]] = best_v[better], best_t[better]
    return cmax, tmax


def _aplasia_metrics(model, subj, kind, T, V, t_end, thr) -> dict:
    """name -> (values (n,), flags (n,)) of aplasia onset, reconstitution and duration (a
    stretch not reconstituted by t_end lasts to t_end, flagged as censored)."""
    onset, recon, fl = _aplasia(model, subj, kind, T, V, t_end, thr)
    censored = np.isfinite(onset) & ~np.isfinite(recon)
    dur = np.where(censored, t_end - onset, recon - onset)
    never = np.where(np.isfinite(onset), "", "never below the threshold").astype(object)
    return {"aplasia_onset": (onset, never), "reconstitution": (recon, fl), "aplasia_days": (dur, fl)}


# --------------------------------------------------------------------------------------
def _peak(model, subj, kind, T, V, t_end, sw, rounds=2, points=6, vertex_rounds=3):
    """Best grid point, then ``rounds`` of ``points`` evenly spaced times inside the bracket
    of its neighbours (one batched solve per round: each solve integrates from day 0, so
    several points per solve cost a step each, a solve ~100 steps), the bracket shrinking to
    the best point's neighbours; last, ``vertex_rounds`` of successive parabolic
    interpolation (the model at the vertex of the parabola through the best three points).
    A closed-form peak's Tmax to ~1e-7 relative (its Cmax far better) in at most 5 solves;
    a peak in the last grid step before ``t_end`` is bracketed by that step (no neighbour
    beyond); a peak at a switch time is a grid point already, and one that its probes
    either side show to be a kink (:func:`_kink_peak`) is not refined."""
    n = T.shape[0]
    rows = np.arange(n)
    Vm = np.where(np.isnan(V), -np.inf, V)
    k = np.argmax(Vm, axis=1)
    cmax = Vm[rows, k].copy()
    tmax = T[rows, k].copy()
    none = ~np.isfinite(cmax)
    cmax[none] = np.nan
    tmax[none] = np.nan
    last = np.sum(np.isfinite(T), axis=1) - 1
    kl, kr = np.maximum(k - 1, 0), np.minimum(k + 1, np.maximum(last, 0))
    lo, hi = T[rows, kl], T[rows, kr]
    flo, fhi = Vm[rows, kl], Vm[rows, kr]
    todo = ~none & np.isfinite(lo) & np.isfinite(hi) & (hi > lo) & ~_kink_peak(model, T, Vm, k, kl, kr, sw)
    frac = np.linspace(0.0, 1.0, points + 2)[1:-1][None, :]
    tri = None                                     # the best point and its neighbours
    for _round in range(rounds):
        idx = np.flatnonzero(todo)
        if not idx.size:
            break
        pts = lo[idx, None] + (hi - lo)[idx, None] * frac
        Vc, st = subj.solve_padded(model, kind, pts, idx)
        Vc = np.where((st == 0)[:, None] & np.isfinite(Vc), Vc, -np.inf)
        allt = np.concatenate([lo[idx, None], pts, hi[idx, None]], axis=1)
        allv = np.concatenate([flo[idx, None], Vc, fhi[idx, None]], axis=1)
        j = np.argmax(allv, axis=1)
        r = np.arange(idx.size)
        best = allv[r, j]
        better = best > cmax[idx]
        cmax[idx[better]] = best[better]
        tmax[idx[better]] = allt[r, j][better]
        jl, jr = np.maximum(j - 1, 0), np.minimum(j + 1, points + 1)
        lo[idx], hi[idx] = allt[r, jl], allt[r, jr]
        flo[idx], fhi[idx] = allv[r, jl], allv[r, jr]
        tri = (idx, allt[r, jl], allt[r, j], allt[r, jr], allv[r, jl], allv[r, j], allv[r, jr])
    if tri is not None:
        _parabolic_rounds(model, subj, kind, tri, cmax, tmax, vertex_rounds)
    return cmax, tmax


def _kink_peak(model, T, Vm, k, kl, kr, sw):
    """(n,) True where the best grid point ``k`` is a switch time with both neighbours (the
    probes 1e-6 day either side) lower: the curve rises into the kink and falls after it, a
    peak at the kink (Stein's at Tmax), exact as it is; or the end time with the probe just
    before it lower (still rising at the end: the maximum is the end point)."""
    rows = np.arange(T.shape[0])
    tk, vk = T[rows, k], Vm[rows, k]
    near = 2.5 * _KINK_PROBE * (model.horizon / 365.0)
    rising = (kl < k) & (tk - T[rows, kl] <= near) & (Vm[rows, kl] < vk)
    at_end = (kr == k) & rising
    if sw.shape[0] == 0:
        return at_end
    at_switch = np.any(sw.T == tk[:, None], axis=1)
    return at_end | (at_switch & rising & (kr > k) & (T[rows, kr] - tk <= near) & (Vm[rows, kr] < vk))


def _parabolic_rounds(model, subj, kind, tri, cmax, tmax, rounds):
    """Successive parabolic interpolation from the brackets ``tri`` (rows, ta, tb, tc and
    their values; tb the best): each round one batched solve at the vertices; the bracket
    keeps the best point in the middle. Updates ``cmax``/``tmax`` in place."""
    idx, ta, tb, tc, fa, fb, fc = (np.array(x) for x in tri)
    for _round in range(rounds):
        v = _vertex(ta, tb, tc, fa, fb, fc)
        ok = np.isfinite(v) & (np.abs(v - tb) > 1e-12 * np.maximum(np.abs(tb), 1.0))
        if not ok.any():
            return
        idx, ta, tb, tc, fa, fb, fc, v = (x[ok] for x in (idx, ta, tb, tc, fa, fb, fc, v))
        Vc, st = subj.solve_padded(model, kind, v[:, None], idx)
        fv = np.where((st == 0) & np.isfinite(Vc[:, 0]), Vc[:, 0], -np.inf)
        better = fv > cmax[idx]
        cmax[idx[better]] = fv[better]
        tmax[idx[better]] = v[better]
        left, up = v < tb, fv > fb
        ta, tb, tc, fa, fb, fc = (
            np.where(left, np.where(up, ta, v), np.where(up, tb, ta)), np.where(up, v, tb),
            np.where(left, np.where(up, tb, tc), np.where(up, tc, v)),
            np.where(left, np.where(up, fa, fv), np.where(up, fb, fa)), np.where(up, fv, fb),
            np.where(left, np.where(up, fb, fc), np.where(up, fc, fv)))
        keep = np.isfinite(fv)
        idx, ta, tb, tc, fa, fb, fc = (x[keep] for x in (idx, ta, tb, tc, fa, fb, fc))


def _vertex(t0, t1, t2, c0, c1, c2):
    """Abscissa of each parabola's maximum through three points, NaN where it has none
    inside (t0, t2)."""
    with np.errstate(all="ignore"):
        den = (t0 - t1) * (t0 - t2) * (t1 - t2)
        A = (t2 * (c1 - c0) + t1 * (c0 - c2) + t0 * (c2 - c1)) / den
        B = (t2 * t2 * (c0 - c1) + t1 * t1 * (c2 - c0) + t0 * t0 * (c1 - c2)) / den
        v = -B / (2 * A)
    ok = (den != 0) & (A < 0) & np.isfinite(A) & np.isfinite(B) & (v > t0) & (v < t2)
    return np.where(ok, v, np.nan)


def _first(mask):
    """Index of the first True per row, -1 where none."""
    any_ = mask.any(axis=1)
    return np.where(any_, np.argmax(mask, axis=1), -1)


def _aplasia(model, subj, kind, T, V, t_end, thr):
    """(onset, reconstitution, flags) of the first stretch below ``thr``."""
    n, W = T.shape
    rows = np.arange(n)
    valid = np.isfinite(T) & np.isfinite(V)
    below = valid & (V < thr)
    k = _first(below)
    onset = np.full(n, np.nan)
    recon = np.full(n, np.nan)
    flags = np.full(n, "", dtype=object)
    flags[k < 0] = "never below the threshold"
    at0 = k == 0
    onset[at0] = T[at0, 0]
    cols = np.arange(W)[None, :]
    after = valid & ~below & (cols > np.where(k < 0, W, k)[:, None])
    j = _first(after)
    censored = (k >= 0) & (j < 0)
    for i in np.flatnonzero(censored):   # the message only; values stay vectorised
        flags[i] = f"not reconstituted by {t_end[i]:g}"
    down = np.flatnonzero(k > 0)
    up = np.flatnonzero(j > 0)
    for direction, idx, col, store in (("down", down, k, onset), ("up", up, j, recon)):
        if not idx.size:
            continue
        lo, hi = T[idx, col[idx] - 1], T[idx, col[idx]]
        for _round in range(2):
            pts = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, 17)[None, :]
            Vc, st = subj.solve_padded(model, kind, pts, idx)
            ok = np.all(np.isfinite(Vc), axis=1) & (st == 0)
            hit = (Vc < thr) if direction == "down" else (Vc >= thr)
            m = np.maximum(_first(hit), 1)
            ok &= hit.any(axis=1)
            r = np.arange(idx.size)
            lo_new, hi_new = pts[r, m - 1], pts[r, m]
            if _round == 0:
                idx, lo, hi = idx[ok], lo_new[ok], hi_new[ok]
                if not idx.size:
                    break
            else:
                c0, c1 = Vc[r, m - 1], Vc[r, m]
                with np.errstate(all="ignore"):
                    w = np.where(c1 != c0, (thr - c0) / (c1 - c0), 0.5)
                val = lo_new + np.clip(w, 0.0, 1.0) * (hi_new - lo_new)
                store[idx[ok]] = val[ok]
    del rows
    return onset, recon, flags


def _auc(model, subj, kinds, window, sw, n, rates=None):
    """kind -> (n,) AUC over the window, and the solver status per subject."""
    a, b = window
    if model.has_closed_form or subj.timed:
        # piecewise Gauss-Legendre; with doses or time courses split at their times too and
        # panels sized by the steepest log-slope over the whole window
        if subj.timed:
            cuts = np.concatenate([sw, subj.breaks(n).T], axis=0)
            return _auc_gauss(model, subj, kinds, window, cuts, n, None if rates is None else rates.max(axis=1))
        return _auc_gauss(model, subj, kinds, window, sw, n, rates, by_phase=True)
    from ctkinetics.modeling.compiled import compiled_quadrature

    out = compiled_quadrature(model, kinds).auc(subj.params, subj.covariates, a, b, n)
    st = np.where(np.any([~np.isfinite(v) for v in out.values()], axis=0), 1, 0)
    return out, st


_GL_X, _GL_W = np.polynomial.legendre.leggauss(16)
#: (largest rho * panel width, fewest panels): 16-point Gauss-Legendre integrates exp(rho t)
#: over a panel to ~2e-15 relative up to rho * width = 20 (against expm1; 5e-14 at 25, 3e-12
#: at 30). A closed form is a sum of exponentials per phase: 6 leaves a factor 3 for a fast
#: term that the grid's log-slope hides; a numerical solution (doses, time courses) keeps
#: the narrower panels of a general smooth curve.
_GL_PANELS = {"closed": (6.0, 4), "ode": (3.0, 7)}


def _panels(rates, width, rule="ode", fewest=None):
    """Panels per subject (or per phase): narrow enough that 16-point Gauss-Legendre
    integrates exp(ρ t) to ~1e-15 (ρ·panel at most :data:`_GL_PANELS`), at least its fewest
    (or ``fewest``), at most 400."""
    rate_width, least = _GL_PANELS[rule]
    with np.errstate(all="ignore"):
        p = np.ceil(width * np.nan_to_num(rates, nan=0.0, posinf=1e3) / rate_width)
    return np.clip(p, least if fewest is None else fewest, 400).astype(int)


def _inside(cuts, a, b):
    """(n, K) the cuts (K, n) strictly inside the window (a, b), +inf for the others."""
    return np.where(np.isfinite(cuts) & (cuts > a) & (cuts < b), cuts, np.inf).T


def _uniform_panels(rates, a, b, sw, rule):
    """(lo, hi) (n, P) of panels: ``p`` equal panels over [a, b] (:func:`_panels` of the
    subject's steepest log-slope ``rates`` (n,)), each also split at the cuts ``sw`` (K, n)
    inside the window (doses, time-course knots); unused cells +inf."""
    p = _panels(rates, b - a, rule)
    P = int(p.max())
    j = np.arange(P + 1)[None, :]
    base = np.where(j <= p[:, None], a + (b - a) * j / p[:, None], np.inf)
    cuts = _inside(sw, a, b)                                                 # (n, nsw)
    edges = np.sort(np.concatenate([base, cuts], axis=1), axis=1)
    return edges[:, :-1], edges[:, 1:]


def _phase_panels(rates, a, b, sw, rule):
    """(lo, hi) (n, S·P) of panels phase by phase (unused cells +inf, panels left to right):
    the window split at the switch times ``sw`` (K, n) inside it into S = K + 1 phases, each
    cut into equal panels sized by its own steepest log-slope (``rates`` (n, S)). Within a
    phase a closed form is a sum of exponentials; with positive terms its log is convex, so
    |d ln C/dt| is largest at an end of the phase, which the grid probes 1e-6 day either
    side of a switch time see exactly: a phase that starts at a switch time needs no more
    panels than its slope asks for. The phase starting at the window's start (no probe
    there: a fast term may hide in the grid's first step) keeps its share of the window's
    fewest panels (:data:`_GL_PANELS`: panels at most 7 days wide in 0-28), as a one-phase
    curve does."""
    n = rates.shape[0]
    inside = _inside(sw, a, b)                                              # (n, K)
    ends = np.sort(np.concatenate([np.full((n, 1), a), inside, np.full((n, 1), b)], axis=1), axis=1)
    ends = np.where(np.isfinite(ends), ends, b)          # phases after b: empty (lo = hi = b)
    lo_s, hi_s = ends[:, :-1], ends[:, 1:]                # (n, S)
    width = hi_s - lo_s
    fewest = np.ones(width.shape)
    fewest[:, 0] = np.maximum(np.ceil(width[:, 0] * _GL_PANELS[rule][1] / (b - a)), 1)
    p = np.where(width > 0, _panels(rates, width, rule, fewest=fewest), 0)  # (n, S)
    P = max(int(p.max()), 1)
    j = np.arange(P + 1)[None, None, :]
    pp = np.maximum(p, 1)[:, :, None]
    edge = np.where(j < pp, lo_s[:, :, None] + width[:, :, None] * j / pp, hi_s[:, :, None])  # (n, S, P+1)
    used = j[:, :, 1:] <= p[:, :, None]
    lo = np.where(used, edge[:, :, :-1], np.inf).reshape(n, -1)
    hi = np.where(used, edge[:, :, 1:], np.inf).reshape(n, -1)
    return lo, hi


def _auc_gauss(model, subj, kinds, window, sw, n, rates=None, by_phase=False):
    """Composite 16-point Gauss-Legendre on panels split at the switch times (where a closed
    form has its kinks); panel widths from each subject's steepest log-slope (``rates``: (n,)
    over the window, or with ``by_phase`` (n, S) per phase between the switch times,
    :func:`_phase_panels`). Every kind's curve at every subject's own nodes in one ragged
    solve (no padding to the widest subject)."""
    from ctkinetics.modeling.solution import Ragged

    a, b = window
    day = model.horizon / 365.0
    rule = "closed" if model.has_closed_form and not subj.timed else "ode"
    if by_phase:
        if rates is None:
            rates = np.full((n, sw.shape[0] + 1), _GL_PANELS[rule][0] / (4.0 * day))   # 4-day panels
        lo, hi = _phase_panels(rates, a, b, sw, rule)
    else:
        if rates is None:
            rates = np.full(n, _GL_PANELS[rule][0] / (4.0 * day))        # 4-day panels
        lo, hi = _uniform_panels(rates, a, b, sw, rule)
    used = np.isfinite(hi) & (hi > lo)                                        # (n, P)
    half = (hi[used] - lo[used]) / 2                                          # (U,) panels
    nodes = lo[used][:, None] + half[:, None] * (_GL_X[None, :] + 1)          # (U, 16)
    weights = half[:, None] * _GL_W[None, :]
    offsets = np.concatenate([[0], np.cumsum(used.sum(axis=1) * _GL_X.size)]).astype(np.int64)
    s = model.solve(subj.params, Ragged(nodes.ravel(), offsets), subj.covariates, list(kinds),
                    doses=subj.doses)
    out = {}
    for k in kinds:
        # summed left to right, a panel's 16 nodes then a subject's panels (zeros in the
        # unused cells add nothing): a subject's AUC has the same bits whatever its batch
        panel = np.cumsum(np.asarray(s.values[k]).reshape(-1, _GL_X.size) * weights, axis=1)[:, -1]
        per = np.zeros(used.shape)
        per[used] = panel
        out[k] = np.cumsum(per, axis=1)[:, -1] if per.shape[1] else np.zeros(n)
    return out, np.asarray(s.status, dtype=np.int64)


def _log_slopes(T, V, a, b, cuts=None):
    """Steepest |d ln C/dt| per subject over the grid inside [a, b] (0 when undefined): (n,),
    or with ``cuts`` (K, n) (switch times) (n, K + 1), one column per phase of the window
    between the subject's cuts inside it (in time order; columns beyond its phases 0). A
    grid step belongs to the phase of its left end (the grid holds every switch time)."""
    within = np.flatnonzero((T <= b).any(axis=0))        # rows sorted: a prefix of the columns
    m = (int(within[-1]) + 1 if within.size else 0) + 1   # columns that can lie in [a, b]
    T, V = T[:, :m], V[:, :m]
    with np.errstate(all="ignore"):
        lv = np.log(np.abs(V))
        dt = np.diff(T, axis=1)
        r = np.abs(np.diff(lv, axis=1)) / dt
        inside = (T[:, :-1] >= a) & (T[:, 1:] <= b) & np.isfinite(r) & (dt > 0)
        r = np.where(inside, r, 0.0)
    if cuts is None:
        return np.max(r, axis=1)
    c = _inside(cuts, a, b)                                                     # (n, K)
    phase = np.sum(c[:, None, :] <= T[:, :-1, None], axis=2)                   # (n, m-1)
    return np.stack([np.max(np.where(phase == j, r, 0.0), axis=1) for j in range(c.shape[1] + 1)], axis=1)
