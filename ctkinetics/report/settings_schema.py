"""The schema of a report settings file (``ctk report --config``; :mod:`ctkinetics.schema`).

Imported when settings are read or checked (it imports pydantic). The one home of each
setting's type and range; the defaults are those of :class:`ctkinetics.report.settings.
ReportSettings`' sections.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from ctkinetics.report.settings import POPULATION_CHOICES, PRIORS
from ctkinetics.schema import KeyProblems, schema_base, types

Schema = schema_base()
T = types()
Integer, Number, Text, Flag = T.Integer, T.Number, T.Text, T.Flag

AnInteger = Annotated[Integer, Field(description="an integer")]
Pair = Annotated[list[Number], Field(min_length=2, max_length=2, description="a pair [start, end]")]


def _count(low: int, what: str = "an integer"):
    return Annotated[Integer, Field(ge=low, description=f"{what} >= {low}")]


def _replicates():
    return Annotated[Integer, Field(ge=0, description="an integer (replicates; 0 = off)")]


class ReportTable(Schema):
    model: Annotated[Text, Field(description="a model name or .toml path")] = None
    as_of: Annotated[Number, Field(description="a number (study day)")] = None
    car_analyte: Annotated[Text, Field(description="an analyte name")] = None
    bcell_analyte: Annotated[Text, Field(description="an analyte name")] = None


class FitTable(Schema):
    analytes: Annotated[list[Text], Field(description="a list of analyte names")] = None
    prior: Annotated[Literal[PRIORS], Field(description="auto, none, model or population")] = None
    blq: Annotated[Text, Field(description="M1, M3, M5, M6 or M7")] = None
    error: Annotated[Text, Field(description="an error model name")] = None
    starts: _count(1) = None
    seed: AnInteger = None
    estimate_sigma: Flag = None


class NcaTable(Schema):
    auc_method: Annotated[Text, Field(description="an AUC method")] = None
    blq: Annotated[Text, Field(description="a BLQ rule string")] = None
    auc_type: Annotated[Text, Field(description="last, all or inf")] = None
    intervals: Annotated[list[Pair], Field(min_length=1, description="a list of [start, end] pairs")] = None
    lambda_z_window: Annotated[Pair, Field(description="a pair [lo, hi]")] = None
    cmax_exclude_before: Annotated[Number, Field(description="a number of days")] = None

    @model_validator(mode="after")
    def _ordered(self):
        bad = [(("intervals", i), f"NCA interval [{a:g}, {b:g}] must have its start below its end")
               for i, (a, b) in enumerate(self.intervals or ()) if not b > a]
        if bad:
            raise KeyProblems(*bad)
        return self


class EscalationTable(Schema):
    tite: Flag = None


class BandTable(Schema):
    level: Annotated[Number, Field(ge=0.5, lt=1, description="a number in [0.5, 1)")] = None
    draws: _count(20) = None
    seed: AnInteger = None


class PopulationTable(Schema):
    method: Annotated[Literal[POPULATION_CHOICES], Field(description="auto, none, focei or saem")] = None
    covariance: Flag = None
    random_effects: Annotated[list[Text], Field(min_length=1, description="a list of parameter names")] = None
    vpc_replicates: _count(2) = None
    seed: AnInteger = None


class TrialSimTable(Schema):
    results: Annotated[Text, Field(min_length=1, description="the path of a `ctk trial-sim` output folder")] = None


class UncertaintyTable(Schema):
    exposure_ci: Flag = None
    draws: _count(20) = None
    bootstrap: _replicates() = None
    sir: Flag = None
    sir_samples: Annotated[list[_count(1)], Field(min_length=1, description="a list of integers")] = None
    sir_resamples: Annotated[list[_count(1)], Field(min_length=1, description="a list of integers")] = None
    sir_inflation: Annotated[Number, Field(gt=0, description="a number > 0 (factor on the covariance step)")] = None
    npde: _replicates() = None
    pcvpc: _replicates() = None
    workers: Annotated[Integer, Field(ge=0, description="an integer >= 0 (0: this process)")] = None
    seed: AnInteger = None

    @model_validator(mode="after")
    def _consistent(self):
        bad = [(key, f"{key} must be 0 (off) or at least {low}, got {getattr(self, key)}")
               for key, low in (("bootstrap", 2), ("npde", 100), ("pcvpc", 100))
               if getattr(self, key) and getattr(self, key) < low]
        s, r = self.sir_samples, self.sir_resamples
        if s is not None and r is not None and (len(s) != len(r) or any(m < 2 or m > n for n, m in zip(s, r))):
            bad.append(("sir_resamples", f"sir_samples {list(s)} / sir_resamples {list(r)}: as many of each, "
                                         "2 <= resamples <= samples"))
        if bad:
            raise KeyProblems(*bad)
        return self


#: The population parts of [uncertainty]: they need a population fit.
NEEDS_POPULATION = ("bootstrap", "sir", "npde", "pcvpc")


class ReportFile(Schema):
    """A whole report settings file: every table optional."""

    report: Optional[ReportTable] = None
    fit: Optional[FitTable] = None
    nca: Optional[NcaTable] = None
    escalation: Optional[EscalationTable] = None
    band: Optional[BandTable] = None
    population: Optional[PopulationTable] = None
    trial_sim: Optional[TrialSimTable] = None
    uncertainty: Optional[UncertaintyTable] = None

    @model_validator(mode="after")
    def _population_parts(self):
        u = self.uncertainty
        asked = [k for k in NEEDS_POPULATION if u is not None and getattr(u, k)]
        if asked and (self.population is None or self.population.method in (None, "none")):
            raise KeyProblems((("uncertainty", asked[0]),
                               f"[uncertainty] {', '.join(asked)} need a population fit: give "
                               "[population] method (or ctk report --population focei|saem)"))
        return self
