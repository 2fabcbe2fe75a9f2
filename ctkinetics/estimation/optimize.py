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
re-fitted by lmfit). ``fit(engine='auto')`` uses the batched engine for stacks of subjects
sampled alike and lmfit otherwise; every subject's row names the engine used.
"""
from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass

import numpy as np

from ctkinetics.estimation.objective import Group

#: −2LL difference below which two starts reached the same optimum.
SAME_OPTIMUM = 0.01
#: Largest |∂(−2LL/2)/∂θ| (estimation scale) accepted as converged for a stacked subject.
GRADIENT_TOL = 1e-3


@dataclass
class Optimum:
    theta: np.ndarray       # (G, p) estimation scale
    ofv: np.ndarray         # (G,)
    success: np.ndarray     # (G,) bool
    message: list           # (G,) str
    n_starts_at_best: np.ndarray
    starts: list            # per subject: list of (start, ofv, success)
    engine: list = None     # per subject: the engine that produced the kept optimum


def bounds_of(group: Group):
    """Bounds on the estimation scale, (p,) arrays."""
    return group.lower, group.upper


def start_values(group: Group, n_starts: int, seed: int):
    """Start 0 is the model's defaults; the others are drawn uniformly within the bounds
    (estimation scale; ±2 around the default where a bound is infinite). The stream of each
    subject depends only on the seed and its id, so results do not depend on batching."""
    specs = group.layout.specs
    lo, hi = bounds_of(group)
    default = np.array([float(s.to_est(s.default)) for s in specs])
    default = np.clip(default, lo, hi)
    # keep strictly inside: a start on a bound makes the trust region step degenerate
    width = np.where(np.isfinite(hi - lo), hi - lo, 4.0)
    default = np.clip(default, lo + 1e-6 * width, hi - 1e-6 * width)
    starts = np.empty((n_starts, group.G, len(specs)))
    starts[0] = default
    draw = np.array([s.role != "sigma" for s in specs])
    for g, subj in enumerate(group.subjects):
        rng = np.random.default_rng([int(seed), zlib.crc32(subj.subject.encode())])
        a = np.where(np.isfinite(lo), lo, default - 2.0)
        b = np.where(np.isfinite(hi), hi, default + 2.0)
        for k in range(1, n_starts):
            u = rng.uniform(a + 1e-3 * (b - a), b - 1e-3 * (b - a))
            starts[k, g] = np.where(draw, u, default)
    return starts


def minimize(group: Group, theta0, vary=None, tol=1e-10, max_nfev=None):
    """One lmfit ``least_squares`` run from ``theta0`` (1, p) for a group of one subject.

    (Stacking several subjects into one least-squares problem was tried: the solver's
    stopping rules are global, so some subjects stopped unconverged; subjects are therefore
    optimised one by one, and only the Jacobian, Hessian and diagnostics are vectorised.)

    ``vary`` (p,) bool fixes the parameters marked False (profile likelihood).
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
        res = lmfit.minimize(residual, params, method="least_squares", **kws)
    theta = np.array([res.params[n].value for n in names]).reshape(G, p)
    ok = bool(res.success) and np.all(np.isfinite(theta))
    success = np.full(G, ok)
    message = str(getattr(res, "message", ""))
    return theta, success, message, res


def _run_lmfit(group: Group, theta0):
    """lmfit, one subject at a time: (theta, ok, messages, engines)."""
    G = group.G
    theta, ok, msg = theta0.copy(), np.zeros(G, bool), [""] * G
    for g in range(G):
        single = group if G == 1 else group.subgroup(g)
        try:
            th, o, msg[g], _ = minimize(single, theta0[g:g + 1])
            theta[g], ok[g] = th[0], o[0]
        except Exception as exc:  # noqa: BLE001 - one start failing must not end the fit
            msg[g] = f"{type(exc).__name__}: {exc}"
    return theta, ok, msg, ["lmfit"] * G


def _run_batched(group: Group, theta0):
    """The batched Levenberg–Marquardt engine on the whole group; a subject it does not
    converge is re-fitted by lmfit from the same start."""
    from ctkinetics.estimation.batched import levenberg_marquardt

    try:
        theta, ok, msg, _ = levenberg_marquardt(group, theta0)
    except Exception:  # noqa: BLE001 - the whole stack goes to lmfit
        return _run_lmfit(group, theta0)
    engines = ["batched"] * group.G
    bad = np.flatnonzero(~ok)
    if bad.size:
        sub = group.take(bad)
        th, o, m, _ = _run_lmfit(sub, theta0[bad])
        theta[bad], ok[bad] = th, o
        for k, i in enumerate(bad):
            msg[i] = f"{m[k]} (lmfit after batched: {msg[i]})"
            engines[i] = "lmfit"
    return theta, ok, msg, engines


#: Optimisation engines: name -> f(group, theta0 (G, p)) -> (theta, ok, messages, engines).
ENGINES = {"lmfit": _run_lmfit, "batched": _run_batched}


def resolve_engine(engine: str, group_size: int, alike: bool = True) -> str:
    """``auto``: the batched engine for a stack of two or more subjects sampled at the same
    times (simulated or nominal designs, where batches are large and speed matters), lmfit
    otherwise — a subject fitted alone and subjects with their own sampling times (real
    studies) keep lmfit. Both find a local minimum of the same −2LL; from one start they can
    end in different local minima on a multimodal subject (see :mod:`.batched`)."""
    if engine == "auto":
        return "batched" if group_size > 1 and alike else "lmfit"
    if engine not in ENGINES:
        from ctkinetics.errors import SettingsError

        raise SettingsError(f"unknown engine '{engine}'; choose auto, {', '.join(ENGINES)}")
    return engine


def multistart(group: Group, n_starts: int = 1, seed: int = 0,
               engine: str = "lmfit") -> Optimum:
    """Minimise each subject from every start; keep its best; count starts reaching it."""
    alike = all(c is not None for c in getattr(group, "common", [None]))
    run = ENGINES[resolve_engine(engine, group.G, alike)]
    starts = start_values(group, max(1, int(n_starts)), seed)
    G = group.G
    best_theta = np.full_like(starts[0], np.nan)
    best_ofv = np.full(G, np.inf)
    best_ok = np.zeros(G, bool)
    best_msg = [""] * G
    best_engine = [""] * G
    history = [[] for _ in range(G)]
    for k, theta0 in enumerate(starts):
        theta, ok, msg, engines = run(group, theta0)
        ofv = group.ofv(theta)
        ofv = np.where(np.isfinite(ofv), ofv, np.inf)
        for g in range(G):
            history[g].append((k, float(ofv[g]), bool(ok[g])))
            # ties (flip-flop, numerical noise) keep the earlier start, the defaults first
            better = np.isfinite(ofv[g]) and (ofv[g] < best_ofv[g] - 1e-6 * max(1.0, abs(ofv[g])))
            # a converged start beats an unconverged one with a similar objective
            if better or (ok[g] and not best_ok[g] and ofv[g] <= best_ofv[g] + SAME_OPTIMUM):
                best_theta[g], best_ofv[g], best_ok[g], best_msg[g] = \
                    theta[g], ofv[g], ok[g], msg[g]
                best_engine[g] = engines[g]
    at_best = np.array([sum(1 for _, o, s in h if s and abs(o - b) <= SAME_OPTIMUM)
                        for h, b in zip(history, best_ofv)])
    return Optimum(best_theta, best_ofv, best_ok, best_msg, at_best, history, best_engine)
