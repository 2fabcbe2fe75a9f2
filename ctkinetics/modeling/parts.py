"""The immutable pieces a model is made of: parameters, covariates, states, phases.

They are plain value objects with validating constructors; the model file parser
(:mod:`ctkinetics.modeling.modelfile`) builds them and :class:`~ctkinetics.modeling.model.Model`
holds them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from ctkinetics.modeling.expressions import Expression

SCALES = ("log", "linear")
INTERPOLATIONS = ("step", "linear")


@dataclass(frozen=True)
class Parameter:
    """A model parameter.

    Attributes
    ----------
    name : str
        Symbol as used in the literature and in the model's expressions (``Cmax``, ``rho``).
    default : float
        Typical value (the value used when nothing else is given), in ``unit``.
    lower, upper : float
        Bounds of the plausible range (used by the fitter and to clip simulated subjects).
    unit : str
        Unit of the value, e.g. ``copies/ug`` or ``1/day``; ``1`` when dimensionless.
    scale : {'log', 'linear'}
        Scale on which the parameter is estimated and varies between subjects.
    description : str
        What the parameter means.
    source : str
        Where the default comes from (table of a publication, or the rationale of a choice).
    omega2 : float or None
        Default between-subject variance of the log-normal random effect (ω², like
        NONMEM's $OMEGA), used by ``simulate_population`` when no omega is given.
    estimate : bool
        Whether fits estimate it by default (``estimate = false`` in the model file: held at
        ``default`` unless a fit names it in ``estimate=``/``--estimate``).
    """

    name: str
    default: float
    lower: float
    upper: float
    unit: str = "1"
    scale: str = "log"
    description: str = ""
    source: str = ""
    omega2: float | None = None
    estimate: bool = True

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"parameter {self.name}: scale must be one of {SCALES}, got {self.scale!r}")
        for label in ("default", "lower", "upper"):
            if not math.isfinite(getattr(self, label)):
                raise ValueError(f"parameter {self.name}: {label} must be a finite number")
        if not self.lower <= self.default <= self.upper:
            raise ValueError(
                f"parameter {self.name}: need lower <= default <= upper, got "
                f"{self.lower:g} <= {self.default:g} <= {self.upper:g}"
            )
        if self.scale == "log" and self.lower <= 0:
            raise ValueError(f"parameter {self.name}: a log-scale parameter needs lower > 0")
        if self.omega2 is not None and not (math.isfinite(self.omega2) and self.omega2 >= 0):
            raise ValueError(f"parameter {self.name}: omega2 must be >= 0")


@dataclass(frozen=True)
class Covariate:
    """A subject covariate the model reads (e.g. ``dose``), with its default value.

    ``time_varying`` covariates may change during follow-up (tocilizumab or steroid
    exposure, lymphocyte counts): ``interpolation`` ``step`` holds each value until the next
    one (NONMEM's carried-forward reading), ``linear`` interpolates between them. Initial
    states and switch times read a time-varying covariate's value at t = 0.
    """

    name: str
    default: float
    unit: str = "1"
    description: str = ""
    time_varying: bool = False
    interpolation: str = "step"

    def __post_init__(self):
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"covariate {self.name}: interpolation must be one of "
                             f"{INTERPOLATIONS}, got {self.interpolation!r}")


@dataclass(frozen=True)
class State:
    """An ODE state: name, initial condition (expression at t = 0), unit; ``positive``: it
    never falls below 0, so the solver may integrate its logarithm."""

    name: str
    initial: Expression
    unit: str = ""
    description: str = ""
    positive: bool = False


@dataclass(frozen=True)
class Phase:
    """A time interval of the model's dynamics.

    Phase ``i`` runs from the previous phase's ``end`` (0 for the first) to its own ``end``;
    the last phase has ``end = None`` (open). The ODE is restarted at every switch time with
    the states carried over, so states are continuous there.

    Attributes
    ----------
    ode : mapping state -> Expression
        Right-hand sides dX/dt; may read states, parameters, covariates, definitions, t, tau.
    solution : mapping state -> Expression or None
        Closed-form state values in this phase (functions of t and tau = t - phase start), or
        None when the model has no closed form.
    """

    name: str
    end: Expression | None
    ode: Mapping[str, Expression]
    solution: Mapping[str, Expression] | None = None

    def __post_init__(self):
        object.__setattr__(self, "ode", MappingProxyType(dict(self.ode)))
        if self.solution is not None:
            object.__setattr__(self, "solution", MappingProxyType(dict(self.solution)))


@dataclass(frozen=True)
class Derived:
    """A derived quantity (R0, doubling time, half-life, AUC0-inf) and its formula."""

    name: str
    expression: Expression
    unit: str = ""
    description: str = ""


@dataclass(frozen=True)
class ResidualError:
    """The typical residual error of one observable, as a model file declares it
    (``[residual_error.<kind>]``): the assay's precision, held fixed by MAP fits with the
    model's prior (:mod:`ctkinetics.estimation.residual`).

    Attributes
    ----------
    kind : str
        The observable (``qpcr``, ``flow``, ``bcell``, ``conc``).
    model : str
        Error model: ``proportional`` (``sigma`` = SD of ln y, ~ the CV), ``additive``
        (``sigma`` in the observable's unit) or ``combined`` (``sigma_prop``, ``sigma_add``).
    sigmas : mapping
        SD name -> value, e.g. ``{"sigma": 0.25}``.
    source : str
        Where the values come from (a publication, or what was assumed).
    """

    kind: str
    model: str
    sigmas: Mapping[str, float]
    source: str
    unit: str = ""
    description: str = ""

    def __post_init__(self):
        object.__setattr__(self, "sigmas", MappingProxyType(dict(self.sigmas)))
