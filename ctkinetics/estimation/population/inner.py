"""Empirical Bayes estimates (EBEs): the inner optimisation of FOCE-I, all subjects at once.

For each subject the conditional mode of the random effects minimises

    h_i(η) = −2·ln p(y_i | φ_i(η)) + ηᵀ Ω⁻¹ η

(the −2 log-likelihood of the data, from the shared likelihood terms, plus the Gaussian
prior). With pseudo-residuals r_i(η) (Σ r² = −2 ln p(y|η) − const, see
:func:`ctkinetics.estimation.likelihood.pseudo_residuals`) and their Jacobian J_i = ∂r_i/∂η,
a damped Gauss–Newton (Levenberg–Marquardt) step solves

    (J_iᵀJ_i + Ω⁻¹ + λ_i·diag) δ_i = −(J_iᵀ r_i + Ω⁻¹ η_i)

for every subject in one batched linear solve (a Newton step, with the finite-difference
Hessian of the data term in place of 2·JᵀJ, where that Hessian is positive definite: plain
Gauss–Newton converges only linearly when residuals are large); each subject keeps its own damping λ_i and
stops on its own. The Jacobian comes from central differences (a ±1 % secant, see
``_JSTEP``), all perturbations of all n subjects predicted in one vectorised call of the
model.

At the mode, A_i = J_iᵀJ_i + Ω⁻¹ is half the Gauss–Newton Hessian of
h_i — the matrix FOCE-I uses in its Laplace approximation, and the EBE's approximate
precision (its inverse is the conditional covariance of η_i).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Step of the central differences on the estimation scale (ln P for log parameters).
# A secant over ±1 % rather than a tangent: models with a switch time (stein2019's Tmax)
# have a kink in the prediction wherever the switch crosses a sampling time, and the
# conditional modes of many subjects sit exactly on such a kink (it is a local minimum of
# h). A one-sided tangent there picks one branch's slope at random, which made ln|A_i| —
# and the FOCE-I objective — jump by tenths of a unit between nearby evaluations; the
# central secant is a continuous function of η. For smooth models its relative error is
# O(step²) ≈ 1e-4·(third/first derivative), far below the precision of the approximation.
_JSTEP = 1e-2
_LAM_UP = 100.0     # damping growth on a rejected step (fast retreat near a kink)


@dataclass(frozen=True)
class EBE:
    eta: np.ndarray         # (n, q)
    h: np.ndarray           # (n,) h_i at the mode
    data_m2ll: np.ndarray   # (n,) −2 ln p(y_i | η̂_i)
    A: np.ndarray           # (n, q, q)
    converged: np.ndarray   # (n,) bool
    iterations: int


def _points(eta, step=_JSTEP):
    """The stacked η points of :func:`_derivatives`: η, η ± s·e_i, η + s·(e_i + e_j), i < j."""
    q = eta.shape[-1]
    eye = np.eye(q)
    pairs = [(i, j) for i in range(q) for j in range(i + 1, q)]
    pts = [eta] + [eta + step * eye[i] for i in range(q)] + [eta - step * eye[i]
                                                             for i in range(q)]
    pts += [eta + step * (eye[i] + eye[j]) for i, j in pairs]
    return np.stack(pts), pairs


def _derivatives(pm, phi_pop, eta, sigma, step=_JSTEP):
    """Pseudo-residual Jacobian (n, M, q) by central differences, residuals (n, M), the
    finite-difference Hessian of −2 ln p(y|η) (n, q, q) and −2 ln p(y|η) itself (n,), from
    one stacked prediction. A smooth model with sensitivities (``pm.exact``) gives the
    exact J at η and the Gauss–Newton Hessian 2·JᵀJ from one sensitivity solve instead."""
    n, q = eta.shape
    if getattr(pm, "exact", False):
        # the model's sensitivities: exact J at η itself, Gauss–Newton Hessian 2·JᵀJ
        phi = pm.with_eta(phi_pop, eta)
        preds, dpreds = pm.predict_with_sensitivities(phi)
        r, J = pm.pseudo_jacobian(sigma, preds, dpreds)
        d = pm.data_m2ll(phi, sigma, preds)
        return J, r, 2.0 * np.einsum("nmq,nmk->nqk", J, J), d
    stack, pairs = _points(eta, step)
    phi = pm.with_eta(phi_pop, stack)
    preds = pm.predict(phi)
    r = pm.pseudo(phi[:2 * q + 1], sigma, [p[:2 * q + 1] for p in preds])
    d = pm.data_m2ll(phi, sigma, preds)
    J = np.moveaxis((r[1:q + 1] - r[q + 1:2 * q + 1]) / (2 * step), 0, -1)
    f0, fp, fm = d[0], d[1:q + 1], d[q + 1:2 * q + 1]
    H = np.zeros((n, q, q))
    with np.errstate(invalid="ignore"):   # inf − inf for a subject off the rails
        for i in range(q):
            H[:, i, i] = (fp[i] - 2 * f0 + fm[i]) / step**2
        for k, (i, j) in enumerate(pairs):
            H[:, i, j] = H[:, j, i] = (d[2 * q + 1 + k] - fp[i] - fp[j] + f0) / step**2
    return J, r[0], np.where(np.isfinite(H), H, 0.0), d[0]


def ebe(pm, phi_pop, omega, sigma, eta0=None, max_iter=100, tol=1e-7) -> EBE:
    """Conditional modes of η for all subjects (see module docstring).

    The derivatives are computed at each trial point in the same stacked prediction that
    evaluates it, so an accepted step (the usual case for Newton) costs one model call, of
    the subjects still searching only (:meth:`.structure.PopModel.take`: in the covariance
    step's searches of the sample SLE cohort, 1,488 of 2,736 subject predictions).
    """
    n, q = pm.n, pm.spec.q
    omega_inv = np.linalg.inv(omega)
    eta = np.zeros((n, q)) if eta0 is None else np.array(eta0, float)
    if q == 0:
        d = pm.data_m2ll(phi_pop, sigma)
        return EBE(eta, d, d, np.zeros((n, 0, 0)), np.ones(n, bool), 0)

    def evaluate(e):
        J, r, H, d = _derivatives(pm, phi_pop, e, sigma)
        return (J, r, H, d), d + np.einsum("ni,ij,nj->n", e, omega_inv, e)

    def evaluate_active(e, active, der, h):
        """evaluate(e) for the subjects still searching; the others keep ``der`` and ``h``
        (their step is 0 and never accepted: predicting them again changed nothing)."""
        rows = np.flatnonzero(active)
        if rows.size == n:
            return evaluate(e)
        if rows.size == 0:
            return der, h
        J, r, H, d = _derivatives(pm.take(rows), phi_pop[rows], e[rows], sigma)
        new = []
        for old, part in zip(der, (J, r, H, d)):
            full = old.copy()
            full[rows] = part
            new.append(full)
        h_new = h.copy()
        h_new[rows] = d + np.einsum("ni,ij,nj->n", e[rows], omega_inv, e[rows])
        return tuple(new), h_new

    der, h = evaluate(eta)
    bad = ~np.isfinite(h)
    if bad.any():   # a warm start that went astray: restart those subjects at η = 0
        eta[bad] = 0.0
        der, h = evaluate(eta)
    lam = np.full(n, 1e-3)
    active = np.isfinite(h)
    it = 0
    for it in range(1, max_iter + 1):
        J, r, H, _ = der
        g = np.einsum("nmq,nm->nq", J, r) + eta @ omega_inv
        A = np.einsum("nmq,nmk->nqk", J, J) + omega_inv
        # Newton with the finite-difference Hessian where it is positive definite (fast
        # local convergence); Gauss–Newton elsewhere
        AN = 0.5 * H + omega_inv
        pd = np.linalg.eigvalsh(AN)[:, 0] > 1e-8 * np.abs(np.einsum("nqq->n", AN))
        A = np.where(pd[:, None, None], AN, A)
        diag = np.einsum("nqq->nq", A)
        step = -np.linalg.solve(A + (lam[:, None] * diag)[:, :, None] * np.eye(q),
                                g[..., None])[..., 0]
        step = np.where(active[:, None], step, 0.0)
        trial = eta + step
        der_new, h_new = evaluate_active(trial, active, der, h)
        better = active & np.isfinite(h_new) & (h_new <= h + 1e-12 * np.abs(h))
        small = np.max(np.abs(step), axis=1) < tol
        # a step below tol ends a subject whether or not it lowered h: at the mode the
        # change in h is at rounding level and would otherwise only inflate λ
        done = small | (better & (h - h_new < 1e-13 * (1 + np.abs(h))))
        eta = np.where(better[:, None], trial, eta)
        h = np.where(better, h_new, h)
        der = tuple(np.where(better.reshape((n,) + (1,) * (a.ndim - 1)), b, a)
                    for a, b in zip(der, der_new))
        lam = np.where(better, np.maximum(lam / 5, 1e-9), lam * _LAM_UP)
        stuck = active & ~better & (lam > 1e8)
        active = active & ~done & ~stuck
        if not active.any():
            break
    J = der[0]
    A = np.einsum("nmq,nmk->nqk", J, J) + omega_inv
    converged = np.isfinite(h) & ~active
    return EBE(eta, h, der[3], A, converged, it)


def _candidates(omega, eta, n_sobol=128, grid=(-2.0, -1.2, -0.6, 0.6, 1.2, 2.0)):
    """Screening points for other modes, (K, n, q): 0, a fixed scrambled Sobol design
    from N(0, Ω), and the current modes with one coordinate moved to ±0.6…2 ω."""
    from scipy.stats import norm, qmc

    n, q = eta.shape
    z = norm.ppf(qmc.Sobol(q, scramble=True, seed=11).random(n_sobol).clip(1e-6, 1 - 1e-6))
    L = np.linalg.cholesky(omega)
    pts = [np.zeros((1, n, q)), np.broadcast_to((z @ L.T)[:, None, :], (n_sobol, n, q))]
    w = np.sqrt(np.diag(omega))
    for k in range(q):
        for g in grid:
            c = eta.copy()
            c[:, k] = g * w[k]
            pts.append(c[None])
    return np.concatenate(pts)


def _best(e, e2):
    """Per subject the EBE with the lower h."""
    take = e2.h < e.h
    pick = lambda a, b: np.where(take.reshape((-1,) + (1,) * (a.ndim - 1)), b, a)  # noqa: E731
    return EBE(pick(e.eta, e2.eta), pick(e.h, e2.h), pick(e.data_m2ll, e2.data_m2ll),
               pick(e.A, e2.A), pick(e.converged, e2.converged),
               e.iterations + e2.iterations)


def global_ebe(pm, phi_pop, omega, sigma, eta0=None, tol=1e-7, extra=None,
               starts=None) -> EBE:
    """EBEs that are the best of several local modes.

    The conditional posterior of a model with a switch time is multimodal: its −2 log
    density has a local minimum wherever the switch (stein2019's Tmax) falls on a sampling
    time, and a Newton search ends in whichever basin it starts in. Starting only from the
    previous modes made the FOCE-I objective depend on the path of the optimiser (on the
    simulated 100-subject stein2019 study, half of the subjects ended in a worse basin
    from η = 0, 200 units of −2LL in all). After the local search, h is screened at the
    points of :func:`_candidates` in one stacked prediction and every subject with a
    screening point below its mode is searched again from the best one; the lower mode
    is kept. ``extra`` (K, n, q) adds screening points, e.g. modes found at other x;
    ``starts`` (K, n, q) are further full local searches (random draws from the prior
    find basins that screening one point at a time misses).
    """
    e = ebe(pm, phi_pop, omega, sigma, eta0, tol=tol)
    if pm.spec.q == 0:
        return e
    for s0 in (starts if starts is not None else ()):
        e = _best(e, ebe(pm, phi_pop, omega, sigma, s0, tol=tol))
    # the modes of a smooth model do not sit on kinks: 16 screening draws, not 128
    cand = _candidates(omega, e.eta, n_sobol=16 if getattr(pm, "exact", False) else 128)
    if extra is not None and len(extra):
        cand = np.concatenate([cand, np.asarray(extra, float)])
    omega_inv = np.linalg.inv(omega)
    with np.errstate(all="ignore"):
        hc = pm.data_m2ll(pm.with_eta(phi_pop, cand), sigma) + np.einsum(
            "kni,ij,knj->kn", cand, omega_inv, cand)
    hc = np.where(np.isfinite(hc), hc, np.inf)
    best = np.argmin(hc, axis=0)
    better = hc[best, np.arange(pm.n)] < e.h - 1e-6
    if not better.any():
        return e
    start = np.where(better[:, None], cand[best, np.arange(pm.n)], e.eta)
    return _best(e, ebe(pm, phi_pop, omega, sigma, start, tol=tol))


def foce_terms(pm, phi_pop, omega, sigma, eta0=None, tol=1e-7, search=True, extra=None,
               starts=None):
    """FOCE-I −2·ln L_i per subject and the EBEs.

    Laplace approximation with the Gauss–Newton Hessian (FOCE with interaction: the
    residual SD is evaluated at the individual prediction):

        −2 ln L_i ≈ h_i(η̂_i) + ln|Ω| + ln|A_i|,   A_i = J_iᵀJ_i + Ω⁻¹.

    For a model linear in η with additive normal error this is the exact marginal
    likelihood (ln|Ω| + ln|A_i| = ln|R_i + Z_i Ω Z_iᵀ| − ln|R_i|).
    """
    e = global_ebe(pm, phi_pop, omega, sigma, eta0, tol, extra, starts) if search else \
        ebe(pm, phi_pop, omega, sigma, eta0, tol=tol)
    sign, logdet_o = np.linalg.slogdet(omega)
    if e.A.shape[1]:
        s, logdet_a = np.linalg.slogdet(e.A)
        logdet_a = np.where(s > 0, logdet_a, np.inf)
    else:
        logdet_a = np.zeros(pm.n)
    terms = e.h + (logdet_o if sign > 0 else np.inf) + logdet_a
    return np.where(np.isfinite(terms), terms, np.inf), e
