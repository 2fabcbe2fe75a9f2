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
    x = np.array(x0, float)
    ridx = spec.random_index
    designs, eff_of = _designs(pm)
    num_idx = _numeric_indices(pm)
    lo, hi = spec.bounds()
    theta, beta, omega, sigma = spec.split(x)
    mu = pm.phi_pop(theta, beta)
    chains = _Chains(pm, rng, mu[:, ridx].copy(), mu, sigma)
    S1 = chains.phi.copy()
    S2 = chains.phi.T @ chains.phi
    total = int(burn_in) + int(smoothing)
    history = np.zeros((total, x.size))
    kept = []
    for k in range(1, total + 1):
        gamma = 1.0 if k <= burn_in else 1.0 / (k - burn_in)
        phi = chains.step(mu, omega, sigma)                          # simulation
        S1 = S1 + gamma * (phi - S1)                                 # stochastic approx.
        S2 = S2 + gamma * (phi.T @ phi - S2)
        _m_step(pm, x, S1, S2, designs, eff_of, omega, anneal=k <= burn_in // 2)
        if k > burn_in:
            kept.append(phi.copy())
        if num_idx.size:
            x_num = _numeric_step(pm, x, num_idx, phi[None], ridx, lo, hi, 2)
            x[num_idx] = x[num_idx] + gamma * (x_num - x[num_idx])
        theta, beta, omega, sigma = spec.split(x)
        mu = pm.phi_pop(theta, beta)
        chains.reset_likelihood(mu, sigma)
        history[k - 1] = x
        if progress is not None and (k % 25 == 0 or k == total):
            phase = "burn-in" if k <= burn_in else "smoothing"
            progress(f"SAEM iteration {k}/{total} ({phase}): "
                     f"-2 ln p(y|phi) = {-2 * chains.ll.sum():.3f}")
    if num_idx.size and kept:
        x[num_idx] = _numeric_step(pm, x, num_idx, np.stack(kept), ridx, lo, hi, 50)
        history[-1] = x
    acc = {key: float(np.mean(v[-20:])) if v else np.nan for key, v in chains.acc.items()}
    return SaemResult(x, history, chains.phi, acc, total)


def _designs(pm):
    """Per random parameter: its design (intercept + its covariate effects) and the indices
    of those effects."""
    designs, eff_of = [], []
    for j in pm.spec.random_index:
        cols = [k for k, c in enumerate(pm.effect_cols) if c == j]
        eff_of.append(cols)
        designs.append(np.column_stack([np.ones(pm.n)] + [pm.covariate_matrix[:, k]
                                                          for k in cols]))
    return designs, eff_of


def _numeric_indices(pm):
    """Entries of x updated numerically: θ without η, their β, ln σ."""
    spec = pm.spec
    _, s_b, _, s_s = spec.slices
    random_set = set(spec.random_index.tolist())
    idx = [j for j in range(spec.p) if j not in random_set]
    idx += [s_b.start + k for k, c in enumerate(pm.effect_cols) if c not in random_set]
    idx += list(range(s_s.start, s_s.stop))
    return np.array(idx, int)


class _Chains:
    """The individual parameters of the random effects, moved by Metropolis–Hastings kernels
    (module docstring, step 1), with the adaptive scales and acceptance rates."""

    def __init__(self, pm, rng, phi, mu, sigma):
        self.pm, self.rng, self.phi = pm, rng, phi
        self.ridx = pm.spec.random_index
        self.scale_joint, self.scale_comp = 1.0, np.full(pm.spec.q, 1.0)
        self.acc = {"prior": [], "joint": [], "component": []}
        self.reset_likelihood(mu, sigma)

    def loglik(self, mu, phi_r, sigma):
        full = mu.copy()
        full[..., self.ridx] = phi_r
        return -0.5 * self.pm.data_m2ll(full, sigma)

    def reset_likelihood(self, mu, sigma):
        self.ll = self.loglik(mu, self.phi, sigma)

    def _accept(self, cand, ll_c, log_ratio):
        ok = np.log(self.rng.random(self.pm.n)) < log_ratio
        self.phi[ok], self.ll[ok] = cand[ok], ll_c[ok]
        return ok

    def step(self, mu, omega, sigma):
        n, q, rng = self.pm.n, self.pm.spec.q, self.rng
        mu_r = mu[:, self.ridx]
        om_inv = np.linalg.inv(omega)
        L = np.linalg.cholesky(omega)

        def prior(phi_r):
            d = phi_r - mu_r
            return -0.5 * np.einsum("ni,ij,nj->n", d, om_inv, d)

        for _ in range(2):      # independence sampler from the prior
            cand = mu_r + rng.standard_normal((n, q)) @ L.T
            ll_c = self.loglik(mu, cand, sigma)
            self.acc["prior"].append(self._accept(cand, ll_c, ll_c - self.ll).mean())
        for _ in range(2):      # joint random walk
            cand = self.phi + self.scale_joint * rng.standard_normal((n, q)) @ L.T
            ll_c = self.loglik(mu, cand, sigma)
            ok = self._accept(cand, ll_c, ll_c + prior(cand) - self.ll - prior(self.phi))
            self.scale_joint *= 1 + 0.4 * (ok.mean() - _TARGET)
            self.acc["joint"].append(ok.mean())
        for c in range(q):      # component-wise random walk
            cand = self.phi.copy()
            cand[:, c] += self.scale_comp[c] * np.sqrt(omega[c, c]) * rng.standard_normal(n)
            ll_c = self.loglik(mu, cand, sigma)
            ok = self._accept(cand, ll_c, ll_c + prior(cand) - self.ll - prior(self.phi))
            self.scale_comp[c] *= 1 + 0.4 * (ok.mean() - _TARGET)
            self.acc["component"].append(ok.mean())
        return self.phi


def _m_step(pm, x, S1, S2, designs, eff_of, omega, anneal):
    """Closed-form M-step (module docstring, step 3), in place on ``x``: typical values and
    covariate effects of the random-effect parameters, and Ω."""
    spec = pm.spec
    n, q = pm.n, spec.q
    _, s_b, s_o, _ = spec.slices
    lo, hi = spec.bounds()
    M = np.zeros((n, q))
    for c, (j, X) in enumerate(zip(spec.random_index, designs)):
        coef = np.linalg.lstsq(X, S1[:, c], rcond=None)[0]
        x[j] = np.clip(coef[0], lo[j], hi[j])
        for m, kk in enumerate(eff_of[c]):
            x[s_b.start + kk] = coef[m + 1]
        M[:, c] = X @ np.concatenate([[x[j]], coef[1:]])
    new_omega = (S2 - M.T @ S1 - S1.T @ M + M.T @ M) / n
    new_omega = spec.structure.project(0.5 * (new_omega + new_omega.T))
    if anneal:
        new_omega = spec.structure.anneal(new_omega, omega)
    d = np.diag_indices(q)
    new_omega[d] = np.maximum(new_omega[d], spec.structure.variance_floor(q))
    try:
        x[s_o] = spec.omega_part(new_omega)
    except np.linalg.LinAlgError:
        pass


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
            if len(cache) >= 8:   # a few points: the base and its difference steps
                cache.pop(next(iter(cache)))
            cache[key] = (full, pm.predict(full))
        full, preds = cache[key]
        v = float(np.sum(pm.data_m2ll(full, sigma, preds))) / chains.shape[0]
        return v if np.isfinite(v) else 1e12

    res = minimize(f, x[idx], method="L-BFGS-B", bounds=list(zip(lo[idx], hi[idx])),
                   options=dict(maxiter=int(max_iter)))
    return res.x
