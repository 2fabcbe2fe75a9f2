"""``fit_population``: nonlinear mixed-effects fits by FOCE-I or SAEM."""
from __future__ import annotations

import time as _time

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.fitproblem import parse_names, resolve_model
from ctkinetics.estimation.likelihood import check_compatible, get_blq_method, get_error_model
from ctkinetics.estimation.population import diagnostics as dg
from ctkinetics.estimation.population.data import build_data
from ctkinetics.estimation.population.focei import FoceObjective, fit_focei, hessian
from ctkinetics.estimation.population.results import PopulationResult
from ctkinetics.estimation.population.saem import fit_saem
from ctkinetics.estimation.population.spec import parse_covariates
from ctkinetics.estimation.population.structure import PopModel, make_spec

METHODS = ("focei", "saem")


def fit_population(dataset, model, random_effects=None, covariates=None, method="focei",
                   blq="M3", error="proportional", omega="diagonal", analytes=None,
                   fixed=None, init=None, omega_init=None, covariance=True, seed=0,
                   saem_iterations=(150, 100), max_iter=300, progress=None
                   ) -> PopulationResult:
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
        Parameters with a random effect (default: every kinetic parameter).
    covariates : str, list or dict, optional
        Effects such as ``"CL~dose"`` (power, reference the median) or
        ``"Cmax~bcell0:exponential"``; covariates are columns of ``dataset.subjects``.
    method : {'focei', 'saem'}
        FOCE-I (Laplace with the Gauss–Newton Hessian, interaction) or SAEM. Both report
        the FOCE-I −2LL and SEs from the FOCE-I Hessian (for SAEM evaluated at its
        estimates, with the EBEs started from SAEM's final chains; ``settings["se_method"]``
        and ``fit.json`` say so).
    blq : {'M1', 'M3', 'M5', 'M6', 'M7'}
    error : {'proportional', 'additive', 'combined'}
        One residual error per analyte.
    omega : {'diagonal', 'block'}
    analytes : list of str, optional
    fixed : dict, optional
        Model parameters held at natural-scale values.
    init : dict, optional
        Starting natural-scale values of θ or σ (default: the model's defaults).
    omega_init : dict, optional
        Starting ω² per random-effect parameter (default: the model's ω², else 0.2).
    covariance : bool
        Compute the covariance step: Hessian of the FOCE-I −2LL by central differences of
        its envelope-theorem gradient (:func:`.focei.hessian`), Cov = 2·H⁻¹.
    seed : int
        SAEM's random numbers.
    saem_iterations : (int, int)
        Burn-in (γ = 1) and smoothing (γ = 1/k) iterations of SAEM.
    progress : callable(str), optional
        Receives progress lines (the CLI prints them on stderr).

    Returns
    -------
    PopulationResult

    Examples
    --------
    >>> res = fit_population(ds, "onecpt_oral", random_effects="ka,CL",
    ...                      error="additive")                       # doctest: +SKIP
    >>> res.to_frame()[["parameter", "estimate", "se", "rse_pct"]]   # doctest: +SKIP
    """
    t0 = _time.perf_counter()
    method = str(method).lower()
    if method not in METHODS:
        raise SettingsError(f"unknown population method '{method}'; choose one of "
                            f"{', '.join(METHODS)}")
    if str(omega).lower() not in ("diagonal", "block"):
        raise SettingsError(f"omega must be 'diagonal' or 'block' (got '{omega}')")
    err = get_error_model(error)
    blqm = get_blq_method(blq)
    check_compatible(err, blqm)
    model = resolve_model(model)
    effects = parse_covariates(covariates)
    random = parse_names(random_effects) if random_effects is not None else None
    data = build_data(dataset, model, err, blqm, analytes, fixed)
    spec, x0 = make_spec(data, model, random, effects, str(omega).lower() == "block", init,
                         omega_init)
    if spec.q == 0:
        raise SettingsError("a population fit needs at least one random effect")
    pm = PopModel(model, data, spec, err)
    say = progress or (lambda s: None)
    say(f"{method.upper()}: {data.n} subjects, {data.n_obs} observations "
        f"({data.n_censored} censored), {spec.size} parameters")

    saem_info = {}
    if method == "focei":
        outer, obj = fit_focei(pm, x0, max_iter=max_iter, progress=say)
        x, converged, message = outer.x, outer.success, outer.message
        history = pd.DataFrame(list(outer.history), columns=["iteration", "ofv"])
        iterations, evaluations = outer.iterations, outer.evaluations
    else:
        burn, smooth = (int(v) for v in saem_iterations)
        sa = fit_saem(pm, x0, burn, smooth, seed, progress=say)
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
        iterations, evaluations = sa.iterations, obj.evaluations
        saem_info = {"acceptance": sa.acceptance, "saem_final_drift": drift}

    terms, e = obj.terms(x, tol=1e-9)
    ofv = float(np.sum(terms))
    theta, beta, om, sigma = spec.split(x)
    phi_pop = pm.phi_pop(theta, beta)
    eta = e.eta if e is not None else np.zeros((data.n, spec.q))
    cond = np.nan
    if covariance:
        say("covariance step: Hessian of the FOCE-I -2LL (differences of its gradient)")
        H = hessian(obj, x)
        cov, cond = dg.covariance_from_hessian(H)
    else:
        cov = np.full((x.size, x.size), np.nan)
    shrink = dg.shrinkage(eta, om)
    params = dg.parameter_table(spec, x, cov, shrink, pm.references)
    omega_tab = dg.omega_table(spec, om, params)
    individual = dg.individual_table(pm, phi_pop, eta)
    predictions, eps_shrink = dg.prediction_table(pm, phi_pop, eta, om, sigma)
    names = spec.x_names()
    dv = np.diag(cov)
    sd = np.sqrt(np.where(dv > 0, dv, np.nan))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd)
    k = spec.size
    flags = []
    if not converged:
        flags.append("not_converged")
    if covariance and not np.all(np.isfinite(sd)):
        flags.append("covariance_failed")
    lo, hi = spec.bounds()
    at_bound = [nm for nm, v, a, b in zip(names, x, lo, hi) if v <= a + 1e-6 or v >= b - 1e-6]
    if at_bound:
        flags.append("at_bound")
    if np.any(params["rse_pct"].to_numpy(float) > 50):
        flags.append("rse>50%")
    if not e.converged.all():
        flags.append("ebe_not_converged")
    diagnostics = {
        "iterations": iterations, "evaluations": evaluations, "condition_number": cond,
        "epsilon_shrinkage_pct": eps_shrink, "flags": flags, "at_bound": at_bound,
        "ebe_converged": int(e.converged.sum()), "fit_seconds": _time.perf_counter() - t0,
        "covariate_references": dict(zip([ef.name for ef in effects], pm.references)),
        **saem_info}
    settings = dict(method=method, random_effects=list(spec.random),
                    covariates=[f"{ef.parameter}~{ef.covariate}:{ef.kind}" for ef in effects],
                    omega=str(omega).lower(), analytes=[a.analyte for a in data.analytes],
                    fixed=dict(fixed or {}), seed=int(seed),
                    saem_iterations=list(saem_iterations), subjects=list(data.subjects),
                    ofv_method="FOCE-I Laplace approximation",
                    se_method=("none" if not covariance else
                               "FOCE-I Hessian (central differences of the envelope-theorem "
                               "gradient), Cov = 2 H^-1, at the "
                               + ("FOCE-I optimum" if method == "focei" else
                                  "SAEM estimates (EBEs from SAEM's final chains)")))
    say(f"done: -2LL = {ofv:.4f}, AIC = {ofv + 2 * k:.4f} "
        f"({diagnostics['fit_seconds']:.1f} s)")
    return PopulationResult(
        model=model.name, method=method, blq_method=blqm.name, error_model=err.name,
        parameters=params, omega=omega_tab, individual=individual, predictions=predictions,
        ofv=ofv, aic=ofv + 2 * k, bic=ofv + k * np.log(max(data.n_obs, 1)),
        n_subjects=data.n, n_obs=data.n_obs, n_censored=data.n_censored, n_params=k,
        converged=bool(converged), message=message,
        covariance=pd.DataFrame(cov, index=names, columns=names),
        correlation=pd.DataFrame(corr, index=names, columns=names),
        diagnostics=diagnostics, history=history, settings=settings, spec=spec, x=x)
