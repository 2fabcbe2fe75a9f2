"""Fitted curves on a dense time grid with a 95 % prediction band from the fit's covariance.

The band is the spread of the *prediction* due to parameter uncertainty: estimation-scale
parameters θ are drawn from N(θ̂, Σ) (Σ the fit's covariance, ln scale for log parameters),
each draw is predicted by the model exactly as the likelihood predicts it (same observable,
same assay scale factor — :func:`ctkinetics.estimation.problem.analyte_maps`), and the band is
the 2.5th–97.5th percentile at each time. Draws outside the model's declared parameter
bounds (e.g. a fraction above 1) are discarded: the band is that of the truncated normal. The curve itself is the prediction at θ̂. Draws are
seeded, so the band is reproducible. No band is drawn when Σ is not available (a failed or
non-identifiable fit, or one with a parameter flagged ``not_estimable``); the curve is still
drawn for a converged fit.

Plots and the report draw this table; they never compute a band themselves.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.estimation.events import subject_inputs

CURVE_COLUMNS = ["subject", "analyte", "time", "pred", "lower", "upper"]


def _grid(t_end: float, points: int) -> np.ndarray:
    # dense early (expansion is fast), then linear: a log-scale-friendly grid from 0 to t_end
    early = np.linspace(0.0, min(28.0, t_end), points // 2)
    late = np.linspace(min(28.0, t_end), t_end, points - points // 2)
    return np.unique(np.concatenate([early, late]))


def _maps(model, dataset, fit_result):
    from ctkinetics.estimation.fitproblem import analyte_info
    from ctkinetics.estimation.problem import analyte_maps

    analytes = list(fit_result.analytes)
    kinds, units = analyte_info(dataset, analytes)
    return analyte_maps(model, analytes, kinds, units)


def _draws(f, p, theta, draws, seed):
    """Row 0 the estimate, then ``draws`` draws from N(θ̂, Σ) (estimation scale), and
    whether there is a band: none without a finite covariance or when a parameter is not
    estimable (its SE is then meaningless, and so would the band be)."""
    names = list(p.index)
    cov = f.covariance.reindex(index=names, columns=names).to_numpy(float) \
        if not f.covariance.empty else np.full((len(names), len(names)), np.nan)
    band = bool(np.all(np.isfinite(cov)) and np.all(np.diag(cov) >= 0)
                and not p["flags"].astype(str).str.contains("not_estimable").any())
    th = theta[None, :]
    if band:
        rng = np.random.default_rng(seed)
        try:
            th = rng.multivariate_normal(theta, cov, size=draws, method="eigh")
        except (np.linalg.LinAlgError, ValueError):
            band, th = False, theta[None, :]
    return np.vstack([theta[None, :], th]), band


def _inside(th, p, bounds, band):
    """Draws truncated to the model's parameter space (a fraction above 1 is not a possible
    curve): (θ rows, natural-scale rows, band still drawn)."""
    is_log = (p["scale"] == "log").to_numpy()
    with np.errstate(over="ignore"):
        nat = np.where(is_log[None, :], np.exp(np.where(is_log[None, :], th, 0.0)), th)
    inside = np.ones(th.shape[0], bool)
    for i, n in enumerate(p.index):
        lo, hi = bounds.get(n, (-np.inf, np.inf))
        inside &= (nat[:, i] >= lo) & (nat[:, i] <= hi)
    inside[0] = True
    return th[inside], nat[inside], band and int(inside.sum()) > 1


def _covariates(model, subj, subject) -> dict:
    if subject not in subj.index:
        return {}
    row = subj.loc[subject]
    return {c: float(row[c]) for c in (getattr(model, "covariates", None) or ())
            if c in row and pd.notna(row[c])}


def _band(drawn, level):
    """The (1 − level)/2 and (1 + level)/2 quantiles of the drawn curves at each time."""
    alpha = (1.0 - level) / 2.0
    # np.nanquantile goes column by column (apply_along_axis): half the report's curve
    # time; without a NaN np.quantile gives the same numbers at once
    quantile = np.nanquantile if np.isnan(drawn).any() else np.quantile
    with np.errstate(all="ignore"):
        return quantile(drawn, [alpha, 1.0 - alpha], axis=0)


def fitted_curves(fit_result, dataset, model=None, *, level: float = 0.95, draws: int = 400,
                  points: int = 240, seed: int = 0) -> pd.DataFrame:
    """Each converged subject's fitted curve for every fitted analyte, with its band.

    Parameters
    ----------
    fit_result : FitResult
    dataset : Dataset
        For each subject's covariates and last sampling time.
    model : Model, optional
        Default: ``load_model(fit_result.model)``.
    level : float
        Coverage of the band (0.95: 2.5th–97.5th percentiles).
    draws : int
        Parameter draws per subject.
    points : int
        Grid points from 0 to the subject's last sample (at least day 28).
    seed : int
        Seed of the draws (subject k uses ``seed + k``).

    Returns
    -------
    DataFrame
        subject, analyte, time (days after infusion), pred, lower, upper (NaN without a band).
    """
    if model is None:
        from ctkinetics.modeling import load_model

        model = load_model(fit_result.model)
    maps = _maps(model, dataset, fit_result)
    names = set(model.param_names) if hasattr(model, "param_names") else \
        {q.name for q in model.parameters}
    # the fixed model parameters (a residual SD held fixed does not enter the curve)
    fixed = {k: v for k, v in (fit_result.settings.get("fixed", {}) or {}).items() if k in names}
    obs = dataset.observations
    subj = dataset.subjects.assign(subject=lambda s: s["subject"].astype(str)).set_index("subject")
    bounds = {q.name: (-np.inf if q.lower is None else float(q.lower),
                       np.inf if q.upper is None else float(q.upper)) for q in model.parameters}
    frames = []
    for k, f in enumerate(fit_result.fits):
        if not f.success or f.parameters.empty:
            continue
        p = f.parameters
        if "ci_method" in p.columns:   # the estimated ones (a residual SD may be held fixed)
            p = p[p["ci_method"] != "fixed"]
        p = p.set_index("parameter")
        theta = p["estimate_transformed"].to_numpy(float)
        if not np.all(np.isfinite(theta)):
            continue
        t_end = obs.loc[(obs["subject"].astype(str) == f.subject) & (obs["time"] >= 0), "time"].max()
        times = _grid(max(28.0, float(t_end) if np.isfinite(t_end) else 28.0), points)
        th, band = _draws(f, p, theta, int(draws), seed + k)
        th, nat, band = _inside(th, p, bounds, band)
        col = {n: nat[:, i] for i, n in enumerate(p.index)}
        params = {n: col[n] for n, role in zip(p.index, p["role"]) if role == "model"}
        params.update(fixed)
        covariates = _covariates(model, subj, f.subject)
        covariates, more = subject_inputs(dataset, model, f.subject, covariates)  # issue 17: re-infusions
        with np.errstate(all="ignore"):
            out = model.predict(params, times, covariates=covariates or None,
                                observables=sorted({m.kind for m in maps}), **more)
        for m in maps:
            y = np.reshape(np.asarray(out[m.kind], float), (th.shape[0], -1))
            if m.scale_param:
                y = y * col[m.scale_param][:, None]
            lower, upper = _band(y[1:], level) if band else (np.full(times.size, np.nan),) * 2
            frames.append(pd.DataFrame({"subject": f.subject, "analyte": m.analyte, "time": times,
                                        "pred": y[0], "lower": lower, "upper": upper}))
    if not frames:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[CURVE_COLUMNS]
