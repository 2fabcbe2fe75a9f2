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
one stacked model call (J by central differences of the residuals, or, for a smooth model
with sensitivities, exact from one sensitivity solve per stacked point) — so a gradient costs no inner optimisation at all, and it stays
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


def _stats(pm, phi, preds, sigma, q):
    """For B blocks of 2q+1 J-points (η, η ± s·e_i) stacked as (B·(2q+1), n, p): D at each
    centre (B, n), r there (B, n, M) and J (B, n, M, q), in one pass over the stack."""
    jpts = 2 * q + 1
    B = phi.shape[0] // jpts
    r = pm.pseudo(phi, sigma, preds)
    r = r.reshape((B, jpts) + r.shape[1:])
    centres = np.arange(B) * jpts
    d0 = pm.data_m2ll(phi[centres], sigma, [p[centres] for p in preds])
    J = np.moveaxis((r[:, 1:q + 1] - r[:, q + 1:]) / (2 * _JSTEP), 1, -1)
    return d0, r[:, 0], J


def _stats_exact(pm, phi, preds, dpreds, sigma):
    """The same as :func:`_stats` for a smooth model with sensitivities: every stacked φ is
    a centre; J exact from the sensitivities."""
    r, J = pm.pseudo_jacobian(sigma, preds, dpreds)
    return pm.data_m2ll(phi, sigma, preds), r, J


def _logdet(J, omega_inv):
    s, ld = np.linalg.slogdet(np.einsum("...mq,...mk->...qk", J, J) + omega_inv)
    return np.where(s > 0, ld, np.inf)


def foce_gradient(pm, x, eta_hat, x_step=_XSTEP, phi_step=_PHISTEP, mode_slopes=False):
    """dF/dx at ``x`` given the converged modes ``eta_hat`` (n, q) (module docstring);
    with ``mode_slopes`` also dφ̂/dx (n, q, P), the modes' first-order response to x.

    Only blocks whose individual parameters differ from the base point are predicted (a
    change of θ or β of a random-effect parameter, or of Ω, leaves φ fixed; σ changes only
    the residual terms), so for a model with random effects on every parameter one
    gradient costs 1 + 2q blocks of 2q + 1 predictions per subject.
    """
    spec = pm.spec
    n, q = eta_hat.shape
    P = x.size
    ridx = spec.random_index
    theta, beta, omega, sigma = spec.split(x)
    phi_r = pm.phi_pop(theta, beta)[:, ridx] + eta_hat       # fixed individual φ
    exact = getattr(pm, "exact", False)
    offsets = np.zeros((1, n, q)) if exact else _points(np.zeros((n, q)))[0][:2 * q + 1]
    xs = [x] + [x + x_step * e for e in np.eye(P)] + [x - x_step * e for e in np.eye(P)]
    parts = [spec.split(xk) for xk in xs]
    fulls = []
    for th, be, _, _ in parts:
        full = pm.phi_pop(th, be)
        full[:, ridx] = phi_r
        fulls.append(full)
    # blocks to predict: the base, x-blocks that move φ, and the φ-shifted blocks
    own = [k for k in range(1, len(xs)) if not np.array_equal(fulls[k], fulls[0])]
    shifted = []
    for k in range(q):
        for sgn in (1.0, -1.0):
            f = fulls[0].copy()
            f[:, ridx[k]] += sgn * phi_step
            shifted.append(f)
    centres = [fulls[0]] + [fulls[k] for k in own] + shifted
    phi = np.concatenate([pm.with_eta(c, offsets) for c in centres])
    if exact:   # one sensitivity solve per centre instead of 2q + 1 predictions
        preds, dpreds = pm.predict_with_sensitivities(phi)
        d0, r0, J = _stats_exact(pm, phi, preds, dpreds, sigma)
    else:
        preds = pm.predict(phi)
        d0, r0, J = _stats(pm, phi, preds, sigma, q)
    jpts = offsets.shape[0]
    slot = {0: 0, **{k: i + 1 for i, k in enumerate(own)}}
    om_inv0 = np.linalg.inv(omega)
    ld_phi = _logdet(J[1 + len(own):], om_inv0).reshape(q, 2, n)
    Q, gphi = [], []
    for k, (th, be, om, sg) in enumerate(parts):
        b = slot.get(k, 0)
        dk, rk, Jk = d0[b], r0[b], J[b]
        if not np.array_equal(sg, sigma):     # residual SD moved: same predictions
            sl = slice(b * jpts, (b + 1) * jpts)
            stats = (_stats_exact(pm, phi[sl], [p[sl] for p in preds],
                                  [p[sl] for p in dpreds], sg) if exact else
                     _stats(pm, phi[sl], [p[sl] for p in preds], sg, q))
            dk, rk, Jk = (v[0] for v in stats)
        om_inv = np.linalg.inv(om)
        dev = phi_r - pm.phi_pop(th, be)[:, ridx]
        prior = np.einsum("ni,ij,nj->n", dev, om_inv, dev)
        Q.append(dk + prior + _logdet(Jk, om_inv) + np.linalg.slogdet(om)[1])
        gphi.append(2 * np.einsum("nmq,nm->nq", Jk, rk) + 2 * dev @ om_inv)
    A0 = np.einsum("nmq,nmk->nqk", J[0], J[0]) + om_inv0
    Q, gphi = np.array(Q), np.array(gphi)    # (1+2P, n), (1+2P, n, q)
    dQ = (Q[1:P + 1] - Q[P + 1:]) / (2 * x_step)                     # (P, n)
    G = np.moveaxis((gphi[1:P + 1] - gphi[P + 1:]) / (2 * x_step), 0, -1)  # (n, q, P)
    dl = ((ld_phi[:, 0] - ld_phi[:, 1]) / (2 * phi_step)).T          # (n, q)
    # the full Hessian of h (finite differences of D) where positive definite, else 2·A
    om_inv = om_inv0
    if exact:   # central differences of the exact ∂D/∂φ = 2·Jᵀr over the φ-shifted blocks
        first = 1 + len(own)
        gD = 2 * np.einsum("bnmq,bnm->bnq", J[first:], r0[first:]).reshape(q, 2, n, q)
        HD = np.moveaxis((gD[:, 0] - gD[:, 1]) / (2 * phi_step), 0, -1)   # (n, q, q)
        HD = 0.5 * (HD + np.swapaxes(HD, 1, 2))
    else:
        HD = _derivatives(pm, pm.phi_pop(theta, beta), eta_hat, sigma)[2]
    Hh = HD + 2 * om_inv
    pd = np.linalg.eigvalsh(Hh)[:, 0] > 1e-8 * np.abs(np.einsum("nqq->n", Hh))
    Hh = np.where(pd[:, None, None], Hh, 2 * A0)
    dphi = -np.linalg.solve(Hh, G)                                   # (n, q, P)
    with np.errstate(invalid="ignore"):
        g = dQ.sum(axis=1) + np.einsum("nq,nqp->p", dl, dphi)
    g = np.where(np.isfinite(g), g, 0.0)
    return (g, np.where(np.isfinite(dphi), dphi, 0.0)) if mode_slopes else g


__all__ = ["foce_gradient"]
