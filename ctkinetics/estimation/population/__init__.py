"""Population (nonlinear mixed-effects) estimation: FOCE-I and SAEM with BLQ M3,
covariate effects, EBEs, diagnostics and visual predictive checks.

Public API
----------
fit_population(dataset, model, random_effects=..., covariates=..., method='focei'|'saem',
               blq='M3', error='proportional') -> PopulationResult
vpc(result, dataset, model, n_replicates=200, seed=0) -> VPCResult
COVARIATE_EFFECTS                                     registry of covariate models
"""
from ctkinetics.estimation.population.api import METHODS, fit_population
from ctkinetics.estimation.population.results import PopulationResult
from ctkinetics.estimation.population.spec import COVARIATE_EFFECTS, CovariateEffect
from ctkinetics.estimation.population.vpc import VPCResult, vpc

__all__ = ["fit_population", "PopulationResult", "METHODS", "COVARIATE_EFFECTS",
           "CovariateEffect", "vpc", "VPCResult"]
