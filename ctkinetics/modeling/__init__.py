"""The model library engine: model files, a safe expression language, closed form and ODE.

Public API
----------
load_model(name_or_path) -> Model
    A built-in model by name (``ctkinetics.modeling.list_models()``) or a ``.toml`` file.
Model.predict(params, times, covariates=None, observables=None) -> dict kind -> ndarray
simulate(model, params=None, times=None, covariates=None) -> DataFrame(time, observable, value)
simulate_population(model, n, omega=None, times=None, seed=None, covariates=None)
    -> PopulationSimulation (parameters table, profiles table, to_frame())
"""
from ctkinetics.modeling.expressions import FUNCTIONS, compile_expression
from ctkinetics.modeling.model import Model
from ctkinetics.modeling.modelfile import OBSERVABLE_KINDS
from ctkinetics.modeling.parts import Covariate, Derived, Parameter, Phase, State
from ctkinetics.modeling.registry import library_dir, list_models, load_model, model_path
from ctkinetics.modeling.simulation import PopulationSimulation, simulate, simulate_population

__all__ = [
    "load_model",
    "list_models",
    "library_dir",
    "model_path",
    "simulate",
    "simulate_population",
    "PopulationSimulation",
    "Model",
    "Parameter",
    "Covariate",
    "State",
    "Phase",
    "Derived",
    "OBSERVABLE_KINDS",
    "FUNCTIONS",
    "compile_expression",
]
