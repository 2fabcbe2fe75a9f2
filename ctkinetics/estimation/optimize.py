"""Optimisation drivers: minimise the −2·log-likelihood of a group of subjects, with multistart.

The solver is lmfit's ``least_squares`` (scipy's trust-region-reflective method with the
parameters' bounds) on the pseudo-residuals of :func:`likelihood.pseudo_residuals`, whose
sum of squares is the −2LL up to a constant — exact for censored (M3) terms and estimated
SDs, and fast because the solver keeps its Gauss–Newton structure. Each subject is its own
lmfit problem; its Jacobian is computed by forward differences in one vectorised model call
(all p + 1 parameter sets at once).

Engines (:data:`ENGINES`): ``lmfit`` (the above, one subject at a time) and ``batched``
(:mod:`ctkinetics.estimation.batched`: one Levenberg–Marquardt run over a whole stack of
subjects, each with its own damping and convergence test; a subject it does not converge is
re-fitted by lmfit). ``fit(engine='auto')`` uses the batched engine for stacks of two or
more subjects and lmfit for a subject alone; every subject's row names the engine used.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from ctkinetics.estimation.batched import TIME_LIMIT
from ctkinetics.estimation.flags import FLAGS
from ctkinetics.estimation.objective import Group
from ctkinetics.estimation.starts import start_values, switch_intervals, switch_parameters

#: −2LL difference below which two local optimisations reached the same optimum (the
#: stated tolerance of ``n_starts_at_best``).
SAME_OPTIMUM = 0.01
#: Estimates (estimation scale, largest difference over the kinetic parameters) further
#: apart than this are distinct optima.
DISTINCT = 0.01
#: Best switch-interval screen solutions that start full fits.
SCREEN_STARTS = 2
#: lmfit's evaluations per (parameter + 1) (scipy's own default for least_squares is 100):
#: lmfit's default (2000) let a degenerate subject — as many parameters as samples, the SD
#: going to its bound — run for half a minute.
LMFIT_MAX_NFEV = 200
#: Largest |∂(−2LL/2)/∂θ| (estimation scale) accepted as converged for a stacked subject.
GRADIENT_TOL = 1e-3


@dataclass
class Optimum:
    """Per subject of a group: the kept optimum and what the other runs found."""

    theta: np.ndarray       # (G, p) estimation scale
    ofv: np.ndarray         # (G,)
    success: np.ndarray     # (G,) bool
    message: list           # (G,) str
    n_starts_at_best: np.ndarray
    starts: list            # per subject: list of (label, ofv, success)
    engine: list = None     # per subject: the engine that produced the kept optimum
    second_ofv: np.ndarray = None   # (G,) −2LL of the best distinct other optimum (NaN: none)
    timed_out: np.ndarray = None    # (G,) bool: a run of that subject hit the time limit


def bounds_of(group: Group):
    """Bounds on the estimation scale, (p,) arrays."""
    return group.lower, group.upper


class _Deadline(Exception):
    pass


def minimize(group: Group, theta0, vary=None, tol=1e-10, max_nfev=None, deadline=None):
    """One lmfit ``least_squares`` run from ``theta0`` (1, p) for a group of one subject.

    (Stacking several subjects into one least-squares problem was tried: the solver's
    stopping rules are global, so some subjects stopped unconverged; subjects are therefore
    optimised one by one, and only the Jacobian, Hessian and diagnostics are vectorised.)

    ``vary`` (p,) bool fixes the parameters marked False (profile likelihood);
    ``deadline`` (a ``time.perf_counter()`` value) ends the run with :data:`TIME_LIMIT`.
    Returns (theta (G, p), success (G,), message, lmfit result).
    """
    import lmfit

    theta0 = np.atleast_2d(np.asarray(theta0, dtype=float))
    G, p = theta0.shape
    vary = np.ones(p, bool) if vary is None else np.asarray(vary, bool)
    lo, hi = bounds_of(group)
    params = lmfit.Parameters()
    names = []
    for g in range(G):
        for j in range(p):
            name = f"p{g}_{j}"
            names.append(name)
            params.add(name, value=float(np.clip(theta0[g, j], lo[j], hi[j])),
                       min=lo[j], max=hi[j], vary=bool(vary[j]))

    def residual(pars):
        if deadline is not None and time.perf_counter() > deadline:
            raise _Deadline()
        x = np.fromiter((par.value for par in pars.values()), float, G * p)
        return group.residuals(x.reshape(G, p)).ravel()

    def jacobian(pars, **_):
        x = np.fromiter((par.value for par in pars.values()), float, G * p)
        return group.jacobian(x.reshape(G, p), vary)

    kws = dict(ftol=tol, xtol=tol, gtol=tol, jac=jacobian)
    if max_nfev:
        kws["max_nfev"] = max_nfev
    with warnings.catch_warnings():
        # lmfit's own (Gauss–Newton, χ²-scaled) covariance is not used: silence its warnings
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            res = lmfit.minimize(residual, params, method="least_squares", **kws)
        except _Deadline:
            return theta0.copy(), np.zeros(G, bool), TIME_LIMIT, None
    theta = np.array([res.params[n].value for n in names]).reshape(G, p)
    ok = bool(res.success) and np.all(np.isfinite(theta))
    success = np.full(G, ok)
    message = str(getattr(res, "message", ""))
    return theta, success, message, res


def _run_lmfit(group: Group, theta0, deadline=None):
    """lmfit, one subject at a time: (theta, ok, messages, engines)."""
    G = group.G
    theta, ok, msg = theta0.copy(), np.zeros(G, bool), [""] * G
    for g in range(G):
        single = group if G == 1 else group.subgroup(g)
        try:
            th, o, msg[g], _ = minimize(single, theta0[g:g + 1], deadline=deadline,
                                        max_nfev=LMFIT_MAX_NFEV * (theta0.shape[1] + 1))
            theta[g], ok[g] = th[0], o[0]
        except Exception as exc:  # noqa: BLE001 - one start failing must not end the fit
            msg[g] = f"{type(exc).__name__}: {exc}"
    return theta, ok, msg, ["lmfit"] * G


def _run_batched(group: Group, theta0, deadline=None):
    """The batched Levenberg–Marquardt engine on the whole group; a subject it does not
    converge (within the time limit) is re-fitted by lmfit from the same start."""
    from ctkinetics.estimation.batched import levenberg_marquardt

    try:
        theta, ok, msg, _ = levenberg_marquardt(group, theta0, deadline=deadline)
    except Exception:  # noqa: BLE001 - the whole stack goes to lmfit
        return _run_lmfit(group, theta0, deadline)
    engines = ["batched"] * group.G
    bad = np.flatnonzero(~ok & (np.array(msg) != TIME_LIMIT))
    if bad.size:
        sub = group.take(bad)
        th, o, m, _ = _run_lmfit(sub, theta0[bad], deadline)
        theta[bad], ok[bad] = th, o
        for k, i in enumerate(bad):
            msg[i] = f"{m[k]} (lmfit after batched: {msg[i]})"
            engines[i] = "lmfit"
    return theta, ok, msg, engines


#: Optimisation engines: name -> f(group, theta0 (G, p), deadline=None)
#: -> (theta, ok, messages, engines).
ENGINES = {"lmfit": _run_lmfit, "batched": _run_batched}


def resolve_engine(engine: str, group_size: int) -> str:
    """``auto``: the batched engine for a stack of two or more subjects (sampled alike or at
    their own times: one vectorised problem per iteration instead of a Python loop over
    subjects), lmfit for a subject fitted alone. Both find a local minimum of the same
    −2LL; from one start they can end in different local minima on a multimodal subject
    (see :mod:`.batched`), which the starts and the switch-interval screen settle."""
    if engine == "auto":
        return "batched" if group_size > 1 else "lmfit"
    if engine not in ENGINES:
        from ctkinetics.errors import SettingsError

        raise SettingsError(f"unknown engine '{engine}'; choose auto, {', '.join(ENGINES)}")
    return engine


def multistart(group: Group, n_starts: int = 1, seed: int = 0, engine: str = "lmfit",
               deadline=None) -> Optimum:
    """Minimise each subject from every start and keep its best (see :mod:`.starts`).

    1. with two or more starts, the switch-time screen: one bounded fit per sampling
       interval of each switch-time parameter, its :data:`SCREEN_STARTS` best solutions per
       subject start full fits too;
    2. full fits from the defaults, the seeded draws and the screen's best solutions (the
       batched engine runs every start and the screen of every subject as the rows of one
       problem; a subject it does not converge from the defaults is re-fitted by lmfit);
    3. a best optimum whose switch time sits on a sampling time (a kink, where a local
       optimiser stalls) is polished with the switch time held: the other parameters —
       the residual SDs included — go to their own optimum there; a best optimum that did
       not converge is re-fitted by lmfit from where it stopped.

    Every run is kept in the start history; ``n_starts_at_best`` counts the runs that reach
    the best within :data:`SAME_OPTIMUM`, ``second_ofv`` is the best distinct optimum
    (estimates further than :data:`DISTINCT` apart, a bounded screen fit that ended on its
    interval's edge does not count).
    """
    name = resolve_engine(engine, group.G)
    starts = start_values(group, max(1, int(n_starts)), seed)
    book = _Runs(group)
    screen = switch_intervals(group, starts[0]) if len(starts) > 1 else None
    if name == "batched":
        screen_runs = _stacked_starts(group, book, starts, screen, deadline)
    else:
        run = ENGINES[name]
        screen_runs = _run_screen(group, screen, deadline) if screen is not None else None
        for k, theta0 in enumerate(starts):
            theta, ok, msg, engines = run(group, theta0, deadline)
            book.add_all(str(k), theta, ok, msg, engines)
    if screen_runs is not None:
        for label, rows, theta0 in _screen_starts(book, screen, screen_runs):
            if name == "batched":
                from ctkinetics.estimation.batched import levenberg_marquardt

                theta, ok, msg, _ = levenberg_marquardt(group.take(rows), theta0,
                                                        deadline=deadline)
                engines = ["batched"] * len(rows)
            else:
                theta, ok, msg, engines = ENGINES[name](group.take(rows), theta0, deadline)
            book.add_all(label, theta, ok, msg, engines, rows)
        book.add_screen(screen, screen_runs)
    _polish_kinks(group, book, deadline)
    _converge_best(group, book, deadline)
    return book.optimum()


def _stacked_starts(group, book, starts, screen, deadline):
    """Every start and the switch-interval screen of every subject as the rows of one
    batched Levenberg–Marquardt problem (bounds per row); lmfit re-fits a subject the
    defaults' run did not converge. Returns the screen's (theta, ok, messages, free)."""
    from ctkinetics.estimation.batched import levenberg_marquardt

    G, p = group.G, starts.shape[2]
    n = starts.shape[0]
    rows = np.tile(np.arange(G), n)
    theta0 = starts.reshape(n * G, p)
    lower = np.tile(group.lower, (n * G, 1))
    upper = np.tile(group.upper, (n * G, 1))
    if screen is not None:
        rows = np.concatenate([rows, screen.rows])
        theta0 = np.vstack([theta0, screen.theta0])
        lower, upper = np.vstack([lower, screen.lower]), np.vstack([upper, screen.upper])
    try:
        theta, ok, msg, _ = levenberg_marquardt(group.take(rows), theta0, lower=lower,
                                                upper=upper, deadline=deadline)
    except Exception:  # noqa: BLE001 - lmfit one subject and start at a time
        theta, ok, msg = theta0.copy(), np.zeros(len(rows), bool), [""] * len(rows)
        for k in range(n):
            sl = slice(k * G, (k + 1) * G)
            theta[sl], ok[sl], m, _ = _run_lmfit(group, starts[k], deadline)
            msg[sl] = m
        screen = None
    engines = ["batched"] * len(rows)
    bad = np.flatnonzero(~ok[:G] & (np.array(msg[:G]) != TIME_LIMIT))
    if bad.size:   # the defaults' run of a subject the batched engine did not converge
        th, o, m, _ = _run_lmfit(group.take(bad), theta0[bad], deadline)
        theta[bad], ok[bad] = th, o
        for k, i in enumerate(bad):
            msg[i] = f"{m[k]} (lmfit after batched: {msg[i]})"
            engines[i] = "lmfit"
    for k in range(n):
        sl = slice(k * G, (k + 1) * G)
        book.add_all(str(k), theta[sl], ok[sl], msg[sl], engines[sl])
    if screen is None:
        return None
    sl = slice(n * G, None)
    return theta[sl], ok[sl], msg[sl], _screen_free(group, screen, theta[sl])


def _converge_best(group, book, deadline):
    """lmfit from a subject's best run when that run did not converge."""
    for g in range(group.G):
        b = book.best(g)
        if b is None or book.runs[g][b][3] or book.runs[g][b][4] == TIME_LIMIT:
            continue
        single = group.take(np.array([g]))
        th, o, m, _ = _run_lmfit(single, book.runs[g][b][1][None], deadline)
        book.add_all("lmfit from the best", th, o, m, ["lmfit"], np.array([g]))


class _Runs:
    """Every local optimisation of every subject of a group, and the choice of the best."""

    def __init__(self, group):
        self.group = group
        self.runs = [[] for _ in range(group.G)]   # (label, theta, ofv, ok, msg, engine, free)
        self.kinetic = ~group.is_sigma

    def add_all(self, label, theta, ok, msg, engines, rows=None, free=None):
        rows = np.arange(self.group.G) if rows is None else np.asarray(rows)
        ofv = self.group.take(rows).ofv(theta)
        ofv = np.where(np.isfinite(ofv), ofv, np.inf)
        for i, g in enumerate(rows):
            lab = label[i] if isinstance(label, list) else label
            self.runs[g].append((lab, theta[i], float(ofv[i]), bool(ok[i]), msg[i],
                                 engines[i], True if free is None else bool(free[i])))

    def add_screen(self, screen, result):
        theta, ok, msg, free = result
        self.add_all(screen.label, theta, ok, msg, ["batched"] * len(ok), screen.rows, free)

    def best(self, g):
        """Index of subject g's kept run: the lowest −2LL (ties keep the earlier run, the
        defaults first); a converged run beats an unconverged one within SAME_OPTIMUM."""
        best, b_ofv, b_ok = None, np.inf, False
        for i, (_, _, ofv, ok, _, _, _) in enumerate(self.runs[g]):
            better = np.isfinite(ofv) and ofv < b_ofv - 1e-6 * max(1.0, abs(ofv))
            if better or (ok and not b_ok and ofv <= b_ofv + SAME_OPTIMUM):
                best, b_ofv, b_ok = i, ofv, ok
        return best

    def optimum(self) -> Optimum:
        G, p = self.group.G, len(self.group.layout.specs)
        theta, ofv = np.full((G, p), np.nan), np.full(G, np.inf)
        ok, msg, eng = np.zeros(G, bool), [""] * G, [""] * G
        at_best, second = np.zeros(G, int), np.full(G, np.nan)
        timed_out = np.zeros(G, bool)
        history = []
        for g, runs in enumerate(self.runs):
            history.append([(lab, o, s) for lab, _, o, s, _, _, _ in runs])
            timed_out[g] = any(m == TIME_LIMIT for _, _, _, _, m, _, _ in runs)
            b = self.best(g)
            if b is None:
                continue
            _, theta[g], ofv[g], ok[g], msg[g], eng[g], _ = runs[b]
            at_best[g] = sum(1 for r in runs if r[3] and np.isfinite(r[2])
                             and abs(r[2] - ofv[g]) <= SAME_OPTIMUM)
            others = [r[2] for r in runs if r[3] and r[6] and r[2] > ofv[g] + SAME_OPTIMUM
                      and np.max(np.abs((r[1] - theta[g])[self.kinetic]), initial=0) > DISTINCT]
            second[g] = min(others) if others else np.nan
        return Optimum(theta, ofv, ok, msg, at_best, history, eng, second, timed_out)


def _run_screen(group, screen, deadline):
    """The switch-interval fits (batched, bounded): (theta, ok, messages, free) per row;
    ``free`` is False for a fit that ended on its interval's edge inside the model's
    bounds (an edge of the screen, not an optimum of the fit)."""
    from ctkinetics.estimation.batched import levenberg_marquardt

    sub = group.take(screen.rows)
    theta, ok, msg, _ = levenberg_marquardt(sub, screen.theta0, lower=screen.lower,
                                            upper=screen.upper, deadline=deadline)
    return theta, ok, msg, _screen_free(group, screen, theta)


def _screen_free(group, screen, theta):
    """False for a screen fit that ended on its interval's edge inside the model's bounds."""
    cols = switch_parameters(group)
    tol = 1e-7 * np.maximum(1.0, np.abs(theta))
    edge = (((theta - screen.lower) <= tol) & (screen.lower > group.lower)) | \
        (((screen.upper - theta) <= tol) & (screen.upper < group.upper))
    return ~np.any(edge[:, cols], axis=1)


def _screen_starts(book, screen, result):
    """(label, rows, theta0) of the full fits started from each subject's best screen
    solutions (the k-th best of every subject together)."""
    theta, ok, msg, free = result
    ofv = book.group.take(screen.rows).ofv(theta)
    ofv = np.where(ok & np.isfinite(ofv), ofv, np.inf)
    picks = [[] for _ in range(SCREEN_STARTS)]
    for g in range(book.group.G):
        mine = np.flatnonzero(screen.rows == g)
        order = mine[np.argsort(ofv[mine], kind="stable")]
        order = [i for i in order if np.isfinite(ofv[i])][:SCREEN_STARTS]
        for k, i in enumerate(order):
            picks[k].append((g, i))
    for k, chosen in enumerate(picks):
        if chosen:
            rows = np.array([g for g, _ in chosen])
            labels = [f"from {screen.label[i]}" for _, i in chosen]
            yield labels, rows, np.array([theta[i] for _, i in chosen])


def _polish_kinks(group, book, deadline):
    """Re-optimise, with the switch times held, each subject whose best switch time sits on
    one of its sampling times (see :func:`multistart`)."""
    from ctkinetics.estimation.batched import levenberg_marquardt

    cols = switch_parameters(group)
    if not cols:
        return
    rows, th0 = [], []
    for g, subj in enumerate(group.subjects):
        b = book.best(g)
        if b is None:
            continue
        theta = book.runs[g][b][1]
        times = np.concatenate([a.times for a in subj.analytes]) if subj.analytes else []
        nat = group.natural(theta[None])[0]
        if any(np.any(np.abs(np.asarray(times) - nat[j]) <= FLAGS["at_sample_time"].limit
                      * max(abs(nat[j]), 1e-12)) for j in cols):
            rows.append(g)
            th0.append(theta)
    if not rows:
        return
    rows, th0 = np.array(rows), np.array(th0)
    lo = np.tile(group.lower, (len(rows), 1))
    hi = np.tile(group.upper, (len(rows), 1))
    lo[:, cols], hi[:, cols] = th0[:, cols], th0[:, cols]
    theta, ok, msg, _ = levenberg_marquardt(group.take(rows), th0, lower=lo, upper=hi,
                                            deadline=deadline)
    book.add_all("polish (switch time held)", theta, ok, msg, ["batched"] * len(rows), rows)
