"""Population estimation methods as objects that carry their own options.

``fit_population(dataset, model, method=SAEM(n_burn=300, n_iter=200, seed=1))``; a name
from :data:`METHODS` gives the method with its default options (``method="saem"``). Each
method's :meth:`run` returns a :class:`MethodRun`; whatever the method, the result reports
the FOCE-I −2LL and SEs from the FOCE-I Hessian at its estimates (see ``fit_population``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError


@dataclass(frozen=True)
class MethodRun:
    """What a method hands back: estimates, the FOCE-I objective object (with EBEs at
    ``x``), convergence and its history."""

    x: np.ndarray
    objective: object
    converged: bool
    message: str
    history: pd.DataFrame
    iterations: int
    evaluations: int
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FOCEI:
    """FOCE-I: Laplace approximation around the EBEs (interaction), minimised by L-BFGS-B
    with the envelope-theorem gradient (:mod:`.focei`).

    Parameters
    ----------
    max_iter : int
        L-BFGS-B iterations over all restarts.
    """

    max_iter: int = 300
    name = "focei"

    def __post_init__(self):
        if int(self.max_iter) < 1:
            raise SettingsError(f"FOCEI(max_iter) must be >= 1 (got {self.max_iter})")

    def run(self, pm, x0, say) -> MethodRun:
        from ctkinetics.estimation.population.focei import fit_focei

        outer, obj = fit_focei(pm, x0, max_iter=int(self.max_iter), progress=say)
        history = pd.DataFrame(list(outer.history), columns=["iteration", "ofv"])
        return MethodRun(outer.x, obj, bool(outer.success), outer.message, history,
                         outer.iterations, outer.evaluations)

    def settings(self) -> dict:
        return {"method": self.name, "max_iter": int(self.max_iter)}


@dataclass(frozen=True)
class SAEM:
    """SAEM (Kuhn & Lavielle 2005; Monolix's and nlmixr2's algorithm, :mod:`.saem`).

    Parameters
    ----------
    n_burn : int
        Burn-in iterations (step γ = 1; nlmixr2's ``nBurn``, Monolix's K1).
    n_iter : int
        Smoothing iterations after the burn-in (γ = 1/k; nlmixr2's ``nEm``, Monolix's K2).
    seed : int
        Seed of the Markov chains.
    """

    n_burn: int = 150
    n_iter: int = 100
    seed: int = 0
    name = "saem"

    def __post_init__(self):
        if int(self.n_burn) < 0 or int(self.n_iter) < 1:
            raise SettingsError("SAEM needs n_burn >= 0 and n_iter >= 1 "
                                f"(got {self.n_burn}, {self.n_iter})")

    def run(self, pm, x0, say) -> MethodRun:
        from ctkinetics.estimation.population.focei import FoceObjective
        from ctkinetics.estimation.population.saem import fit_saem

        spec = pm.spec
        burn, smooth = int(self.n_burn), int(self.n_iter)
        sa = fit_saem(pm, x0, burn, smooth, int(self.seed), progress=say)
        x = sa.x
        obj = FoceObjective(pm)
        # the EBEs start from SAEM's last chains, plus random restarts (multimodal posteriors)
        theta, beta, _, _ = spec.split(x)
        obj.eta = sa.phi - pm.phi_pop(theta, beta)[:, spec.random_index]
        obj(x, update=True, explore=True)
        history = pd.DataFrame(sa.history, columns=spec.x_names())
        history.insert(0, "iteration", np.arange(1, len(history) + 1))
        # the last quarter of the smoothing phase should be flat
        tail = sa.history[-max(5, smooth // 4):]
        drift = float(np.max(np.abs(tail[-1] - tail[0]))) if len(tail) > 1 else 0.0
        converged = bool(np.all(np.isfinite(x)) and drift < 0.05)
        message = (f"SAEM {burn}+{smooth} iterations; max change over the last "
                   f"{len(tail)} iterations {drift:.3g} (estimation scale)")
        return MethodRun(x, obj, converged, message, history, sa.iterations, obj.evaluations,
                         {"acceptance": sa.acceptance, "saem_final_drift": drift})

    def settings(self) -> dict:
        return {"method": self.name, "n_burn": int(self.n_burn), "n_iter": int(self.n_iter),
                "seed": int(self.seed)}


#: Population methods by name (their default options).
METHODS = {"focei": FOCEI, "saem": SAEM}


def resolve_method(method, seed=None, saem_iterations=None, max_iter=None):
    """A method object from itself or its name; the former ``fit_population`` keywords
    (``seed``, ``saem_iterations``, ``max_iter``) still work, with a DeprecationWarning
    naming the option of the method object that replaces each."""
    if isinstance(method, (FOCEI, SAEM)):
        obj = method
    else:
        key = str(method).lower()
        if key not in METHODS:
            raise SettingsError(f"unknown population method '{method}'; choose one of "
                                f"{', '.join(METHODS)} (or pass FOCEI(...) / SAEM(...))")
        obj = METHODS[key]()
    if max_iter is not None:
        _deprecated("max_iter", "FOCEI(max_iter=...)")
        if isinstance(obj, FOCEI):
            obj = replace(obj, max_iter=int(max_iter))
    if saem_iterations is not None:
        _deprecated("saem_iterations", "SAEM(n_burn=..., n_iter=...)")
        if isinstance(obj, SAEM):
            burn, smooth = (int(v) for v in saem_iterations)
            obj = replace(obj, n_burn=burn, n_iter=smooth)
    if seed is not None:
        _deprecated("seed", "SAEM(seed=...)")
        if isinstance(obj, SAEM):
            obj = replace(obj, seed=int(seed))
    return obj


def _deprecated(old, new):
    warnings.warn(f"fit_population({old}=...) is deprecated: pass method={new}",
                  DeprecationWarning, stacklevel=4)


__all__ = ["FOCEI", "SAEM", "METHODS", "MethodRun", "resolve_method"]
