"""SAEM: stochastic approximation expectation-maximisation (Kuhn & Lavielle 2005, CSDA
49:1020; the algorithm of Monolix and nlmixr2's ``saem``).

Each iteration k

1. *simulation*: every subject's individual parameters of the random-effect parameters,
   φ_i = μ_i + η_i (μ_i = θ + β·g(covariates)), move by Metropolis–Hastings kernels targeting
   p(φ_i | y_i; current estimates): two independence draws from the prior N(μ_i, Ω), two
   joint random walks with proposal covariance s²·Ω and one random walk per component,
   the scales s adapted towards an acceptance rate of 0.4; all subjects in one vectorised
   model call per kernel;
2. *stochastic approximation* of the sufficient statistics S₁ = φ (n, q) and
   S₂ = Σ_i φ_iφ_iᵀ with step γ_k (1 during the ``burn_in`` iterations, then 1/(k − burn_in));
3. *maximisation*: the typical values and covariate effects of parameters with random
   effects by least squares of S₁ on each parameter's covariate design, and
   Ω = (S₂ − MᵀS₁ − S₁ᵀM + MᵀM)/n with M the fitted means (its diagonal unless a block is
   requested). During the first half of the burn-in Ω may shrink by at most 5 % per
   iteration (Monolix's simulated annealing) so that the chains keep exploring.
   The parameters without a closed-form update — typical values without a random effect,
   their covariate effects and the residual SDs (M3 censoring has no sufficient statistic)
   — are updated by two quasi-Newton steps on Σ_i −2 ln p(y_i | φ_i) given the current
   chains, followed by the same stochastic-approximation step on the parameters. Because
   γ_k = 1/(k − burn_in) weighs every smoothing-phase draw equally, SAEM's own M-step for
   them at the end is the argmin of the average over all stored smoothing-phase chains:
   that exact step is made once, after the last iteration.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

_TARGET = 0.4


@dataclass(frozen=True)
class SaemResult:
    x: np.ndarray
    history: np.ndarray       # (iterations, size of x)
    phi: np.ndarray           # final chains (n, q)
    acceptance: dict
    iterations: int


def fit_saem(pm, x0, burn_in=150, smoothing=100, seed=0, progress=None) -> SaemResult:
    """Run SAEM from ``x0`` (see module docstring); returns the final vector ``x``."""
    rng = np.random.default_rng(seed)
    spec = pm.spec
    n, q, p = pm.n, spec.q, spec.p
    s_t, s_b, s_o, s_s = spec.slices
    x = np.array(x0, float)
    ridx = spec.random_index
    random_set = set(ridx.tolist())
    # design per random parameter: intercept + its covariate effects
    designs, eff_of = [], []
    for j in ridx:
        cols = [k for k, c in enumerate(pm.effect_cols) if c == j]
        eff_of.append(cols)
        designs.append(np.column_stack([np.ones(n)] + [pm.covariate_matrix[:, k]
                                                       for k in cols]))
    # free entries of x updated numerically: θ without η, their β, ln σ
    num_idx = [j for j in range(p) if j not in random_set]
    num_idx += [s_b.start + k for k, c in enumerate(pm.effect_cols) if c not in random_set]
    num_idx += list(range(s_s.start, s_s.stop))
    num_idx = np.array(num_idx, int)
    lo, hi = spec.bounds()

    theta, beta, omega, sigma = spec.split(x)
    mu = pm.phi_pop(theta, beta)
    phi = mu[:, ridx].copy()

    def full_phi(mu_, phi_r):
        out = mu_.copy()
        out[..., ridx] = phi_r
        return out

    def loglik(mu_, phi_r, sig):
        return -0.5 * pm.data_m2ll(full_phi(mu_, phi_r), sig)

    def prior(phi_r, mu_r, om_inv):
        d = phi_r - mu_r
        return -0.5 * np.einsum("ni,ij,nj->n", d, om_inv, d)

    ll = loglik(mu, phi, sigma)
    scale_joint, scale_comp = 1.0, np.full(q, 1.0)
    acc_stats = {"prior": [], "joint": [], "component": []}
    S1 = phi.copy()
    S2 = phi.T @ phi
    total = int(burn_in) + int(smoothing)
    history = np.zeros((total, x.size))
    kept = []
    for k in range(1, total + 1):
        gamma = 1.0 if k <= burn_in else 1.0 / (k - burn_in)
        mu_r = mu[:, ridx]
        om_inv = np.linalg.inv(omega)
        L = np.linalg.cholesky(omega)
        # ---- simulation: MH kernels -------------------------------------------------------
        for _ in range(2):      # independence sampler from the prior
            cand = mu_r + rng.standard_normal((n, q)) @ L.T
            ll_c = loglik(mu, cand, sigma)
            ok = np.log(rng.random(n)) < ll_c - ll
            phi[ok], ll[ok] = cand[ok], ll_c[ok]
            acc_stats["prior"].append(ok.mean())
        for _ in range(2):      # joint random walk
            cand = phi + scale_joint * rng.standard_normal((n, q)) @ L.T
            ll_c = loglik(mu, cand, sigma)
            ok = np.log(rng.random(n)) < (ll_c + prior(cand, mu_r, om_inv)
                                          - ll - prior(phi, mu_r, om_inv))
            phi[ok], ll[ok] = cand[ok], ll_c[ok]
            scale_joint *= 1 + 0.4 * (ok.mean() - _TARGET)
            acc_stats["joint"].append(ok.mean())
        for c in range(q):      # component-wise random walk
            cand = phi.copy()
            cand[:, c] += scale_comp[c] * np.sqrt(omega[c, c]) * rng.standard_normal(n)
            ll_c = loglik(mu, cand, sigma)
            ok = np.log(rng.random(n)) < (ll_c + prior(cand, mu_r, om_inv)
                                          - ll - prior(phi, mu_r, om_inv))
            phi[ok], ll[ok] = cand[ok], ll_c[ok]
            scale_comp[c] *= 1 + 0.4 * (ok.mean() - _TARGET)
            acc_stats["component"].append(ok.mean())
        # ---- stochastic approximation --------------------------------------------------------
        S1 = S1 + gamma * (phi - S1)
        S2 = S2 + gamma * (phi.T @ phi - S2)
        # ---- maximisation --------------------------------------------------------------------
        M = np.zeros((n, q))
        for c, (j, X) in enumerate(zip(ridx, designs)):
            coef = np.linalg.lstsq(X, S1[:, c], rcond=None)[0]
            x[j] = np.clip(coef[0], lo[j], hi[j])
            for m, kk in enumerate(eff_of[c]):
                x[s_b.start + kk] = coef[m + 1]
            M[:, c] = X @ np.concatenate([[x[j]], coef[1:]])
        new_omega = (S2 - M.T @ S1 - S1.T @ M + M.T @ M) / n
        new_omega = 0.5 * (new_omega + new_omega.T)
        new_omega = spec.structure.project(new_omega)
        if k <= burn_in // 2:
            new_omega = spec.structure.anneal(new_omega, omega)
        floor = spec.structure.variance_floor(q)
        d = np.diag_indices(q)
        new_omega[d] = np.maximum(new_omega[d], floor)
        try:
            x[s_o] = spec.omega_part(new_omega)
        except np.linalg.LinAlgError:
            pass
        if k > burn_in:
            kept.append(phi.copy())
        if num_idx.size:
            x_num = _numeric_step(pm, x, num_idx, phi[None], ridx, lo, hi, 2)
            x[num_idx] = x[num_idx] + gamma * (x_num - x[num_idx])
        theta, beta, omega, sigma = spec.split(x)
        mu = pm.phi_pop(theta, beta)
        ll = loglik(mu, phi, sigma)
        history[k - 1] = x
        if progress is not None and (k % 25 == 0 or k == total):
            phase = "burn-in" if k <= burn_in else "smoothing"
            progress(f"SAEM iteration {k}/{total} ({phase}): "
                     f"-2 ln p(y|phi) = {-2 * ll.sum():.3f}")
    if num_idx.size and kept:
        x[num_idx] = _numeric_step(pm, x, num_idx, np.stack(kept), ridx, lo, hi, 50)
        history[-1] = x
    acc = {key: float(np.mean(v[-20:])) if v else np.nan for key, v in acc_stats.items()}
    return SaemResult(x, history, phi, acc, total)


def _numeric_step(pm, x, idx, chains, ridx, lo, hi, max_iter):
    """argmin over x[idx] of the mean over ``chains`` (K, n, q) of Σ_i −2 ln p(y_i | φ_i)."""
    spec = pm.spec
    cache = {}   # predictions by the entries of x that move them: σ alone does not

    def f(z):
        xx = x.copy()
        xx[idx] = z
        theta, beta, _, sigma = spec.split(xx)
        key = np.concatenate([theta, beta]).tobytes()
        if key not in cache:
            full = np.repeat(pm.phi_pop(theta, beta)[None], chains.shape[0], axis=0)
            full[..., ridx] = chains
            cache.clear()
            cache[key] = (full, pm.predict(full))
        full, preds = cache[key]
        v = float(np.sum(pm.data_m2ll(full, sigma, preds))) / chains.shape[0]
        return v if np.isfinite(v) else 1e12

    res = minimize(f, x[idx], method="L-BFGS-B", bounds=list(zip(lo[idx], hi[idx])),
                   options=dict(maxiter=int(max_iter)))
    return res.x
