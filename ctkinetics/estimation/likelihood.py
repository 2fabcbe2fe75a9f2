"""The likelihood of kinetic observations: residual error models and BLQ methods.

This module is shared by the individual fits (:mod:`ctkinetics.estimation.individual`) and
the population fits built beside them, so it knows nothing about optimisers or data sets:
it turns predictions, observations and residual SDs into −2·log-likelihood terms.

Error models (registry :data:`ERROR_MODELS`), with ``T`` the transform, ``f`` the
prediction and ``sd`` the residual SD on the transformed scale:

=============  ===========  ==================================  ================
name           T(x)         sd                                  Jacobian term
=============  ===========  ==================================  ================
proportional   ln x         σ (SD on ln, i.e. additive on ln)   2·ln y
additive       x            σ (analyte units)                   0
combined       x            sqrt(σ_add² + (σ_prop·f)²)          0
=============  ===========  ==================================  ================

Per observation, −2·ln L is

* quantified y:  ((T(y) − T(f))/sd)² + ln(2π·sd²) + Jacobian term
* censored below the limit L (Beal's M3):  −2·ln Φ((T(L) − T(f))/sd)

All constant terms are kept (including the 2·ln y of the log-normal density), so objective
values — and AIC/BIC — of the proportional and additive models of the same data compare.

BLQ methods (registry :data:`BLQ_METHODS`, Beal 2001, J Pharmacokinet Pharmacodyn 28:481):
M1 drop, M3 censored likelihood with each sample's own LLOQ (default), M5 every BLQ → LLOQ/2,
M6 first BLQ of each run → LLOQ/2 and the rest of the run dropped, M7 first BLQ of each run
→ 0 and the rest dropped. Every dropped sample carries a reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.special import log_ndtr, ndtr

from ctkinetics.errors import SettingsError

#: Observation modes in the likelihood.
EXCLUDED, QUANTIFIED, CENSORED = 0, 1, 2

_LN_2PI = float(np.log(2.0 * np.pi))
#: Lower bound of a proportional residual SD (SD of ln y ≈ CV): see ErrorModel.sigma_bounds.
MIN_CV = 0.01
_TINY = 1e-300


# --------------------------------------------------------------------------------------
# error models
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorModel:
    """A residual error model.

    Attributes
    ----------
    name : str
    sigma_names : tuple of str
        Names of its residual SD parameters (suffixed with ``_<analyte>`` in a fit).
    log_transform : bool
        True when the likelihood works on ln values (data and limits must be > 0).
    description : str
    """

    name: str
    sigma_names: tuple[str, ...]
    log_transform: bool
    description: str
    _sd: Callable = None  # (f, sigmas tuple) -> sd on the transformed scale
    _dsd: Callable = None  # (f, sigmas, sd) -> (∂sd/∂f, [∂sd/∂σ_i])

    def transform(self, x):
        """T(x): ln x for log-scale models (non-positive values give a huge negative)."""
        x = np.asarray(x, dtype=float)
        if self.log_transform:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.log(np.maximum(x, _TINY))
        return x

    def sd(self, f, sigmas):
        """Residual SD on the transformed scale for predictions ``f``."""
        return self._sd(np.asarray(f, dtype=float), sigmas)

    def dtransform(self, f):
        """T'(f): 1/f for log-scale models, 1 otherwise."""
        f = np.asarray(f, dtype=float)
        if self.log_transform:
            with np.errstate(divide="ignore"):
                return 1.0 / f
        return np.ones_like(f)

    def sd_derivatives(self, f, sigmas, sd):
        """(∂sd/∂f, [∂sd/∂σ_i for each SD parameter]) at predictions ``f``."""
        return self._dsd(np.asarray(f, dtype=float), sigmas, sd)

    def sigma_starts(self, y):
        """Starting values of the SDs from the quantified data ``y`` of one analyte."""
        typical = float(np.nanmedian(np.abs(y))) if np.size(y) else 1.0
        typical = typical if np.isfinite(typical) and typical > 0 else 1.0
        starts = {"sigma": 0.5 if self.log_transform else 0.2 * typical,
                  "sigma_prop": 0.3, "sigma_add": 0.05 * typical}
        return tuple(starts[n] for n in self.sigma_names)

    def sigma_bounds(self, y):
        """Bounds of the SDs: wide, but finite so that ln(sd²) stays bounded below.

        A proportional SD (of ln y, ≈ the CV) is at least :data:`MIN_CV` = 0.01: no assay
        measures within 1 %, so a fit that reaches it interpolates its samples (an analyte
        with as few quantified samples as parameters) and is flagged ``at_bound`` — with a
        floor of 0.001 such an SD dragged the other parameters along a ridge for hundreds of
        iterations (cart_bcell_sle, B cells under M1)."""
        top = float(np.nanmax(np.abs(y))) if np.size(y) else 1.0
        top = top if np.isfinite(top) and top > 0 else 1.0
        bounds = {"sigma": (MIN_CV, 20.0) if self.log_transform else (1e-6 * top, 1e2 * top),
                  "sigma_prop": (MIN_CV, 20.0), "sigma_add": (1e-6 * top, 1e2 * top)}
        return tuple(bounds[n] for n in self.sigma_names)


def _expand(s, f):
    s = np.asarray(s, dtype=float)
    return s if s.ndim == 0 else s.reshape(s.shape + (1,) * (np.ndim(f) - s.ndim))


def _sd_combined(f, sigmas):
    s_prop, s_add = _expand(sigmas[0], f), _expand(sigmas[1], f)
    return np.sqrt(s_add**2 + (s_prop * f) ** 2)


def _sd_single(f, sigmas):
    return np.broadcast_to(_expand(sigmas[0], f), np.shape(f))


def _dsd_combined(f, sigmas, sd):
    s_prop, s_add = _expand(sigmas[0], f), _expand(sigmas[1], f)
    with np.errstate(divide="ignore", invalid="ignore"):
        return s_prop**2 * f / sd, [s_prop * f**2 / sd, s_add / sd]


def _dsd_single(f, sigmas, sd):
    return np.zeros(np.shape(f)), [np.ones(np.shape(f))]


ERROR_MODELS: dict[str, ErrorModel] = {
    "proportional": ErrorModel(
        "proportional", ("sigma",), True,
        "additive on ln (log-normal); sigma is the SD of ln(y)", _sd_single, _dsd_single),
    "additive": ErrorModel(
        "additive", ("sigma",), False,
        "additive normal; sigma in the analyte's unit", _sd_single, _dsd_single),
    "combined": ErrorModel(
        "combined", ("sigma_prop", "sigma_add"), False,
        "normal with sd = sqrt(sigma_add^2 + (sigma_prop*f)^2)", _sd_combined, _dsd_combined),
}


def get_error_model(name: str) -> ErrorModel:
    """Look up an error model by name (SettingsError listing the choices otherwise)."""
    try:
        return ERROR_MODELS[str(name).lower()]
    except KeyError:
        raise SettingsError(
            f"unknown error model '{name}'; choose one of {', '.join(ERROR_MODELS)}") from None


# --------------------------------------------------------------------------------------
# −2 log-likelihood terms
# --------------------------------------------------------------------------------------
def m2ll_from_z(z, sd, jacobian, quantified, censored):
    """−2·ln L per observation from standardised residuals: the one home of the formula.

    ``z = (T(y) − T(f))/sd`` (for a censored sample y is its limit L):

    * quantified: z² + ln 2π + ln sd² + J, with J = 2·ln y for log-transformed (proportional)
      error — the log-normal Jacobian, kept so that AIC compares across error models — else 0;
    * censored (M3): −2·ln Φ(z), computed only where censored (it is the costly part);
    * otherwise 0.

    ``quantified`` and ``censored`` are boolean masks broadcastable to ``z``; ``sd`` and
    ``jacobian`` broadcast too, so callers may cache T(y) and the masks.
    """
    t = np.where(quantified, z * z + _LN_2PI + 2.0 * np.log(sd) + jacobian, 0.0)
    cens = np.broadcast_to(censored, t.shape)
    if cens.any():
        t[cens] = -2.0 * log_ndtr(np.broadcast_to(z, t.shape)[cens])
    return t


def residuals_from_z(z, sd, quantified, censored, ln_sd2_floor):
    """Pseudo-residuals ``(r1, r2)`` with Σ r1² + r2² = −2·ln L − constant (see
    :func:`pseudo_residuals`), from standardised residuals as in :func:`m2ll_from_z`."""
    r1 = np.where(quantified, z, 0.0)
    cens = np.broadcast_to(censored, r1.shape)
    if cens.any():
        r1[cens] = np.sqrt(np.maximum(-2.0 * log_ndtr(np.broadcast_to(z, r1.shape)[cens]), 0.0))
    r2 = np.where(quantified, np.sqrt(np.maximum(2.0 * np.log(sd) - ln_sd2_floor + 1.0, 0.0)), 0.0)
    return r1, np.broadcast_to(r2, r1.shape)


def residual_derivatives(z, sd, r1, r2, quantified, censored):
    """(∂r₁/∂z, ∂r₂/∂sd) of the pseudo-residuals of :func:`residuals_from_z`:

    * quantified: r₁ = z → 1; r₂ = sqrt(2 ln sd − c) → 1/(sd·r₂) (0 where r₂ = 0);
    * censored: r₁ = sqrt(−2 ln Φ(z)) → −φ(z)/(Φ(z)·r₁) (0 where r₁ = 0);
    * excluded: 0.

    With ∂z/∂θ = −(T'(f)·∂f/∂θ + z·∂sd/∂θ)/sd they give the exact residual Jacobian from the
    model's sensitivities ∂f/∂θ.
    """
    shape = np.broadcast_shapes(np.shape(z), np.shape(quantified), np.shape(censored))
    d1 = np.array(np.broadcast_to(np.where(quantified, 1.0, 0.0), shape))
    cens = np.broadcast_to(censored, d1.shape)
    if cens.any():
        zc = np.broadcast_to(z, d1.shape)[cens]
        rc = np.broadcast_to(r1, d1.shape)[cens]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            mills = np.exp(_log_npdf(zc) - log_ndtr(zc))          # φ(z)/Φ(z)
            d1[cens] = np.where(rc > 0, -mills / rc, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d2 = np.where(quantified & (r2 > 0), 1.0 / (sd * r2), 0.0)
    return d1, d2


def pseudo_residual_jacobian(error: ErrorModel, ty, f, df, sd, dsd, quantified, censored,
                             ln_sd2_floor):
    """Pseudo-residuals (r₁, r₂) and their derivatives (∂r₁/∂θ, ∂r₂/∂θ), each (..., m, q),
    from predictions ``f`` (..., m), their derivatives ``df`` (..., m, q), the SD ``sd`` and
    its derivatives ``dsd`` (..., m, q) (through f and, for the fit's own SD parameters, σ):

        z = (T(y) − T(f))/sd,   ∂z/∂θ = −(T'(f)·∂f/∂θ + z·∂sd/∂θ)/sd,

    chained with :func:`residual_derivatives`. ``ty`` is T(y) (the limit for censored
    samples). The one home of the exact residual Jacobian (individual and population fits).
    """
    with np.errstate(all="ignore"):
        z = (ty - error.transform(f)) / sd
        dz = -(error.dtransform(f)[..., None] * df + z[..., None] * dsd) / sd[..., None]
        r1, r2 = residuals_from_z(z, sd, quantified, censored, ln_sd2_floor)
        d1, d2 = residual_derivatives(z, sd, r1, r2, quantified, censored)
        return (r1, np.broadcast_to(r2, r1.shape)), (d1[..., None] * dz, d2[..., None] * dsd)


def _log_npdf(z):
    return -0.5 * z * z - 0.5 * _LN_2PI


def m2ll_terms(error: ErrorModel, y, f, sd, mode):
    """−2·ln L per observation (0 for excluded ones); see :func:`m2ll_from_z`.

    Parameters
    ----------
    error : ErrorModel
    y : array
        Observed value (quantified or substituted) or, for censored samples, the limit L.
    f : array
        Prediction, same shape.
    sd : array
        Residual SD on the transformed scale, same shape.
    mode : int array
        EXCLUDED, QUANTIFIED or CENSORED.
    """
    z = (error.transform(y) - error.transform(f)) / sd
    jac = 2.0 * np.log(np.maximum(y, _TINY)) if error.log_transform else 0.0
    return m2ll_from_z(z, sd, jac, mode == QUANTIFIED, mode == CENSORED)


def pseudo_residuals(error: ErrorModel, y, f, sd, mode, ln_sd2_floor):
    """Residuals whose sum of squares equals Σ −2·ln L up to a constant.

    Lets a least-squares solver (lmfit ``least_squares``) minimise the −2LL exactly:

    * quantified: r₁ = (T(y) − T(f))/sd and r₂ = sqrt(ln sd² − ln sd²_min + 1); the dropped
      constants (ln 2π, Jacobian term, ln sd²_min − 1) do not depend on the parameters;
    * censored: r = sqrt(−2·ln Φ(z)) ≥ 0;
    * excluded: 0.

    Returns an array with a trailing axis twice as long as ``y``'s.
    """
    z = (error.transform(y) - error.transform(f)) / sd
    r1, r2 = residuals_from_z(z, sd, mode == QUANTIFIED, mode == CENSORED, ln_sd2_floor)
    return np.concatenate([r1, r2], axis=-1)


def weighted_residuals(error: ErrorModel, y, f, sd, mode):
    """IWRES for quantified samples and P(BLQ) = Φ((T(L) − T(f))/sd) for censored ones.

    Returns ``(iwres, p_blq)``; each is NaN where it does not apply.
    """
    z = (error.transform(y) - error.transform(f)) / sd
    iwres = np.where(mode == QUANTIFIED, z, np.nan)
    p_blq = np.where(mode == CENSORED, ndtr(z), np.nan)
    return iwres, p_blq


# --------------------------------------------------------------------------------------
# BLQ methods
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BLQMethod:
    """How samples below the LLOQ enter the likelihood.

    ``prepare(value, lloq, blq)`` takes one subject's post-infusion samples of one analyte,
    sorted by time, and returns ``(y, mode, reason)``: the value used (the limit for censored
    samples), the mode and, for excluded samples, why.
    """

    name: str
    description: str
    prepare: Callable


def _runs_first(blq):
    """True for the first BLQ sample of each run of consecutive BLQ samples."""
    prev = np.concatenate([[False], blq[:-1]])
    return blq & ~prev


def _unknown_lloq(lloq, blq, y, mode, reason, method):
    bad = blq & ~np.isfinite(lloq) & (mode != EXCLUDED)
    mode[bad] = EXCLUDED
    y[bad] = np.nan
    for i in np.flatnonzero(bad):
        reason[i] = f"BLQ with unknown LLOQ cannot be used ({method})"


def _prep_m1(value, lloq, blq):
    y = np.where(blq, np.nan, value)
    mode = np.where(blq, EXCLUDED, QUANTIFIED)
    reason = np.where(blq, "BLQ dropped (M1)", "").astype(object)
    return y, mode, reason


def _prep_m3(value, lloq, blq):
    y = np.where(blq, lloq, value)
    mode = np.where(blq, CENSORED, QUANTIFIED)
    reason = np.full(len(value), "", dtype=object)
    _unknown_lloq(lloq, blq, y, mode, reason, "M3")
    return y, mode, reason


def _prep_m5(value, lloq, blq):
    y = np.where(blq, lloq / 2.0, value)
    mode = np.full(len(value), QUANTIFIED)
    reason = np.full(len(value), "", dtype=object)
    _unknown_lloq(lloq, blq, y, mode, reason, "M5")
    return y, mode, reason


def _first_of_run(fill, name):
    def prep(value, lloq, blq):
        first = _runs_first(blq)
        rest = blq & ~first
        y = np.where(first, fill(lloq), value)
        mode = np.where(rest, EXCLUDED, QUANTIFIED)
        reason = np.where(rest, f"BLQ after the first of a run dropped ({name})", "")
        reason = reason.astype(object)
        _unknown_lloq(lloq, first, y, mode, reason, name)
        return y, mode, reason
    return prep


BLQ_METHODS: dict[str, BLQMethod] = {
    "M1": BLQMethod("M1", "BLQ samples dropped", _prep_m1),
    "M3": BLQMethod("M3", "censored likelihood P(Y < LLOQ), each sample's own LLOQ", _prep_m3),
    "M5": BLQMethod("M5", "every BLQ sample set to LLOQ/2", _prep_m5),
    "M6": BLQMethod("M6", "first BLQ of each run set to LLOQ/2, the rest of the run dropped",
                    _first_of_run(lambda lloq: lloq / 2.0, "M6")),
    "M7": BLQMethod("M7", "first BLQ of each run set to 0, the rest of the run dropped",
                    _first_of_run(lambda lloq: 0.0 * lloq, "M7")),
}


def get_blq_method(name: str) -> BLQMethod:
    """Look up a BLQ method by name (SettingsError listing the choices otherwise)."""
    try:
        return BLQ_METHODS[str(name).upper()]
    except KeyError:
        raise SettingsError(
            f"unknown BLQ method '{name}'; choose one of {', '.join(BLQ_METHODS)}") from None


def check_compatible(error: ErrorModel, blq: BLQMethod) -> None:
    """M7 substitutes zeros, which have no logarithm: it needs additive or combined error."""
    if blq.name == "M7" and error.log_transform:
        raise SettingsError(
            "BLQ method M7 substitutes 0, which has no logarithm: use --error additive or "
            "combined with M7, or choose M3/M1/M5/M6")
