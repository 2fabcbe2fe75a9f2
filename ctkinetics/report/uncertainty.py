"""The report's uncertainty part (issue 16), behind the ``[uncertainty]`` settings: intervals on
the model-based exposure of the individual fits, and — for the population fit — bootstrap,
SIR, NPDE and the prediction-corrected VPC. One section (3c), its CSV tables and its entry in
``summary.json``; the computations are those of :mod:`ctkinetics.estimation` (bootstrap,
sir, exposure_ci, population.npde, population.pcvpc).

A part that fails is recorded (its reason shown in the section and listed among the report's
failures); the rest of the report stands.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from ctkinetics.errors import InputError
from ctkinetics.report.html import collapsible, esc, table


@dataclass(frozen=True)
class UncertaintyReview:
    """What the uncertainty section shows (each part None when not asked for or failed)."""

    exposure: object = None          # ExposureCI of the individual fits
    bootstrap: object = None         # BootstrapResult of the population fit
    sir: object = None               # SIRResult
    npde: object = None              # NPDEResult
    pcvpc: object = None             # VPCResult (prediction-corrected)
    errors: dict = field(default_factory=dict)   # part -> why it is missing

    def failure_lines(self) -> list:
        return [f"{part}: {why}" for part, why in self.errors.items()]


def requested(settings) -> bool:
    return bool(settings.uncertainty_exposure_ci or settings.uncertainty_bootstrap
                or settings.uncertainty_sir or settings.uncertainty_npde
                or settings.uncertainty_pcvpc)


def _executor(settings):
    from ctkinetics.executors import LocalDaskExecutor, SerialExecutor

    w = settings.uncertainty_workers
    return SerialExecutor() if w == 0 else LocalDaskExecutor(workers=w)


def _run(errors, part, f):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return f()
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the rest of the report stands without it
        errors[part] = f"{type(exc).__name__}: {exc}"
        return None


def uncertainty_review(dataset, model, settings, fit, population, step) -> UncertaintyReview:
    """Run the parts the settings ask for (``step`` names each; bad settings raise)."""
    from ctkinetics.estimation.exposure_ci import exposure_intervals

    s, errors = settings, {}
    seed = int(s.uncertainty_seed)
    exposure = boot = sir_r = npde_r = pc = None
    if s.uncertainty_exposure_ci:
        step(f"intervals on model-based exposure ({s.uncertainty_draws} draws)")
        if fit is None:
            errors["exposure intervals"] = "the individual fits are missing"
        else:
            exposure = _run(errors, "exposure intervals", lambda: exposure_intervals(
                fit, dataset, model, n_draws=s.uncertainty_draws, seed=seed))
    pop_parts = (s.uncertainty_bootstrap, s.uncertainty_sir, s.uncertainty_npde,
                 s.uncertainty_pcvpc)
    if any(pop_parts) and (population is None or population.failed):
        errors["population uncertainty"] = "no usable population fit"
        return UncertaintyReview(exposure, errors=errors)
    opts = dict(random_effects=list(population.settings.get("random_effects") or []) or None,
                method=population.method, blq=population.blq_method,
                error=population.error_model,
                analytes=list(population.settings.get("analytes") or []) or None) \
        if population is not None else {}
    if s.uncertainty_bootstrap:
        from ctkinetics.estimation.bootstrap import bootstrap

        step(f"bootstrap of the population fit: {s.uncertainty_bootstrap} replicates")
        boot = _run(errors, "bootstrap", lambda: bootstrap(
            dataset, model, s.uncertainty_bootstrap, seed=seed, original=population,
            executor=_executor(s), **opts))
    if s.uncertainty_sir:
        from ctkinetics.estimation.sir import sir

        step("SIR of the population fit")
        sir_r = _run(errors, "SIR", lambda: sir(
            dataset, model, population, samples=s.uncertainty_sir_samples,
            resamples=s.uncertainty_sir_resamples, inflation=s.uncertainty_sir_inflation,
            seed=seed, executor=_executor(s)))
    if s.uncertainty_npde:
        from ctkinetics.estimation.population.npde import npde

        step(f"NPDE: {s.uncertainty_npde} simulated replicates")
        npde_r = _run(errors, "NPDE", lambda: npde(population, dataset, model,
                                                   n_simulations=s.uncertainty_npde, seed=seed))
    if s.uncertainty_pcvpc:
        from ctkinetics.estimation.population.pcvpc import pcvpc

        step(f"prediction-corrected VPC: {s.uncertainty_pcvpc} replicates")
        pc = _run(errors, "pcVPC", lambda: pcvpc(population, dataset, model,
                                                 n_replicates=s.uncertainty_pcvpc, seed=seed))
    return UncertaintyReview(exposure, boot, sir_r, npde_r, pc, errors)


# --------------------------------------------------------------------------------------
NPDE_REPORT_COLUMNS = ["subject", "analyte", "time", "observed", "blq", "lloq", "imputed",
                       "ploq", "pd", "npd", "npde"]


def uncertainty_tables(rv) -> dict:
    """CSV tables of the section (names as the report writes them)."""
    u = getattr(rv, "uncertainty", None)
    if u is None:
        return {}
    t = {}
    if u.exposure is not None:
        t["exposure_ci.csv"] = u.exposure.participants
        t["exposure_ci_dose_levels.csv"] = u.exposure.dose_levels
    if u.bootstrap is not None:
        t["population_bootstrap_intervals.csv"] = u.bootstrap.intervals
        # run times stay in ctk popfit's bootstrap_replicates.csv, not in the report
        t["population_bootstrap_replicates.csv"] = u.bootstrap.replicates.drop(
            columns=["seconds", "cpu_seconds"], errors="ignore")
    if u.sir is not None:
        t["population_sir_intervals.csv"] = u.sir.intervals
        t["population_sir_iterations.csv"] = u.sir.iterations
        t["population_sir_proposals.csv"] = u.sir.proposals
    if u.npde is not None:
        t["population_npde.csv"] = u.npde.table[NPDE_REPORT_COLUMNS]
        t["population_npde_tests.csv"] = u.npde.tests
    if u.pcvpc is not None:
        t["population_pcvpc.csv"] = u.pcvpc.table
    return t


def uncertainty_summary(rv):
    """The section's entry of ``summary.json`` (None when not asked for)."""
    u = getattr(rv, "uncertainty", None)
    if u is None:
        return None
    out = {"errors": dict(u.errors)}
    if u.exposure is not None:
        out["exposure_ci"] = u.exposure.settings
    if u.bootstrap is not None:
        out["bootstrap"] = {"shares": u.bootstrap.shares, "flags": list(u.bootstrap.flags),
                            "settings": {k: v for k, v in u.bootstrap.settings.items()
                                         if k != "fit_options"}}
    if u.sir is not None:
        last = u.sir.iterations.iloc[-1]
        out["sir"] = {"flags": list(u.sir.flags), "iterations": int(len(u.sir.iterations)),
                      "effective_sample_size": float(last["effective_sample_size"]),
                      "mean_dofv_resamples": float(last["mean_dofv_resamples"]),
                      "df": int(last["df"]), "seed": u.sir.settings.get("seed")}
    if u.npde is not None:
        out["npde"] = {"tests": u.npde.tests.to_dict(orient="records"),
                       "simulations": u.npde.settings.get("n_simulations")}
    if u.pcvpc is not None:
        out["pcvpc"] = {"replicates": u.pcvpc.n_replicates, "ci": u.pcvpc.ci,
                        "blq": u.pcvpc.settings.get("blq")}
    return out


# --------------------------------------------------------------------------------------
def uncertainty_section(rv, fig) -> str:
    from ctkinetics.plots.uncertainty import (
        exposure_ci_figure, interval_figure, npde_figure, pcvpc_figure, sir_dofv_figure,
    )

    u = rv.uncertainty
    out = ["<h2 id='uncertainty'>3c. Uncertainty</h2>"]
    if u.errors:
        items = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in u.errors.items())
        out.append(f"<div class='box bad'><b>Not computed</b><ul>{items}</ul></div>")
    if u.exposure is not None:
        e = u.exposure
        out.append("<h3>Model-based exposure with 95 % intervals</h3>"
                   f"<p class='note'>{esc(e.settings.get('method'))}; {e.settings['n_draws']} "
                   f"seeded draws (seed {esc(e.settings.get('seed'))}), metrics of the one "
                   "exposure registry (Cmax and Tmax of the fitted curve, exact AUC0-28). Dose "
                   "levels: geometric mean over the participants, its interval from the same "
                   "draws. A participant whose individual fit leaves a parameter not "
                   "estimable (no standard error) has no interval, and then neither has their "
                   "dose level (the note names who and which parameter); <code>ctk popfit "
                   "--exposure-ci</code> gives every participant an interval from the "
                   "population fit.</p>")
        out.append(table(e.dose_levels, ["dose_level", "analyte", "metric", "statistic",
                                         "n_participants", "estimate", "ci_low", "ci_high",
                                         "unit", "note"],
                         labels={"ci_low": "95 % CI low", "ci_high": "95 % CI high",
                                 "n_participants": "participants"},
                         text_columns=("dose_level", "analyte", "metric", "statistic", "unit",
                                       "note")))
        for metric in ("Cmax", "AUC0-28"):
            for a in dict.fromkeys(e.participants["analyte"]):
                out.append(fig(lambda m=metric, a=a: exposure_ci_figure.spec(e, m, a),
                               f"exposure_ci:{a}:{metric}"))
        out.append(collapsible(f"Every participant's interval ({len(e.participants)} rows)",
                               table(e.participants, ["subject", "dose_level", "analyte",
                                                      "metric", "estimate", "ci_low", "ci_high",
                                                      "unit", "note"],
                                     text_columns=("subject", "dose_level", "analyte",
                                                   "metric", "unit", "note"))))
    if rv.population is not None and (u.bootstrap is not None or u.sir is not None):
        out.append(_parameter_intervals(rv, u, fig, interval_figure.spec,
                                        sir_dofv_figure.spec))
    if u.npde is not None:
        out.append(_npde(u.npde, fig, npde_figure.spec, getattr(rv.model, "time_unit", "")))
    if u.pcvpc is not None:
        v = u.pcvpc
        out.append("<h3>Prediction-corrected VPC</h3><p class='note'>Observed and simulated "
                   "values normalised to the median typical prediction of their time bin "
                   "(Bergstrand 2011: Y·median(PRED)/PRED), so that participants of different "
                   f"doses compare; {v.n_replicates} replicates (seed "
                   f"{esc(v.settings.get('seed'))}); BLQ samples imputed from the predictive "
                   "distribution as the npde package does (open markers). Lower panel: "
                   "fraction of samples below the LLOQ, observed and simulated.</p>")
        for a in dict.fromkeys(v.table["analyte"]):
            unit = getattr(rv.dataset.study.analytes.get(a), "unit", "")
            out.append(fig(lambda a=a, unit=unit: pcvpc_figure.spec(v, a, unit=unit), f"pcvpc:{a}"))
    return "<section>" + "".join(out) + "</section>"


def _parameter_intervals(rv, u, fig, interval_figure, sir_dofv_figure) -> str:
    from ctkinetics.estimation.flags import get as get_flag
    from ctkinetics.estimation.interval_choice import interval_to_read

    p = rv.population
    sched = "PsN's schedule"
    if u.sir is not None:
        st = u.sir.settings
        sched = "proposals/resamples " + ", ".join(
            f"{n}/{m}" for n, m in zip(st.get("samples", []), st.get("resamples", [])))
    out = ["<h3>Population parameters: Wald, bootstrap and SIR intervals</h3>",
           "<p class='note'>Wald: the covariance step's 95 % interval. Bootstrap: "
           "participants resampled with replacement within dose level (and phase), the model "
           "refitted; percentile and BCa limits over the replicates that converged (those "
           f"with an estimate on a bound included and counted below). SIR (Dosne 2016; {esc(sched)}): "
           "proposals from the covariance step, then from normals fitted to each iteration's "
           "resamples on a per-parameter Yeo–Johnson scale, weighted by their likelihood and "
           "resampled; the limits are the quantiles of the last iteration's weighted "
           "proposals (the distribution the resamples are drawn from; PsN's quantiles of "
           "the resamples themselves are in the CSV); no Hessian needed.</p>"]
    rows = p.parameters[["parameter", "kind", "estimate", "ci_low", "ci_high", "unit"]].copy()
    if u.bootstrap is not None:
        b = u.bootstrap.intervals.set_index("parameter")
        # a parameter no replicate moved has an interval of no width that informs nobody:
        # left blank here (the flag box names it; the CSV keeps the numbers)
        flat = set(u.bootstrap.unmoved())
        for c in ("pct_low", "pct_high", "bca_low", "bca_high"):
            rows[c] = rows["parameter"].map(b[c]).where(~rows["parameter"].isin(flat))
    if u.sir is not None:
        s = u.sir.intervals.set_index("parameter")
        for c in ("sir_low", "sir_high"):
            rows[c] = rows["parameter"].map(s[c])
    out.append(table(rows, labels={"ci_low": "Wald low", "ci_high": "Wald high",
                                   "pct_low": "bootstrap low", "pct_high": "bootstrap high",
                                   "bca_low": "BCa low", "bca_high": "BCa high",
                                   "sir_low": "SIR low", "sir_high": "SIR high"},
                     text_columns=("parameter", "kind", "unit")))
    out.append(fig(lambda: interval_figure(p, u.bootstrap, u.sir), "uncertainty:intervals"))
    flags = []
    if u.bootstrap is not None:
        sh = u.bootstrap.shares
        out.append(f"<p>Bootstrap: {u.bootstrap.settings['n_replicates']} replicates (seed "
                   f"{esc(u.bootstrap.settings['seed'])}), {sh['n_used']} used; failed "
                   f"{sh['failed_pct']:.0f} %, not converged {sh['not_converged_pct']:.0f} %, "
                   f"an estimate at a bound {sh['at_bound_pct']:.0f} %.</p>")
        flags += list(u.bootstrap.flags)
    if u.sir is not None:
        it = u.sir.iterations
        out.append(table(it, text_columns=()))
        out.append(fig(lambda: sir_dofv_figure(u.sir), "uncertainty:sir_dofv"))
        flags += list(u.sir.flags)
    if flags:
        items = "".join(f"<li><code>{esc(f)}</code>: {esc(get_flag(f).meaning)}</li>"
                        for f in flags)
        out.append(f"<div class='box warn'><ul>{items}</ul></div>")
    advice = interval_to_read(u.bootstrap, u.sir, p)
    if advice:
        out.append(f"<p class='box warn'><b>Which interval to read.</b> {esc(advice)}</p>")
    return "".join(out)


def _npde(n, fig, npde_figure, time_unit="") -> str:
    t = n.tests
    rows = t.assign(statistic=t["statistic"].astype(str))
    out = ["<h3>Normalised prediction distribution errors (NPDE)</h3>",
           f"<p class='note'>{n.settings['n_simulations']} replicates simulated from the fit "
           f"(seed {esc(n.settings.get('seed'))}); computed on the {esc(n.settings['scale'])} "
           "scale as the R package npde does (Cholesky decorrelation; a BLQ sample's pd drawn "
           "in [0, P(BLQ)] and its value imputed from the predictive distribution). Under the "
           "model npde ~ N(0, 1); p-values Bonferroni-adjusted (×3) as npde prints them; the "
           "global test is the smallest.</p>",
           table(rows, ["statistic", "n", "mean", "variance", "skewness", "kurtosis", "p_mean",
                        "p_variance", "p_normality", "p_global"],
                 labels={"p_mean": "p (mean = 0)", "p_variance": "p (variance = 1)",
                         "p_normality": "p (normality)", "p_global": "p (global)"},
                 row_class=lambda r: "flag" if float(r["p_global"]) < 0.05 else "",
                 text_columns=("statistic",)),
           fig(lambda: npde_figure(n, time_unit=time_unit), "uncertainty:npde")]
    return "".join(out)


__all__ = ["UncertaintyReview", "uncertainty_review", "uncertainty_tables",
           "uncertainty_summary", "uncertainty_section", "requested"]
