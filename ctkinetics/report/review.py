"""The review behind the report: validate → NCA → fits → escalation, as one result object.

:func:`build_review` runs the layers below with the options of a :class:`ReportSettings`
and keeps every result; the HTML and the CSV tables are written from it
(:mod:`ctkinetics.report.write`). A fit that cannot be run at all is recorded (``fit_error``)
and the report shows it; bad input or settings still raise :class:`InputError`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import pandas as pd

from ctkinetics.errors import InputError, SettingsError
from ctkinetics.report.settings import ReportSettings

#: Analyte kinds whose NCA and expansion plots the committee reads (B cells are the antigen:
#: their "Cmax" means nothing, they get the aplasia table instead).
CELL_KINDS = ("qpcr", "flow", "conc")


@dataclass(frozen=True)
class Review:
    """Everything the report shows. Built by :func:`build_review`."""

    dataset: object
    settings: ReportSettings
    car_analytes: tuple
    car_analyte: str | None
    bcell_analyte: str | None
    counts: pd.DataFrame
    nca: object
    model: object = None
    fit: object = None
    fit_error: str = ""
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    mean_profiles: dict = field(default_factory=dict)
    aplasia: pd.DataFrame | None = None
    decision: object = None
    design: object = None
    boundaries: object = None
    escalation_error: str = ""
    mtd: object = None
    escalation: object = None  # ctkinetics.escalation.EscalationReview (the one home of decision and MTD)
    population: object = None
    population_error: str = ""
    vpc: object = None
    model_choice: str = ""   # why this model (the "auto" rule, or "as set")
    fit_note: str = ""       # what the individual fits are (ML, or MAP with which prior)
    exposure_comparison: pd.DataFrame | None = None   # report/model_vs_observed.py (issue 12.5)
    aplasia_comparison: pd.DataFrame | None = None
    trial_sim: object = None
    timings: tuple = ()
    uncertainty: object = None  # report/uncertainty.py: [uncertainty] parts (issue 16)

    @property
    def flagged_fits(self) -> list:
        """Subjects whose fit failed or carries a flag."""
        if self.fit is None:
            return []
        return [f.subject for f in self.fit.fits if not f.success or f.flags]

    @property
    def population_requested(self) -> bool:
        return self.settings.population_method is not None

    @property
    def failures(self) -> list:
        """What failed, one line each (failed fits, a fit or population fit that could not
        run, a VPC that failed); the CLI exits 3 when there are any and the manifest lists
        them. Flags are not failures: a flagged fit is a result to read with caution."""
        out = []
        if self.fit is None and self.fit_error:
            out.append(f"model fits ({self.settings.model}): {self.fit_error}")
        elif self.fit is not None:
            out += [f"fit {f.subject}: {f.message}" for f in self.fit.fits if not f.success]
        if self.population_requested:
            p = self.population
            if p is None:
                out.append(f"population fit: {self.population_error}")
            else:
                if not p.converged:
                    out.append(f"population fit: not converged: {p.message}")
                if self.population_error:
                    out.append(f"population fit: {self.population_error}")
        if self.uncertainty is not None:
            out += self.uncertainty.failure_lines()
        return out


def _pick(dataset, wanted, kinds, what):
    analytes = dataset.study.analytes
    if wanted is not None:
        if wanted not in analytes:
            raise SettingsError(f"{what} '{wanted}' is not an analyte of the study "
                                f"({', '.join(analytes)})")
        return wanted
    present = set(dataset.observations["analyte"])
    for kind in kinds:
        for name, a in analytes.items():
            if a.kind == kind and name in present:
                return name
    return None


def build_review(dataset, settings: ReportSettings | None = None, progress=None) -> Review:
    """Run NCA, individual fits and the escalation decision on a loaded study.

    Parameters
    ----------
    dataset : Dataset
        From :func:`ctkinetics.data.load_study` (validated on loading).
    settings : ReportSettings, optional
    progress : callable(str), optional
        Told the name of each step as it starts (the CLI prints it on stderr).

    Returns
    -------
    Review
    """
    from ctkinetics.report.summaries import bcell_aplasia, data_counts, geometric_mean_profile

    settings = settings or ReportSettings()
    say = progress or (lambda msg: None)
    if settings.as_of is not None:  # a true replay: every section is built from the data known that day
        dataset = dataset.as_of(settings.as_of)
    step = _Steps(say)
    settings, model, model_choice = resolve_settings(settings, dataset)
    step("data: counting samples and BLQ values")
    car_analyte = _pick(dataset, settings.car_analyte, CELL_KINDS, "car_analyte")
    bcell_analyte = _pick(dataset, settings.bcell_analyte, ("bcell",), "bcell_analyte")
    present = set(dataset.observations["analyte"])
    car_analytes = tuple(a for a, info in dataset.study.analytes.items()
                         if info.kind in CELL_KINDS and a in present)
    counts = data_counts(dataset)

    step("NCA of " + (", ".join(car_analytes) or "no analyte"))
    nca_result = _nca(dataset, settings, car_analytes)
    mean_profiles = {a: geometric_mean_profile(dataset, a) for a in car_analytes}

    fits = _fit_stage(dataset, model, settings, say, step)
    population, fit_result = fits["population"], fits["fit"]

    aplasia = None
    if bcell_analyte is not None:
        aplasia = bcell_aplasia(dataset, bcell_analyte)
    from ctkinetics.report.model_vs_observed import aplasia_vs_observed, exposure_vs_nca

    step("model-based vs observed exposure")
    exposure_comparison = exposure_vs_nca(dataset, nca_result, fit_result, car_analytes)
    aplasia_comparison = aplasia_vs_observed(dataset, aplasia, fit_result, model, bcell_analyte)

    step("escalation decision")
    from ctkinetics.report.escalation import escalation_part

    esc = escalation_part(dataset, settings)

    from ctkinetics.report.uncertainty import requested, uncertainty_review

    uncertainty = uncertainty_review(dataset, model, settings, fit_result, population, step) \
        if requested(settings) else None

    trial_sim = None
    if settings.trial_sim_results is not None:
        from ctkinetics.report.trialsim import load_trial_sim

        step(f"virtual trials: reading {settings.trial_sim_results}")
        trial_sim = load_trial_sim(settings.trial_sim_results)

    timings = step.finish()
    return Review(dataset=dataset, settings=settings, car_analytes=car_analytes,
                  car_analyte=car_analyte, bcell_analyte=bcell_analyte, counts=counts,
                  nca=nca_result, model=model, mean_profiles=mean_profiles, aplasia=aplasia,
                  **fits, **esc, trial_sim=trial_sim, timings=timings, uncertainty=uncertainty,
                  model_choice=model_choice, exposure_comparison=exposure_comparison,
                  aplasia_comparison=aplasia_comparison)


def _fit_stage(dataset, model, settings, say, step) -> dict:
    """The population fit (first: its estimates are the fits' prior), the individual fits
    and their curves with bands: the Review fields population, population_error, vpc, fit,
    fit_error, fit_note and curves."""
    from ctkinetics.estimation.curves import fitted_curves

    population = vpc_result = None
    population_error = ""
    if settings.population_method is not None:
        step(f"population fit: {settings.population_method.upper()}, model {settings.model}")
        population, population_error, vpc_result = _population(
            dataset, model, settings, settings.fit_analytes, say)
    prior, fit_note = _prior(settings, population)
    step(f"fits: model {settings.model}, prior {settings.fit_prior}, BLQ {settings.fit_blq}, "
         f"{settings.fit_error} error")
    fit_result, fit_error = _fits(dataset, model, settings, prior)
    sigma_note = (fit_result.settings.get("sigma_note") or "") if fit_result is not None else ""
    if sigma_note:   # the residual SDs: held at the prior's (POSTHOC) or estimated, and why
        fit_note = f"{fit_note} {sigma_note[:1].upper()}{sigma_note[1:]}."
    curves = pd.DataFrame()
    if fit_result is not None:
        step(f"fitted curves with {settings.band_level:.0%} bands")
        curves = fitted_curves(fit_result, dataset, model, level=settings.band_level,
                               draws=settings.band_draws, seed=settings.band_seed)
    return dict(population=population, population_error=population_error, vpc=vpc_result,
                fit=fit_result, fit_error=fit_error, fit_note=fit_note, curves=curves)


def _auto_model(dataset, settings) -> tuple[str, str]:
    """``[report] model = "auto"``: the mechanistic model when flow or B-cell samples after
    infusion are there to observe (of the analytes to fit, when ``[fit] analytes`` names
    them), else the closed form; (model name, why)."""
    from ctkinetics.report.settings import CLOSED_FORM_MODEL, MECHANISTIC_MODEL

    obs = dataset.observations
    obs = obs[~obs["pre_infusion"].astype(bool)]
    wanted = set(settings.fit_analytes) if settings.fit_analytes else None
    kinds = {a.kind: name for name, a in dataset.study.analytes.items()
             if name in set(obs["analyte"]) and (wanted is None or name in wanted)}
    seen = [f"{k} ({kinds[k]})" for k in ("flow", "bcell") if k in kinds]
    if seen:
        return MECHANISTIC_MODEL, (f"chosen because the study has {' and '.join(seen)} samples "
                                   f"after infusion, which {MECHANISTIC_MODEL} observes beside "
                                   "qPCR ([report] model = \"auto\")")
    return CLOSED_FORM_MODEL, ("chosen because the study has no flow or B-cell samples after "
                               "infusion ([report] model = \"auto\")")


def resolve_settings(settings: ReportSettings, dataset) -> tuple:
    """The settings a review of ``dataset`` runs with, every ``auto`` resolved, the model
    loaded and why it was chosen: (settings, model, model_choice).

    * ``[report] model = "auto"``: :func:`_auto_model`;
    * ``[population] method = "auto"``: :data:`~ctkinetics.report.settings.
      AUTO_POPULATION_METHOD` for a model without a closed form (an ODE model, whose
      individual fits are empirical-Bayes estimates: population first), none otherwise;
    * ``[fit] prior = "auto"``: ``population`` when there is a population fit, else ``model``
      for an ODE model and ``none`` (maximum likelihood) for a closed form.
    """
    from ctkinetics.modeling import load_model
    from ctkinetics.report.settings import AUTO_MODEL, AUTO_POPULATION_METHOD

    name, choice = settings.model, "as set"
    if name == AUTO_MODEL:
        name, choice = _auto_model(dataset, settings)
    model = load_model(name)
    ode = not model.has_closed_form
    method = settings.population_method
    if method == "auto":
        method = AUTO_POPULATION_METHOD if ode else None
    prior = settings.fit_prior
    if prior == "auto":
        prior = "population" if method is not None else ("model" if ode else "none")
    if prior == "population" and method is None:
        raise SettingsError('[fit] prior = "population" needs a population fit: give '
                            "[population] method (or ctk report --population focei|saem)")
    from ctkinetics.report.settings_schema import NEEDS_POPULATION

    asked = [k for k in NEEDS_POPULATION if getattr(settings.uncertainty, k)]
    if asked and method is None:
        raise SettingsError(f"[uncertainty] {', '.join(asked)} need a population fit, and model "
                            f"{name} gets none by default: give [population] method (or ctk "
                            "report --population focei|saem)")
    if settings.population_random_effects is not None and method is None:
        raise SettingsError("random effects belong to a population fit: give --population "
                            "focei|saem (or [population] method in the config)")
    resolved = settings.with_overrides(model=name, population_method=method or "none",
                                       fit_prior=prior)
    return resolved, model, choice


def _prior(settings, population) -> tuple:
    """(prior for :func:`ctkinetics.estimation.fit`, what the fits are, in words)."""
    kind = settings.fit_prior
    if kind == "none":
        return None, "maximum-likelihood fits (no prior)."
    if kind == "population":
        if population is not None and population.converged and not population.failed:
            return population, (f"empirical Bayes estimates: MAP fits with the "
                                f"{population.method.upper()} population fit (θ, Ω) as prior.")
        why = "failed" if population is None or population.failed else "did not converge"
        return "model", (f"MAP fits with the model file's typical values and ω² as prior: the "
                         f"population fit {why}, so it is not used as the prior.")
    return "model", "MAP fits with the model file's typical values and ω² as prior."


class _Steps:
    """Names each step of the review (told to ``say``) and times it: ``finish()`` gives
    ``((name, seconds), ...)``."""

    def __init__(self, say):
        import time

        self.say, self.now, self.timings = say, time.perf_counter, []
        self.start = self.now()

    def __call__(self, name):
        t = self.now()
        if self.timings:
            self.timings[-1] = (self.timings[-1][0], t - self.start)
        self.start = t
        self.timings.append((name, math.nan))
        self.say(name)

    def finish(self) -> tuple:
        self("done")
        return tuple(self.timings[:-1])


def _nca(dataset, settings, analytes):
    """The NCA of the CAR-T analytes with the report's options (CLSTP, the predicted Clast,
    added so that the λz figure draws the regression line the NCA fitted)."""
    from ctkinetics.nca import NCAOptions, run_nca
    from ctkinetics.nca.intervals import default_intervals

    options = NCAOptions(auc_method=settings.nca_auc_method, blq=settings.nca_blq,
                         auc_type=settings.nca_auc_type,
                         lamz_window=settings.nca_lambda_z_window,
                         cmax_exclude_before=settings.nca_cmax_exclude_before)
    intervals = default_intervals(options.auc_type, settings.nca_intervals)
    intervals.at[0, "parameters"] = tuple(intervals.at[0, "parameters"]) + ("CLSTP",)
    obs = dataset.observations
    return run_nca(obs[obs["analyte"].isin(analytes)], dataset.subjects,
                   intervals=intervals, options=options)


def _fits(dataset, model, settings, prior=None):
    """The individual fits, or (None, why) when they cannot run at all (bad settings raise)."""
    from ctkinetics.estimation import fit

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fit(dataset, model, analytes=settings.fit_analytes, blq=settings.fit_blq,
                       error=settings.fit_error, starts=settings.fit_starts,
                       seed=settings.fit_seed, prior=prior,
                       estimate_sigma=settings.fit_estimate_sigma), ""
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the report must still show NCA and safety
        return None, f"{type(exc).__name__}: {exc}"


def _population(dataset, model, settings, analytes, say):
    """The population fit and its VPC; (result, error text, vpc). Bad settings still raise."""
    from ctkinetics.estimation.population import fit_population, vpc

    analytes = analytes if analytes is not None else settings.fit_analytes
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fit_population(dataset, model, random_effects=(
                list(settings.population_random_effects)
                if settings.population_random_effects is not None else None),
                method=settings.population_method, blq=settings.fit_blq,
                covariance=settings.population.covariance,
                error=settings.fit_error, analytes=list(analytes) if analytes else None,
                seed=settings.population_seed, progress=lambda line: say("  " + line))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the rest of the report stands without it
        return None, f"{type(exc).__name__}: {exc}", None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check = vpc(result, dataset, model, n_replicates=settings.population_vpc_replicates,
                        seed=settings.population_seed)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - keep the fit, say why the VPC is missing
        return result, f"VPC failed: {type(exc).__name__}: {exc}", None
    return result, "", check
