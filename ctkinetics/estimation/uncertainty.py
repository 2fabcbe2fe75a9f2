"""Uncertainty of individual estimates: Hessian, covariance, Wald and profile CIs, flags.

The covariance is the inverse of the observed Fisher information, half the Hessian of the
−2·log-likelihood at the optimum (estimation scale, SDs included):

    Cov(θ̂) = (H/2)⁻¹,   H_ij = ∂²(−2 ln L)/∂θ_i ∂θ_j

computed by central finite differences of the exact −2LL, vectorised over a stacked group.
No reduced-χ² rescaling is applied to the SEs: the SDs are estimated parameters of the
likelihood. SE on the natural scale by the delta method, SE = exp(θ̂)·SE_θ for ``log``
parameters.

95 % CIs (registry :data:`CI_METHODS`; every parameter row names its ``ci_method``), on the
estimation scale and back-transformed for ``log`` parameters (out-of-range bounds become
±inf, never an overflow warning):

* ``wald-t`` (default) — the small-sample convention of R's ``nls``:
  θ̂ ± t₀.₉₇₅(n − p)·sqrt(n/(n − p))·SE for the kinetic parameters and scale factors, with
  n the observations in the likelihood (censored ones included) and p the estimated
  kinetic parameters and scale factors (the SDs not counted, as in ``nls``). For a
  least-squares fit, sqrt(n/(n − p))·SE is the SE with σ̂² = RSS/(n − p) instead of the ML
  RSS/n; the t quantile accounts for σ being estimated. Residual SDs keep the ``wald``
  interval. With n − p ≤ 0 the ``wald`` interval is used.
* ``wald`` — θ̂ ± 1.96·SE with the ML Hessian SE (NONMEM's convention). With few residual
  degrees of freedom per subject (n − p ≈ 5–20 in CAR-T data) it under-covers:
  ``benchmarks/recovery.py`` measured 74–88 % for the stein2019 parameters.
* ``profile`` — {θ_j : min over the others of −2LL(θ) − −2LL(θ̂) ≤ χ²₁(0.95) = 3.841}
  (slower: each bound re-optimises the other parameters). ``fit(ci="profile")`` profiles
  every parameter, ``fit(ci=Profile("CL", "ke"))`` those named (Wald-t for the others,
  ``Profile(..., otherwise="wald")`` for 1.96·SE); the former ``profile=`` keyword still
  works with a DeprecationWarning.

A parameter the data do not determine — at a bound, without a finite SE, or whose 95 %
interval is wider than a factor :data:`ctkinetics.formatting.MAX_INTERVAL_FOLD` or reaches
past both of its bounds — is flagged ``not_estimable`` and its SE, RSE and CI are left
blank (:func:`not_estimable`): an interval such as [3e-130, 2.6e133] informs nobody.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import chdtri, ndtri, stdtrit

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.flags import FLAGS
from ctkinetics.estimation.objective import Group

# scipy.special, not scipy.stats: the same quantiles without a second of imports at start-up
Z95 = float(ndtri(0.975))
CHI2_95 = float(chdtri(1, 0.05))
#: 95 % CI methods; ``fit(ci=...)`` picks one for the Wald rows, ``profile=`` overrides.
CI_METHODS = {
    "wald-t": "θ ± t(0.975, n−p)·sqrt(n/(n−p))·SE (R nls convention; SDs: wald)",
    "wald": "θ ± 1.96·SE, ML Hessian (NONMEM convention)",
    "profile": "−2LL profile rises by 3.841",
}
RSE_LIMIT = FLAGS["rse>50%"].limit
CORR_LIMIT = FLAGS["corr>0.95"].limit
#: smallest eigenvalue / largest of the Hessian below which it counts as singular
SINGULAR_RATIO = FLAGS["non_identifiable"].limit


@dataclass(frozen=True)
class CIMethod:
    """A 95 % CI rule: ``wald`` (``'wald-t'`` or ``'wald'``) for every parameter, and the
    profile likelihood for ``profiled`` (None: none; an empty tuple: every parameter)."""

    wald: str = "wald-t"
    profiled: tuple | None = None

    @property
    def name(self) -> str:
        """The CI method as the fits table names it."""
        return "profile" if self.profiled == () else self.wald

    def profiles(self, name) -> bool:
        return self.profiled is not None and (self.profiled == () or name in self.profiled)


class Profile(CIMethod):
    """Profile-likelihood CIs for the parameters named (every parameter when none), the
    ``otherwise`` Wald rule for the others: ``fit(ci=Profile("CL", "ke"))``."""

    def __init__(self, *parameters, otherwise="wald-t"):
        if otherwise not in ("wald-t", "wald"):
            raise SettingsError(f"Profile(otherwise=...) must be 'wald-t' or 'wald' "
                                f"(got '{otherwise}')")
        super().__init__(otherwise, tuple(str(p) for p in parameters))


def resolve_ci(ci="wald-t", profile=False) -> CIMethod:
    """The CI rule of ``fit(ci=..., profile=...)``: a name of :data:`CI_METHODS` or a
    :class:`CIMethod`; ``profile`` (True or names) is the former way to ask for profiles."""
    if isinstance(ci, CIMethod):
        out = ci
    elif ci in CI_METHODS:
        out = CIMethod("wald-t", ()) if ci == "profile" else CIMethod(ci, None)
    else:
        raise SettingsError(f"unknown CI method '{ci}'; choose one of {', '.join(CI_METHODS)}"
                            " or pass Profile(...)")
    if profile is not None and profile is not False:
        warnings.warn("fit(profile=...) is deprecated: pass ci='profile' (every parameter) "
                      "or ci=Profile('A', 'B')", DeprecationWarning, stacklevel=3)
        names = () if profile is True else tuple(
            [profile] if isinstance(profile, str) else profile)
        out = CIMethod(out.wald, names if out.profiled != () else ())
    return out


def not_estimable(bound, se, ci_low, ci_high, lower, upper):
    """True for a parameter the data do not determine (module docstring): at a bound,
    SE not finite, or a 95 % interval (natural scale) not finite, wider than
    MAX_INTERVAL_FOLD (positive intervals) or past both bounds."""
    from ctkinetics.formatting import MAX_INTERVAL_FOLD

    lo, hi = np.asarray(ci_low, float), np.asarray(ci_high, float)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        wide = (lo > 0) & (hi / np.where(lo > 0, lo, 1.0) > MAX_INTERVAL_FOLD)
        past = (lo < lower) & (hi > upper)
    return (np.asarray(bound, bool) | ~np.isfinite(se) | ~np.isfinite(lo) | ~np.isfinite(hi)
            | wide | past)


def fd_steps(group: Group, theta):
    """Central-difference steps: 1e-4 relative (absolute 1e-4 on ln for log parameters)."""
    default = np.array([float(s.to_est(s.default)) for s in group.layout.specs])
    floor = np.where(group.is_log, 1.0, np.maximum(np.abs(default), 1e-6))
    return 1e-4 * np.maximum(np.abs(theta), floor)


def hessian(group: Group, theta):
    """H (G, p, p) of −2LL per subject by central differences, O(h²) accurate.

    With the model's sensitivities: central differences of the exact gradient 2·Jᵀr (2p
    sensitivity solves per subject, one stacked call — :func:`_hessian_from_gradient`);
    otherwise of the −2LL itself, all 1 + 2p + 2p(p−1) stencil points of every subject in one
    model call.
    """
    theta = np.atleast_2d(theta)
    if getattr(group, "analytic", False) and group.predictor.has_sensitivities:
        return _hessian_from_gradient(group, theta)
    G, p = theta.shape
    h = fd_steps(group, theta)
    pts = [np.zeros(p)]
    for i in range(p):
        for si in (1, -1):
            e = np.zeros(p)
            e[i] = si
            pts.append(e)
    pairs = [(i, j) for i in range(p) for j in range(i + 1, p)]
    for i, j in pairs:
        for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            e = np.zeros(p)
            e[i], e[j] = si, sj
            pts.append(e)
    pts = np.array(pts)                                   # (K, p) unit steps
    big = (theta[None, :, :] + pts[:, None, :] * h[None, :, :]).reshape(-1, p)
    with np.errstate(invalid="ignore", over="ignore"):
        f = group.ofv(big, group.predict_stencil(big)).reshape(len(pts), G)
        f0, H = f[0], np.empty((G, p, p))
        for i in range(p):
            H[:, i, i] = (f[1 + 2 * i] - 2 * f0 + f[2 + 2 * i]) / h[:, i] ** 2
        k = 1 + 2 * p
        for i, j in pairs:
            v = f[k] - f[k + 1] - f[k + 2] + f[k + 3]
            H[:, i, j] = H[:, j, i] = v / (4 * h[:, i] * h[:, j])
            k += 4
    return H


def _hessian_from_gradient(group: Group, theta):
    """H_ij = (g_i(θ + h_j e_j) − g_i(θ − h_j e_j))/(2h_j), g = ∂(−2LL)/∂θ = 2·Jᵀr exact,
    symmetrised."""
    G, p = theta.shape
    h = fd_steps(group, theta)
    steps = np.concatenate([np.eye(p), -np.eye(p)])               # (2p, p)
    big = (theta[None, :, :] + steps[:, None, :] * h[None, :, :]).reshape(-1, p)
    stack = group.take(np.tile(np.arange(G), 2 * p))
    with np.errstate(all="ignore"):
        r, J = stack.residuals_and_jacobian(big)
        grad = 2.0 * np.einsum("rmp,rm->rp", J, r).reshape(2 * p, G, p)
        H = np.moveaxis((grad[:p] - grad[p:]) / (2.0 * h.T[:, :, None]), 0, 2)   # (G, p, p)
    return 0.5 * (H + np.swapaxes(H, 1, 2))


def at_bounds(theta, lo, hi):
    """True where an estimate sits on (within 1e-5 of the range, or 1e-6 abs) a bound."""
    width = np.where(np.isfinite(hi - lo), hi - lo, np.inf)
    tol = np.minimum(1e-5 * width, 1e-3) + 1e-6
    return ((theta - lo) <= tol) | ((hi - theta) <= tol)


def covariance(H, free):
    """Cov = (H/2)⁻¹ over the free parameters; NaN elsewhere.

    Returns (cov (p, p), singular: bool). A Hessian that is not positive definite or whose
    eigenvalue ratio is below :data:`SINGULAR_RATIO` is singular: parameters cannot all be
    identified from these data, and the covariance is NaN.
    """
    p = H.shape[0]
    cov = np.full((p, p), np.nan)
    idx = np.flatnonzero(free)
    if idx.size == 0:
        return cov, False
    Hf = H[np.ix_(idx, idx)]
    if not np.all(np.isfinite(Hf)):
        return cov, True
    Hf = 0.5 * (Hf + Hf.T)
    eig = np.linalg.eigvalsh(Hf)
    if eig[0] <= 0 or eig[0] < SINGULAR_RATIO * eig[-1]:
        return cov, True
    cov[np.ix_(idx, idx)] = np.linalg.inv(Hf / 2.0)
    return cov, False


def covariance_batch(H, free):
    """:func:`covariance` for a stack: H (G, p, p), free (G, p) -> (cov (G, p, p),
    singular (G,)). Subjects with the same free parameters share one stacked
    eigendecomposition and inverse (the same numbers as :func:`covariance`, one at a time)."""
    G, p = free.shape
    cov = np.full((G, p, p), np.nan)
    singular = np.zeros(G, bool)
    patterns = {}
    for g in range(G):
        patterns.setdefault(free[g].tobytes(), []).append(g)
    for members in patterns.values():
        rows = np.array(members)
        idx = np.flatnonzero(free[rows[0]])
        if idx.size == 0:
            continue
        Hf = H[np.ix_(rows, idx, idx)]
        Hf = 0.5 * (Hf + np.swapaxes(Hf, 1, 2))
        finite = np.all(np.isfinite(Hf), axis=(1, 2))
        good = np.zeros(len(rows), bool)
        if finite.any():
            eig = np.linalg.eigvalsh(Hf[finite])
            good[finite] = (eig[:, 0] > 0) & (eig[:, 0] >= SINGULAR_RATIO * eig[:, -1])
        singular[rows] = ~good
        if good.any():
            inv = np.linalg.inv(Hf[good] / 2.0)
            cov[np.ix_(rows[good], idx, idx)] = inv
    return cov, singular


def correlation(cov):
    sd = np.sqrt(np.diag(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.outer(sd, sd)


@lru_cache(maxsize=1024)
def small_sample_quantile(n_obs, n_struct):
    """(multiplier, df) of the ``wald-t`` interval: t₀.₉₇₅(n − p)·sqrt(n/(n − p)), with
    n − p residual degrees of freedom; (1.96, inf) when n − p < 1."""
    df = int(n_obs) - int(n_struct)
    if df < 1:
        return Z95, np.inf
    return float(stdtrit(df, 0.975) * np.sqrt(n_obs / df)), df


def wald(theta, se, is_log, quantile=Z95):
    """Natural-scale estimate, SE, RSE % and 95 % CI from estimation-scale θ and SE.

    ``quantile`` (scalar or per parameter) multiplies the SE: 1.96 for ``wald``, the
    :func:`small_sample_quantile` multiplier for ``wald-t``. A back-transformed bound beyond
    the float range is ±inf (deliberately, without an overflow warning).
    """
    theta = np.asarray(theta, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        est = np.where(is_log, np.exp(np.where(is_log, theta, 0.0)), theta)
        se_nat = np.where(is_log, est * se, se)
        lo = theta - quantile * se
        hi = theta + quantile * se
        ci_lo = np.where(is_log, np.exp(np.where(is_log, lo, 0.0)), lo)
        ci_hi = np.where(is_log, np.exp(np.where(is_log, hi, 0.0)), hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        rse = 100.0 * se_nat / np.abs(est)
    return est, se_nat, rse, ci_lo, ci_hi


def parameter_flags(names, rse, corr, bound, singular, converged):
    """Flags per parameter: not_converged, at_bound, non_identifiable, rse>50%, |corr|>0.95."""
    with np.errstate(invalid="ignore"):
        strong = np.abs(np.asarray(corr, float)) > CORR_LIMIT     # NaN compares False
    np.fill_diagonal(strong, False)
    flags = []
    for i, name in enumerate(names):
        f = []
        if not converged:
            f.append("not_converged")
        if bound[i]:
            f.append("at_bound")
        if singular:
            f.append("non_identifiable")
        if np.isfinite(rse[i]) and rse[i] > RSE_LIMIT:
            f.append("rse>50%")
        if strong[i].any():
            f.append("corr>0.95:" + ",".join(names[j] for j in np.flatnonzero(strong[i])))
        flags.append(";".join(f))
    return flags


def profile_ci(group1: Group, theta, j, ofv_hat, se_j, minimize_fixed, level=CHI2_95):
    """Profile-likelihood 95 % CI of parameter ``j`` of a one-subject group.

    ``minimize_fixed(theta_start, j) -> (theta, ofv)`` re-optimises all but ``j``. Walks out
    from θ̂ in steps of max(SE, 0.1) (doubling) until −2LL rises by ``level`` or a bound is
    reached (that side is then the bound, returned as is), then solves for the crossing.
    Returns (lower, upper) on the estimation scale.
    """
    from scipy.optimize import brentq

    from ctkinetics.estimation.optimize import bounds_of

    lo_b, hi_b = bounds_of(group1)
    theta = np.asarray(theta, dtype=float).ravel()
    step0 = se_j if np.isfinite(se_j) and se_j > 0 else 0.1
    step0 = max(step0, 1e-3 * max(1.0, abs(theta[j])))
    out = []
    for sign in (-1.0, 1.0):
        bound = lo_b[j] if sign < 0 else hi_b[j]
        warm = {"theta": theta.copy()}

        def delta(v):
            start = warm["theta"].copy()
            start[j] = v
            th, ofv = minimize_fixed(start, j)
            if np.isfinite(ofv):
                warm["theta"] = th
            return ofv - ofv_hat - level

        prev, step, found = theta[j], step0, None
        for _ in range(30):
            v = theta[j] + sign * step
            if (sign < 0 and v <= bound) or (sign > 0 and v >= bound):
                v = bound
            d = delta(v)
            if d > 0:
                found = (prev, v)
                break
            if v == bound:
                break
            prev, step = v, step * 2
        if found is None:
            out.append(bound if np.isfinite(bound) else sign * np.inf)
            continue
        a, b = sorted(found)
        out.append(brentq(delta, a, b, xtol=1e-6 * max(1.0, abs(theta[j]))))
    return out[0], out[1]
