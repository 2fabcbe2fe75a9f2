"""What a population fit estimates: typical values θ, covariate effects β, Ω and σ.

Individual parameters are built as in NONMEM / Monolix (μ-referencing):

    φ_i,p = θ_p + Σ_c β_p,c · g_c(x_i,c) + η_i,p,        η_i ~ N(0, Ω)
    P_i,p = exp(φ_i,p)   for a parameter on the ``log`` scale (log-normal BSV),
    P_i,p = φ_i,p        for a ``linear`` one,

with θ_p on the estimation scale (ln of the typical value for log parameters) and the
covariate transform ``g`` taken from :data:`COVARIATE_EFFECTS` (``ref`` is the median of the
covariate over the subjects unless given):

=============  ===================  ===============================================
name           g(x)                 effect on a log parameter
=============  ===================  ===============================================
power          ln(x / ref)          P = TV · (x/ref)^β
exponential    x − ref              P = TV · exp(β·(x − ref))
=============  ===================  ===============================================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.population.omega import Block, Diagonal


@dataclass(frozen=True)
class CovariateModel:
    """A covariate transform ``g(x, ref)`` (see the module table)."""

    name: str
    description: str
    transform: Callable
    needs_positive: bool


COVARIATE_EFFECTS: dict[str, CovariateModel] = {
    "power": CovariateModel("power", "P = TV*(x/ref)^beta", lambda x, ref: np.log(x / ref), True),
    "exponential": CovariateModel("exponential", "P = TV*exp(beta*(x - ref))",
                                  lambda x, ref: x - ref, False),
}
_ALIASES = {"pow": "power", "exp": "exponential", "lin": "exponential"}


@dataclass(frozen=True)
class CovariateEffect:
    """One covariate effect ``beta_<param>_<covariate>`` on a parameter."""

    parameter: str
    covariate: str
    kind: str = "power"
    reference: float | None = None

    @property
    def name(self) -> str:
        return f"beta_{self.parameter}_{self.covariate}"


def parse_covariates(covariates) -> tuple[CovariateEffect, ...]:
    """Covariate effects from ``"CL~dose"``, ``"CL~wt:exponential"``, a list of such strings,
    a dict ``{"CL": "dose"}``, or :class:`CovariateEffect` objects."""
    if covariates is None:
        return ()
    if isinstance(covariates, (str, CovariateEffect)):
        covariates = [covariates]
    if isinstance(covariates, dict):
        covariates = [f"{p}~{c}" for p, cs in covariates.items()
                      for c in ([cs] if isinstance(cs, str) else cs)]
    out = []
    for item in covariates:
        if isinstance(item, CovariateEffect):
            eff = item
        else:
            text = str(item).strip()
            if "~" not in text:
                raise SettingsError(f"covariate effect '{text}' must read PARAM~COVARIATE "
                                    "(optionally PARAM~COVARIATE:power|exponential)")
            param, rhs = (s.strip() for s in text.split("~", 1))
            cov, _, kind = rhs.partition(":")
            kind = _ALIASES.get(kind.strip().lower(), kind.strip().lower()) or "power"
            eff = CovariateEffect(param, cov.strip(), kind)
        if eff.kind not in COVARIATE_EFFECTS:
            raise SettingsError(f"unknown covariate model '{eff.kind}'; choose one of "
                                f"{', '.join(COVARIATE_EFFECTS)}")
        if not eff.parameter or not eff.covariate:
            raise SettingsError(f"covariate effect '{item}' must read PARAM~COVARIATE")
        out.append(eff)
    names = [e.name for e in out]
    if len(set(names)) != len(names):
        raise SettingsError(f"covariate effects repeated: {names}")
    return tuple(out)


@dataclass(frozen=True)
class ThetaSpec:
    """A fixed effect: a kinetic parameter (role ``model``) or a per-assay scale (``scale``)."""

    name: str
    role: str
    log: bool
    start: float        # estimation scale
    lower: float        # estimation scale
    upper: float
    unit: str = ""


@dataclass(frozen=True)
class SigmaSpec:
    """A residual SD (estimated as its logarithm)."""

    name: str
    analyte: str
    start: float        # natural scale
    lower: float
    upper: float
    unit: str = ""


@dataclass(frozen=True)
class PopulationSpec:
    """The full list of estimated quantities and how they map to a vector ``x``.

    ``x = [θ (estimation scale), β, Ω part, ln σ]``; the Ω part is parameterised by the
    ``structure`` (:mod:`.omega`: ln ω for a diagonal Ω, the lower Cholesky factor of a
    block).
    """

    thetas: tuple[ThetaSpec, ...]
    random: tuple[str, ...]                  # names of θ with a random effect, in order
    effects: tuple[CovariateEffect, ...]
    sigmas: tuple[SigmaSpec, ...]
    structure: Diagonal = Diagonal()         # Ω structure (see .omega)
    fixed: dict = None                       # model parameter -> natural value, not estimated

    # ---- sizes and slices ---------------------------------------------------------------
    @property
    def block(self) -> bool:
        return isinstance(self.structure, Block)

    @property
    def p(self):
        return len(self.thetas)

    @property
    def q(self):
        return len(self.random)

    @property
    def n_omega(self):
        return self.structure.size(self.q)

    @property
    def slices(self):
        a = self.p
        b = a + len(self.effects)
        c = b + self.n_omega
        return slice(0, a), slice(a, b), slice(b, c), slice(c, c + len(self.sigmas))

    @property
    def size(self):
        return self.slices[3].stop

    @property
    def theta_names(self):
        return [t.name for t in self.thetas]

    @property
    def random_index(self):
        names = self.theta_names
        return np.array([names.index(r) for r in self.random], dtype=int)

    def omega_labels(self):
        return self.structure.labels(self.random)

    def x_names(self):
        return (self.theta_names + [e.name for e in self.effects] + self.omega_labels()
                + [s.name for s in self.sigmas])

    # ---- x <-> parts --------------------------------------------------------------------
    def omega_from(self, part):
        """Ω (q, q) from its part of ``x``."""
        return self.structure.from_part(part, self.q)

    def omega_part(self, omega):
        return self.structure.to_part(omega)

    def split(self, x):
        s_t, s_b, s_o, s_s = self.slices
        x = np.asarray(x, float)
        return x[s_t], x[s_b], self.omega_from(x[s_o]), np.exp(x[s_s])

    def join(self, theta, beta, omega, sigma):
        return np.concatenate([np.asarray(theta, float), np.asarray(beta, float),
                               self.omega_part(omega), np.log(np.asarray(sigma, float))])

    def bounds(self):
        """Bounds of ``x`` for the outer optimiser."""
        lo = [t.lower for t in self.thetas] + [-20.0] * len(self.effects)
        hi = [t.upper for t in self.thetas] + [20.0] * len(self.effects)
        olo, ohi = self.structure.bounds(self.q)
        lo += olo
        hi += ohi
        lo += [np.log(s.lower) for s in self.sigmas]
        hi += [np.log(s.upper) for s in self.sigmas]
        return np.array(lo, float), np.array(hi, float)
