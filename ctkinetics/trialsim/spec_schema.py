"""The schema of a trial-simulation spec (``ctk trial-sim SPEC.toml``; :mod:`ctkinetics.schema`).

Imported when a spec is read (it imports pydantic). The one home of each key's type, range and
default; the checks that need the model file or the protocol (a parameter name, the expansion
cap, BOIN's own ranges) are made by :func:`ctkinetics.trialsim.spec.parse_spec` and reported
with the same file, line and key. ``[protocol.*]`` tables are checked by the protocol's schema
(:mod:`ctkinetics.data.study_schema`), the same tables as ``study.toml``.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, create_model, model_validator

from ctkinetics.data.protocol import Design
from ctkinetics.schema import KeyProblems, schema_base, types
from ctkinetics.trialsim.conduct import DROPOUT_REASONS
from ctkinetics.trialsim.distributions import DELAYS
from ctkinetics.trialsim.guards import GUARDS, METHODS
from ctkinetics.trialsim.kinetics import METRICS
from ctkinetics.trialsim.toxicity import LINKS, ONSETS

#: study.toml's [design] defaults (one home), also those of a trial spec's [design]
_DESIGN = Design()

Schema = schema_base()
T = types()
Integer, Number, Flag = T.Integer, T.Number, T.Flag


def _one_of(values) -> str:
    return "one of " + ", ".join(values)


def _choice(values, description=None):
    values = tuple(values)
    return Annotated[Literal[values], Field(description=description or _one_of(values))]


Label = Annotated[str, Field(min_length=1, pattern=r"\S", description="a non-empty string")]
NonNegative = Annotated[Number, Field(ge=0, description="a number >= 0")]
Positive = Annotated[Number, Field(gt=0, description="a number > 0")]
Probability = Annotated[Number, Field(gt=0, lt=1, description="a probability in (0, 1)")]
Fraction = Annotated[Number, Field(ge=0, le=1, description="a probability in [0, 1]")]
Count = Annotated[Integer, Field(ge=1, description="an integer >= 1")]
OPEN_METRICS = tuple(m for m in METRICS if m != "tmax")
Metric = _choice(OPEN_METRICS)
PerLevel = Annotated[list[Annotated[Number, Field(gt=0, description="a number > 0")]],
                     Field(min_length=1, description="an array of numbers > 0, one per dose level")]
Rates = Annotated[list[Fraction], Field(min_length=1, description="an array of probabilities in [0, 1], "
                                                                  "one per dose level")]


class AccrualTable(Schema):
    per_month: Positive = 2.0


_DELAY_KEYS = tuple(dict.fromkeys(k for d in DELAYS.values() for k in d.keys))


def _delay_keys(self):
    """Every setting of the chosen distribution given, no other one (uniform: low <= high)."""
    own = DELAYS[self.distribution].keys
    bad = [(k, f"missing: expected a number >= 0 (distribution = {self.distribution!r} needs "
               f"{', '.join(own)})") for k in own if getattr(self, k) is None]
    bad += [(k, f"is not a setting of distribution = {self.distribution!r} (its settings: {', '.join(own)})")
            for k in _DELAY_KEYS if k not in own and getattr(self, k) is not None]
    if not bad and self.distribution == "uniform" and self.low_days > self.high_days:
        bad.append(("low_days", "low_days must not exceed high_days"))
    if bad:
        raise KeyProblems(*bad)
    return self


#: ``[design.manufacturing]``: a delay distribution of :data:`DELAYS` and its settings (days).
ManufacturingTable = create_model(
    "ManufacturingTable", __base__=Schema,
    __validators__={"_keys": model_validator(mode="after")(_delay_keys)},
    distribution=(_choice(DELAYS), "fixed"), **{k: (NonNegative, None) for k in _DELAY_KEYS})


class ExpansionTable(Schema):
    levels: Annotated[list[Label], Field(description="an array of 'mtd' or dose level labels")] = []
    size: Annotated[Integer, Field(ge=0, description="an integer >= 0 (participants per group)")] = None


class DropoutTable(Schema):
    probability: Fraction = 0.0
    reason: _choice(DROPOUT_REASONS) = "withdrawn"


class ShortfallTable(Schema):
    probability: Fraction = 0.0
    low: Annotated[Number, Field(gt=0, le=1, description="a fraction of the dose in (0, 1]")] = 0.5
    high: Annotated[Number, Field(gt=0, le=1, description="a fraction of the dose in (0, 1]")] = 0.8

    @model_validator(mode="after")
    def _ordered(self):
        if self.low > self.high:
            raise KeyProblems(("low", f"low ({self.low:g}) must not exceed high ({self.high:g})"))
        return self


class NoExpansionTable(Schema):
    lloq: Annotated[Positive, Field(description="the assay's LLOQ, a number > 0")]


class CommitteeTable(Schema):
    sentinel_review_days: NonNegative = 7.0
    confirm_days: NonNegative = 7.0


class DesignTable(Schema):
    """``[design]``: dose levels, BOIN's design, accrual, manufacturing, expansion, conduct."""

    dose_levels: Annotated[list[Label], Field(min_length=1, description="an array of dose level labels")]
    doses: PerLevel
    target: Probability = _DESIGN.target_dlt_rate
    phi1: Probability = None
    phi2: Probability = None
    cohort_size: Count = _DESIGN.cohort_size
    max_participants: Count = _DESIGN.max_subjects
    dlt_window_days: Positive = _DESIGN.dlt_window_days
    stagger_days: NonNegative = _DESIGN.stagger_days
    tite: Flag = True
    cutoff_eli: Probability = _DESIGN.cutoff_eli
    start_level: Annotated[Integer, Field(ge=1, description="a dose level number >= 1")] = 1
    n_earlystop: Count = _DESIGN.n_earlystop
    extrasafe: Flag = _DESIGN.extrasafe
    offset: Annotated[Number, Field(gt=0, lt=0.5, description="a number in (0, 0.5)")] = _DESIGN.offset
    bound_mtd: Flag = _DESIGN.bound_mtd
    max_replacements: Annotated[Integer, Field(ge=0, description="an integer >= 0")] = None
    accrual: Optional[AccrualTable] = None
    manufacturing: Optional[ManufacturingTable] = None
    expansion: Optional[ExpansionTable] = None
    dropout: Optional[DropoutTable] = None
    shortfall: Optional[ShortfallTable] = None
    no_expansion: Optional[NoExpansionTable] = None
    committee: Optional[CommitteeTable] = None



class KineticsTable(Schema):
    enabled: Flag = True
    model: Annotated[Label, Field(description="a library model name or a model file (.toml)")] = "stein2019"
    observable: Label = None
    until_day: Annotated[Number, Field(ge=28, description="a day >= 28")] = 28.0
    rtol: Annotated[Number, Field(ge=1e-12, le=1e-2, description="a relative tolerance in [1e-12, 0.01]")] = None
    atol: Annotated[Number, Field(gt=0, le=1, description="an absolute tolerance in (0, 1]")] = None
    grid_step_days: Positive = None  # deprecated (a warning when given)
    typical: dict[str, PerLevel] = {}
    omega2: Union[Literal["model"], dict[str, NonNegative]] = Field(
        {}, description="a table parameter = omega^2 (>= 0), or \"model\" (the model file's)")


def _link_keys(self, fixed_keys=("rates",), exposure_keys=("metric", "reference", "p_at_reference", "slope")):
    """A fixed link takes ``rates``; an exposure link its metric, reference, p and slope."""
    own, other = (fixed_keys, exposure_keys) if self.link == "fixed" else (exposure_keys, fixed_keys)
    bad = [(k, f"is not a setting of link = {self.link!r} (its settings: {', '.join(own)})")
           for k in other if k in self.model_fields_set]
    required = "rates" if self.link == "fixed" else "reference"
    if getattr(self, required) is None:
        bad.append((required, f"missing: link = {self.link!r} needs {required}"))
    if bad:
        raise KeyProblems(*bad)
    return self


class OutcomeTable(Schema):
    """The keys an outcome model's link shares ([toxicity], [efficacy])."""

    link: _choice(LINKS) = "fixed"
    rates: Rates = None
    metric: Metric = None
    reference: Positive = None
    p_at_reference: Probability = None
    slope: Number = 1.0

    _keys = model_validator(mode="after")(_link_keys)


class ToxicityTable(OutcomeTable):
    onset: _choice(ONSETS) = "uniform"
    onset_lag_days: Number = 0.0


class EfficacyTable(OutcomeTable):
    pass


_GUARD_KEYS = {}
for _g in GUARDS.values():
    for _k, _ in _g.defaults:
        _GUARD_KEYS[_k] = Metric if _k == "metric" else Count if _k == "n" else NonNegative


def _guard_keys(self):
    """The settings of the guard's kind, no other; a setting without default required."""
    own = dict(GUARDS[self.kind].defaults)
    bad = [(k, f"is not a setting of kind = {self.kind!r} (its settings: {', '.join(own) or 'none'})")
           for k in _GUARD_KEYS if k not in own and getattr(self, k) is not None]
    bad += [(k, f"missing: kind = {self.kind!r} needs {k}") for k, d in own.items()
            if d is None and getattr(self, k) is None]
    if bad:
        raise KeyProblems(*bad)
    return self


#: ``{kind = ..., <its settings>}`` of a rule's ``guards`` (registry :data:`GUARDS`).
GuardTable = create_model(
    "GuardTable", __base__=Schema, __validators__={"_keys": model_validator(mode="after")(_guard_keys)},
    kind=(_choice(GUARDS), ...), **{k: (t, None) for k, t in _GUARD_KEYS.items()})


class RuleTable(Schema):
    """``[[rules]]``: a decision rule and its overrides of the design."""

    name: Label
    method: _choice(METHODS) = "boin"
    tite: Flag = None
    stagger_days: NonNegative = None
    cohort_size: Count = None
    guards: Annotated[list[GuardTable], Field(description='an array of inline tables, e.g. '
                                                          '[{kind = "min_completers", n = 2}]')] = []

    @model_validator(mode="after")
    def _guards(self):
        bad, seen = [], set()
        for i, g in enumerate(self.guards):
            option = GUARDS[g.kind].design_option
            if option is not None and option[0] in seen:
                bad.append((("guards", i, "kind"), f"{g.kind} is given twice"))
            seen.add(option[0] if option else None)
        if self.method == "boin12" and self.guards:
            bad.append(("guards", "guards are BOIN options; a boin12 rule takes none"))
        if bad:
            raise KeyProblems(*bad)
        return self


class SpecTables(Schema):
    """A whole trial spec's tables (``[design]`` and ``[toxicity]`` required), without the
    checks between tables (:class:`SpecFile`)."""

    name: Label = "trial simulation"
    protocol: Annotated[dict, Field(description="the protocol's tables ([protocol.evaluability], ...)")] = None
    design: DesignTable
    kinetics: Optional[KineticsTable] = None
    toxicity: ToxicityTable
    efficacy: Optional[EfficacyTable] = None
    rules: list[RuleTable] = []


class SpecFile(SpecTables):
    """A whole trial spec, with the checks between its tables (:func:`between_tables`)."""

    @model_validator(mode="after")
    def _consistent(self):
        bad = between_tables(self)
        if bad:
            raise KeyProblems(*bad)
        return self


def between_tables(spec: SpecTables) -> list:
    """``(key path, message)`` of every check between tables: one value per dose level, rule
    names unique, what needs kinetics or an efficacy model. ``parse_spec`` also runs it on
    the tables without problems (:func:`ctkinetics.schema.salvage`) when some table has one,
    so that these are reported with the rest."""
    n = len(spec.design.dose_levels)
    bad = _design_problems(spec.design)
    bad += [(("kinetics", "typical", k), f"expected one value per dose level ({n}), got {len(v)}")
           for k, v in (spec.kinetics.typical.items() if spec.kinetics else ()) if len(v) != n]
    for table in ("toxicity", "efficacy"):
        rates = getattr(getattr(spec, table), "rates", None) if getattr(spec, table) else None
        if rates is not None and len(rates) != n:
            bad.append(((table, "rates"), f"expected one value per dose level ({n}), got {len(rates)}"))
    names = [r.name for r in spec.rules]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        again = next(i for i, x in enumerate(names) if x in dup and names.index(x) != i)
        bad.append((("rules", again, "name"), f"rule names must be unique; repeated: {', '.join(dup)}"))
    bad += [(("rules", i, "method"), "boin12 needs an efficacy outcome model: add an [efficacy] table")
            for i, r in enumerate(spec.rules) if r.method == "boin12" and spec.efficacy is None]
    return bad + _needs_kinetics(spec)


def _design_problems(design: DesignTable) -> list:
    """Dose levels unique, doses one per level and increasing, start and expansion levels known."""
    levels, doses, bad = design.dose_levels, design.doses, []
    if len(set(levels)) != len(levels):
        bad.append((("design", "dose_levels"), "dose level labels must be unique"))
    if len(doses) != len(levels):
        bad.append((("design", "doses"), f"expected one dose per dose level ({len(levels)}), got {len(doses)}"))
    elif doses != sorted(set(doses)):
        bad.append((("design", "doses"), "doses must increase strictly, lowest dose first"))
    if design.start_level > len(levels):
        bad.append((("design", "start_level"), f"start_level is {design.start_level} but there are "
                                               f"{len(levels)} dose levels"))
    for lab in design.expansion.levels if design.expansion else ():
        if lab != "mtd" and lab not in levels:
            bad.append((("design", "expansion", "levels"), f"entry {lab!r} is neither 'mtd' nor a dose level "
                                                           f"({', '.join(levels)})"))
    return bad


def _needs_kinetics(spec: SpecTables) -> list:
    if spec.kinetics is not None and spec.kinetics.enabled:
        return []
    add = "needs kinetics: add an enabled [kinetics] table"
    bad = [(("design", "no_expansion"), f"no_expansion {add}")] if spec.design.no_expansion else []
    tox = spec.toxicity
    if LINKS[tox.link].needs_kinetics or ONSETS[tox.onset].needs_kinetics:
        key = "link" if LINKS[tox.link].needs_kinetics else "onset"
        bad.append((("toxicity", key), f"{key} = {getattr(tox, key)!r} {add} or use link = 'fixed' "
                                       "with onset = 'uniform'"))
    if spec.efficacy is not None and spec.efficacy.link != "fixed":
        bad.append((("efficacy", "link"), f"link = {spec.efficacy.link!r} {add} or use 'fixed'"))
    bad += [(("rules", i, "guards", j, "kind"), f"min_median_expansion {add}")
            for i, r in enumerate(spec.rules) for j, g in enumerate(r.guards) if g.kind == "min_median_expansion"]
    return bad
