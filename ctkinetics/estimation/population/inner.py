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
stops on its own. The Jacobian comes from forward differences, all q perturbations of all
n subjects predicted in one vectorised call of the model.

At the mode, A_i = J_iᵀJ_i + Ω⁻¹ is half the Gauss–Newton Hessian of
h_i — the matrix FOCE-I uses in its Laplace approximation, and the EBE's approximate
precision (its inverse is the conditional covariance of η_i).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FWD = 1e-6


@dataclass(frozen=True)
class EBE:
    eta: np.ndarray         # (n, q)
    h: np.ndarray           # (n,) h_i at the mode
    data_m2ll: np.ndarray   # (n,) −2 ln p(y_i | η̂_i)
    A: np.ndarray           # (n, q, q)
    converged: np.ndarray   # (n,) bool
    iterations: int


def _derivatives(pm, phi_pop, eta, sigma, step=_FWD, hstep=1e-4):
    """Pseudo-residual Jacobian (n, M, q), residuals (n, M), the forward second-difference
    Hessian of −2 ln p(y|η) (n, q, q) and −2 ln p(y|η) itself (n,), from one stacked
    prediction."""
    n, q = eta.shape
    eye = np.eye(q)
    pts = [eta] + [eta + step * eye[i] for i in range(q)] + [eta + hstep * eye[i]
                                                             for i in range(q)]
    pairs = [(i, j) for i in range(q) for j in range(i, q)]
    pts += [eta + hstep * (eye[i] + eye[j]) for i, j in pairs]
    stack = np.stack(pts)
    phi = pm.with_eta(phi_pop, stack)
    preds = pm.predict(phi)
    r = pm.pseudo(phi[:q + 1], sigma, [p[:q + 1] for p in preds])
    d = pm.data_m2ll(phi, sigma, preds)
    J = np.moveaxis((r[1:] - r[0]) / step, 0, -1)
    f0, fi = d[0], d[q + 1:2 * q + 1]
    H = np.zeros((n, q, q))
    for k, (i, j) in enumerate(pairs):
        with np.errstate(invalid="ignore"):   # inf − inf for a subject off the rails
            H[:, i, j] = H[:, j, i] = (d[2 * q + 1 + k] - fi[i] - fi[j] + f0) / hstep**2
    return J, r[0], np.where(np.isfinite(H), H, 0.0), d[0]


def ebe(pm, phi_pop, omega, sigma, eta0=None, max_iter=100, tol=1e-7) -> EBE:
    """Conditional modes of η for all subjects (see module docstring).

    The derivatives are computed at each trial point in the same stacked prediction that
    evaluates it, so an accepted step (the usual case for Newton) costs one model call.
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
        der_new, h_new = evaluate(trial)
        better = active & np.isfinite(h_new) & (h_new <= h + 1e-12 * np.abs(h))
        small = np.max(np.abs(step), axis=1) < tol
        # a step below tol ends a subject whether or not it lowered h: at the mode the
        # change in h is at rounding level and would otherwise only inflate λ
        done = small | (better & (h - h_new < 1e-13 * (1 + np.abs(h))))
        eta = np.where(better[:, None], trial, eta)
        h = np.where(better, h_new, h)
        der = tuple(np.where(better.reshape((n,) + (1,) * (a.ndim - 1)), b, a)
                    for a, b in zip(der, der_new))
        lam = np.where(better, np.maximum(lam / 5, 1e-9), lam * 10)
        stuck = active & ~better & (lam > 1e8)
        active = active & ~done & ~stuck
        if not active.any():
            break
    J = der[0]
    A = np.einsum("nmq,nmk->nqk", J, J) + omega_inv
    converged = np.isfinite(h) & ~active
    return EBE(eta, h, der[3], A, converged, it)


def foce_terms(pm, phi_pop, omega, sigma, eta0=None, tol=1e-7):
    """FOCE-I −2·ln L_i per subject and the EBEs.

    Laplace approximation with the Gauss–Newton Hessian (FOCE with interaction: the
    residual SD is evaluated at the individual prediction):

        −2 ln L_i ≈ h_i(η̂_i) + ln|Ω| + ln|A_i|,   A_i = J_iᵀJ_i + Ω⁻¹.

    For a model linear in η with additive normal error this is the exact marginal
    likelihood (ln|Ω| + ln|A_i| = ln|R_i + Z_i Ω Z_iᵀ| − ln|R_i|).
    """
    e = ebe(pm, phi_pop, omega, sigma, eta0, tol=tol)
    sign, logdet_o = np.linalg.slogdet(omega)
    if e.A.shape[1]:
        s, logdet_a = np.linalg.slogdet(e.A)
        logdet_a = np.where(s > 0, logdet_a, np.inf)
    else:
        logdet_a = np.zeros(pm.n)
    terms = e.h + (logdet_o if sign > 0 else np.inf) + logdet_a
    return np.where(np.isfinite(terms), terms, np.inf), e
