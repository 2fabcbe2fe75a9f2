"""Estimation: the likelihood (error models, BLQ methods), individual fits (lmfit) and
their uncertainty, diagnostics and summaries.

Public API
----------
fit(dataset, model, ...) -> FitResult        individual maximum-likelihood fits
FitResult, SubjectFit                         immutable results with to_frame()
two_stage_summary(result), compare_models(*results)
fitted_curves(result, dataset)               dense fitted curves with a 95 % prediction band
ERROR_MODELS, BLQ_METHODS                     registries (see :mod:`.likelihood`)
"""
from ctkinetics.estimation.curves import fitted_curves
from ctkinetics.estimation.individual import fit
from ctkinetics.estimation.likelihood import BLQ_METHODS, ERROR_MODELS
from ctkinetics.estimation.results import FitResult, SubjectFit
from ctkinetics.estimation.summary import compare_models, two_stage_summary

__all__ = ["fit", "fitted_curves", "FitResult", "SubjectFit", "BLQ_METHODS", "ERROR_MODELS",
           "two_stage_summary", "compare_models"]


def __getattr__(name):
    # population estimation lives beside the individual fits; imported on first use
    if name in ("fit_population", "PopulationResult", "vpc"):
        from ctkinetics.estimation import population

        return getattr(population, name)
    raise AttributeError(f"module 'ctkinetics.estimation' has no attribute {name!r}")
