"""The result of a population fit: immutable, tidy tables with ``to_frame()``."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PARAMETER_COLUMNS = ["parameter", "kind", "estimate", "se", "rse_pct", "ci_low", "ci_high",
                     "unit", "scale", "estimate_transformed", "se_transformed", "cv_pct",
                     "shrinkage_pct", "description"]
OMEGA_COLUMNS = ["parameter", "parameter2", "estimate", "se", "rse_pct", "cv_pct",
                 "correlation", "shrinkage_pct"]
INDIVIDUAL_COLUMNS = ["subject", "parameter", "eta", "individual", "typical"]
PREDICTION_COLUMNS = ["subject", "analyte", "time", "observed", "blq", "lloq", "status",
                      "pred", "ipred", "iwres", "cwres", "p_blq", "reason"]


@dataclass(frozen=True)
class PopulationResult:
    """A population (nonlinear mixed-effects) fit.

    Attributes
    ----------
    model, method, blq_method, error_model : str
        ``method`` is ``focei`` or ``saem``.
    parameters : DataFrame
        One row per estimated quantity (columns :data:`PARAMETER_COLUMNS`): kinds ``theta``
        (typical values, natural scale; ``estimate_transformed`` is ln θ for log parameters),
        ``covariate`` (β), ``omega`` (variances and, for a block, covariances of the random
        effects on the estimation scale, with CV % = 100·sqrt(exp(ω²) − 1) for log
        parameters and η-shrinkage %) and ``sigma`` (residual SDs). SEs come from the
        inverse Hessian of the FOCE-I objective (−2LL), Cov = 2·H⁻¹, H by central
        differences of its envelope-theorem gradient — for SAEM at SAEM's estimates
        (``settings["se_method"]``); RSE % = 100·SE/|estimate|; 95 % Wald CIs on the estimation scale.
    omega : DataFrame
        Ω entry by entry (columns :data:`OMEGA_COLUMNS`).
    individual : DataFrame
        EBEs: subject, parameter, eta, individual value, typical value (θ with covariates).
    predictions : DataFrame
        Every sample (columns :data:`PREDICTION_COLUMNS`): PRED (η = 0), IPRED (EBEs),
        IWRES, CWRES (Hooker et al. 2007, FOCE linearisation at the EBEs) and P(BLQ) for
        censored samples; excluded samples carry their reason.
    ofv : float
        −2·log-likelihood (FOCE-I approximation; all constants kept).
    aic, bic : float
        ofv + 2k and ofv + k·ln(n_obs), k estimated quantities (θ, β, Ω, σ).
    n_subjects, n_obs, n_censored, n_params : int
    converged : bool
    message : str
    covariance, correlation : DataFrame
        Of the optimiser's vector (θ, β, Ω part, ln σ), named as in ``x_names``.
    diagnostics : dict
        iterations, evaluations, condition number, ε-shrinkage, fit time, …
    history : DataFrame
        iteration, ofv (FOCE-I) or iteration, parameter values (SAEM).
    settings : dict
    failed : bool
        True when the run gave no usable estimates (``failure`` says why: an exception, a
        non-finite objective or estimate, the time limit).
    """

    model: str
    method: str
    blq_method: str
    error_model: str
    parameters: pd.DataFrame
    omega: pd.DataFrame
    individual: pd.DataFrame
    predictions: pd.DataFrame
    ofv: float
    aic: float
    bic: float
    n_subjects: int
    n_obs: int
    n_censored: int
    n_params: int
    converged: bool
    message: str
    covariance: pd.DataFrame = field(default_factory=pd.DataFrame)
    correlation: pd.DataFrame = field(default_factory=pd.DataFrame)
    diagnostics: dict = field(default_factory=dict)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    settings: dict = field(default_factory=dict)
    spec: object = field(default=None, repr=False, compare=False)
    x: np.ndarray = field(default=None, repr=False, compare=False)
    failed: bool = False
    failure: str = ""

    def __eq__(self, other):
        from ctkinetics.estimation.results import same, same_fields

        base = same_fields(self, other, PopulationResult, skip={"spec", "diagnostics"})
        if base is NotImplemented or not base:
            return base

        def timeless(d):  # how long a run took is not part of its result
            return {k: v for k, v in d.items() if k != "fit_seconds"}

        return (same(timeless(self.diagnostics), timeless(other.diagnostics))
                and self.spec == other.spec)

    __hash__ = None

    def tables(self) -> dict:
        """File name -> table, as ``ctk popfit`` writes them (:mod:`..results_io`)."""
        from ctkinetics.estimation.results_io import population_tables

        return population_tables(self)

    @classmethod
    def read(cls, folder) -> "PopulationResult":
        """The result a ``ctk popfit`` output folder holds."""
        from ctkinetics.estimation.results_io import read_population

        return read_population(folder)

    def to_frame(self) -> pd.DataFrame:
        """The parameter table (a copy)."""
        return self.parameters.copy()

    @property
    def theta(self) -> pd.DataFrame:
        return self.parameters[self.parameters["kind"].isin(["theta", "covariate"])].copy()

    @property
    def log_likelihood(self) -> float:
        return -0.5 * self.ofv

    def estimates(self) -> dict:
        """Name -> estimate (natural scale) of every row of ``parameters``."""
        return dict(zip(self.parameters["parameter"], self.parameters["estimate"]))

    def summary(self) -> dict:
        """JSON-ready summary (what ``ctk popfit`` writes to ``fit.json``)."""
        def clean(v):
            if isinstance(v, (np.floating, float)):
                return None if not np.isfinite(v) else float(v)
            if isinstance(v, (np.integer,)):
                return int(v)
            if isinstance(v, (np.bool_,)):
                return bool(v)
            if isinstance(v, dict):
                return {str(k): clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            return v
        rows = self.parameters.to_dict(orient="records")
        return clean({
            "model": self.model, "method": self.method, "blq_method": self.blq_method,
            "error_model": self.error_model, "ofv": self.ofv,
            "log_likelihood": self.log_likelihood, "aic": self.aic, "bic": self.bic,
            "n_subjects": self.n_subjects, "n_obs": self.n_obs,
            "n_censored": self.n_censored, "n_params": self.n_params,
            "converged": self.converged, "message": self.message,
            "failed": self.failed, "failure": self.failure,
            "diagnostics": self.diagnostics, "settings": self.settings, "parameters": rows})
