"""Gradient of the FOCE-I objective without re-solving the EBEs (envelope theorem).

With μ-referencing the random-effect parameters are φ_i = μ_i(θ, β) + η_i, and the
objective (:func:`.inner.foce_terms`) is, per subject,

    Q_i(φ, x) = D_i(φ; θ_s, σ) + (φ − μ_i)ᵀ Ω⁻¹ (φ − μ_i) + ln|A_i(φ, x)| + ln|Ω|,
    A_i = J_iᵀ J_i + Ω⁻¹,          F(x) = Σ_i Q_i(φ̂_i(x), x),

with D_i = −2 ln p(y_i | φ), θ_s the typical values without a random effect, J_i the
pseudo-residual Jacobian with respect to φ and φ̂_i(x) the conditional mode, which
minimises h_i = D_i + (φ − μ_i)ᵀΩ⁻¹(φ − μ_i). Because ∂h_i/∂φ = 0 at the mode,

    dF/dx = Σ_i [ ∂Q_i/∂x |_φ̂  +  (∂ ln|A_i|/∂φ)ᵀ dφ̂_i/dx ],
    dφ̂_i/dx = −(∂²h_i/∂φ²)⁻¹ ∂²h_i/∂φ∂x   (implicit function theorem),

where ∂²h/∂φ² is the finite-difference Hessian (2·A_i, Gauss–Newton, where that is not
positive definite) and ∂h/∂φ = 2 J_iᵀ r_i + 2 Ω⁻¹(φ − μ_i).
Every term is evaluated at the fixed modes φ̂ — central differences in x and in φ, all in
one stacked model call — so a gradient costs no inner optimisation at all, and it stays
right for modes sitting on a kink of the model (a switch time on a sampling time): there
the typical values of the random-effect parameters enter only the Gaussian prior at fixed
φ, whose derivative is exact, whereas a finite difference of F through re-solved modes
would pick up the kink's one-sided slopes and the inner solver's stopping point.
"""
from __future__ import annotations

import numpy as np

from ctkinetics.estimation.population.inner import _JSTEP, _derivatives, _points

_XSTEP = 1e-4      # central step in x (estimation scale) at fixed φ
_PHISTEP = 1e-3    # central step in φ for ∂ ln|A|/∂φ (below the secant width _JSTEP)


def _block_stats(pm, phi_blk, preds_blk, sigma, omega_inv, q):
    """From one block of 2q+1 J-points (η, η ± s·e_i): D at the centre, r, J, ln|A|."""
    r = pm.pseudo(phi_blk, sigma, preds_blk)
    d0 = pm.data_m2ll(phi_blk[:1], sigma, [p[:1] for p in preds_blk])[0]
    J = np.moveaxis((r[1:q + 1] - r[q + 1:2 * q + 1]) / (2 * _JSTEP), 0, -1)
    A = np.einsum("nmq,nmk->nqk", J, J) + omega_inv
    s, ld = np.linalg.slogdet(A)
    return d0, r[0], J, A, np.where(s > 0, ld, np.inf)


def foce_gradient(pm, x, eta_hat, x_step=_XSTEP, phi_step=_PHISTEP):
    """dF/dx at ``x`` given the converged modes ``eta_hat`` (n, q) (module docstring)."""
    spec = pm.spec
    n, q = eta_hat.shape
    P = x.size
    ridx = spec.random_index
    theta, beta, omega, sigma = spec.split(x)
    phi_r = pm.phi_pop(theta, beta)[:, ridx] + eta_hat       # fixed individual φ
    jpts = 2 * q + 1
    # ---- x perturbations at fixed φ, and φ perturbations at x ---------------------------
    xs = [x] + [x + x_step * e for e in np.eye(P)] + [x - x_step * e for e in np.eye(P)]
    blocks = []                              # (full φ stack (jpts, n, p), x) per block
    for xk in xs:
        th, be, _, _ = spec.split(xk)
        full = pm.phi_pop(th, be)
        full[:, ridx] = phi_r
        blocks.append(pm.with_eta(full, _points(np.zeros((n, q)))[0][:jpts]))
    eye = np.eye(q)
    full0 = blocks[0][0]
    for k in range(q):
        for sgn in (1.0, -1.0):
            shifted = full0.copy()
            shifted[:, ridx] += sgn * phi_step * eye[k]
            blocks.append(pm.with_eta(shifted, _points(np.zeros((n, q)))[0][:jpts]))
    stack = np.concatenate(blocks)           # (B·jpts, n, p)
    preds = pm.predict(stack)
    Q, gphi, A0, ld_phi = [], [], None, []
    for b in range(len(blocks)):
        sl = slice(b * jpts, (b + 1) * jpts)
        xk = xs[b] if b < len(xs) else x
        th, be, om, sg = spec.split(xk)
        om_inv = np.linalg.inv(om)
        d0, r0, J, A, ld = _block_stats(pm, stack[sl], [p[sl] for p in preds], sg, om_inv, q)
        if b < len(xs):
            dev = phi_r - pm.phi_pop(th, be)[:, ridx]
            prior = np.einsum("ni,ij,nj->n", dev, om_inv, dev)
            Q.append(d0 + prior + ld + np.linalg.slogdet(om)[1])
            gphi.append(2 * np.einsum("nmq,nm->nq", J, r0) + 2 * dev @ om_inv)
            if b == 0:
                A0 = A
        else:
            ld_phi.append(ld)
    Q, gphi = np.array(Q), np.array(gphi)    # (1+2P, n), (1+2P, n, q)
    dQ = (Q[1:P + 1] - Q[P + 1:]) / (2 * x_step)                     # (P, n)
    G = np.moveaxis((gphi[1:P + 1] - gphi[P + 1:]) / (2 * x_step), 0, -1)  # (n, q, P)
    ld_phi = np.array(ld_phi).reshape(q, 2, n)
    dl = ((ld_phi[:, 0] - ld_phi[:, 1]) / (2 * phi_step)).T          # (n, q)
    # the full Hessian of h (finite differences of D) where positive definite, else 2·A
    om_inv = np.linalg.inv(omega)
    HD = _derivatives(pm, pm.phi_pop(theta, beta), eta_hat, sigma)[2]
    Hh = HD + 2 * om_inv
    pd = np.linalg.eigvalsh(Hh)[:, 0] > 1e-8 * np.abs(np.einsum("nqq->n", Hh))
    Hh = np.where(pd[:, None, None], Hh, 2 * A0)
    dphi = -np.linalg.solve(Hh, G)                                   # (n, q, P)
    with np.errstate(invalid="ignore"):
        g = dQ.sum(axis=1) + np.einsum("nq,nqp->p", dl, dphi)
    return np.where(np.isfinite(g), g, 0.0)


__all__ = ["foce_gradient"]
