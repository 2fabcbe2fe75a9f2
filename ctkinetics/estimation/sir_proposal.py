"""The proposal distributions of SIR (:mod:`ctkinetics.estimation.sir`).

Iteration 1 draws from a multivariate normal on the estimation scale (the covariance step's
matrix). Each later iteration fits its proposal to the previous iteration's resamples, as
PsN ``sir`` does by default (``-boxcox``, ``-cap_correlation=0.8``):

- every parameter is power-transformed towards normality: u = (x − c)/s (c the resamples'
  median, s their SD), then the Yeo–Johnson transformation (Yeo & Johnson 2000; the Box–Cox
  family extended to the whole real line, so that no shift to positive values is needed as
  with PsN's Box–Cox)::

      z = ((u + 1)^λ − 1)/λ          u ≥ 0   (ln(1 + u) for λ = 0)
      z = −((1 − u)^(2−λ) − 1)/(2 − λ)  u < 0   (−ln(1 − u) for λ = 2)

  with λ in [−3, 3] (PsN's limits) by maximum likelihood (``scipy.stats.yeojohnson_llf``);
- the proposal is normal on the z scale with the mean and covariance of the transformed
  resamples, each correlation capped at ±``cap`` (a matrix the cap would make indefinite is
  kept uncapped). PsN centres it on the estimates instead; for a skewed target the mode is
  not the centre of the transformed distribution, and on a known skewed target (the
  uncertainty of a variance from 12 participants, tests/uncertainty/test_sir.py) that left
  the 97.5 % limit 4.5 % short after PsN's 5 iterations (−3.8 SE over 20 runs), the mean
  removed it;
- draws whose back-transformation does not exist (beyond the transformation's range) or that
  fall outside the parameter bounds are redrawn.

The density of a draw x includes the transformation's Jacobian (Π dz/dx), so the importance
ratios exp(−dOFV/2)/q(x) aim at the same target, exp(−OFV/2) with a flat prior on x, in every
iteration. (PsN's user guide computes its relPDF on the Box–Cox scale.) λ = 1, c = 0, s = 1
is the identity; a proposal without transformation skips it (its draws are those of the plain
normal, bit for bit).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.errors import SettingsError

#: PsN's limits of the Box–Cox λ.
LAMBDA_BOUNDS = (-3.0, 3.0)


def yeo_johnson(u, lam: float):
    """The Yeo–Johnson transformation of ``u`` with parameter ``lam``."""
    u = np.asarray(u, float)
    out = np.empty_like(u)
    pos = u >= 0
    up, un = u[pos], u[~pos]
    out[pos] = np.log1p(up) if abs(lam) < 1e-12 else np.expm1(lam * np.log1p(up)) / lam
    out[~pos] = (-np.log1p(-un) if abs(lam - 2) < 1e-12
                 else -np.expm1((2 - lam) * np.log1p(-un)) / (2 - lam))
    return out


def yeo_johnson_inverse(z, lam: float):
    """The inverse of :func:`yeo_johnson`; NaN where ``z`` is beyond its range."""
    z = np.asarray(z, float)
    out = np.full_like(z, np.nan)
    pos = z >= 0
    zp, zn = z[pos], z[~pos]
    with np.errstate(invalid="ignore", divide="ignore"):
        if abs(lam) < 1e-12:
            out[pos] = np.expm1(zp)
        else:
            b = 1 + lam * zp
            out[pos] = np.where(b > 0, np.expm1(np.log(b) / lam), np.nan)
        if abs(lam - 2) < 1e-12:
            out[~pos] = -np.expm1(-zn)
        else:
            b = 1 - (2 - lam) * zn
            out[~pos] = np.where(b > 0, -np.expm1(np.log(b) / (2 - lam)), np.nan)
    return out


def yeo_johnson_log_slope(u, lam: float):
    """ln dz/du of :func:`yeo_johnson` at ``u``."""
    u = np.asarray(u, float)
    return np.where(u >= 0, (lam - 1) * np.log1p(np.abs(u)), (1 - lam) * np.log1p(np.abs(u)))


def fit_lambda(u) -> float:
    """The maximum-likelihood Yeo–Johnson λ of the sample ``u`` within LAMBDA_BOUNDS."""
    from scipy import optimize, stats

    u = np.asarray(u, float)
    r = optimize.minimize_scalar(lambda lam: -stats.yeojohnson_llf(lam, u),
                                 bounds=LAMBDA_BOUNDS, method="bounded",
                                 options={"xatol": 1e-4})
    return float(r.x)


def cap_correlation(cov, cap: float):
    """``cov`` with every correlation beyond ±cap set to ±cap; unchanged if the capped matrix
    would not be positive definite, or when ``cap`` ≥ 1."""
    cov = np.asarray(cov, float)
    if cap >= 1 or cov.shape[0] < 2:
        return cov
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    off = ~np.eye(len(sd), dtype=bool)
    if np.all(np.abs(corr[off]) <= cap):
        return cov
    capped = np.where(off, np.clip(corr, -cap, cap), 1.0) * np.outer(sd, sd)
    try:
        np.linalg.cholesky(capped)
    except np.linalg.LinAlgError:
        return cov
    return capped


@dataclass(frozen=True)
class Proposal:
    """A (transformed) multivariate normal proposal of SIR (see the module).

    ``mean`` (the centre: its transform is the normal's mean) is on the estimation scale;
    ``cov`` on the transformed scale; ``center``,
    ``scale`` and ``lam`` the per-parameter transformation (None: no transformation)."""

    mean: np.ndarray
    cov: np.ndarray
    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    lam: np.ndarray | None = None

    @classmethod
    def normal(cls, mean, cov, cap: float = 1.0) -> "Proposal":
        return cls(np.asarray(mean, float), cap_correlation(cov, cap))

    @classmethod
    def fitted(cls, resamples, transform: bool = True, cap: float = 1.0):
        """The proposal of the next iteration: a normal fitted to this one's ``resamples``
        (m × k), on the Yeo–Johnson scale if ``transform``; None if their covariance is
        singular."""
        R = np.asarray(resamples, float)
        c, s = np.median(R, axis=0), R.std(axis=0, ddof=1)
        if transform and np.all(s > 0):
            lam = np.array([fit_lambda((R[:, j] - c[j]) / s[j]) for j in range(R.shape[1])])
            scale = cls(c, np.eye(c.size), c, s, lam)      # the transformation alone
            z = scale.forward(R)[0]
            mean = scale.inverse(z.mean(axis=0)[None, :])[0]
            prop = cls(mean, cap_correlation(np.cov(z, rowvar=False), cap), c, s, lam)
        else:
            prop = cls.normal(R.mean(axis=0), np.cov(R, rowvar=False), cap)
        try:
            np.linalg.cholesky(prop.cov)
        except np.linalg.LinAlgError:
            return None
        return prop

    @property
    def transformed(self) -> bool:
        return self.lam is not None

    def forward(self, x):
        """(z, Σ ln dz/dx up to a constant) of the rows of ``x``."""
        x = np.atleast_2d(np.asarray(x, float))
        if not self.transformed:
            return x, np.zeros(len(x))
        u = (x - self.center) / self.scale
        z = np.column_stack([yeo_johnson(u[:, j], self.lam[j]) for j in range(u.shape[1])])
        slope = sum(yeo_johnson_log_slope(u[:, j], self.lam[j]) for j in range(u.shape[1]))
        return z, slope

    def inverse(self, z):
        if not self.transformed:
            return z
        u = np.column_stack([yeo_johnson_inverse(z[:, j], self.lam[j])
                             for j in range(z.shape[1])])
        return self.center + self.scale * u

    def draw(self, rng, n: int, lo, hi, max_rounds: int = 50):
        """n draws inside [lo, hi] (others redrawn) and the log density of each under the
        untruncated proposal, up to a constant."""
        L = np.linalg.cholesky(self.cov)
        zmean = self.forward(self.mean[None, :])[0][0]
        out = np.empty((0, self.mean.size))
        for _ in range(max_rounds):
            x = self.inverse(zmean + rng.standard_normal((2 * n, self.mean.size)) @ L.T)
            ok = np.all(np.isfinite(x) & (x > lo) & (x < hi), axis=1)
            out = np.concatenate([out, x[ok]])
            if len(out) >= n:
                break
        if len(out) < n:
            raise SettingsError("SIR: the proposal puts almost no mass inside the parameter "
                                "bounds; check the covariance step")
        out = out[:n]
        z, slope = self.forward(out)
        sol = np.linalg.solve(L, (z - zmean).T)
        return out, -0.5 * np.sum(sol**2, axis=0) + slope

    def rows(self, iteration: int, names) -> list:
        """Rows of the proposals table (see :data:`PROPOSAL_COLUMNS`)."""
        sd = np.sqrt(np.diag(self.cov))
        k = self.mean.size
        c = self.center if self.transformed else np.zeros(k)
        s = self.scale if self.transformed else np.ones(k)
        lam = self.lam if self.transformed else np.ones(k)
        kind = "yeo-johnson" if self.transformed else "none"
        return [dict(iteration=iteration, parameter=names[j], transform=kind,
                     mean=float(self.mean[j]), center=float(c[j]), scale=float(s[j]),
                     lam=float(lam[j]), sd_transformed=float(sd[j])) for j in range(k)]


#: Columns of the proposals table: per iteration and parameter, the proposal's centre on the
#: estimation scale, the transformation (centre, scale, λ) and the SD on its scale.
PROPOSAL_COLUMNS = ["iteration", "parameter", "transform", "mean", "center", "scale", "lam",
                    "sd_transformed"]

__all__ = ["Proposal", "PROPOSAL_COLUMNS", "yeo_johnson", "yeo_johnson_inverse",
           "yeo_johnson_log_slope", "fit_lambda", "cap_correlation", "LAMBDA_BOUNDS"]
