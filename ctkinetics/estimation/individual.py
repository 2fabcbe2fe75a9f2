"""Individual (per-subject) maximum-likelihood fits of a kinetic model.

>>> from ctkinetics import load_study, fit                       # doctest: +SKIP
>>> res = fit(load_study("study/"), "stein2019", blq="M3")         # doctest: +SKIP
>>> res.to_frame()        # subject, parameter, estimate, se, rse_pct, ci_low, ci_high, ...

Pipeline: label samples (pre-infusion excluded, BLQ method applied, reasons kept) →
multistart lmfit per subject (or the batched engine over stacks of subjects) on the exact
−2LL → Hessian covariance (vectorised over stacked subjects) → small-sample Wald (``wald-t``),
ML Wald or profile CIs, flags → IPRED/IWRES/P(BLQ) → derived exposure.
"""
from __future__ import annotations

import numpy as np

from ctkinetics.errors import SettingsError
from ctkinetics.estimation import uncertainty as unc
from ctkinetics.estimation.derived import derived_batch
from ctkinetics.estimation.fitproblem import FitProblem
from ctkinetics.estimation.likelihood import EXCLUDED
from ctkinetics.estimation.objective import Group
from ctkinetics.estimation.optimize import bounds_of, minimize, multistart
from ctkinetics.estimation.results import (
    PREDICTION_COLUMNS, FitResult, SubjectFit, empty_parameters,
)


# --------------------------------------------------------------------------------------
def fit(dataset, model, analytes=None, subjects=None, blq="M3", error="proportional",
        starts=4, seed=0, fixed=None, profile=False, derived=True, jobs=1, batch_size=1000,
        progress=None, engine="auto", ci="wald-t", estimate=None) -> FitResult:
    """Fit the model to each subject by maximum likelihood.

    Parameters
    ----------
    dataset : Dataset
        ``.observations`` and ``.subjects`` tables as in DEVELOPERS.md (``.study.analytes``
        gives each analyte's kind, which picks the model observable).
    model : str or Model
        A model name for :func:`ctkinetics.modeling.load_model`, or a model object.
    analytes : list of str or "a,b", optional
        Analytes fitted jointly (they share the kinetic parameters; each has its own residual
        SD, and a scale factor when the model does not observe that kind itself). Default:
        every analyte whose kind the model observes.
    subjects : list of str, optional
    blq : {'M1', 'M3', 'M5', 'M6', 'M7'}
        BLQ method; M3 (censored likelihood, each sample's own LLOQ) by default.
    error : {'proportional', 'additive', 'combined'}
    starts : int
        Number of starts: the model defaults plus ``starts - 1`` seeded draws in the bounds.
    seed : int
    fixed : dict, "A=1,B=2" or list of "NAME=VALUE", optional
        Model parameters held at the given natural-scale values.
    estimate : list of str or "A,B", optional
        Exactly the model parameters estimated; the others are fixed (at ``fixed`` or the
        model default). Default: those the model file does not declare ``estimate = false``.
    profile : bool or list of str
        Profile-likelihood 95 % CIs (for all parameters, or those named) instead of Wald.
    ci : {'wald-t', 'wald', 'profile'}
        95 % CI method (:data:`ctkinetics.estimation.uncertainty.CI_METHODS`). ``wald-t``
        (default, R ``nls``'s small-sample convention): θ̂ ± t₀.₉₇₅(n − p)·sqrt(n/(n − p))·SE
        for the kinetic parameters, n observations in the likelihood, p kinetic parameters
        and scale factors; ``wald``: θ̂ ± 1.96·SE (NONMEM's); ``profile``: profile likelihood
        for every parameter. SEs are always the ML Hessian's. The parameter rows name the
        method of each interval (``ci_method``), the fits rows the method and df.
    derived : bool
        Compute model-based Cmax, Tmax, AUC0-28 and the model's derived quantities.
    jobs : int
        Worker processes (subjects are independent).
    batch_size : int
        Subjects are stacked into groups of at most this size (subjects sampled at their own
        times: at most :data:`RAGGED_CHUNK`) that share every vectorised model call: the
        batched optimiser, the Hessian and the diagnostics.
    progress : callable(done, total), optional
    engine : {'auto', 'lmfit', 'batched'}
        The optimiser. ``lmfit`` fits one subject at a time with lmfit's ``least_squares``;
        ``batched`` runs one Levenberg–Marquardt iteration over a whole stack of subjects,
        each with its own damping and convergence test (:mod:`ctkinetics.estimation.batched`,
        tested to reach lmfit's optimum; a subject it does not converge is re-fitted by
        lmfit). ``auto`` (default): batched for stacks of subjects sampled at the same times
        (simulated or nominal designs: large batches), lmfit for a subject fitted on its own
        or sampled at its own times (real studies). Both are local optimisers of the same
        −2LL: from one start they can end in different local minima of a multimodal
        subject — the starts are the remedy. ``fits_frame()`` names every subject's engine.

    Returns
    -------
    FitResult
        A failure in one subject gives ``success=False`` and a message in its row; the batch
        carries on.
    """
    if int(starts) < 1:
        raise SettingsError(f"starts must be >= 1 (got {starts})")
    problem = FitProblem.build(dataset, model, analytes=analytes, subjects=subjects, blq=blq,
                               error=error, estimate=estimate, fixed=fixed)
    return fit_problem(problem, starts=starts, seed=seed, profile=profile, derived=derived,
                       jobs=jobs, batch_size=batch_size, progress=progress, engine=engine,
                       ci=ci)


def fit_problem(problem: FitProblem, starts=4, seed=0, profile=False, derived=True, jobs=1,
                batch_size=1000, progress=None, engine="auto", ci="wald-t") -> FitResult:
    """Individual fits of a built :class:`FitProblem` (see :func:`fit` for the options)."""
    model, err, layout, data = problem.model, problem.error, problem.layout, problem.subjects
    blqm = problem.blq
    from ctkinetics.estimation.optimize import resolve_engine

    resolve_engine(engine, 1)  # reject an unknown engine before any work
    if ci not in unc.CI_METHODS:
        raise SettingsError(f"unknown CI method '{ci}'; choose one of {', '.join(unc.CI_METHODS)}")
    chunks = _chunks(data, max(1, int(batch_size)))
    opts = dict(starts=int(starts), seed=int(seed), profile=profile, derived=derived,
                model_name=model.name, blq=blqm.name, error=err.name, engine=engine, ci=ci)
    results = {}
    done = 0
    for chunk_fits in _run_chunks(model, layout, err, chunks, opts, jobs):
        for f in chunk_fits:
            results[f.subject] = f
        done += len(chunk_fits)
        if progress is not None:
            progress(done, len(data))
    fits = tuple(results[s] for s in problem.subject_ids)
    settings = dict(starts=int(starts), seed=int(seed), fixed=problem.fixed,
                    estimate=problem.estimated, profile=profile, ci=ci, engine=engine,
                    analytes=tuple(problem.analytes),
                    scale_factors=tuple(m.scale_param for m in problem.maps if m.scale_param))
    return FitResult(model.name, blqm.name, err.name, tuple(problem.analytes), fits,
                     problem.dose_levels(), settings)


#: Largest stack of subjects sampled at their own times: the model is evaluated at the union
#: of their times, so the work grows with the square of the stack size.
RAGGED_CHUNK = 32


def _chunks(data, batch_size):
    """Stacks of subjects: those sampled alike first (the model is evaluated at their common
    times), then the others stacked by analyte set at the union of their times."""
    alike, chunks = {}, []
    for d in data:
        alike.setdefault(d.signature(), []).append(d)
    rest = {}
    for members in alike.values():
        if len(members) == 1:
            rest.setdefault(tuple(a.analyte for a in members[0].analytes), []).append(members[0])
            continue
        for i in range(0, len(members), batch_size):
            chunks.append(members[i:i + batch_size])
    size = min(batch_size, RAGGED_CHUNK)
    for members in rest.values():
        for i in range(0, len(members), size):
            chunks.append(members[i:i + size])
    return chunks


def _run_chunks(model, layout, err, chunks, opts, jobs):
    if int(jobs) > 1 and len(chunks) > 1:
        import concurrent.futures as cf
        import pickle

        try:
            pickle.dumps((model, layout, err))
        except Exception:  # noqa: BLE001 - an unpicklable model is fitted in-process
            jobs = 1
        else:
            with cf.ProcessPoolExecutor(max_workers=int(jobs)) as pool:
                futs = [pool.submit(fit_chunk, model, layout, err, c, opts) for c in chunks]
                for fut in cf.as_completed(futs):
                    yield fut.result()
            return
    for c in chunks:
        yield fit_chunk(model, layout, err, c, opts)


def fit_chunk(model, layout, err, members, opts):
    """Fit a stack of alike subjects; a stack that fails falls back to one by one; a single
    subject that fails becomes a ``success=False`` row."""
    try:
        return _fit_group(Group(model, layout, err, members), opts)
    except Exception as exc:  # noqa: BLE001 - the batch must go on
        if len(members) > 1:
            out = []
            for m in members:
                out += fit_chunk(model, layout, err, [m], opts)
            return out
        return [_failed(members[0], layout, opts, f"{type(exc).__name__}: {exc}")]


def _failed(subj, layout, opts, message):
    return SubjectFit(
        subject=subj.subject, model=opts["model_name"], blq_method=opts["blq"],
        error_model=opts["error"], success=False, message=message, ofv=np.nan,
        n_obs=subj.n_obs, n_blq=subj.n_blq, n_params=len(layout.specs), aic=np.nan,
        bic=np.nan, n_starts=opts["starts"], n_starts_at_best=0, flags=("not_converged",),
        param_columns=empty_parameters(subj.subject, layout.specs),
        pred_columns=_prediction_rows(subj, None), engine="",
        ci_method=opts["ci"])


def _fit_group(group: Group, opts) -> list:
    opt = multistart(group, opts["starts"], opts["seed"], engine=opts["engine"])
    out = [None] * group.G
    keep = range(group.G)
    H = unc.hessian(group, np.where(np.isfinite(opt.theta), opt.theta, 0.0))
    diag = group.diagnostics(np.where(np.isfinite(opt.theta), opt.theta, 0.0))
    lo, hi = bounds_of(group)
    # the uncertainty of the whole stack at once: bounds, covariances, SEs, correlations
    bound = unc.at_bounds(opt.theta, lo, hi)
    cov, singular = unc.covariance_batch(H, ~bound)
    se = np.sqrt(np.einsum("gpp->gp", cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / (se[:, :, None] * se[:, None, :])
    derived = _derived(group, opt) if opts["derived"] else {}
    for g in keep:
        out[g] = _subject_fit(group, g, opt, (bound[g], cov[g], bool(singular[g]), se[g],
                                              corr[g]), diag, opts, derived.get(g))
    return out


def _derived(group, opt):
    """Derived rows of the group's converged subjects, computed together (one model call on
    the exposure grid for all of them): subject index -> column dict."""
    ok = np.flatnonzero(opt.success & np.isfinite(opt.ofv) & np.all(np.isfinite(opt.theta), 1))
    if ok.size == 0:
        return {}
    specs = group.layout.specs
    nat = group.natural(opt.theta[ok])
    params = {s.model_name: nat[:, i] for i, s in enumerate(specs) if s.role == "model"}
    params.update(group.layout.fixed)
    scales = {s.analyte: nat[:, i] for i, s in enumerate(specs) if s.role == "scale"}
    covs = {c: v[ok] for c, v in group.covariates.items()}
    t_end = np.array([max([a.times.max() for a in group.subjects[g].analytes if a.times.size]
                          + [0.0]) for g in ok])
    try:
        rows = derived_batch([group.subjects[g].subject for g in ok], group.model, params,
                             covs, group.layout.analytes, scales, t_end)
    except Exception:  # noqa: BLE001 - a derived value must never sink the fit
        return {}
    return dict(zip(ok.tolist(), rows))


def _subject_fit(group, g, opt, uncertainty, diag, opts, derived=None):
    subj = group.subjects[g]
    specs = group.layout.specs
    names = [s.name for s in specs]
    theta = opt.theta[g]
    ok = bool(opt.success[g]) and np.isfinite(opt.ofv[g])
    bound, cov, singular, se, corr = uncertainty
    struct = np.array([sp.role != "sigma" for sp in specs])
    mult, df = unc.small_sample_quantile(subj.n_obs, int(struct.sum()))
    ci_method = np.array(["wald"] * len(specs), dtype=object)
    quantile = np.full(len(specs), unc.Z95)
    if opts["ci"] != "wald" and np.isfinite(df):
        quantile[struct] = mult
        ci_method[struct] = "wald-t"
    est, se_nat, rse, ci_lo, ci_hi = unc.wald(theta, se, group.is_log, quantile)
    prof = opts["profile"] or (opts["ci"] == "profile")
    if prof and ok:
        wanted = names if prof is True else [p for p in names if p in set(prof)]
        g1 = Group(group.model, group.layout, group.error, [subj])
        for name in wanted:
            j = names.index(name)
            try:
                a, b = unc.profile_ci(g1, theta, j, opt.ofv[g], se[j], _fixed_refit(g1))
            except Exception:  # noqa: BLE001 - keep the Wald interval
                continue
            ci_lo[j], ci_hi[j] = (np.exp(a), np.exp(b)) if specs[j].log else (a, b)
            ci_method[j] = "profile"
    flags = unc.parameter_flags(names, rse, corr, bound, singular, ok)
    kinks = _switch_at_sample(group.model, specs, est, subj)
    for j in kinks:
        flags[j] = ";".join([f for f in (flags[j], "at_sample_time") if f])
    k_ = len(specs)
    params = {
        "subject": np.full(k_, subj.subject, dtype=object),
        "parameter": np.array(names, dtype=object), "estimate": est, "se": se_nat,
        "rse_pct": rse, "ci_low": ci_lo, "ci_high": ci_hi,
        "unit": np.array([s.unit for s in specs], dtype=object),
        "flags": np.array(flags, dtype=object),
        "scale": np.array(["log" if s.log else "linear" for s in specs], dtype=object),
        "estimate_transformed": np.asarray(theta, float), "se_transformed": se,
        "ci_method": ci_method, "role": np.array([s.role for s in specs], dtype=object)}
    fit_flags = []
    if not ok:
        fit_flags.append("not_converged")
    if singular:
        fit_flags.append("non_identifiable")
    if bound.any():
        fit_flags.append("at_bound")
    if np.any(rse > unc.RSE_LIMIT):
        fit_flags.append("rse>50%")
    if kinks:
        fit_flags.append("at_sample_time")
    off = np.abs(corr[~np.eye(len(specs), dtype=bool)])
    if np.any(off[np.isfinite(off)] > unc.CORR_LIMIT):
        fit_flags.append("corr>0.95")
    n_obs, k = subj.n_obs, len(specs)
    ofv = float(opt.ofv[g])
    der = derived if ok else None
    return SubjectFit(
        subject=subj.subject, model=opts["model_name"], blq_method=opts["blq"],
        error_model=opts["error"], success=ok,
        message=("converged" if ok else "not converged") + (f" ({opt.message[g]})"
                                                           if opt.message[g] else ""),
        ofv=ofv, n_obs=n_obs, n_blq=subj.n_blq, n_params=k, aic=ofv + 2 * k,
        bic=ofv + k * np.log(max(n_obs, 1)), n_starts=opts["starts"],
        n_starts_at_best=int(opt.n_starts_at_best[g]), flags=tuple(fit_flags),
        param_columns=params, cov=cov,
        pred_columns=_prediction_rows(subj, [(f[g, :len(a.times)], w[g, :len(a.times)],
                                             p[g, :len(a.times)])
                                            for (f, w, p), a in zip(diag, subj.analytes)]),
        derived_rows=der,
        start_history=tuple(opt.starts[g]), ci_method=opts["ci"],
        ci_df=float(df) if opts["ci"] != "wald" else np.inf,
        engine=opt.engine[g] if opt.engine else "lmfit")


def _switch_at_sample(model, specs, est, subj):
    """Indices of estimated switch times (e.g. stein2019's Tmax, the end of expansion) that
    sit on a sampling time: the −2LL has a kink there (that sample changes phase), so its
    Hessian — and the Wald SE and CI — mean little; the profile CI is the one to use."""
    switches = set(getattr(model, "switch_names", ()) or ())
    if not switches:
        return []
    times = np.concatenate([a.times for a in subj.analytes]) if subj.analytes else []
    out = []
    for j, sp in enumerate(specs):
        if sp.role == "model" and sp.model_name in switches and np.isfinite(est[j]):
            if np.any(np.abs(np.asarray(times) - est[j]) <= 1e-6 * max(abs(est[j]), 1e-12)):
                out.append(j)
    return out


def _fixed_refit(group1):
    def refit(theta_start, j):
        vary = np.ones(theta_start.size, bool)
        vary[j] = False
        theta, ok, _, _ = minimize(group1, theta_start[None, :], vary=vary, tol=1e-8)
        return theta[0], float(group1.ofv(theta)[0])
    return refit


def _prediction_rows(subj, diag) -> dict:
    """Columns of the predictions table (:data:`PREDICTION_COLUMNS`) of one subject."""
    c = subj.columns
    n = len(c["time"])
    out = {k: c[k] for k in ("subject", "analyte", "time", "observed", "blq", "lloq",
                             "status", "reason")}
    ipred, iwres, p_blq = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    if diag is not None:
        for a, (f, w, p) in zip(subj.analytes, diag):
            ipred[a.rows], iwres[a.rows], p_blq[a.rows] = f, w, p
    out.update(ipred=ipred, iwres=iwres, p_blq=p_blq)
    return {k: out[k] for k in PREDICTION_COLUMNS}


__all__ = ["fit", "fit_problem", "fit_chunk", "EXCLUDED"]
