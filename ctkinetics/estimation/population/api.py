"""``fit_population``: nonlinear mixed-effects fits by FOCE-I or SAEM."""
from __future__ import annotations

import time as _time

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.fitproblem import FitProblem, parse_names
from ctkinetics.estimation.flags import FLAGS
from ctkinetics.estimation.population import diagnostics as dg
from ctkinetics.estimation.population.data import lay_out
from ctkinetics.estimation.population.focei import hessian
from ctkinetics.estimation.population.methods import METHODS as _METHODS
from ctkinetics.estimation.population.methods import resolve_method
from ctkinetics.estimation.population.omega import resolve_omega
from ctkinetics.estimation.population.results import PARAMETER_COLUMNS, PopulationResult
from ctkinetics.estimation.population.spec import parse_covariates
from ctkinetics.estimation.population.structure import PopModel, make_spec
from ctkinetics.estimation.uncertainty import at_bounds

#: Population method names (the method objects are in :mod:`.methods`).
METHODS = tuple(_METHODS)


def fit_population(dataset, model, random_effects=None, covariates=None, method="focei",
                   blq="M3", error="proportional", omega="diagonal", analytes=None,
                   fixed=None, init=None, omega_init=None, covariance=True, seed=None,
                   saem_iterations=None, max_iter=None, progress=None, estimate=None,
                   time_limit=None) -> PopulationResult:
    """Fit a nonlinear mixed-effects model to all subjects at once.

    Individual parameters are log-normal around typical values with covariate effects
    (:mod:`ctkinetics.estimation.population.spec`):
    ``P_i = exp(θ + β·g(x_i) + η_i)``, ``η_i ~ N(0, Ω)``; the residual error and BLQ
    handling are the individual fits' (:mod:`ctkinetics.estimation.likelihood`), so M3
    censored samples contribute P(Y < LLOQ) to every subject's likelihood.

    Parameters
    ----------
    dataset : Dataset
        ``.observations``, ``.subjects`` (covariate columns) and ``.study.analytes``.
    model : str or Model
    random_effects : list of str or "a,b", optional
        Parameters with a random effect (default: the estimated ones whose ω² the model file
        declares, else every kinetic parameter).
    covariates : str, list or dict, optional
        Effects such as ``"CL~dose"`` (power, reference the median) or
        ``"Cmax~bcell0:exponential"``; covariates are columns of ``dataset.subjects``.
    method : FOCEI, SAEM or their name {'focei', 'saem'}
        The method object with its own options (:mod:`.methods`): ``FOCEI(max_iter=300)``
        (Laplace with the Gauss–Newton Hessian, interaction) or
        ``SAEM(n_burn=150, n_iter=100, seed=0)``; a name gives the defaults. Both report
        the FOCE-I −2LL and SEs from the FOCE-I Hessian (for SAEM evaluated at its
        estimates, with the EBEs started from SAEM's final chains; ``settings["se_method"]``
        and ``fit.json`` say so).
    blq : {'M1', 'M3', 'M5', 'M6', 'M7'}
    error : {'proportional', 'additive', 'combined'}
        One residual error per analyte.
    omega : Diagonal, Block or their name {'diagonal', 'block'}
        Structure of Ω (:mod:`.omega`).
    analytes : list of str, optional
    fixed : dict, "A=1,B=2" or list of "NAME=VALUE", optional
        Model parameters held at natural-scale values.
    estimate : list of str or "A,B", optional
        Exactly the model parameters estimated (the others fixed); default: the model
        file's choice (see :class:`~ctkinetics.estimation.fitproblem.FitProblem`).
    init : dict, optional
        Starting natural-scale values of θ or σ (default: the model's defaults).
    omega_init : dict, optional
        Starting ω² per random-effect parameter (default: the model's ω², else 0.2).
    covariance : bool
        Compute the covariance step: Hessian of the FOCE-I −2LL by central differences of
        its envelope-theorem gradient (:func:`.focei.hessian`), Cov = 2·H⁻¹.
    seed, saem_iterations, max_iter
        Deprecated: options of the method object (``SAEM(seed=..., n_burn=...,
        n_iter=...)``, ``FOCEI(max_iter=...)``); still accepted with a DeprecationWarning.
    time_limit : float, optional
        Wall-clock limit in seconds for the estimation; a run that exceeds it is returned
        with ``failed=True`` and the reason (default: none).
    progress : callable(str), optional
        Receives progress lines (the CLI prints them on stderr).

    Returns
    -------
    PopulationResult
        ``failed`` and ``failure`` say when the run gave no usable estimates (non-finite
        objective or estimates, time limit); ``diagnostics["flags"]`` lists the flags of
        :mod:`ctkinetics.estimation.flags`.

    Examples
    --------
    >>> res = fit_population(ds, "onecpt_oral", random_effects="ka,CL",
    ...                      error="additive")                       # doctest: +SKIP
    >>> res.to_frame()[["parameter", "estimate", "se", "rse_pct"]]   # doctest: +SKIP
    """
    t0 = _time.perf_counter()
    method = resolve_method(method, seed=seed, saem_iterations=saem_iterations,
                            max_iter=max_iter)
    structure = resolve_omega(omega)
    effects = parse_covariates(covariates)
    random = parse_names(random_effects) if random_effects is not None else None
    problem = FitProblem.build(dataset, model, analytes=analytes, blq=blq, error=error,
                               estimate=estimate, fixed=fixed)
    data = lay_out(problem)
    model, err = problem.model, problem.error
    spec, x0 = make_spec(data, model, random, effects, structure, init, omega_init)
    if spec.q == 0:
        raise SettingsError("a population fit needs at least one random effect")
    pm = PopModel(model, data, spec, err)
    say = progress or (lambda s: None)
    say(f"{method.name.upper()}: {data.n} subjects, {data.n_obs} observations "
        f"({data.n_censored} censored), {spec.size} parameters")
    run, failure = _run(method, pm, x0, say, time_limit, t0)
    result = None
    if run is not None:
        result = _result(problem, data, pm, run, method, structure, effects, covariance, say,
                         t0, time_limit)
        failure = "Ω not positive definite at the estimates"
    if result is None:
        result = _failed_result(problem, data, spec, method, structure, effects, failure, t0)
    # where the estimation started (natural scale, the parameter table's names)
    result.settings["start"] = {n: float(v) for n, v in zip(
        dg.parameter_names(spec), dg._natural(spec, np.asarray(x0, float)))}
    return result


def _run(method, pm, x0, say, time_limit, t0):
    """(MethodRun, '') or (None, reason): a method that raises, exceeds the time limit or
    ends on non-finite estimates is a failed run, never a result."""
    deadline = None if time_limit is None else t0 + float(time_limit)
    if deadline is not None:
        inner = say

        def say(line):  # noqa: F811 - the time limit is checked at every progress line
            inner(line)
            if _time.perf_counter() > deadline:
                raise _TimeLimit()
    try:
        run = method.run(pm, x0, say)
    except _TimeLimit:
        return None, f"time limit of {float(time_limit):g} s reached"
    except (ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if not np.all(np.isfinite(run.x)):
        return None, "non-finite estimates"
    return run, ""


class _TimeLimit(Exception):
    pass


def _result(problem, data, pm, run, method, structure, effects, covariance, say, t0,
            time_limit):
    spec, x, obj = pm.spec, run.x, run.objective
    terms, e = obj.terms(x, tol=1e-9)
    if e is None:
        return None
    ofv = float(np.sum(terms))
    theta, beta, om, sigma = spec.split(x)
    phi_pop = pm.phi_pop(theta, beta)
    eta = e.eta if e is not None else np.zeros((data.n, spec.q))
    cond = np.nan
    uninformed = []
    if covariance:
        say("covariance step: Hessian of the FOCE-I -2LL (differences of its gradient)")
        H = hessian(obj, x)
        cov, cond = dg.covariance_from_hessian(H)
        uninformed = dg.uninformed(H, spec.x_names())
    else:
        cov = np.full((x.size, x.size), np.nan)
    shrink = dg.shrinkage(eta, om)
    params = dg.parameter_table(spec, x, cov, shrink, pm.references)
    predictions, eps_shrink = dg.prediction_table(pm, phi_pop, eta, om, sigma)
    names = spec.x_names()
    sd = np.sqrt(np.where(np.diag(cov) > 0, np.diag(cov), np.nan))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd)
    at_bound = _at_bound(spec, x)
    flags = _flags(run.converged, covariance, sd, at_bound, params, e, np.isfinite(ofv),
                   uninformed)
    failed = not np.isfinite(ofv)
    k = spec.size
    diagnostics = {
        "iterations": run.iterations, "evaluations": run.evaluations,
        "condition_number": cond, "epsilon_shrinkage_pct": eps_shrink, "flags": flags,
        "at_bound": at_bound, "uninformed": uninformed,
        "ebe_converged": int(e.converged.sum()),
        "fit_seconds": _time.perf_counter() - t0,
        "covariate_references": dict(zip([ef.name for ef in effects], pm.references)),
        **run.info}
    settings = _settings(problem, data, spec, method, structure, effects, covariance,
                         time_limit)
    say(f"done: -2LL = {ofv:.4f}, AIC = {ofv + 2 * k:.4f} "
        f"({diagnostics['fit_seconds']:.1f} s)")
    return PopulationResult(
        model=problem.model.name, method=method.name, blq_method=problem.blq.name,
        error_model=problem.error.name, parameters=params,
        omega=dg.omega_table(spec, om, params),
        individual=dg.individual_table(pm, phi_pop, eta), predictions=predictions,
        ofv=ofv, aic=ofv + 2 * k, bic=ofv + k * np.log(max(data.n_obs, 1)),
        n_subjects=data.n, n_obs=data.n_obs, n_censored=data.n_censored, n_params=k,
        converged=bool(run.converged) and not failed, message=run.message,
        covariance=pd.DataFrame(cov, index=names, columns=names),
        correlation=pd.DataFrame(corr, index=names, columns=names),
        diagnostics=diagnostics, history=run.history, settings=settings, spec=spec, x=x,
        failed=failed, failure="non-finite objective at the estimates" if failed else "")


def _at_bound(spec, x):
    """Names of the entries of ``x`` on a bound (the individual fits' rule)."""
    lo, hi = spec.bounds()
    bound = at_bounds(np.asarray(x, float), lo, hi)
    return [nm for nm, b in zip(spec.x_names(), bound) if b]


def _flags(converged, covariance, sd, at_bound, params, ebe, finite, uninformed=()):
    """Flags of the run (registry :mod:`ctkinetics.estimation.flags`)."""
    out = []
    if not finite:
        out.append("failed")
    if not converged:
        out.append("not_converged")
    if covariance and not np.all(np.isfinite(sd)):
        out.append("covariance_failed")
    if uninformed:
        out.append("non_identifiable")
    if at_bound:
        out.append("at_bound")
    if np.any(params["rse_pct"].to_numpy(float) > FLAGS["rse>50%"].limit):
        out.append("rse>50%")
    if np.any(params["shrinkage_pct"].to_numpy(float) > FLAGS["shrinkage>30%"].limit):
        out.append("shrinkage>30%")
    if not ebe.converged.all():
        out.append("ebe_not_converged")
    return out


def _settings(problem, data, spec, method, structure, effects, covariance, time_limit):
    opts = method.settings()
    return dict(
        method=method.name, method_options=opts, random_effects=list(spec.random),
        covariates=[f"{ef.parameter}~{ef.covariate}:{ef.kind}" for ef in effects],
        omega=structure.name, analytes=[a.analyte for a in data.analytes],
        fixed=problem.fixed, estimate=problem.estimated,
        seed=opts.get("seed"), subjects=list(data.subjects), time_limit=time_limit,
        saem_iterations=[opts["n_burn"], opts["n_iter"]] if "n_burn" in opts else None,
        ofv_method="FOCE-I Laplace approximation",
        se_method=("none" if not covariance else
                   "FOCE-I Hessian (central differences of the envelope-theorem gradient), "
                   "Cov = 2 H^-1, at the " + ("FOCE-I optimum" if method.name == "focei" else
                                              "SAEM estimates (EBEs from SAEM's final "
                                              "chains)")))


def _failed_result(problem, data, spec, method, structure, effects, failure, t0):
    """A failed run: no estimates, the reason in ``failure`` and ``message``."""
    names = spec.x_names()
    nan = pd.DataFrame(np.full((len(names), len(names)), np.nan), index=names, columns=names)
    empty = pd.DataFrame()
    k = spec.size
    return PopulationResult(
        model=problem.model.name, method=method.name, blq_method=problem.blq.name,
        error_model=problem.error.name,
        parameters=pd.DataFrame(columns=PARAMETER_COLUMNS), omega=empty,
        individual=empty, predictions=empty, ofv=np.nan, aic=np.nan, bic=np.nan,
        n_subjects=data.n, n_obs=data.n_obs, n_censored=data.n_censored, n_params=k,
        converged=False, message=f"failed: {failure}", covariance=nan, correlation=nan,
        diagnostics={"flags": ["failed"], "at_bound": [],
                     "fit_seconds": _time.perf_counter() - t0},
        settings=_settings(problem, data, spec, method, structure, effects, False, None),
        spec=spec, x=None, failed=True, failure=failure)
