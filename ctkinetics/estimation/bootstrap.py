"""Nonparametric (case-resampling) bootstrap of a population fit, on an executor.

Each replicate draws, within each stratum (dose level and study phase by default), as many
participants as the stratum has, with replacement (a participant drawn twice counts as two),
and refits the same model with the same options, started from the original estimates,
without a covariance step (PsN ``bootstrap``, nlmixr2 ``bootstrapFit``). Covariate effects
keep the original fit's reference values, so that θ means the same in every replicate.

Replicate ``r`` draws from ``SeedSequence(seed, spawn_key=(r,))``: the replicates, and so the
intervals, are identical on any number of Dask workers and in this process.

Intervals (level ``ci``, default 95 %), from the replicates used (by default those that did
not fail and converged — PsN's ``skip_minimization_terminated``; replicates with an estimate on
a bound are kept and counted, since dropping them biases an ω whose estimate sits near 0 and
leaves nothing when the original estimate is on its bound; ``exclude=`` chooses):

- percentile: the α/2 and 1 − α/2 quantiles of the replicate estimates (linear
  interpolation, R's ``quantile(type = 7)``, on the estimation scale: ln for log-scale θ,
  ω² and σ);
- BCa (Efron 1987; Efron & Tibshirani 1993, ch. 14): the quantiles at
  α₁,₂ = Φ(z₀ + (z₀ + z_α)/(1 − a(z₀ + z_α))) with bias correction
  z₀ = Φ⁻¹(#{θ* < θ̂}/B) and acceleration a = Σ d³ / (6 (Σ d²)^{3/2}), d = mean(θ₍₋ᵢ₎) − θ₍₋ᵢ₎
  from the jackknife fits leaving out one participant at a time (computed on the
  estimation scale: ln for log-scale θ, ω² and σ).

The share of replicates that failed, did not converge or hit a bound is reported and raises
the registry flags ``replicates_failed`` / ``replicates_at_bound`` above their limits. A
parameter that kept its original estimate in nearly every replicate is named by the flag
``replicates_unmoved:NAME``: replicates start from the original estimates (as PsN's), so a
parameter the objective is flat in stays there and its interval has no width — which would
otherwise read as precision.

>>> res = fit_population(ds, "onecpt_oral", random_effects="ka,CL", error="additive")  # doctest: +SKIP
>>> b = bootstrap(ds, "onecpt_oral", 500, seed=1, original=res, random_effects="ka,CL",
...               error="additive", executor=LocalDaskExecutor(workers=2))              # doctest: +SKIP
>>> b.intervals[["parameter", "estimate", "pct_low", "pct_high", "bca_low", "bca_high"]]  # doctest: +SKIP
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.flags import FLAGS
from ctkinetics.estimation.result_folder import FolderResult
from ctkinetics.estimation.resampling import (
    DEFAULT_STRATA, FitData, ModelRef, draw_subjects, replicate_rng, run_tasks,
)

#: Statuses of a replicate, worst first; ``exclude`` names those left out of the intervals.
STATUSES = ("failed", "not_converged", "at_bound", "ok")
DEFAULT_EXCLUDE = ("failed", "not_converged")
REPLICATE_COLUMNS = ["replicate", "sample", "status", "used", "ofv", "seconds", "cpu_seconds",
                     "subjects", "at_bound", "message"]
ESTIMATE_COLUMNS = ["replicate", "sample", "parameter", "estimate"]
INTERVAL_COLUMNS = ["parameter", "kind", "estimate", "boot_median", "boot_mean", "boot_se",
                    "bias", "ci_level", "pct_low", "pct_high", "bca_low", "bca_high",
                    "bca_z0", "bca_acceleration", "n_used", "unit"]


@dataclass(frozen=True)
class BootstrapResult(FolderResult):
    """A bootstrap of a population fit (see the module).

    Attributes
    ----------
    intervals : DataFrame
        One row per parameter of the fit (columns :data:`INTERVAL_COLUMNS`): original
        estimate, median / mean / SD (``boot_se``) of the replicates used, bias (mean −
        estimate), percentile and BCa limits at ``ci_level``, BCa's z₀ and acceleration,
        the number of replicates used. Natural scale (θ, β, ω², σ as the fit reports them).
    replicates : DataFrame
        One row per bootstrap replicate (``sample`` 'bootstrap') and jackknife fit
        (``sample`` 'jackknife', ``replicate`` the participant left out): status
        (:data:`STATUSES`), used in the intervals, −2LL, wall and CPU seconds of the fit
        (on its worker), participants drawn, parameters on a bound, message.
    estimates : DataFrame
        Long table: replicate, sample, parameter, estimate (natural scale).
    shares : dict
        Percent of bootstrap replicates failed / not converged / at a bound / used.
    flags : list of str
        Ids from :data:`ctkinetics.estimation.flags.FLAGS`.
    settings : dict
        n_replicates, seed, strata (labels and sizes), exclude, ci, executor, workers,
        seconds, model and the fit options.
    """

    intervals: pd.DataFrame
    replicates: pd.DataFrame
    estimates: pd.DataFrame
    shares: dict
    flags: list
    settings: dict = field(default_factory=dict)

    FILES = (("intervals", "bootstrap_intervals.csv"), ("replicates", "bootstrap_replicates.csv"),
             ("estimates", "bootstrap_estimates.csv"))
    JSON, KIND, META = "bootstrap.json", "bootstrap", ("shares", "flags", "settings")

    def to_frame(self) -> pd.DataFrame:
        return self.intervals.copy()

    def unmoved(self) -> list:
        """The parameters the flag ``replicates_unmoved`` names (their intervals have no
        width and inform nobody: tables and figures leave them out)."""
        from ctkinetics.estimation.flags import flag_id

        return [p for f in self.flags if flag_id(f) == "replicates_unmoved"
                for p in f.split(":", 1)[1].split(",")]

    def values(self, used_only=True) -> pd.DataFrame:
        """Bootstrap replicates × parameters (natural scale), those used by default."""
        e = self.estimates[self.estimates["sample"] == "bootstrap"]
        wide = e.pivot(index="replicate", columns="parameter", values="estimate")
        wide = wide[list(self.intervals["parameter"])]
        if used_only:
            r = self.replicates[(self.replicates["sample"] == "bootstrap")
                                & self.replicates["used"].astype(bool)]
            wide = wide.loc[wide.index.astype(str).isin(r["replicate"].astype(str))]
        return wide



# --------------------------------------------------------------------------------------
# the fits (module level: they run on Dask workers)
# --------------------------------------------------------------------------------------
def fit_items(data: FitData, model: ModelRef, options: dict, seed: int, items) -> list:
    """Fit the bootstrap replicates / jackknife samples ``items`` (('bootstrap', r) or
    ('jackknife', subject)): one dict per item (see :func:`_fit_one`)."""
    out = []
    for kind, key in items:
        if kind == "bootstrap":
            draw = draw_subjects(data.strata, replicate_rng(seed, key))
            sample = data.take(draw)
        else:
            draw = [s for s in data.subject_ids if s != key]
            sample = data.without(key)
        out.append(dict(_fit_one(sample, model, options), sample=kind, replicate=key,
                        subjects=";".join(draw)))
    return out


def _fit_one(sample, model: ModelRef, options: dict) -> dict:
    from ctkinetics.estimation.population import fit_population

    t0, c0 = time.perf_counter(), time.process_time()
    try:
        res = fit_population(sample, model.load(), covariance=False, **options)
    except (SettingsError, ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
        return dict(status="failed", ofv=np.nan, values={}, at_bound="",
                    message=f"{type(exc).__name__}: {exc}",
                    seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0)
    at_bound = list(res.diagnostics.get("at_bound", ()))
    status = ("failed" if res.failed else "not_converged" if not res.converged
              else "at_bound" if at_bound else "ok")
    values = {} if res.failed else {k: float(v) for k, v in res.estimates().items()}
    return dict(status=status, ofv=float(res.ofv), values=values, at_bound=";".join(at_bound),
                message=res.message, seconds=time.perf_counter() - t0,
                cpu_seconds=time.process_time() - c0)


def fit_options_from(original, options: dict) -> dict:
    """The options of every replicate fit: the caller's, started from the original
    estimates, covariate references fixed at the original fit's."""
    from ctkinetics.estimation.population.spec import CovariateEffect, parse_covariates

    opts = dict(options)
    for key in ("covariance", "init", "omega_init", "progress"):
        opts.pop(key, None)
    if original is None:
        return opts
    p = original.parameters
    nat = dict(zip(p["parameter"], p["estimate"].astype(float)))
    opts["init"] = {r.parameter: float(r.estimate) for r in p.itertuples()
                    if r.kind in ("theta", "sigma") and np.isfinite(r.estimate)}
    opts["omega_init"] = {name[len("omega2_"):]: v for name, v in nat.items()
                          if name.startswith("omega2_") and np.isfinite(v) and v > 0}
    refs = dict(original.diagnostics.get("covariate_references") or {})
    effects = parse_covariates(options.get("covariates"))
    if effects:
        opts["covariates"] = [CovariateEffect(e.parameter, e.covariate, e.kind,
                                              e.reference if e.reference is not None
                                              else refs.get(e.name)) for e in effects]
    return opts


# --------------------------------------------------------------------------------------
# intervals
# --------------------------------------------------------------------------------------
def transform(values, scale):
    """The scale BCa's acceleration is computed on: ln for log-scale θ, ω² and σ."""
    v = np.asarray(values, float)
    if scale in ("log", "variance"):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), np.nan)
    return v


def percentile_interval(values, level=0.95):
    """(low, high): the (1 ± level)/2 quantiles, linear interpolation (R type 7)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return np.nan, np.nan
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(v, [a, 1.0 - a])
    return float(lo), float(hi)


def bca_interval(values, estimate, jackknife, level=0.95):
    """(low, high, z0, a) of the BCa interval (see the module); NaN when z₀ or the
    acceleration cannot be computed (all replicates on one side, no jackknife)."""
    from scipy.special import ndtr, ndtri

    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    jk = np.asarray(jackknife, float)
    jk = jk[np.isfinite(jk)]
    if v.size < 2 or jk.size < 3 or not np.isfinite(estimate):
        return np.nan, np.nan, np.nan, np.nan
    z0 = float(ndtri(np.mean(v < estimate)))
    d = jk.mean() - jk
    den = 6.0 * np.sum(d**2) ** 1.5
    acc = float(np.sum(d**3) / den) if den > 0 else 0.0
    if not np.isfinite(z0):
        return np.nan, np.nan, z0, acc
    a = (1.0 - level) / 2.0
    z = ndtri(np.array([a, 1.0 - a]))
    p = ndtr(z0 + (z0 + z) / (1.0 - acc * (z0 + z)))
    lo, hi = np.quantile(v, p)
    return float(lo), float(hi), z0, acc


def interval_table(params, boot, jack, level=0.95) -> pd.DataFrame:
    """The :data:`INTERVAL_COLUMNS` table from the original parameter table ``params``,
    bootstrap values ``boot`` (replicates × parameters, natural scale, those used) and
    jackknife values ``jack`` (participants × parameters, or None)."""
    rows = []
    for r in params.itertuples():
        name, est = r.parameter, float(r.estimate)
        v = boot[name].to_numpy(float) if name in boot else np.array([])
        v = v[np.isfinite(v)]
        scale = getattr(r, "scale", "linear")
        tv, te = transform(v, scale), transform([est], scale)[0]
        back = (np.exp if scale in ("log", "variance") else (lambda x: x))
        lo, hi = (back(q) for q in percentile_interval(tv, level))
        if jack is not None and name in jack and v.size:
            blo, bhi, z0, acc = bca_interval(tv, te, transform(jack[name], scale), level)
            blo, bhi = back(blo), back(bhi)
        else:
            blo = bhi = z0 = acc = np.nan
        rows.append(dict(parameter=name, kind=r.kind, estimate=est,
                         boot_median=float(np.median(v)) if v.size else np.nan,
                         boot_mean=float(v.mean()) if v.size else np.nan,
                         boot_se=float(v.std(ddof=1)) if v.size > 1 else np.nan,
                         bias=float(v.mean() - est) if v.size else np.nan,
                         ci_level=level, pct_low=float(lo), pct_high=float(hi),
                         bca_low=float(blo),
                         bca_high=float(bhi), bca_z0=z0, bca_acceleration=acc,
                         n_used=int(v.size), unit=getattr(r, "unit", "") or ""))
    return pd.DataFrame(rows, columns=INTERVAL_COLUMNS)


#: |replicate − estimate| / max(1, |estimate|) (estimation scale) at or below which a
#: replicate left a parameter where it started (the original estimate).
UNMOVED_TOL = 1e-8


def unmoved(params, boot, at_bound=()) -> list:
    """Parameters (of ``params``' rows, in order) that kept their original estimate in at
    least the ``replicates_unmoved`` share of the replicates ``boot`` (replicates × parameters,
    natural scale): the objective is flat in them. A parameter the original fit put on a bound
    (``at_bound``: names of the estimated vector, ``omega_X`` for ``omega2_X``) is left out: a
    bound, not a flat objective, holds it (flag ``at_bound``)."""
    out = []
    if len(boot) == 0:
        return out
    bound = set(at_bound)
    for r in params.itertuples():
        if r.parameter not in boot or not np.isfinite(r.estimate):
            continue
        if r.parameter in bound or r.parameter.replace("omega2_", "omega_", 1) in bound:
            continue
        v = boot[r.parameter].to_numpy(float)
        v = v[np.isfinite(v)]
        log = getattr(r, "scale", "") in ("log", "variance") and r.estimate > 0
        e = np.log(r.estimate) if log else float(r.estimate)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.log(v) if log else v
        still = np.abs(x - e) <= UNMOVED_TOL * max(1.0, abs(e))
        if v.size and still.mean() >= FLAGS["replicates_unmoved"].limit:
            out.append(r.parameter)
    return out


def replicate_flags(shares: dict, unmoved_parameters=()) -> list:
    """Registry flags raised by the shares of failed / at-bound replicates and by the
    parameters no replicate moved (``replicates_unmoved:A,B``)."""
    out = []
    if shares.get("failed_pct", 0) + shares.get("not_converged_pct", 0) > \
            FLAGS["replicates_failed"].limit:
        out.append("replicates_failed")
    if shares.get("at_bound_pct", 0) > FLAGS["replicates_at_bound"].limit:
        out.append("replicates_at_bound")
    if unmoved_parameters:
        out.append("replicates_unmoved:" + ",".join(unmoved_parameters))
    return out


# --------------------------------------------------------------------------------------
def bootstrap(dataset, model, n_replicates=200, seed=0, *, original=None,
              strata=DEFAULT_STRATA, executor=None, ci=0.95, bca=True,
              exclude=DEFAULT_EXCLUDE, progress=None, **fit_options) -> BootstrapResult:
    """Case-resampling bootstrap of ``fit_population(dataset, model, **fit_options)``.

    Parameters
    ----------
    dataset : Dataset
        The data set fitted (``observations``, ``subjects``, ``study``; ``safety`` for the
        study phase).
    model : str, path or Model
    n_replicates : int
        Bootstrap replicates (PsN's default 200; 1000 for tail quantiles).
    seed : int
        Replicate r draws from ``SeedSequence(seed, spawn_key=(r,))``.
    original : PopulationResult, optional
        The fit of ``dataset`` with the same options (start of every replicate; its
        estimates are θ̂). Fitted here when not given.
    strata : tuple of str
        Columns of the subjects (or safety) table to resample within (default dose level
        and study phase; columns the data lack are skipped; ``()`` for none).
    executor : SerialExecutor, LocalDaskExecutor or DaskExecutor, optional
        Where the fits run (:mod:`ctkinetics.executors`; default this process). One fit per
        task unless the executor's ``batch_size`` says otherwise.
    ci : float
        Interval level (0.95).
    bca : bool
        Also fit the n jackknife samples and give BCa limits.
    exclude : tuple of str
        Replicate statuses left out of the intervals (default failed and not converged;
        add ``"at_bound"`` for PsN's ``skip_estimate_near_boundary``).
    progress : callable(str), optional
    **fit_options
        Options of :func:`~ctkinetics.estimation.population.fit_population`
        (random_effects, covariates, method, blq, error, omega, analytes, fixed, estimate).

    Returns
    -------
    BootstrapResult
    """
    from ctkinetics.estimation.population import fit_population

    n_replicates = int(n_replicates)
    if n_replicates < 2:
        raise SettingsError(f"a bootstrap needs at least 2 replicates (got {n_replicates})")
    if not 0.5 < float(ci) < 1.0:
        raise SettingsError(f"ci must be between 0.5 and 1 (got {ci})")
    bad = sorted(set(exclude) - set(STATUSES))
    if bad:
        raise SettingsError(f"unknown replicate status(es) {bad}; choose among {STATUSES}")
    data = FitData.of(dataset, strata)
    ref = ModelRef.of(model)
    say = progress or (lambda s: None)
    if original is None:
        say("bootstrap: fitting the original data")
        original = fit_population(data, ref.load(), **fit_options)
    if original.failed or original.x is None:
        raise SettingsError("the original fit failed: nothing to bootstrap "
                            f"({original.failure})")
    data = _fitted_subjects(data, original)
    options = fit_options_from(original, fit_options)
    items = [("bootstrap", r) for r in range(n_replicates)]
    if bca:
        items += [("jackknife", s) for s in data.subject_ids]
    rows = []
    info = run_tasks(executor, fit_items, (data, ref, options, int(seed)), items, rows.extend,
                     progress=lambda s: say(f"bootstrap: {s} fitted"), what="fits")
    return assemble(original, rows, data, dict(
        n_replicates=n_replicates, seed=int(seed), ci=float(ci), bca=bool(bca),
        exclude=list(exclude), strata=_strata_summary(data.strata, strata),
        model=original.model, fit_options=_options_text(fit_options), **info))


def _fitted_subjects(data: FitData, original) -> FitData:
    """Only the participants the original fit used (those with usable samples)."""
    used = [str(s) for s in original.settings.get("subjects", data.subject_ids)]
    if used == data.subject_ids:
        return data
    keep = data.take(used, rename=False)
    return FitData(keep.observations, keep.subjects, keep.study,
                   {s: data.strata.get(s, "") for s in used})


def assemble(original, rows, data, settings) -> BootstrapResult:
    """The result from the fitted items (in item order)."""
    exclude = set(settings["exclude"])
    params = original.parameters
    rep = pd.DataFrame([{**{k: r[k] for k in ("replicate", "sample", "status", "ofv",
                                               "seconds", "cpu_seconds", "subjects",
                                               "at_bound", "message")},
                         "used": r["status"] not in exclude} for r in rows],
                       columns=REPLICATE_COLUMNS)
    rep["replicate"] = rep["replicate"].astype(str)
    names = list(params["parameter"])
    est = pd.DataFrame([(str(r["replicate"]), r["sample"], p, r["values"].get(p, np.nan))
                        for r in rows for p in names], columns=ESTIMATE_COLUMNS)

    def matrix(keep):
        return pd.DataFrame([[r["values"].get(p, np.nan) for p in names]
                             for r in rows if keep(r)], columns=names)

    boot = matrix(lambda r: r["sample"] == "bootstrap" and r["status"] not in exclude)
    jack = matrix(lambda r: r["sample"] == "jackknife" and r["status"] != "failed")
    jack = jack if len(jack) >= 3 else None
    intervals = interval_table(params, boot, jack, settings["ci"])
    b = rep[rep["sample"] == "bootstrap"]
    n = max(len(b), 1)
    shares = {f"{s}_pct": 100.0 * float((b["status"] == s).sum()) / n
              for s in ("failed", "not_converged", "at_bound")}
    shares["used_pct"] = 100.0 * float(b["used"].sum()) / n
    shares["n_used"] = int(b["used"].sum())
    rep["replicate"] = rep["replicate"].astype(str)
    return BootstrapResult(intervals, rep, est, shares,
                           replicate_flags(shares, unmoved(params, boot, (getattr(
                               original, "diagnostics", None) or {}).get("at_bound", ()))),
                           settings)


def _strata_summary(strata: dict, by) -> dict:
    sizes: dict = {}
    for g in strata.values():
        sizes[g or "(all)"] = sizes.get(g or "(all)", 0) + 1
    return {"by": list(by or ()), "sizes": sizes}


def _options_text(options: dict) -> dict:
    out = {}
    for k, v in options.items():
        if k == "progress":
            continue
        out[k] = (v.settings() if hasattr(v, "settings") else
                  [str(x) for x in v] if isinstance(v, (list, tuple)) else
                  v if isinstance(v, (int, float, str, bool, dict, type(None))) else str(v))
    return out


__all__ = ["bootstrap", "BootstrapResult", "STATUSES", "INTERVAL_COLUMNS",
           "REPLICATE_COLUMNS", "ESTIMATE_COLUMNS", "percentile_interval", "bca_interval",
           "interval_table", "fit_items", "fit_options_from"]
