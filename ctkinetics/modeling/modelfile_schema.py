"""The schema of a model file (:mod:`ctkinetics.schema`): its tables, keys and value types.

Imported by :func:`ctkinetics.modeling.modelfile.parse_model_text` when a file is read (it
imports pydantic). Expressions are only checked to be text (or a number) here; the safe
expression language (:func:`ctkinetics.modeling.expressions.compile_expression`) reads them,
and the model file's own rules (names, phases, kinds) are checked by the reader.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BeforeValidator, Field, model_validator

from ctkinetics.schema import KeyProblems, schema_base, types

Schema = schema_base()
T = types()
Number, Text, Flag = T.Number, T.Text, T.Flag



def _expression(v):
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ValueError(f"expected an expression (text) or a number, got {v!r}"[:120])
    return v


def _derived(v):
    return {"expr": v} if isinstance(v, (str, int, float)) and not isinstance(v, bool) else v


#: An expression: text for the safe expression language, or a number (a constant).
Expr = Annotated[Any, BeforeValidator(_expression)]
Words = Optional[Text]


class ParameterSection(Schema):
    default: Annotated[Number, Field(description="a number")]
    lower: Annotated[Number, Field(description="a number")]
    upper: Annotated[Number, Field(description="a number")]
    unit: Words = None
    scale: Words = None
    description: Words = None
    source: Annotated[Text, Field(min_length=1, description="the 'source' (or rationale) of its default")]
    omega2: Annotated[Number, Field(ge=0, description="a variance >= 0")] = None
    estimate: Flag = None


class CovariateSection(Schema):
    default: Annotated[Number, Field(description="a numeric default")]
    unit: Words = None
    description: Words = None
    time_varying: Flag = None
    interpolation: Annotated[Literal["step", "linear"], Field(description="'step' or 'linear'")] = None


class StateSection(Schema):
    initial: Expr
    unit: Words = None
    description: Words = None
    positive: Flag = None


class PhaseSection(Schema):
    name: Words = None
    end: Expr = None
    ode: Annotated[dict[str, Expr], Field(description="a table state = expression")]
    solution: Annotated[dict[str, Expr], Field(description="a table state = closed-form expression")] = None


class DerivedSection(Schema):
    expr: Expr
    unit: Words = None
    description: Words = None


class SolverSection(Schema):
    rtol: Annotated[Number, Field(gt=0, lt=1, description="a number in (0, 1)")] = None
    atol: Annotated[Number, Field(gt=0, lt=1, description="a number in (0, 1)")] = None
    max_step: Annotated[Number, Field(gt=0, description="a step length > 0 (model time units)")] = None


#: The residual SDs of each error model (names as the fits' ``sigma_<analyte>`` parameters:
#: :data:`ctkinetics.estimation.likelihood.ERROR_MODELS`, a higher layer; a test keeps the two
#: in step).
RESIDUAL_SDS = {"proportional": ("sigma",), "additive": ("sigma",),
                "combined": ("sigma_prop", "sigma_add")}
_SD = Annotated[Number, Field(gt=0, description="a residual SD > 0")]


class ResidualErrorSection(Schema):
    """``[residual_error.<observable kind>]``: the typical residual error of an observable
    (the assay's precision), which MAP fits with ``prior = "model"`` hold fixed."""

    model: Annotated[Literal["proportional", "additive", "combined"],
                     Field(description="'proportional', 'additive' or 'combined'")]
    sigma: _SD = None
    sigma_prop: _SD = None
    sigma_add: _SD = None
    unit: Words = None
    description: Words = None
    source: Annotated[Text, Field(min_length=1, description="the 'source' of the values "
                                                           "(publication, or what was assumed)")]

    @model_validator(mode="after")
    def _sds_of_model(self):
        need = RESIDUAL_SDS[self.model]
        bad = [(k, f"the {self.model} error model needs '{k}'") for k in need
               if getattr(self, k) is None]
        bad += [(k, f"'{k}' is not an SD of the {self.model} error model (it has "
                    f"{', '.join(need)})") for k in ("sigma", "sigma_prop", "sigma_add")
                if k not in need and getattr(self, k) is not None]
        if bad:
            raise KeyProblems(*bad)
        return self


class ModelFile(Schema):
    name: Annotated[Text, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$",
                                description="a lower-case identifier (letters, digits, _)")]
    title: Annotated[Text, Field(min_length=1, description="a title")]
    reference: Annotated[Text, Field(min_length=1, description="a reference (citation or rationale)")]
    doi: Words = None
    population: Words = None
    description: Words = None
    time_unit: Words = None
    horizon: Annotated[Number, Field(gt=0, lt=1e6, description="a positive number (default simulation end time)")] = None
    parameters: Annotated[dict[str, ParameterSection], Field(min_length=1, description="at least one parameter")]
    covariates: dict[str, CovariateSection] = None
    definitions: Annotated[dict[str, Expr], Field(description="a table name = expression")] = None
    states: Annotated[dict[str, StateSection], Field(min_length=1, description="at least one state")]
    phases: Annotated[list[PhaseSection], Field(min_length=1, description="a non-empty array of tables ([[phases]])")]
    observables: Annotated[dict[str, Expr], Field(min_length=1, description="at least one observable")]
    dosing: Annotated[dict[str, Expr], Field(description="a table state = expression of amt")] = None
    derived: dict[str, Annotated[DerivedSection, BeforeValidator(_derived)]] = None
    solver: SolverSection = None
    residual_error: dict[str, ResidualErrorSection] = None
