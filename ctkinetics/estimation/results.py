"""Results of individual fits: immutable, tidy, and naming the BLQ method and error model."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property

import numpy as np
import pandas as pd

PARAMETER_COLUMNS = ["subject", "parameter", "estimate", "se", "rse_pct", "ci_low", "ci_high",
                     "unit", "flags", "scale", "estimate_transformed", "se_transformed",
                     "ci_method", "role"]
FIT_COLUMNS = ["subject", "model", "blq_method", "error_model", "success", "n_obs", "n_blq",
               "n_params", "ofv", "aic", "bic", "n_starts", "n_starts_at_best", "flags",
               "message", "engine", "ci_method", "ci_df", "failed", "ofv_second"]
DERIVED_COLUMNS = ["subject", "analyte", "quantity", "value", "unit"]
PREDICTION_COLUMNS = ["subject", "analyte", "time", "observed", "blq", "lloq", "ipred", "iwres",
                      "p_blq", "status", "reason", "flags"]


@dataclass(frozen=True, eq=False)
class SubjectFit:
    """The fit of one subject.

    Attributes
    ----------
    subject, model, blq_method, error_model : str
    success : bool
        The optimiser converged (a failed subject has ``success=False`` and a message).
    failed : bool
        No usable estimates: the fit raised, hit the time limit or ended on a non-finite
        estimate, objective or prediction; ``message`` gives the reason.
    message : str
    ofv : float
        −2·log-likelihood at the estimates, all constants kept.
    n_obs, n_blq, n_params : int
        Observations in the likelihood (censored included), BLQ samples after infusion (used
        or not), estimated parameters (SDs and scales included).
    aic, bic : float
        ofv + 2·n_params and ofv + n_params·ln(n_obs).
    n_starts, n_starts_at_best : int
        Local optimisations run (starts, switch-interval screen, polish) and how many of them
        reached the best −2LL within ``optimize.SAME_OPTIMUM`` (0.01).
    ofv_second : float
        −2LL of the best distinct other optimum found (NaN: none); within 3.84 of ``ofv`` it
        raises the ``second_optimum`` flag.
    flags : tuple of str
        Fit-level flags, ids of :data:`ctkinetics.estimation.flags.FLAGS`.
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
    engine : str
        Optimiser that produced the estimates: ``lmfit`` or ``batched`` (see ``fit``).
    ci_method : str
        The CI method asked for (``wald-t``, ``wald`` or ``profile``; each parameter row names
        the method its interval actually used), and ``ci_df`` the residual degrees of
        freedom n − p of the ``wald-t`` t quantile (inf for ``wald``).

    The tables are built on first access from the arrays the fit stores (``param_columns``,
    ``pred_columns``, ``cov``, ``derived_rows``, ``start_history``): a batch of a thousand subjects does not
    build six thousand DataFrames that nobody reads; :class:`FitResult` concatenates the
    arrays directly.
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
    param_columns: dict = field(default_factory=dict, repr=False)
    pred_columns: dict = field(default_factory=dict, repr=False)
    cov: np.ndarray = field(default=None, repr=False)
    derived_rows: dict = field(default=None, repr=False)
    start_history: tuple = field(default=(), repr=False)
    engine: str = "lmfit"
    ci_method: str = "wald-t"
    ci_df: float = np.nan
    failed: bool = False
    ofv_second: float = np.nan

    def __eq__(self, other):
        return same_fields(self, other, SubjectFit)

    __hash__ = None

    @cached_property
    def parameters(self) -> pd.DataFrame:
        return _frame(self.param_columns, PARAMETER_COLUMNS)

    @cached_property
    def predictions(self) -> pd.DataFrame:
        return _frame(self.pred_columns, PREDICTION_COLUMNS)

    @property
    def param_names(self) -> list:
        """The estimated parameters, in the order of the covariance (a residual SD held
        fixed has a row of the parameter table, ``ci_method`` ``fixed``, but is not
        estimated)."""
        names = self.param_columns.get("parameter", [])
        how = self.param_columns.get("ci_method", [""] * len(names))
        return [n for n, c in zip(names, how) if c != "fixed"]

    @cached_property
    def covariance(self) -> pd.DataFrame:
        if self.cov is None:
            return pd.DataFrame()
        return pd.DataFrame(self.cov, index=self.param_names, columns=self.param_names)

    @cached_property
    def correlation(self) -> pd.DataFrame:
        if self.cov is None:
            return pd.DataFrame()
        sd = np.sqrt(np.diag(self.cov))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = self.cov / np.outer(sd, sd)
        return pd.DataFrame(corr, index=self.param_names, columns=self.param_names)

    @cached_property
    def derived(self) -> pd.DataFrame:
        return _frame(self.derived_rows, DERIVED_COLUMNS)

    @cached_property
    def starts(self) -> pd.DataFrame:
        return pd.DataFrame([tuple(r) for r in self.start_history],
                            columns=["start", "ofv", "success"])

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
                "message": self.message, "engine": self.engine,
                "ci_method": self.ci_method, "ci_df": self.ci_df, "failed": self.failed,
                "ofv_second": self.ofv_second}


def same(a, b) -> bool:
    """Value equality of result fields: NaN equals NaN, arrays and tables compare by value
    (not dtype), so a result read back from its CSVs equals the one written."""
    if isinstance(a, pd.DataFrame) or isinstance(b, pd.DataFrame):
        if not (isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame)):
            return False
        if list(map(str, a.columns)) != list(map(str, b.columns)) or len(a) != len(b):
            return False
        return all(same(a.iloc[:, j].to_numpy(), b.iloc[:, j].to_numpy())
                   for j in range(a.shape[1]))
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and set(a) == set(b)
                and all(same(a[k], b[k]) for k in a))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(u, v) for u, v in zip(a, b))
    if isinstance(a, (np.ndarray, list, tuple)) or isinstance(b, (np.ndarray, list, tuple)):
        if a is None or b is None:
            return False
        x, y = np.asarray(a), np.asarray(b)
        if x.shape != y.shape:
            return False
        if x.dtype.kind in "fiub" and y.dtype.kind in "fiub":
            return bool(np.array_equal(x.astype(float), y.astype(float), equal_nan=True))
        return all(same(u, v) for u, v in zip(x.ravel().tolist(), y.ravel().tolist()))
    if isinstance(a, (float, np.floating)) and isinstance(b, (float, np.floating)):
        return bool(a == b or (np.isnan(a) and np.isnan(b)))
    return bool(a == b)


def same_fields(a, b, cls, skip=()):
    """Equality of two result dataclasses field by field with :func:`same`."""
    if not isinstance(b, cls):
        return NotImplemented
    return all(same(getattr(a, f.name), getattr(b, f.name)) for f in fields(cls)
               if f.name not in skip)


def _frame(cols, columns):
    if not cols:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame({c: cols[c] for c in columns}, columns=columns)


def _concat_columns(dicts, columns):
    """One DataFrame from many column dicts (the subjects' arrays), without per-subject
    frames."""
    dicts = [d for d in dicts if d and len(d[columns[0]])]
    if not dicts:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame({c: np.concatenate([d[c] for d in dicts]) for c in columns},
                        columns=columns)


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
    identifiability : DataFrame
        The check at the start values before fitting (subject, check, parameters, value,
        advice; subject ``*``: the cohort summary): parameters the samples do not inform,
        near-collinear pairs, sloppy directions (:mod:`.identifiability`).
    prior : DataFrame or None
        MAP fits: parameter, mean (estimation scale), omega2, source, n and η-shrinkage %
        (:mod:`.prior`); None for maximum-likelihood fits.
    """

    model: str
    blq_method: str
    error_model: str
    analytes: tuple
    fits: tuple
    dose_levels: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    identifiability: pd.DataFrame = field(default=None, repr=False)
    prior: pd.DataFrame = field(default=None, repr=False)

    def __eq__(self, other):
        return same_fields(self, other, FitResult)

    __hash__ = None

    def __len__(self):
        return len(self.fits)

    def __iter__(self):
        return iter(self.fits)

    def __getitem__(self, subject) -> SubjectFit:
        for f in self.fits:
            if f.subject == str(subject):
                return f
        raise KeyError(subject)

    def tables(self) -> dict:
        """File name -> table, as ``ctk fit`` writes them (:mod:`.results_io`)."""
        from ctkinetics.estimation.results_io import fit_tables

        return fit_tables(self)

    @classmethod
    def read(cls, folder) -> "FitResult":
        """The result a ``ctk fit`` output folder holds (:func:`.results_io.read_fit`)."""
        from ctkinetics.estimation.results_io import read_fit

        return read_fit(folder)

    def to_frame(self) -> pd.DataFrame:
        """All parameter rows: subject, parameter, estimate, se, rse_pct, ci_low, ci_high,
        unit, flags (and scale, transformed estimate/SE, CI method, role)."""
        return _concat_columns([f.param_columns for f in self.fits], PARAMETER_COLUMNS)

    parameters_frame = to_frame

    def fits_frame(self) -> pd.DataFrame:
        return pd.DataFrame([f.summary_row() for f in self.fits], columns=FIT_COLUMNS)

    def predictions_frame(self) -> pd.DataFrame:
        return _concat_columns([f.pred_columns for f in self.fits], PREDICTION_COLUMNS)

    def derived_frame(self) -> pd.DataFrame:
        return _concat_columns([f.derived_rows for f in self.fits], DERIVED_COLUMNS)

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
        """Subjects not fitted: failed (no estimates) or not converged."""
        return int(sum(not f.success for f in self.fits))

    @property
    def failed(self) -> list:
        """Subjects whose fit failed (no usable estimates; the reason is their message)."""
        return [f.subject for f in self.fits if f.failed]

    def flagged(self) -> dict:
        """subject -> flags, for the subjects whose fit carries any flag."""
        return {f.subject: list(f.flags) for f in self.fits if f.flags}

    def estimates_wide(self) -> pd.DataFrame:
        """subject × parameter table of natural-scale estimates."""
        t = self.to_frame()
        if t.empty:
            return pd.DataFrame()
        return t.pivot(index="subject", columns="parameter", values="estimate")


def empty_parameters(subject, specs, flags="not_converged") -> dict:
    """NaN parameter columns of a failed subject, so every table keeps its shape."""
    n = len(specs)
    nan = np.full(n, np.nan)
    return {"subject": np.full(n, subject, dtype=object),
            "parameter": np.array([s.name for s in specs], dtype=object),
            "estimate": nan, "se": nan, "rse_pct": nan, "ci_low": nan, "ci_high": nan,
            "unit": np.array([s.unit for s in specs], dtype=object),
            "flags": np.full(n, flags, dtype=object),
            "scale": np.array(["log" if s.log else "linear" for s in specs], dtype=object),
            "estimate_transformed": nan, "se_transformed": nan,
            "ci_method": np.full(n, "", dtype=object),
            "role": np.array([s.role for s in specs], dtype=object)}
