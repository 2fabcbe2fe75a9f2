"""The schema of ``study.toml`` (:mod:`ctkinetics.schema`): types, ranges and what is expected.

Imported by the readers of :mod:`ctkinetics.data.study` and :mod:`ctkinetics.data.protocol`
when a file is read (it imports pydantic). Defaults are not repeated here: a key left out is
left out of the validated section, and the settings' dataclasses (``Design``, ``Protocol``'s
tables) keep the one default of each.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import ConfigDict, Field, model_validator

from ctkinetics.data.protocol import ANALYTE_KINDS_CHECKED as KINDS_CHECKED
from ctkinetics.data.protocol import MTD_PENDING, OUTCOMES, SHORTFALL_RULES
from ctkinetics.data.study import ANALYTE_KINDS
from ctkinetics.schema import KeyProblems, schema_base, types

Schema = schema_base()
T = types()
Integer, Number, Text, Flag = T.Integer, T.Number, T.Text, T.Flag


def _one_of(values) -> str:
    return f"one of {', '.join(values)}"


PROBABILITY = "a probability in (0, 1)"
Probability = Annotated[Number, Field(gt=0, lt=1, description=PROBABILITY)]
Positive = Annotated[Number, Field(gt=0, description="a positive value")]
Count = Annotated[Integer, Field(ge=1, description="an integer >= 1")]
Grade = Annotated[Number, Field(ge=1, le=5, description="a grade 1-5")]
Days = Annotated[Number, Field(gt=0, description="a positive number of days")]
Outcome = Annotated[Literal[OUTCOMES], Field(description=_one_of(OUTCOMES))]


class StudySection(Schema):
    name: Annotated[Text, Field(min_length=1, pattern=r"\S", description='[study] name = "..."')]
    start_date: Annotated[T.Day, Field(description='a date, e.g. "2026-01-01"')] = None


class DesignSection(Schema):
    """``[design]``: BOIN's design and the CAR-T guards (DOMAIN.md §1, §6)."""

    target_dlt_rate: Probability = None
    dlt_window_days: Positive = None
    stagger_days: Annotated[Number, Field(ge=0, description="zero or a positive number of days")] = None
    cohort_size: Annotated[Integer, Field(ge=1, description="a positive integer")] = None
    max_subjects: Annotated[Integer, Field(ge=1, description="a positive integer")] = None
    phi1: Probability = None
    phi2: Probability = None
    cutoff_eli: Probability = None
    n_earlystop: Annotated[Integer, Field(ge=1, description="a positive number of participants")] = None
    extrasafe: Flag = None
    offset: Annotated[Number, Field(gt=0, lt=0.5, description="a probability below 0.5 (R BOIN's limit)")] = None
    bound_mtd: Flag = None
    mtd_pending: Annotated[Literal[MTD_PENDING], Field(description=_one_of(MTD_PENDING))] = None
    min_completers: Annotated[Integer, Field(ge=0, description="zero (off) or a positive integer")] = None
    min_pending_followup: Annotated[Number, Field(ge=0, description="zero (off) or a positive number of days")] = None


class AnalyteSection(Schema):
    unit: Annotated[Text, Field(min_length=1, description='a unit string, e.g. "copies/ug"')]
    kind: Annotated[Literal[ANALYTE_KINDS], Field(description=_one_of(ANALYTE_KINDS))]
    lloq: Annotated[Number, Field(gt=0, description="a positive number")] = None


class EvaluabilitySection(Schema):
    withdrawn: Outcome = None
    lost_to_followup: Outcome = None
    death: Outcome = None
    no_expansion: Outcome = None
    unrelated_ae: Outcome = None
    no_expansion_needs_confirmation: Flag = None


class SentinelSection(Schema):
    enabled: Flag = None
    hold_on_dlt: Flag = None
    crs_grade: Grade = None
    icans_grade: Grade = None
    within_days: Days = None


class NoExpansionSection(Schema):
    kinds: Annotated[list[Literal[KINDS_CHECKED]], Field(
        min_length=1, description=f"a list of analyte kinds from {', '.join(KINDS_CHECKED)}")] = None
    fold_lloq: Positive = None
    by_day: Days = None


class ExpansionSection(Schema):
    max_per_group: Count = None


class ShortfallSection(Schema):
    min_fraction: Annotated[Number, Field(gt=0, le=1, description="a fraction in (0, 1]")] = None
    rule: Annotated[Literal[SHORTFALL_RULES], Field(description=_one_of(SHORTFALL_RULES))] = None


class EfficacySection(Schema):
    endpoint: Annotated[Text, Field(pattern=r"\S", description="an endpoint name")] = None
    assessment_day: Days = None
    threshold: Annotated[Number, Field(description="a number")] = None
    direction: Annotated[Literal["ge", "le"], Field(description="ge or le")] = None
    phi_e: Probability = None
    phi_t: Probability = None
    utilities: Annotated[list[Number], Field(
        min_length=4, max_length=4,
        description="four numbers [u(E, no DLT), u(neither), u(both), u(DLT, no E)]")] = None
    c_t: Probability = None
    c_e: Probability = None
    n_star: Count = None
    n_explore: Count = None

    @model_validator(mode="after")
    def _consistent(self):
        problems = []
        u = self.utilities
        if u is not None and not (u[0] == max(u) and u[3] == min(u)):
            problems.append(("utilities", "u(efficacy, no DLT) must be the largest and u(DLT, no efficacy) "
                                          f"the smallest, got {list(u)}"))
        if self.endpoint is None:
            problems.append(("endpoint", "the [efficacy] table needs endpoint = \"...\""))
        if problems:
            raise KeyProblems(*problems)
        return self


class ProtocolTables(Schema):
    """The protocol's tables (:mod:`ctkinetics.data.protocol`), the same in a study.toml and
    under a trial spec's ``[protocol]``."""

    evaluability: Optional[EvaluabilitySection] = None
    sentinel: Optional[SentinelSection] = None
    no_expansion: Optional[NoExpansionSection] = None
    expansion: Optional[ExpansionSection] = None
    dose_shortfall: Optional[ShortfallSection] = None
    efficacy: Optional[EfficacySection] = None


Dose = Annotated[Number, Field(gt=0, description="a positive dose in cells")]


class ProtocolTablesOnly(ProtocolTables):
    """The protocol's tables of a document that has others (checked by their own schema)."""

    model_config = ConfigDict(extra="ignore")


class DesignTable(Schema):
    """``[design]`` of a document that has other tables."""

    model_config = ConfigDict(extra="ignore")
    design: Optional[DesignSection] = None


class StudyFile(ProtocolTables):
    """The whole ``study.toml``: an unknown or misspelled table is an error naming it."""

    study: StudySection
    dose_levels: Annotated[dict[str, Dose], Field(min_length=1, description="a [dose_levels] table, e.g. 1 = 3.0e8")]
    design: Optional[DesignSection] = None
    analytes: Annotated[dict[str, AnalyteSection], Field(
        min_length=1, description="at least one [analytes.NAME] table with unit, lloq and kind")]
    formats: Annotated[dict[str, dict], Field(description="[formats.nonmem] / [formats.sdtm] tables")] = None
