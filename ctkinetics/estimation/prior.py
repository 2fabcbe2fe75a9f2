"""Priors of MAP individual fits: the empirical-Bayes estimates pharmacometricians use for
sparse participants (issue 12.4).

With a prior on the kinetic parameters φ (estimation scale: ln for ``log`` parameters, as
the population fits' μ-referencing) of mean μ_i and covariance Ω, a MAP fit minimises

    −2 ln p(y_i | φ) + (φ − μ_i)ᵀ Ω⁻¹ (φ − μ_i) + ln|2πΩ|

— the −2 log joint density of data and parameters. For the least-squares solver the prior
enters as extra pseudo-residuals r_p = L⁻¹(φ − μ_i), Ω = LLᵀ, whose squares sum to the
quadratic form. Parameters without a prior keep a flat one.

Two sources (:func:`resolve_prior`):

* ``"model"`` — μ the model file's typical values (``default``), Ω = diag(ω²) of the
  parameters that declare ``omega2``;
* a ``ctk popfit`` output folder (or a :class:`PopulationResult`) — μ_i = θ plus each
  subject's covariate effects (the fit's references), Ω the estimated one (a block
  included), for the parameters with a random effect.

η-shrinkage over the subjects, 100·(1 − SD(φ̂_i − μ_i)/ω), says how much the estimates
lean on the prior (:func:`shrinkage`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError


@dataclass(frozen=True)
class Prior:
    """A multivariate normal prior on some kinetic parameters (estimation scale).

    Attributes
    ----------
    names : tuple of str
        The parameters with a prior.
    mean : dict
        subject -> (k,) mean on the estimation scale (``default`` for subjects not listed).
    omega : ndarray (k, k)
    default : ndarray (k,)
        Mean for a subject without its own (no covariates in the prior).
    source : str
        ``model`` or the popfit folder.
    sigma : dict
        A population fit's residual SD estimates, name (``sigma_bcell``) -> value: the σ a
        POSTHOC fit holds fixed (:mod:`.residual`); empty for ``model`` (the model file's
        ``[residual_error]`` is read by :mod:`.residual`).
    sigma_error : str
        The error model of those SDs (``proportional``, ...).
    """

    names: tuple
    omega: np.ndarray
    default: np.ndarray
    mean: dict = field(default_factory=dict)
    source: str = "model"
    sigma: dict = field(default_factory=dict)
    sigma_error: str = ""

    @property
    def chol_inv(self) -> np.ndarray:
        """L⁻¹ with Ω = LLᵀ."""
        return np.linalg.inv(np.linalg.cholesky(self.omega))

    @property
    def log_det(self) -> float:
        """ln|2πΩ|."""
        return float(np.linalg.slogdet(2 * np.pi * self.omega)[1])

    def mean_of(self, subject) -> np.ndarray:
        return np.asarray(self.mean.get(subject, self.default), float)

    def table(self) -> pd.DataFrame:
        """parameter, mean (estimation scale), omega2 — the prior as the outputs record it."""
        return pd.DataFrame({"parameter": list(self.names), "mean": self.default,
                             "omega2": np.diag(self.omega), "source": self.source})


def from_model(model, estimated) -> Prior:
    """μ = the model's typical values, Ω = diag(ω²) of the estimated parameters with ω²."""
    params = [p for p in model.parameters if p.name in set(estimated) and
              getattr(p, "omega2", None)]
    if not params:
        raise SettingsError(f"model '{model.name}' declares no omega2 for the estimated "
                            f"parameters {list(estimated)}: no prior to use")
    mean = np.array([np.log(p.default) if p.scale == "log" else p.default for p in params])
    return Prior(tuple(p.name for p in params), np.diag([float(p.omega2) for p in params]),
                 mean, {}, "model")


def from_population(result, subject_table, estimated, source="") -> Prior:
    """μ_i and Ω of a PopulationResult for the estimated parameters with a random effect."""
    from ctkinetics.estimation.population.spec import COVARIATE_EFFECTS

    spec = result.spec
    if spec is None or result.x is None:
        raise SettingsError(f"the population fit {source} carries no estimates to use as prior")
    theta, beta, omega, sig = spec.split(result.x)
    names = [r for r in spec.random if r in set(estimated)]
    if not names:
        raise SettingsError(f"no random effect of the population fit {source} is on an "
                            f"estimated parameter ({list(estimated)})")
    idx = [list(spec.random).index(r) for r in names]
    tpos = [spec.theta_names.index(r) for r in names]
    refs = dict(result.diagnostics.get("covariate_references", {}) or {})
    default = np.asarray(theta, float)[tpos]
    mean = {}
    if spec.effects and subject_table is not None and len(subject_table):
        for _, row in subject_table.iterrows():
            mu = default.copy()
            for k, eff in enumerate(spec.effects):
                if eff.parameter in names and eff.covariate in row and pd.notna(row[eff.covariate]):
                    g = COVARIATE_EFFECTS[eff.kind].transform(float(row[eff.covariate]),
                                                              float(refs.get(eff.name)))
                    mu[names.index(eff.parameter)] += beta[k] * g
            mean[str(row["subject"])] = mu
    sigma = {sp.name: float(v) for sp, v in zip(spec.sigmas, np.atleast_1d(sig))}
    return Prior(tuple(names), np.asarray(omega)[np.ix_(idx, idx)], default, mean,
                 source or "population fit", sigma, str(getattr(result, "error_model", "")))


def resolve_prior(prior, model, estimated, subject_table=None) -> Prior | None:
    """``None``, ``"model"``, a popfit folder (str/Path), a PopulationResult or a Prior."""
    if prior is None or prior is False:
        return None
    if isinstance(prior, Prior):
        return prior
    if isinstance(prior, str) and prior == "model":
        return from_model(model, estimated)
    if isinstance(prior, (str, Path)):
        from ctkinetics.estimation.population.results import PopulationResult

        folder = Path(prior)
        if not (folder / "fit.json").is_file():
            raise SettingsError(f"--prior {prior}: not 'model' and not a ctk popfit output "
                                "folder (no fit.json)")
        result = PopulationResult.read(folder)
        if result.model != model.name:
            raise SettingsError(f"--prior {prior}: the population fit is of model "
                                f"'{result.model}', not '{model.name}'")
        return from_population(result, subject_table, estimated, str(folder))
    return from_population(prior, subject_table, estimated)


def shrinkage(prior: Prior, estimates: pd.DataFrame) -> pd.DataFrame:
    """η-shrinkage % per parameter with a prior over the subjects of ``estimates`` (subject ×
    parameter table of estimation-scale estimates): 100·(1 − SD(φ̂ − μ)/ω)."""
    rows = []
    for k, name in enumerate(prior.names):
        if name not in estimates.columns:
            continue
        eta = np.array([v - prior.mean_of(s)[k] for s, v in estimates[name].items()
                        if np.isfinite(v)])
        sd = eta.std(ddof=1) if eta.size > 1 else np.nan
        rows.append({"parameter": name, "omega2": prior.omega[k, k], "n": int(eta.size),
                     "shrinkage_pct": 100.0 * (1.0 - sd / np.sqrt(prior.omega[k, k]))})
    return pd.DataFrame(rows, columns=["parameter", "omega2", "n", "shrinkage_pct"])


__all__ = ["Prior", "from_model", "from_population", "resolve_prior", "shrinkage"]
