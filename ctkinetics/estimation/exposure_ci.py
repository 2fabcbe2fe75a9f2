"""Confidence intervals on model-based exposure: Cmax, Tmax, AUC0-28 (and the duration of
B-cell aplasia for a model that observes B cells) per participant and the geometric mean per
dose level, by simulation from the parameter uncertainty.

The metrics are those of the one exposure registry (:mod:`ctkinetics.modeling.exposure`,
through :func:`ctkinetics.estimation.derived.exposure_rows`, so the point estimates equal the
fits' ``derived`` values). ``n_draws`` parameter sets are drawn:

- individual fits (:class:`~ctkinetics.estimation.FitResult`): each participant's estimates
  from N(θ̂_i, Cov_i) on the estimation scale (ln for log parameters; Cov_i the fit's
  covariance); a participant without a covariance, or with a parameter flagged
  ``not_estimable``, gets no interval (the parameter table shows no CI for it either);
- a population fit (:class:`~ctkinetics.estimation.population.PopulationResult`): the
  population vector x from N(x̂, Cov(x)) of the covariance step, or the replicates of a
  :class:`~ctkinetics.estimation.bootstrap.BootstrapResult` or the resamples of a
  :class:`~ctkinetics.estimation.sir.SIRResult` (``source=``); for each, every participant's
  EBE η̂_i(x) (the mode next to the fit's EBE) and its conditional covariance A_i(x)⁻¹ (the
  FOCE-I approximation of the posterior), and η_i ~ N(η̂_i, A_i⁻¹): population and
  individual uncertainty together. The point estimate is at the fit's EBEs.

The interval is the (1 ± level)/2 quantiles of the draws. For a dose level, the geometric
mean over its participants is computed for every draw (:func:`ctkinetics.stats.
geometric_mean`) and its quantiles taken; for the aplasia duration (which can be 0) the
arithmetic mean.

>>> ci = exposure_intervals(fit_result, ds, n_draws=500, seed=1)      # doctest: +SKIP
>>> ci.participants.query("metric == 'AUC0-28'")                       # doctest: +SKIP
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.result_folder import FolderResult

PARTICIPANT_COLUMNS = ["subject", "dose_level", "analyte", "metric", "unit", "estimate",
                       "ci_low", "ci_high", "ci_level", "n_draws", "note"]
LEVEL_COLUMNS = ["dose_level", "analyte", "metric", "unit", "statistic", "n_participants",
                 "estimate", "ci_low", "ci_high", "ci_level", "n_draws", "note"]


@dataclass(frozen=True)
class ExposureCI(FolderResult):
    """Intervals on model-based exposure (see the module).

    Attributes
    ----------
    participants : DataFrame
        :data:`PARTICIPANT_COLUMNS`: the point estimate (at the estimates / EBEs) and the
        interval of each participant's metric; ``note`` says why an interval is missing.
    dose_levels : DataFrame
        :data:`LEVEL_COLUMNS`: per dose level the geometric mean (arithmetic for the aplasia
        duration) of the participants' point estimates and its interval — none when a
        participant of the level has no interval (``note`` names them).
    settings : dict
    """

    participants: pd.DataFrame
    dose_levels: pd.DataFrame
    settings: dict = field(default_factory=dict)

    FILES = (("participants", "exposure_ci.csv"), ("dose_levels", "exposure_ci_dose_levels.csv"))
    JSON, KIND, META = "exposure_ci.json", "exposure intervals", ("settings",)

    def to_frame(self) -> pd.DataFrame:
        return self.participants.copy()


# --------------------------------------------------------------------------------------
# metrics of many parameter sets
# --------------------------------------------------------------------------------------
def metrics(model, maps, params, scales, covariates, t_end, thresholds=None) -> dict:
    """(analyte, metric) -> (values (N,), unit) for N parameter sets: Cmax, Tmax, AUC0-28 of
    every fitted analyte (:func:`~ctkinetics.estimation.derived.exposure_rows`) and, for a
    B-cell analyte with a threshold, the aplasia duration."""
    from ctkinetics.estimation.derived import AUC_WINDOW, exposure_rows

    out = {(a, q): (np.asarray(v, float), u)
           for a, q, v, u in exposure_rows(model, params, covariates, maps, scales, t_end)}
    for m in maps:
        thr = (thresholds or {}).get(m.analyte)
        if m.kind != "bcell" or thr is None or not np.isfinite(thr) or m.scale_param:
            continue
        from ctkinetics.modeling.exposure import model_exposure

        with np.errstate(all="ignore"):
            e = model_exposure(model, params, covariates or None, kinds=["bcell"],
                               t_end=np.maximum(AUC_WINDOW[1], np.asarray(t_end, float)),
                               thresholds={"bcell": float(thr)}, metrics=("aplasia_days",))
        out[(m.analyte, "aplasia_days")] = (np.asarray(e.values[("bcell", "aplasia_days")],
                                                       float),
                                            getattr(model, "time_unit", "") or "day")
    return out


def _summaries(point, draws, subjects, levels, level, n_draws, notes):
    """The two tables from point values (n,) and draws (K, n) per (analyte, metric)."""
    from ctkinetics.stats import geometric_mean

    a = (1.0 - level) / 2.0
    rows, lrows = [], []
    for (analyte, metric), (est, unit) in point.items():
        sims = draws[(analyte, metric)]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # participants without draws
            lo, hi = np.nanquantile(sims, [a, 1 - a], axis=0) if len(sims) else \
                (np.full(est.size, np.nan),) * 2
        for i, s in enumerate(subjects):
            ok = not notes[i] and np.isfinite(sims[:, i]).sum() >= 0.9 * len(sims)
            rows.append(dict(subject=s, dose_level=levels[i], analyte=analyte, metric=metric,
                             unit=unit, estimate=float(est[i]),
                             ci_low=float(lo[i]) if ok else np.nan,
                             ci_high=float(hi[i]) if ok else np.nan, ci_level=level,
                             n_draws=n_draws if ok else 0,
                             note=notes[i] or ("" if ok else "more than 10 % of the draws "
                                               "could not be computed")))
        mean = (lambda v: float(np.mean(v))) if metric == "aplasia_days" else geometric_mean
        stat = "mean" if metric == "aplasia_days" else "geometric mean"
        for lv in dict.fromkeys(levels):
            idx = [i for i, x in enumerate(levels) if x == lv]
            missing = [subjects[i] for i in idx if notes[i]]
            per_draw = np.array([mean(sims[k, idx]) for k in range(len(sims))]) \
                if not missing else np.array([])
            per_draw = per_draw[np.isfinite(per_draw)]
            q = np.quantile(per_draw, [a, 1 - a]) if per_draw.size > 1 else (np.nan, np.nan)
            lrows.append(dict(dose_level=lv, analyte=analyte, metric=metric, unit=unit,
                              statistic=stat, n_participants=len(idx),
                              estimate=mean(est[idx]), ci_low=float(q[0]),
                              ci_high=float(q[1]), ci_level=level,
                              n_draws=int(per_draw.size),
                              note=(f"no interval: {len(missing)} of {len(idx)} participants "
                                    "without one (" + "; ".join(
                                        f"{subjects[i]}: {notes[i]}" for i in idx if notes[i])
                                    + ")" if missing else "")))
    return (pd.DataFrame(rows, columns=PARTICIPANT_COLUMNS),
            pd.DataFrame(lrows, columns=LEVEL_COLUMNS))


# --------------------------------------------------------------------------------------
def exposure_intervals(result, dataset, model=None, *, source=None, n_draws=500, seed=0,
                       level=0.95) -> ExposureCI:
    """Intervals on model-based exposure of a fit (see the module).

    Parameters
    ----------
    result : FitResult or PopulationResult
    dataset : Dataset
        The data set fitted.
    model : str or Model, optional
        The model fitted (default: the result's model name from the library).
    source : None, BootstrapResult or SIRResult
        Population fits: where the population parameters are drawn from (default the
        covariance step).
    n_draws : int
    seed : int
    level : float
    """
    from ctkinetics.estimation.fitproblem import resolve_model

    if int(n_draws) < 20:
        raise SettingsError(f"n_draws must be at least 20 (got {n_draws})")
    if not 0.5 < float(level) < 1.0:
        raise SettingsError(f"level must be between 0.5 and 1 (got {level})")
    model = resolve_model(model if model is not None else result.model)
    rng = np.random.default_rng(seed)
    if hasattr(result, "fits"):
        point, draws, subjects, levels, notes, how = _individual(result, dataset, model,
                                                                 int(n_draws), rng)
    else:
        point, draws, subjects, levels, notes, how = _population(result, dataset, model,
                                                                 source, int(n_draws), rng)
    parts, lv = _summaries(point, draws, subjects, levels, float(level), int(n_draws), notes)
    return ExposureCI(parts, lv, dict(n_draws=int(n_draws), seed=int(seed), level=float(level),
                                      method=how, model=getattr(model, "name", "")))


def _problem(result, dataset, model):
    from ctkinetics.estimation.fitproblem import FitProblem

    s = result.settings or {}
    return FitProblem.build(dataset, model, analytes=list(getattr(result, "analytes", ()) or
                                                          s.get("analytes") or []) or None,
                            blq=result.blq_method, error=result.error_model,
                            estimate=s.get("estimate"), fixed=s.get("fixed") or None)


def _thresholds(dataset, maps):
    """analyte -> LLOQ of the study's B-cell analytes (the aplasia threshold)."""
    table = getattr(getattr(dataset, "study", None), "analytes", None) or {}
    return {m.analyte: getattr(table.get(m.analyte), "lloq", np.nan) for m in maps
            if m.kind == "bcell"}


def _t_end(subject_data):
    return max([a.times.max() for a in subject_data.analytes if a.times.size] + [0.0])


def _individual(result, dataset, model, K, rng):
    problem = _problem(result, dataset, model)
    specs = problem.layout.specs
    by = {d.subject: d for d in problem.subjects}
    fits = [f for f in result.fits if f.subject in by]
    subjects = [f.subject for f in fits]
    levels = [result.dose_levels.get(s, "") for s in subjects]
    theta, sims, notes = _individual_draws(result.to_frame(), fits, specs, K, rng)
    n, p = theta.shape
    all_theta = np.concatenate([theta[None], sims]).reshape(-1, p)     # (1 + K)·n rows
    nat = np.column_stack([s.from_est(all_theta[:, j]) for j, s in enumerate(specs)])
    params = {s.model_name: nat[:, j] for j, s in enumerate(specs) if s.role == "model"}
    params.update({k: np.full(len(nat), v) for k, v in problem.layout.fixed.items()})
    scales = {s.analyte: nat[:, j] for j, s in enumerate(specs) if s.role == "scale"}
    cov_names = list(getattr(model, "covariates", None) or ())
    covs = {c: np.tile([by[s].covariates.get(c, np.nan) for s in subjects], K + 1)
            for c in cov_names}
    t_end = np.tile([_t_end(by[s]) for s in subjects], K + 1)
    values = metrics(model, problem.maps, params, scales, covs, t_end,
                     _thresholds(dataset, problem.maps))
    point = {k: (v[:n], u) for k, (v, u) in values.items()}
    draws = {k: v[n:].reshape(K, n) for k, (v, u) in values.items()}
    return point, draws, subjects, levels, notes, \
        "individual estimates drawn from N(estimate, covariance) on the estimation scale"


def _individual_draws(table, fits, specs, K, rng):
    """Estimates (n, p) on the estimation scale, K draws (K, n, p) and a note per fit.

    A fit without usable estimates or covariance keeps NaN draws and says why; the draws
    of the others come from N(estimate, covariance), in fit order (one generator).
    """
    n, p = len(fits), len(specs)
    theta = np.full((n, p), np.nan)
    notes = [""] * n
    sims = np.full((K, n, p), np.nan)
    for i, f in enumerate(fits):
        t = table[table["subject"] == f.subject].set_index("parameter")
        theta[i] = [t.loc[s.name, "estimate_transformed"] if s.name in t.index else np.nan
                    for s in specs]
        notes[i], L = _draw_factor(f, t, specs, theta[i])
        if L is not None:
            sims[:, i] = theta[i] + rng.standard_normal((K, p)) @ L.T
    return theta, sims, notes


def _draw_factor(fit, table, specs, theta):
    """(note, Cholesky factor of the fit's covariance or None) for one fit."""
    cov = None if fit.cov is None else np.asarray(fit.cov, float)
    names = list(fit.param_names) if cov is not None else []
    if fit.failed or not np.all(np.isfinite(theta)):
        return "no estimates (fit failed)", None
    bad = [n for n, fl in zip(table.index, table["flags"].astype(str))
           if "not_estimable" in fl.split(";")]
    if bad:     # as the parameter table, which shows no CI for them
        return f"not estimable: {', '.join(bad)}", None
    if cov is None or [s.name for s in specs] != names or not np.all(np.isfinite(cov)):
        return "no covariance (parameters not estimable)", None
    try:
        return "", np.linalg.cholesky(0.5 * (cov + cov.T))
    except np.linalg.LinAlgError:
        return "covariance not positive definite", None


def _population_vectors(result, source, K, rng):
    """(K, size) population vectors x and a description."""
    spec, xhat = result.spec, np.asarray(result.x, float)
    if source is None:
        cov = result.covariance.to_numpy(float) if len(result.covariance) else None
        if cov is None or not np.all(np.isfinite(cov)):
            raise SettingsError("the population fit has no covariance step: pass a "
                                "bootstrap or SIR result as source")
        L = np.linalg.cholesky(0.5 * (cov + cov.T))
        return xhat + rng.standard_normal((K, xhat.size)) @ L.T, \
            "population parameters from N(x_hat, Cov) of the covariance step"
    wide = _natural_draws(source)
    rows = wide.to_numpy(float)
    rows = rows[np.all(np.isfinite(rows), axis=1)]
    if len(rows) < 2:
        raise SettingsError("the uncertainty source has fewer than 2 usable draws")
    pick = rng.integers(0, len(rows), K)
    xs = np.array([x_from_natural(spec, dict(zip(wide.columns, rows[k]))) for k in pick])
    kind = "bootstrap replicates" if hasattr(source, "replicates") else "SIR resamples"
    flags = list(getattr(source, "flags", ()))
    caveat = (f" (flagged {', '.join(flags)}: the intervals inherit what those flags say — a "
              "parameter the replicates did not move adds no uncertainty, a SIR with few "
              "effective proposals gives ragged limits)" if flags else "")
    return xs, f"population parameters drawn from the {kind}{caveat}"


def _natural_draws(source) -> pd.DataFrame:
    if hasattr(source, "values"):
        return source.values()
    e = source.estimates
    return e.pivot(index="sample", columns="parameter", values="estimate")


def x_from_natural(spec, values: dict) -> np.ndarray:
    """The estimated vector x from natural-scale values (θ, β, ω² and ω covariances, σ)."""
    theta = [np.log(values[t.name]) if t.log else values[t.name] for t in spec.thetas]
    beta = [values[e.name] for e in spec.effects]
    q = spec.q
    omega = np.zeros((q, q))
    for i, a in enumerate(spec.random):
        omega[i, i] = values[f"omega2_{a}"]
        for j in range(i):
            v = values.get(f"omega_{a}_{spec.random[j]}", 0.0)
            omega[i, j] = omega[j, i] = v
    sigma = [values[s.name] for s in spec.sigmas]
    return spec.join(theta, beta, omega, sigma)


def _population(result, dataset, model, source, K, rng):
    from ctkinetics.estimation.population.inner import ebe
    from ctkinetics.estimation.population.predictive import fitted_ebe, rebuild

    fitted = rebuild(result, dataset, model)
    pm, data, spec = fitted.pm, fitted.data, result.spec
    xs, how = _population_vectors(result, source, K, rng)
    eta_hat = None
    phis = []
    for x in np.concatenate([fitted.x[None], xs]):
        theta, beta, omega, sigma = spec.split(x)
        phi_pop = pm.phi_pop(theta, beta)
        if eta_hat is None:              # the point estimate: the fit's own EBEs
            e = fitted_ebe(result, data, spec)
            eta_hat, eta = e, e
            phis.append(pm.with_eta(phi_pop, eta))
            continue
        with np.errstate(all="ignore"):  # the mode near the fit's EBEs (local search)
            e = ebe(pm, phi_pop, omega, sigma, eta_hat, tol=1e-6)
        eta = np.array([_draw_eta(rng, e.eta[i], e.A[i]) for i in range(pm.n)])
        phis.append(pm.with_eta(phi_pop, eta))
    phi = np.concatenate(phis)                                        # (1 + K)·n rows
    nat = np.where(pm.is_log, np.exp(np.clip(phi, -700, 700)), phi)
    params = {name: nat[:, j] for name, j in pm.model_cols}
    params.update({k: np.full(len(nat), v) for k, v in (spec.fixed or {}).items()})
    scales = {a.analyte: nat[:, pm.scale_cols[a.scale_param]] for a in data.analytes
              if a.scale_param}
    covs = {c: np.tile(v, K + 1) for c, v in data.model_covariates.items()}
    t_end = np.tile([np.nanmax(np.concatenate([a.time[i] for a in data.analytes]))
                     for i in range(data.n)], K + 1)
    maps = data.layout.analytes
    values = metrics(pm.model, maps, params, scales, covs, t_end, _thresholds(dataset, maps))
    n = data.n
    point = {k: (v[:n], u) for k, (v, u) in values.items()}
    draws = {k: v[n:].reshape(K, n) for k, (v, u) in values.items()}
    levels = [data.dose_levels.get(s, "") for s in data.subjects]
    return point, draws, list(data.subjects), levels, [""] * n, \
        how + "; each participant's eta from N(EBE, A^-1) at those parameters"


def _draw_eta(rng, mean, A):
    try:
        L = np.linalg.cholesky(np.linalg.inv(A))
    except np.linalg.LinAlgError:
        return mean
    return mean + L @ rng.standard_normal(mean.size)


__all__ = ["exposure_intervals", "ExposureCI", "metrics", "x_from_natural",
           "PARTICIPANT_COLUMNS", "LEVEL_COLUMNS"]
