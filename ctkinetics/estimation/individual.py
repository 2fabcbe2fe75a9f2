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

import time

import numpy as np

from ctkinetics.errors import SettingsError
from ctkinetics.estimation import uncertainty as unc
from ctkinetics.estimation.derived import derived_batch
from ctkinetics.estimation.fitproblem import FitProblem
from ctkinetics.estimation.likelihood import EXCLUDED
from ctkinetics.estimation.objective import Group
from ctkinetics.estimation.optimize import bounds_of, multistart
from ctkinetics.estimation.results import FitResult
from ctkinetics.estimation.subject_result import failed_fit, subject_fit


# --------------------------------------------------------------------------------------
def fit(dataset, model, analytes=None, subjects=None, blq="M3", error="proportional",
        starts=4, seed=0, fixed=None, profile=None, derived=True, jobs=1, batch_size=1000,
        progress=None, engine="auto", ci="wald-t", estimate=None,
        time_limit=None, prior=None, estimate_sigma=False) -> FitResult:
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
        Full local optimisations: the model defaults plus ``starts - 1`` seeded draws in the
        bounds. With two or more, a model with a switch-time parameter (stein2019's Tmax)
        also gets the switch-interval screen (one bounded fit per sampling interval, its two
        best solutions starting full fits: :mod:`ctkinetics.estimation.starts`); an optimum
        whose switch time sits on a sample is polished with the switch held. The fits table
        counts every run (``n_starts``), those at the best within 0.01 −2LL
        (``n_starts_at_best``) and the best distinct other optimum (``ofv_second``).
    seed : int
    fixed : dict, "A=1,B=2" or list of "NAME=VALUE", optional
        Model parameters held at the given natural-scale values, and residual SDs by their
        names in the parameter table (``sigma_<analyte>``; ``sigma_prop_<analyte>``,
        ``sigma_add_<analyte>`` of the combined model). A fixed SD is a row of the parameter
        table with ``ci_method`` ``fixed`` and no SE or CI; ``settings["sigma_sources"]``
        says where each fixed SD came from.
    estimate : list of str or "A,B", optional
        Exactly the model parameters estimated; the others are fixed (at ``fixed`` or the
        model default). Default: those the model file does not declare ``estimate = false``.
    profile : bool or list of str
        Deprecated (DeprecationWarning): ``ci="profile"`` or ``ci=Profile("A", "B")``.
    ci : {'wald-t', 'wald', 'profile'} or Profile
        95 % CI method (:data:`ctkinetics.estimation.uncertainty.CI_METHODS`). ``wald-t``
        (default, R ``nls``'s small-sample convention): θ̂ ± t₀.₉₇₅(n − p)·sqrt(n/(n − p))·SE
        for the kinetic parameters, n observations in the likelihood, p kinetic parameters
        and scale factors; ``wald``: θ̂ ± 1.96·SE (NONMEM's); ``profile``: profile likelihood
        for every parameter; ``Profile("A", "B", otherwise="wald-t")`` for those named.
        SEs are always the ML Hessian's. The parameter rows name the method of each
        interval (``ci_method``; ``none`` for a parameter flagged ``not_estimable``, whose
        SE and CI are blank), the fits rows the method and df.
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
        lmfit). ``auto`` (default): batched for a stack of two or more subjects, lmfit for a
        subject fitted on its own. Both are local optimisers of the same
        −2LL: from one start they can end in different local minima of a multimodal
        subject — the starts are the remedy. ``fits_frame()`` names every subject's engine.

    prior : "model", a ``ctk popfit`` output folder or a PopulationResult, optional
        Maximum a posteriori (MAP) fits — the empirical-Bayes estimates for sparse
        participants: a log-normal prior on the estimated parameters with the model file's
        typical values and ω² (``"model"``) or a population fit's θ (with each subject's
        covariate effects) and Ω; the objective is then −2 ln p(y, φ)
        (:mod:`ctkinetics.estimation.prior`) and ``FitResult.prior`` reports the prior
        and the η-shrinkage. Default: maximum likelihood. With a prior the residual SDs
        are held fixed (POSTHOC): at the population fit's estimates, or at the model file's
        ``[residual_error]`` when its error model is the fit's (:mod:`.residual`; the others
        are estimated and ``settings["sigma_note"]`` says why).
    estimate_sigma : bool
        With a prior, estimate the residual SDs from each participant's samples instead.
    time_limit : float, optional
        Wall-clock limit in seconds per fit (a stack of subjects fitted together shares
        it); a subject still being optimised then is failed with that reason. Default: none.

    Returns
    -------
    FitResult
        A subject whose fit raised, hit the time limit or ended on non-finite estimates or
        predictions has ``failed=True`` and the reason in its message (``FitResult.failed``
        lists them); one that did not converge has ``success=False``; the batch carries on.
    """
    if int(starts) < 1:
        raise SettingsError(f"starts must be >= 1 (got {starts})")
    ci = unc.resolve_ci(ci, profile)
    problem = FitProblem.build(dataset, model, analytes=analytes, subjects=subjects, blq=blq,
                               error=error, estimate=estimate, fixed=fixed, prior=prior,
                               estimate_sigma=estimate_sigma)
    return fit_problem(problem, starts=starts, seed=seed, derived=derived, jobs=jobs,
                       batch_size=batch_size, progress=progress, engine=engine, ci=ci,
                       time_limit=time_limit)


def fit_problem(problem: FitProblem, starts=4, seed=0, derived=True, jobs=1, batch_size=1000,
                progress=None, engine="auto", ci="wald-t", time_limit=None) -> FitResult:
    """Individual fits of a built :class:`FitProblem` (see :func:`fit` for the options)."""
    model, err, layout, data = problem.model, problem.error, problem.layout, problem.subjects
    blqm = problem.blq
    from ctkinetics.estimation.optimize import resolve_engine

    resolve_engine(engine, 1)  # reject an unknown engine before any work
    ci = unc.resolve_ci(ci)
    if time_limit is not None and not float(time_limit) > 0:
        raise SettingsError(f"time_limit must be a positive number of seconds (got "
                            f"{time_limit})")
    chunks = _chunks(data, max(1, int(batch_size)))
    opts = dict(starts=int(starts), seed=int(seed), derived=derived, model_name=model.name,
                blq=blqm.name, error=err.name, engine=engine, ci=ci,
                time_limit=None if time_limit is None else float(time_limit))
    checks = identifiability(model, layout, err, chunks, len(data))
    results = {}
    done = 0
    for chunk_fits in _run_chunks(model, layout, err, chunks, opts, jobs):
        for f in chunk_fits:
            results[f.subject] = f
        done += len(chunk_fits)
        if progress is not None:
            progress(done, len(data))
    fits = tuple(results[s] for s in problem.subject_ids)
    profile = False if ci.profiled is None else (True if ci.profiled == () else
                                                 list(ci.profiled))
    settings = dict(starts=int(starts), seed=int(seed), fixed=problem.fixed_all,
                    sigma_sources=dict(problem.sigma.sources), sigma_note=problem.sigma.note,
                    estimate=problem.estimated, profile=profile, ci=ci.name, engine=engine,
                    time_limit=opts["time_limit"],
                    analytes=tuple(problem.analytes),
                    scale_factors=tuple(m.scale_param for m in problem.maps if m.scale_param))
    if problem.prior is not None:
        settings["prior"] = problem.prior.source
    result = FitResult(model.name, blqm.name, err.name, tuple(problem.analytes), fits,
                       problem.dose_levels(), settings, checks)
    if problem.prior is None:
        return result
    from dataclasses import replace

    from ctkinetics.estimation.prior import shrinkage

    wide = result.to_frame().pivot(index="subject", columns="parameter",
                                   values="estimate_transformed")
    table = problem.prior.table().merge(shrinkage(problem.prior, wide)[
        ["parameter", "n", "shrinkage_pct"]], on="parameter", how="left")
    return replace(result, prior=table)


def identifiability(model, layout, err, chunks, n):
    """The identifiability check at the start values (the model defaults) of every stack,
    with the cohort summary rows (:mod:`ctkinetics.estimation.identifiability`)."""
    import pandas as pd

    from ctkinetics.estimation import identifiability as idf
    from ctkinetics.estimation.starts import start_values

    tables = []
    for members in chunks:
        group = Group(model, layout, err, members)
        try:
            tables.append(idf.check_group(group, start_values(group, 1, 0)[0]))
        except Exception:  # noqa: BLE001 - the check never stops a fit
            continue
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=idf.COLUMNS)
    return idf.summarise(table, n)


#: Largest stack of subjects sampled at their own times: the model is evaluated at the union
#: of their times, so the work grows with the square of the stack size.
RAGGED_CHUNK = 32


def _chunks(data, batch_size):
    """Stacks of subjects with the same analytes: up to :data:`RAGGED_CHUNK` of them in one
    stack whatever their sampling times (a small cohort is one vectorised problem); a larger
    set is stacked by sampling design (the model is evaluated at the common times of each
    stack of at most ``batch_size``), the subjects sampled alone in stacks of RAGGED_CHUNK."""
    by_analytes = {}
    for d in data:
        by_analytes.setdefault(tuple(a.analyte for a in d.analytes), []).append(d)
    chunks = []
    size = min(batch_size, RAGGED_CHUNK)
    for members in by_analytes.values():
        if len(members) <= size:
            chunks.append(members)
            continue
        alike, rest = {}, []
        for d in members:
            alike.setdefault(d.signature(), []).append(d)
        for group in alike.values():
            if len(group) == 1:
                rest.append(group[0])
                continue
            for i in range(0, len(group), batch_size):
                chunks.append(group[i:i + batch_size])
        for i in range(0, len(rest), size):
            chunks.append(rest[i:i + size])
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
        return [failed_fit(members[0], layout, opts, f"failed: {type(exc).__name__}: {exc}")]


def _fit_group(group: Group, opts) -> list:
    limit = opts.get("time_limit")
    deadline = None if limit is None else time.perf_counter() + float(limit)
    opt = multistart(group, opts["starts"], opts["seed"], engine=opts["engine"],
                     deadline=deadline)
    out = [None] * group.G
    keep = range(group.G)
    finite = np.where(np.isfinite(opt.theta), opt.theta, 0.0)
    H = unc.hessian(group, finite)
    diag = group.diagnostics(finite)
    lo, hi = bounds_of(group)
    # the uncertainty of the whole stack at once: bounds, covariances, SEs, correlations
    bound = unc.at_bounds(opt.theta, lo, hi)
    cov, singular = unc.covariance_batch(H, ~bound)
    se = np.sqrt(np.einsum("gpp->gp", cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / (se[:, :, None] * se[:, None, :])
    derived = _derived(group, opt) if opts["derived"] else {}
    for g in keep:
        out[g] = subject_fit(group, g, opt, (bound[g], cov[g], bool(singular[g]), se[g],
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
    # with each subject's later doses and covariate time courses (issue 17): the exposure
    # follows the course the fit predicted
    covs = group.events.take(ok).extend({c: v[ok] for c, v in group.covariates.items()})
    t_end = np.array([max([a.times.max() for a in group.subjects[g].analytes if a.times.size]
                          + [0.0]) for g in ok])
    try:
        rows = derived_batch([group.subjects[g].subject for g in ok], group.model, params,
                             covs, group.layout.analytes, scales, t_end)
    except Exception:  # noqa: BLE001 - a derived value must never sink the fit
        return {}
    return dict(zip(ok.tolist(), rows))


__all__ = ["fit", "fit_problem", "fit_chunk", "EXCLUDED"]
