"""Results of individual fits: immutable, tidy, and naming the BLQ method and error model."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PARAMETER_COLUMNS = ["subject", "parameter", "estimate", "se", "rse_pct", "ci_low", "ci_high",
                     "unit", "flags", "scale", "estimate_transformed", "se_transformed",
                     "ci_method", "role"]
FIT_COLUMNS = ["subject", "model", "blq_method", "error_model", "success", "n_obs", "n_blq",
               "n_params", "ofv", "aic", "bic", "n_starts", "n_starts_at_best", "flags",
               "message"]
PREDICTION_COLUMNS = ["subject", "analyte", "time", "observed", "blq", "lloq", "ipred", "iwres",
                      "p_blq", "status", "reason"]


@dataclass(frozen=True)
class SubjectFit:
    """The fit of one subject.

    Attributes
    ----------
    subject, model, blq_method, error_model : str
    success : bool
        The optimiser converged (a failed subject has ``success=False`` and a message).
    message : str
    ofv : float
        −2·log-likelihood at the estimates, all constants kept.
    n_obs, n_blq, n_params : int
        Observations in the likelihood (censored included), BLQ samples after infusion (used
        or not), estimated parameters (SDs and scales included).
    aic, bic : float
        ofv + 2·n_params and ofv + n_params·ln(n_obs).
    n_starts, n_starts_at_best : int
    flags : tuple of str
        Fit-level flags: ``not_converged``, ``non_identifiable``, ``at_bound``, ...
    parameters : DataFrame
        One row per parameter (columns :data:`PARAMETER_COLUMNS`).
    covariance, correlation : DataFrame
        On the estimation scale (ln for ``log`` parameters), indexed by parameter name.
    predictions : DataFrame
        One row per sample of the fitted analytes (columns :data:`PREDICTION_COLUMNS`).
    derived : DataFrame
        subject, analyte, quantity, value, unit.
    starts : DataFrame
        start, ofv, success of every start.
    """

    subject: str
    model: str
    blq_method: str
    error_model: str
    success: bool
    message: str
    ofv: float
    n_obs: int
    n_blq: int
    n_params: int
    aic: float
    bic: float
    n_starts: int
    n_starts_at_best: int
    flags: tuple = ()
    parameters: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=PARAMETER_COLUMNS))
    covariance: pd.DataFrame = field(default_factory=pd.DataFrame)
    correlation: pd.DataFrame = field(default_factory=pd.DataFrame)
    predictions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=PREDICTION_COLUMNS))
    derived: pd.DataFrame = field(default_factory=pd.DataFrame)
    starts: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_frame(self) -> pd.DataFrame:
        """Tidy parameter table (a copy)."""
        return self.parameters.copy()

    def estimates(self) -> dict:
        """Parameter name -> natural-scale estimate."""
        return dict(zip(self.parameters["parameter"], self.parameters["estimate"]))

    def summary_row(self) -> dict:
        return {"subject": self.subject, "model": self.model, "blq_method": self.blq_method,
                "error_model": self.error_model, "success": self.success,
                "n_obs": self.n_obs, "n_blq": self.n_blq, "n_params": self.n_params,
                "ofv": self.ofv, "aic": self.aic, "bic": self.bic, "n_starts": self.n_starts,
                "n_starts_at_best": self.n_starts_at_best, "flags": ";".join(self.flags),
                "message": self.message}


def _concat(frames, columns=None):
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class FitResult:
    """Individual fits of a batch of subjects with one model, BLQ method and error model.

    Attributes
    ----------
    model, blq_method, error_model : str
    analytes : tuple of str
    fits : tuple of SubjectFit
    dose_levels : dict subject -> dose level label ('' when unknown)
    settings : dict
        starts, seed and the other options used.
    """

    model: str
    blq_method: str
    error_model: str
    analytes: tuple
    fits: tuple
    dose_levels: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.fits)

    def __iter__(self):
        return iter(self.fits)

    def __getitem__(self, subject) -> SubjectFit:
        for f in self.fits:
            if f.subject == str(subject):
                return f
        raise KeyError(subject)

    def to_frame(self) -> pd.DataFrame:
        """All parameter rows: subject, parameter, estimate, se, rse_pct, ci_low, ci_high,
        unit, flags (and scale, transformed estimate/SE, CI method, role)."""
        return _concat([f.parameters for f in self.fits], PARAMETER_COLUMNS)

    parameters_frame = to_frame

    def fits_frame(self) -> pd.DataFrame:
        return pd.DataFrame([f.summary_row() for f in self.fits], columns=FIT_COLUMNS)

    def predictions_frame(self) -> pd.DataFrame:
        return _concat([f.predictions for f in self.fits], PREDICTION_COLUMNS)

    def derived_frame(self) -> pd.DataFrame:
        return _concat([f.derived for f in self.fits],
                       ["subject", "analyte", "quantity", "value", "unit"])

    def excluded_frame(self) -> pd.DataFrame:
        """Every sample of the fitted analytes left out of the likelihood, with the reason."""
        p = self.predictions_frame()
        return p[p["status"] == "excluded"].reset_index(drop=True)

    def summary(self, by_dose_level: bool = True) -> pd.DataFrame:
        """Two-stage summary per dose level (see :func:`two_stage_summary`)."""
        from ctkinetics.estimation.summary import two_stage_summary

        return two_stage_summary(self, by_dose_level=by_dose_level)

    @property
    def n_failed(self) -> int:
        return int(sum(not f.success for f in self.fits))

    def estimates_wide(self) -> pd.DataFrame:
        """subject × parameter table of natural-scale estimates."""
        t = self.to_frame()
        if t.empty:
            return pd.DataFrame()
        return t.pivot(index="subject", columns="parameter", values="estimate")


def empty_parameters(subject, specs, flags="not_converged"):
    """NaN parameter rows of a failed subject, so every table keeps its shape."""
    n = len(specs)
    return pd.DataFrame({
        "subject": [subject] * n, "parameter": [s.name for s in specs],
        "estimate": np.nan, "se": np.nan, "rse_pct": np.nan, "ci_low": np.nan,
        "ci_high": np.nan, "unit": [s.unit for s in specs], "flags": flags,
        "scale": ["log" if s.log else "linear" for s in specs],
        "estimate_transformed": np.nan, "se_transformed": np.nan, "ci_method": "",
        "role": [s.role for s in specs]}, columns=PARAMETER_COLUMNS)
