"""The predictive distribution of a population fit: the fitted model rebuilt on its data, and
replicates of the study simulated from it (what VPC, pcVPC, NPDE and SIR start from).

:func:`rebuild` lays the data set out exactly as the fit did (one
:class:`~ctkinetics.estimation.fitproblem.FitProblem`) and gives the fit's
:class:`~.structure.PopModel` with its estimates. :func:`simulate` draws replicates: each
re-samples every subject's random effects η ~ N(0, Ω) and residual errors from the fitted
error model on its transformed scale (y = f·exp(sd·ε) for proportional error, y = f + sd·ε
otherwise) at the subjects' own sampling times and covariates; a simulated value below its
sample's LLOQ is BLQ, as the assay would report it.

>>> fitted = rebuild(result, dataset, "onecpt_oral")                 # doctest: +SKIP
>>> sim = simulate(fitted, 1000, np.random.default_rng(1))           # doctest: +SKIP
>>> sim.y[0].shape      # (replicates, subjects, samples) of the first analyte    # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.errors import SettingsError


@dataclass(frozen=True)
class Fitted:
    """A population fit rebuilt on its data: ``pm`` (PopModel), ``data`` (PopData), the
    estimates split into θ, β, Ω, σ, ``phi_pop`` (n, p) and the error model."""

    pm: object
    data: object
    x: np.ndarray
    theta: np.ndarray
    beta: np.ndarray
    omega: np.ndarray
    sigma: np.ndarray
    error: object

    @property
    def phi_pop(self):
        return self.pm.phi_pop(self.theta, self.beta)

    def population_predictions(self):
        """PRED (η = 0) per analyte, (n, m)."""
        return self.pm.predict(self.phi_pop)


def rebuild(result, dataset, model, analytes=None, fixed=None, estimate=None) -> Fitted:
    """The fit ``result`` on ``dataset`` (the data it was fitted to) and ``model``.

    ``analytes``, ``fixed`` and ``estimate`` default to the fit's settings.
    """
    from ctkinetics.estimation.fitproblem import FitProblem
    from ctkinetics.estimation.likelihood import get_blq_method, get_error_model
    from ctkinetics.estimation.population.data import lay_out
    from ctkinetics.estimation.population.structure import PopModel

    if result.spec is None or result.x is None:
        raise SettingsError("this PopulationResult carries no estimates (a failed fit?)")
    s = result.settings or {}
    problem = FitProblem.build(
        dataset, model, analytes=analytes if analytes is not None else s.get("analytes"),
        blq=get_blq_method(result.blq_method), error=get_error_model(result.error_model),
        estimate=estimate if estimate is not None else s.get("estimate"),
        fixed=fixed if fixed is not None else (s.get("fixed") or None))
    data = lay_out(problem)
    fitted_subjects = [str(v) for v in s.get("subjects", data.subjects)]
    if list(data.subjects) != fitted_subjects:
        raise SettingsError("the data set is not the one that was fitted (subjects differ: "
                            f"{len(data.subjects)} here, {len(fitted_subjects)} in the fit)")
    pm = PopModel(problem.model, data, result.spec, problem.error)
    x = np.asarray(result.x, float)
    theta, beta, omega, sigma = result.spec.split(x)
    return Fitted(pm, data, x, theta, beta, omega, sigma, problem.error)


def fitted_ebe(result, data, spec) -> np.ndarray:
    """The fit's EBEs (n, q) from its ``individual`` table, in the data's subject order."""
    ind = result.individual
    eta = np.zeros((data.n, spec.q))
    table = ind.set_index(["subject", "parameter"])["eta"]
    for i, s in enumerate(data.subjects):
        for j, r in enumerate(spec.random):
            eta[i, j] = float(table.get((str(s), r), 0.0))
    return eta


@dataclass(frozen=True)
class Simulated:
    """Replicates of the study, per analyte (lists in ``data.analytes`` order), each
    (R, n, m): ``y`` simulated values (the value even when BLQ), ``blq`` below the sample's
    LLOQ, ``ipred`` the predictions without residual error."""

    y: list
    blq: list
    ipred: list


def simulate(fitted: Fitted, n_replicates: int, rng) -> Simulated:
    """``n_replicates`` replicates of the study from the fit (see the module)."""
    pm, data = fitted.pm, fitted.data
    R, n, q = int(n_replicates), data.n, pm.spec.q
    eta = rng.standard_normal((R, n, q)) @ np.linalg.cholesky(fitted.omega).T
    preds = pm.predict(pm.with_eta(fitted.phi_pop, eta))
    ys, blqs = [], []
    for a, f, s in zip(data.analytes, preds, pm.sigmas_of(fitted.sigma)):
        sd = fitted.error.sd(f, s)
        eps = rng.standard_normal(f.shape)
        with np.errstate(all="ignore"):
            y = f * np.exp(sd * eps) if fitted.error.log_transform else f + sd * eps
        lloq = np.where(np.isfinite(a.lloq), a.lloq, -np.inf)
        ys.append(y)
        blqs.append(y < lloq)
    return Simulated(ys, blqs, preds)


__all__ = ["Fitted", "Simulated", "rebuild", "simulate"]
