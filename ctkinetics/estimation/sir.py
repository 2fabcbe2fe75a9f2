"""Sampling importance resampling (SIR) of the parameter uncertainty of a population fit
(Dosne, Bergstrand, Harling, Karlsson 2016, J Pharmacokinet Pharmacodyn 43:583; Dosne et al.
2017 for the iterations; PsN ``sir``).

The target is the likelihood of the estimated vector x (θ, β, Ω part, ln σ — the
optimiser's scale) with a flat prior, p(x) ∝ exp(−OFV(x)/2), OFV the FOCE-I −2LL with the
EBEs re-estimated at x. Each iteration k:

1. draws M_k proposal vectors, redrawing vectors outside the parameter bounds: iteration 1
   from a multivariate normal centred on the estimates x̂ with the covariance step's Cov(x) ×
   ``inflation``; later iterations from a normal fitted to the previous iteration's resamples
   on a per-parameter Yeo–Johnson scale (PsN's default Box–Cox step; ``transform``), its
   correlations capped at ±``cap_correlation`` (PsN's 0.8) —
   :mod:`ctkinetics.estimation.sir_proposal`, which says where this differs from PsN;
2. computes dOFV = OFV(x) − OFV(x̂) and the importance ratio IR = exp(−dOFV/2) / q(x)
   (q the proposal density, up to a constant, including the transformation's Jacobian);
3. resamples m_k of the M_k vectors without replacement, with probabilities ∝ IR;
4. counts the proposals with a lower OFV than x̂ (dOFV < 0: the fit is not at the minimum of
   its objective; flag ``sir_negative_dofv``).

The intervals are the (1 ± ci)/2 quantiles, on the natural scale, of the distribution that
the last iteration resamples from: its M proposals weighted by their importance ratios
(self-normalised importance sampling; :func:`ctkinetics.stats.weighted_quantile`), which is
what its resamples approximate. PsN reports the quantiles of the m resamples themselves
(columns ``resample_low`` / ``resample_high``); drawn without replacement at a resampling
ratio M/m of 2 (PsN's last iterations), they keep part of the proposal's shape, so when the
proposal is narrower than the target their intervals are narrower too (a normal target
sampled from a normal proposal with 0.7 of its variance, 1,000 of 2,000 resampled: the 95 %
limits 0.18 SD inside on average over 40 runs, the weighted quantiles' 0.002 ± 0.011,
tests/uncertainty/test_sir.py; Theoph against R's importance sampling:
ka's and CL's lower limits 2–6 % high, benchmarks/results/sir_theoph.txt); the weighted
quantiles are the same target's without that bias and with a smaller Monte-Carlo error
(resampling only adds noise to them). The resamples stay the output's sample of the
uncertainty (``estimates``). A covariance step is not needed: without one the first proposal uses SE = ``rse``
(default 0.3) on the estimation scale for every component (PsN's ``-rse``), which SIR's
iterations then correct.

Diagnostics (Dosne 2016): per iteration the effective sample size (Σ IR)²/Σ IR² of the
proposals, the largest normalised IR, the mean dOFV of the proposals and of the resamples,
the proposal of each iteration (table ``proposals``: centre, transformation and λ per
parameter),
and the dOFV quantiles of the resamples against those of χ² with as many degrees of freedom
as estimated parameters (resamples of a well-specified target lie on or below it); the
resampling ratio M/m. Flags ``sir_low_ess`` and ``sir_dofv_above_chi2``.

OFVs are computed in chunks on an executor (:mod:`ctkinetics.executors`); each one starts the
EBE search from the EBEs at x̂ and does not depend on the others, so the result is the same
for any number of workers. Iteration k draws from ``SeedSequence(seed, spawn_key=(k,))``.

>>> s = sir(ds, "onecpt_oral", original=res, random_effects="ka,CL", error="additive",
...         samples=(1000, 1000), resamples=(200, 400), seed=1)        # doctest: +SKIP
>>> s.intervals[["parameter", "estimate", "sir_low", "sir_high"]]     # doctest: +SKIP
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.flags import FLAGS
from ctkinetics.estimation.resampling import FitData, ModelRef, replicate_rng, run_tasks
from ctkinetics.estimation.result_folder import FolderResult
from ctkinetics.estimation.sir_proposal import PROPOSAL_COLUMNS, Proposal

#: PsN's default schedule (samples and resamples per iteration).
DEFAULT_SAMPLES = (1000, 1000, 1000, 2000, 2000)
DEFAULT_RESAMPLES = (200, 400, 500, 1000, 1000)
INTERVAL_COLUMNS = ["parameter", "kind", "estimate", "sir_median", "sir_se", "ci_level",
                    "sir_low", "sir_high", "n_resamples", "unit", "resample_low",
                    "resample_high"]
SAMPLE_COLUMNS = ["iteration", "sample", "dofv", "log_importance_ratio", "probability",
                  "resampled"]
ITERATION_COLUMNS = ["iteration", "samples", "resamples", "resampling_ratio",
                     "effective_sample_size", "max_probability", "mean_dofv_proposal",
                     "mean_dofv_resamples", "df", "failed_ofv", "negative_dofv", "proposal"]
DOFV_COLUMNS = ["iteration", "quantile", "dofv_resamples", "dofv_chi2"]
ESTIMATE_COLUMNS = ["sample", "parameter", "estimate"]
WEIGHTED_COLUMNS = ["sample", "parameter", "estimate", "probability"]


@dataclass(frozen=True)
class SIRResult(FolderResult):
    """SIR of a population fit (see the module).

    Attributes
    ----------
    intervals : DataFrame
        Per parameter (:data:`INTERVAL_COLUMNS`, natural scale): estimate; median, SD and the
        interval limits at ``ci_level`` of the last iteration's importance-weighted proposals;
        the same limits of its resamples (PsN's ``resample_low`` / ``resample_high``).
    iterations : DataFrame
        Per iteration (:data:`ITERATION_COLUMNS`).
    samples : DataFrame
        Every proposal of every iteration: dOFV, ln IR, resampling probability, resampled.
    dofv : DataFrame
        Quantiles of the resamples' dOFV and of χ²(df) per iteration (the dOFV plot).
    estimates : DataFrame
        The final resamples, long: sample, parameter, estimate (natural scale).
    flags : list of str
    settings : dict
    proposals : DataFrame
        Per iteration and parameter (:data:`~ctkinetics.estimation.sir_proposal.PROPOSAL_COLUMNS`,
        estimation scale): the proposal's centre, its transformation and λ, its SD.
    weighted : DataFrame
        The last iteration's proposals, long (:data:`WEIGHTED_COLUMNS`, natural scale) with
        their normalised importance ratios: the distribution the intervals are quantiles of.
    """

    intervals: pd.DataFrame
    iterations: pd.DataFrame
    samples: pd.DataFrame
    dofv: pd.DataFrame
    estimates: pd.DataFrame
    flags: list
    settings: dict = field(default_factory=dict)
    proposals: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=PROPOSAL_COLUMNS))
    weighted: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=WEIGHTED_COLUMNS))

    FILES = (("intervals", "sir_intervals.csv"), ("iterations", "sir_iterations.csv"),
             ("samples", "sir_samples.csv"), ("dofv", "sir_dofv.csv"),
             ("estimates", "sir_estimates.csv"), ("proposals", "sir_proposals.csv"),
             ("weighted", "sir_weighted.csv"))
    # folders written before 0.1.0's Yeo–Johnson proposals and weighted intervals
    OPTIONAL = ("proposals", "weighted")
    JSON, KIND, META = "sir.json", "sir", ("flags", "settings")

    def to_frame(self) -> pd.DataFrame:
        return self.intervals.copy()


# --------------------------------------------------------------------------------------
# OFV at many vectors (module level: runs on Dask workers)
# --------------------------------------------------------------------------------------
_OBJECTIVES: dict = {}


def _objective(data: FitData, model: ModelRef, original_meta: dict):
    """The FOCE-I objective of the fit rebuilt on a worker (cached per process)."""
    key = (model.text, original_meta["key"])
    if key not in _OBJECTIVES:
        from ctkinetics.estimation.population.focei import FoceObjective
        from ctkinetics.estimation.population.predictive import rebuild

        fitted = rebuild(original_meta["result"], data, model.load())
        _OBJECTIVES.clear()
        _OBJECTIVES[key] = FoceObjective(fitted.pm, tol=1e-6)
    return _OBJECTIVES[key]


def ofv_items(data: FitData, model: ModelRef, original_meta: dict, eta0, xs) -> list:
    """FOCE-I −2LL at each vector of ``xs`` (EBE search started from ``eta0``)."""
    obj = _objective(data, model, original_meta)
    out = []
    for x in xs:
        with np.errstate(all="ignore"):
            t, e = obj.terms(np.asarray(x, float), eta0=eta0)
        v = float(np.sum(t)) if e is not None else np.inf
        out.append(v if np.isfinite(v) else np.inf)
    return out


# --------------------------------------------------------------------------------------
def _resample(rng, log_ir, m):
    """Indices of m draws without replacement, probabilities ∝ exp(log_ir) (Efraimidis &
    Spirakis 2006: the m largest keys u^(1/w), computed as ln(u)/w)."""
    w = np.exp(log_ir - np.max(log_ir))
    with np.errstate(divide="ignore"):
        keys = np.log(rng.uniform(size=w.size)) / w
    keys[~np.isfinite(keys)] = -np.inf
    return np.sort(np.argsort(-keys, kind="stable")[:m])


def _natural(spec, x):
    """Natural-scale values of x (the order of the fit's parameter table)."""
    from ctkinetics.estimation.population.diagnostics import _natural as natural

    return natural(spec, x)


def _proposal_cov(original, rse, inflation):
    cov = original.covariance.to_numpy(float) if len(original.covariance) else None
    k = len(original.x)
    usable = cov is not None and cov.shape == (k, k) and np.all(np.isfinite(cov))
    if usable:
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            usable = False
    if not usable:
        return np.eye(k) * float(rse) ** 2, "diagonal, SE = rse on the estimation scale"
    return cov * float(inflation), f"covariance step x {float(inflation):g}"


def sir(dataset, model, original, *, samples=DEFAULT_SAMPLES, resamples=DEFAULT_RESAMPLES,
        seed=0, inflation=1.0, rse=0.3, ci=0.95, transform=True, cap_correlation=0.8,
        executor=None, chunk=50, progress=None) -> SIRResult:
    """SIR of ``original`` (a PopulationResult of ``dataset`` and ``model``).

    Parameters
    ----------
    dataset, model
        The data set and model fitted.
    original : PopulationResult
        The fit (its estimates, covariance step and settings).
    samples, resamples : sequence of int
        Proposals M_k and resamples m_k per iteration (PsN's default 5 iterations:
        1000/200, 1000/400, 1000/500, 2000/1000, 2000/1000); m_k ≤ M_k.
    seed : int
    inflation : float
        Factor on the covariance step for the first proposal (PsN's ``-cov_inflation``).
    rse : float
        SE on the estimation scale of the first proposal when the covariance step failed.
    ci : float
        Interval level.
    transform : bool
        Fit the proposals of iterations 2, 3, ... on a per-parameter Yeo–Johnson scale
        (PsN's default ``-boxcox``); False: plain normal proposals (``-no-boxcox``).
    cap_correlation : float
        Largest |correlation| of a proposal (PsN's default 0.8; 1: no cap).
    executor : optional
        Where the OFVs are computed (:mod:`ctkinetics.executors`), ``chunk`` vectors per task.
    progress : callable(str), optional
    """
    samples, resamples = [int(v) for v in samples], [int(v) for v in resamples]
    if not samples or len(samples) != len(resamples):
        raise SettingsError("SIR needs as many resample counts as sample counts")
    if any(m < 2 or m > s for s, m in zip(samples, resamples)):
        raise SettingsError(f"SIR needs 2 <= resamples <= samples per iteration "
                            f"(got {samples} / {resamples})")
    if not float(inflation) > 0:
        raise SettingsError(f"SIR's inflation must be a number > 0 (got {inflation})")
    if original.failed or original.x is None:
        raise SettingsError(f"the original fit failed: no SIR ({original.failure})")
    say = progress or (lambda s: None)
    spec, xhat = original.spec, np.asarray(original.x, float)
    data, ref = FitData.of(dataset), ModelRef.of(model)
    # the key tells a worker's cached objective of this run from another run's
    meta = {"result": original, "key": (uuid.uuid4().hex, tuple(xhat))}
    obj = _objective(data, ref, meta)
    # EBEs of x̂: the fit's own (its OFV), then random restarts for better basins. Explored
    # from η = 0 alone, a subject could land in a worse basin than the fit found (a study
    # of issue 16: +1.7 on one subject), which shifts every dOFV and flags proposals as
    # better than a fit that is in fact lower
    from ctkinetics.estimation.population.predictive import fitted_ebe

    obj.eta = fitted_ebe(original, obj.pm.data, spec)
    ofv0 = obj(xhat, update=True, explore=True)
    eta0 = obj.eta.copy()
    cov, proposal = _proposal_cov(original, rse, inflation)
    t0 = time.perf_counter()
    info = {}

    def evaluate(xs):
        out = []
        info.update(run_tasks(executor, ofv_items, (data, ref, meta, eta0), list(xs),
                              out.extend, batch_size=chunk))
        return np.asarray(out, float)

    names = list(original.parameters["parameter"])
    run = iterate(evaluate, xhat, ofv0, cov, spec.bounds(), samples, resamples, seed, say,
                  transform=transform, cap_correlation=cap_correlation, names=names,
                  first=proposal)
    last_x, last_p = run["weighted"]
    nat_all = np.array([_natural(spec, v) for v in last_x])
    nat = nat_all[run["chosen"]]            # the resamples are rows of the last proposals
    est = pd.DataFrame([(i, p, float(nat[i, j])) for i in range(len(nat))
                        for j, p in enumerate(names)], columns=ESTIMATE_COLUMNS)
    weighted = pd.DataFrame({"sample": np.repeat(np.arange(len(nat_all)), len(names)),
                             "parameter": np.tile(names, len(nat_all)),
                             "estimate": nat_all.ravel(),
                             "probability": np.repeat(last_p, len(names))})
    settings = dict(samples=samples, resamples=resamples, seed=int(seed),
                    inflation=float(inflation), rse=float(rse), ci=float(ci), proposal=proposal,
                    transform="yeo-johnson" if transform else "none",
                    cap_correlation=float(cap_correlation),
                    ofv=float(ofv0), original_ofv=float(original.ofv), df=int(xhat.size),
                    seconds=time.perf_counter() - t0, workers=info.get("workers"),
                    where=info.get("where"), model=original.model,
                    lowest_proposal=_lowest(run["lowest"], spec, names, ofv0))
    it = run["iterations"]
    flags = sir_flags(it.iloc[-1], int(it["negative_dofv"].sum()))
    return SIRResult(_intervals(original.parameters, nat_all, last_p, nat, names, ci), it,
                     run["samples"],
                     run["dofv"], est, flags, settings, run["proposals"], weighted)


def _lowest(lowest, spec, names, ofv0) -> dict | None:
    """The proposal with the lowest OFV of the run, natural scale (``settings``, sir.json):
    with dOFV < 0 the fit is not at its minimum, and these are the values to refit from."""
    if lowest is None:
        return None
    dofv, k, i, x = lowest
    return {"dofv": dofv, "ofv": float(ofv0 + dofv), "iteration": int(k), "sample": int(i),
            "estimates": {n: float(v) for n, v in zip(names, _natural(spec, x))}}


def iterate(evaluate, xhat, ofv0, cov, bounds, samples, resamples, seed, say=None, *,
            transform=True, cap_correlation=0.8, names=None,
            first="covariance step") -> dict:
    """The SIR iterations (see the module) for any objective.

    ``evaluate(xs)`` gives the −2LL at each row of ``xs``; ``ofv0`` is its value at ``xhat``;
    ``cov`` the first proposal's covariance; ``bounds`` (lo, hi) of x. Returns ``final``
    (the last resamples, m × k), ``weighted`` (the last iteration's proposals, M × k, and
    their normalised importance ratios, M), ``chosen`` (the mask of the resampled proposals:
    ``final`` is ``weighted[0][chosen]``), and the tables ``iterations``, ``samples``, ``dofv`` and
    ``proposals`` (parameters named by ``names``, default x1, x2, ...), and ``lowest``, the
    proposal with the lowest objective of any iteration (dOFV, iteration, sample index, x; None
    when no objective was finite); ``first`` says where ``cov`` comes from (the iterations
    table's ``proposal`` of iteration 1).
    """
    say = say or (lambda s: None)
    lo, hi = bounds
    xhat = np.asarray(xhat, float)
    names = list(names) if names is not None else [f"x{j + 1}" for j in range(xhat.size)]
    rows = {"samples": [], "iterations": [], "dofv": [], "proposals": []}
    prop = Proposal.normal(xhat, cov, cap_correlation)
    final = None
    lowest = None                   # (dOFV, iteration, sample, x) of the lowest OFV seen
    for k, (M, m) in enumerate(zip(samples, resamples), start=1):
        rng = replicate_rng(seed, k)
        x, logq = prop.draw(rng, M, lo, hi)
        dofv = np.asarray(evaluate(x), float) - ofv0
        if np.isfinite(dofv).any():
            i = int(np.argmin(np.where(np.isfinite(dofv), dofv, np.inf)))
            if lowest is None or dofv[i] < lowest[0]:
                lowest = (float(dofv[i]), k, i, x[i].copy())
        chosen, row, prob = _weigh(rng, dofv, logq, m, rows, k, xhat.size)
        row["proposal"] = (first if k == 1 else
                           f"{'Yeo-Johnson ' if prop.transformed else ''}normal fitted to "
                           f"iteration {k - 1}'s resamples")
        rows["proposals"] += prop.rows(k, names)
        final, weighted = x[chosen], (x, prob)
        rows["iterations"].append(row)
        say(f"SIR iteration {k}: {M} proposals, {m} resampled, ESS "
            f"{row['effective_sample_size']:.0f}, mean dOFV of the resamples "
            f"{row['mean_dofv_resamples']:.2f} (chi-square df {xhat.size})")
        if k < len(samples):
            nxt = Proposal.fitted(final, transform, cap_correlation)
            if nxt is None:
                say("SIR: the resamples' covariance is singular; the proposal is kept")
            else:
                prop = nxt
    return {"final": final, "weighted": weighted, "chosen": chosen, "lowest": lowest,
            "iterations": pd.DataFrame(rows["iterations"], columns=ITERATION_COLUMNS),
            "samples": pd.concat(rows["samples"], ignore_index=True)[SAMPLE_COLUMNS],
            "dofv": pd.concat(rows["dofv"], ignore_index=True)[DOFV_COLUMNS],
            "proposals": pd.DataFrame(rows["proposals"], columns=PROPOSAL_COLUMNS)}


def _weigh(rng, dofv, logq, m, rows, k, df):
    """Importance ratios and the resampling of one iteration: (chosen mask, iteration row,
    normalised importance ratios); the samples and dOFV-quantile rows are appended to ``rows``."""
    from scipy.special import chdtri

    M = dofv.size
    ok = np.isfinite(dofv)
    log_ir = np.where(ok, -0.5 * dofv - logq, -np.inf)
    w = np.exp(log_ir - np.max(log_ir[ok])) if ok.any() else np.zeros(M)
    prob = w / w.sum()
    chosen = np.zeros(M, bool)
    chosen[_resample(rng, log_ir, m)] = True
    qs = np.linspace(0.05, 0.95, 19)
    rows["samples"].append(pd.DataFrame({"iteration": k, "sample": np.arange(M), "dofv": dofv,
                                         "log_importance_ratio": log_ir, "probability": prob,
                                         "resampled": chosen}))
    rows["dofv"].append(pd.DataFrame({"iteration": k, "quantile": qs,
                                      "dofv_resamples": np.quantile(dofv[chosen], qs),
                                      "dofv_chi2": chdtri(df, 1.0 - qs)}))
    row = dict(iteration=k, samples=M, resamples=m, resampling_ratio=M / m,
               effective_sample_size=float(w.sum() ** 2 / np.sum(w**2)),
               max_probability=float(prob.max()), mean_dofv_proposal=float(np.mean(dofv[ok])),
               mean_dofv_resamples=float(np.mean(dofv[chosen])), df=df,
               failed_ofv=int((~ok).sum()), negative_dofv=int(np.sum(dofv[ok] < 0)))
    return chosen, row, prob


def sir_flags(last: dict, negative_dofv: int = 0) -> list:
    """Registry flags of the last iteration's diagnostics and of the number of proposals
    (any iteration) with dOFV < 0."""
    out = []
    if last["effective_sample_size"] < last["resamples"]:
        out.append("sir_low_ess")
    if last["mean_dofv_resamples"] > FLAGS["sir_dofv_above_chi2"].limit * last["df"]:
        out.append("sir_dofv_above_chi2")
    if negative_dofv > 0:
        out.append("sir_negative_dofv")
    return out


def _intervals(params, nat_all, prob, nat, names, level):
    """The intervals table: weighted quantiles of the last proposals ``nat_all`` (M × k,
    natural scale, normalised importance ratios ``prob``) and plain quantiles of its
    resamples ``nat`` (m × k)."""
    from ctkinetics.stats import quantile, weighted_quantile

    a = (1.0 - level) / 2.0
    rows = []
    for r in params.itertuples():
        j = names.index(r.parameter)
        ok = np.isfinite(nat_all[:, j]) & np.isfinite(prob)
        lo = med = hi = sd = np.nan
        if ok.sum() > 1:
            v, w = nat_all[ok, j], prob[ok]
            lo, med, hi = weighted_quantile(v, w, [a, 0.5, 1 - a])
            sd = float(np.sqrt(np.average((v - np.average(v, weights=w)) ** 2, weights=w)))
        res = nat[:, j]
        res = res[np.isfinite(res)]
        rlo, rhi = quantile(res, [a, 1 - a]) if res.size > 1 else (np.nan, np.nan)
        rows.append(dict(parameter=r.parameter, kind=r.kind, estimate=float(r.estimate),
                         sir_median=float(med), sir_se=sd, ci_level=level,
                         sir_low=float(lo), sir_high=float(hi), n_resamples=int(res.size),
                         unit=getattr(r, "unit", "") or "", resample_low=float(rlo),
                         resample_high=float(rhi)))
    return pd.DataFrame(rows, columns=INTERVAL_COLUMNS)


__all__ = ["sir", "SIRResult", "iterate", "ofv_items", "sir_flags", "WEIGHTED_COLUMNS",
           "DEFAULT_SAMPLES",
           "DEFAULT_RESAMPLES"]
