"""The protocol's own rules as settings: what ``study.toml`` may say beyond BOIN's ``[design]``.

Each table is optional; a missing table means the protocol's reading (DOMAIN.md §7), a
misspelled table or key is an error naming it. The rules themselves live in
:mod:`ctkinetics.escalation` (one home each); this module only reads, checks and writes the
settings::

    [evaluability]            # what an early end of the DLT window means
    withdrawn = "not_evaluable"        # not_evaluable (replaced) | no_dlt (full weight) | partial (TITE weight)
    lost_to_followup = "not_evaluable"
    death = "not_evaluable"            # a death without DLT (a related death is a DLT)
    no_expansion = "not_evaluable"     # once the committee confirmed it
    unrelated_ae = "no_dlt"            # the AE was judged unrelated: not a DLT
    no_expansion_needs_confirmation = true

    [sentinel]                # the safety half of the stagger gate
    enabled = true            # false: the stagger is a time gate only
    hold_on_dlt = true
    crs_grade = 3             # CRS of this grade or higher in the sentinel holds the gate
    icans_grade = 2
    within_days = 14          # events with onset up to this day after the sentinel's infusion
                              # (default: the stagger period)

    [no_expansion]            # the kinetic criterion shown for the committee to confirm
    kinds = ["flow", "qpcr"]  # analyte kinds checked
    fold_lloq = 1.0           # "no obvious expansion": no sample above fold_lloq x LLOQ ...
    by_day = 14.0             # ... from infusion to this day

    [expansion]
    max_per_group = 9

    [dose_shortfall]          # a product below its level's dose
    min_fraction = 0.8        # below this fraction of the planned level's dose the rule applies
    rule = "level_received"   # level_received | not_evaluable | planned_level

    [efficacy]                # optional efficacy.csv and BOIN12 (Lin et al. 2020)
    endpoint = "DORIS"        # the endpoint whose response is the efficacy outcome
    assessment_day = 84       # outcome known at this day after infusion (or a response before)
    threshold = 4.0           # responder when value >= threshold (when the response column is empty)
    direction = "ge"          # ge | le
    phi_e = 0.25              # lowest acceptable response rate
    phi_t = 0.35              # toxicity limit of BOIN12 (default: [design] target_dlt_rate)
    utilities = [100, 40, 60, 0]   # u(efficacy, no DLT), u(neither), u(both), u(DLT, no efficacy)
    c_t = 0.95                # inadmissible when Pr(p_T > phi_t) > c_t
    c_e = 0.90                # inadmissible when Pr(p_E < phi_e) > c_e
    n_star = 6                # BOIN12's N*: in the stay zone with n >= N*, choose d-1 or d
    n_explore = 9             # dose exploration: escalate to an untried dose once n >= this
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field



@dataclass(frozen=True)
class Design:
    """The dose-escalation design (DOMAIN.md §1, §6): ``[design]`` of ``study.toml``.

    The first five are required for a study with safety data (no silent default for them:
    :data:`REQUIRED_DESIGN_KEYS`); the others are options with R BOIN's defaults
    (``n_earlystop`` None = off). ``given`` remembers the keys written in the file.
    """

    target_dlt_rate: float = 0.30
    dlt_window_days: float = 28.0
    stagger_days: float = 14.0
    cohort_size: int = 3
    max_subjects: int = 12
    phi1: float | None = None  # default 0.6 * target
    phi2: float | None = None  # default 1.4 * target
    cutoff_eli: float = 0.95
    n_earlystop: int | None = None
    extrasafe: bool = False
    offset: float = 0.05
    bound_mtd: bool = False
    mtd_pending: str = "exclude"  # exclude | no_dlt: "the MTD now" and pending participants
    min_completers: int = 0
    min_pending_followup: float = 0.0
    given: frozenset = field(default=frozenset(), compare=False)


#: ``[design]`` keys a study with safety data must give (checked when safety.csv is read).
REQUIRED_DESIGN_KEYS = ("target_dlt_rate", "dlt_window_days", "stagger_days", "cohort_size", "max_subjects")
MTD_PENDING = ("exclude", "no_dlt")


def read_design(doc, file: str, pc) -> Design:
    """``[design]`` of a parsed ``study.toml`` (a mapping or a :class:`~ctkinetics.schema.
    TomlDocument`), checked by its schema (``study_schema.DesignSection``); problems go to
    ``pc`` and the keys without problems are kept."""
    from ctkinetics.data.study_schema import DesignTable
    from ctkinetics.schema import Problems, as_document, validate

    document = as_document(doc, file)
    validate(document, DesignTable, Problems(document, sink=pc))
    return design_from(document.data)


def design_from(doc: dict) -> Design:
    """The :class:`Design` of a parsed document's ``[design]`` (its keys with problems left
    out: :func:`ctkinetics.schema.salvage`); ``given`` = the keys written in the file."""
    from ctkinetics.data.study_schema import DesignSection
    from ctkinetics.schema import salvage

    raw = doc.get("design")
    section = salvage(DesignSection, raw) if isinstance(raw, dict) else None
    values = _plain(section.model_dump(exclude_unset=True)) if section is not None else {}
    return Design(**values, given=frozenset(values))


def _plain(values: dict) -> dict:
    """A validated section's values as the settings' dataclasses hold them (arrays as tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def design_toml_lines(d: Design) -> list[str]:
    """``[design]`` lines: the required keys always, an option when given or off its default."""
    lines = [f"target_dlt_rate = {_toml_value(d.target_dlt_rate)}",
             f"dlt_window_days = {_toml_value(float(d.dlt_window_days))}",
             f"stagger_days = {_toml_value(float(d.stagger_days))}", f"cohort_size = {d.cohort_size}",
             f"max_subjects = {d.max_subjects}"]
    default = Design()
    for f in dataclasses.fields(Design):
        if f.name in REQUIRED_DESIGN_KEYS or f.name == "given":
            continue
        v = getattr(d, f.name)
        if v is None or (v == getattr(default, f.name) and f.name not in d.given):
            continue
        lines.append(f"{f.name} = {_toml_value(v)}")
    return lines


#: Why a DLT window ended (``safety.csv`` ``window_end_reason``); "" = open or not recorded.
WINDOW_END_REASONS = ("", "completed", "dlt", "withdrawn", "lost_to_followup", "no_expansion",
                      "unrelated_ae", "death")
#: The reasons that may end a window early; each has a rule in :class:`Evaluability`.
EARLY_END_REASONS = ("withdrawn", "lost_to_followup", "no_expansion", "unrelated_ae", "death")
#: What an early end means for the DLT decisions.
OUTCOMES = ("not_evaluable", "no_dlt", "partial")
SHORTFALL_RULES = ("level_received", "not_evaluable", "planned_level")
ANALYTE_KINDS_CHECKED = ("qpcr", "flow", "conc")


@dataclass(frozen=True)
class Evaluability:
    """Rule per early-end reason: ``not_evaluable`` (left out, replaced), ``no_dlt`` (counted
    as a complete window without DLT) or ``partial`` (counted with its follow-up, TITE weight)."""

    withdrawn: str = "not_evaluable"
    lost_to_followup: str = "not_evaluable"
    death: str = "not_evaluable"
    no_expansion: str = "not_evaluable"
    unrelated_ae: str = "no_dlt"
    no_expansion_needs_confirmation: bool = True

    def rule_for(self, reason: str) -> str:
        return getattr(self, reason)

    def describe(self) -> str:
        return "; ".join(f"{r} -> {self.rule_for(r).replace('_', ' ')}" for r in EARLY_END_REASONS)


@dataclass(frozen=True)
class SentinelGate:
    """A significant safety risk in a dose group's first participant holds the stagger gate
    (``enabled = false``: the gate is a time gate only)."""

    enabled: bool = True
    hold_on_dlt: bool = True
    crs_grade: float = 3.0
    icans_grade: float = 2.0
    within_days: float | None = None  # None: the stagger period

    def describe(self) -> str:
        if not self.enabled:
            return "no safety gate (time gate only)"
        parts = (["any DLT"] if self.hold_on_dlt else []) + [f"CRS grade >= {self.crs_grade:g}",
                                                              f"ICANS grade >= {self.icans_grade:g}"]
        return " or ".join(parts)


@dataclass(frozen=True)
class NoExpansionCriterion:
    """'No obvious CAR-T expansion': no sample of the checked kinds above ``fold_lloq`` × LLOQ
    between infusion and ``by_day``."""

    kinds: tuple = ("flow", "qpcr")
    fold_lloq: float = 1.0
    by_day: float = 14.0

    def describe(self) -> str:
        return (f"no {' or '.join(self.kinds)} sample above {self.fold_lloq:g} x LLOQ from infusion "
                f"to day {self.by_day:g}")


@dataclass(frozen=True)
class ExpansionGroups:
    max_per_group: int = 9


@dataclass(frozen=True)
class DoseShortfall:
    """Below ``min_fraction`` of the planned level's dose, ``rule`` assigns the participant."""

    min_fraction: float = 0.8
    rule: str = "level_received"

    def describe(self) -> str:
        what = {"level_received": "counted at the highest level whose dose was reached",
                "not_evaluable": "not evaluable for DLT decisions",
                "planned_level": "counted at the planned level anyway"}[self.rule]
        return f"dose below {100 * self.min_fraction:g} % of the planned level: {what}"


@dataclass(frozen=True)
class EfficacySettings:
    """The efficacy outcome and BOIN12 settings (module doc). ``endpoint`` None: no efficacy."""

    endpoint: str | None = None
    assessment_day: float | None = None
    threshold: float | None = None
    direction: str = "ge"
    phi_e: float = 0.25
    phi_t: float | None = None
    utilities: tuple = (100.0, 40.0, 60.0, 0.0)
    c_t: float = 0.95
    c_e: float = 0.90
    n_star: int = 6
    n_explore: int = 9


@dataclass(frozen=True)
class Protocol:
    """All of the protocol's settings (defaults: the protocol's reading)."""

    evaluability: Evaluability = field(default_factory=Evaluability)
    sentinel: SentinelGate = field(default_factory=SentinelGate)
    no_expansion: NoExpansionCriterion = field(default_factory=NoExpansionCriterion)
    expansion: ExpansionGroups = field(default_factory=ExpansionGroups)
    shortfall: DoseShortfall = field(default_factory=DoseShortfall)
    efficacy: EfficacySettings = field(default_factory=EfficacySettings)
    given: frozenset = field(default=frozenset(), compare=False)  # tables given in study.toml

    def to_toml(self) -> list[str]:
        """``study.toml`` lines of the tables given (so that a written study reads back equal)."""
        lines = []
        for table in sorted(self.given):
            obj = getattr(self, _ATTR[table])
            lines += ["", f"[{table}]"]
            for f in dataclasses.fields(obj):
                v = getattr(obj, f.name)
                if v is not None:
                    lines.append(f"{f.name} = {_toml_value(v)}")
        return lines


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    return str(v)


_ATTR = {"evaluability": "evaluability", "sentinel": "sentinel", "no_expansion": "no_expansion",
         "expansion": "expansion", "dose_shortfall": "shortfall", "efficacy": "efficacy"}
#: The protocol's tables (their keys, types and ranges: ``study_schema.ProtocolTables``).
PROTOCOL_TABLES = tuple(_ATTR)


def read_protocol(doc, file: str, pc) -> Protocol:
    """The protocol settings of a parsed ``study.toml`` (or of a trial spec's ``[protocol]``
    tables), checked by their schema; problems go to ``pc``, a table with problems keeps the
    keys that have none."""
    from ctkinetics.data.study_schema import ProtocolTablesOnly
    from ctkinetics.schema import Problems, as_document, validate

    document = as_document(doc, file)
    validate(document, ProtocolTablesOnly, Problems(document, sink=pc))
    return protocol_from(document.data)


def protocol_from(doc: dict) -> Protocol:
    """The :class:`Protocol` of a parsed document (keys with problems left out)."""
    from ctkinetics.data.study_schema import ProtocolTables
    from ctkinetics.schema import salvage

    given = [t for t in PROTOCOL_TABLES if doc.get(t) is not None]
    tables = salvage(ProtocolTables, {t: doc[t] for t in given}) or ProtocolTables()
    parts = {}
    for table in given:
        section = getattr(tables, table)
        cls = type(getattr(Protocol(), _ATTR[table]))
        parts[_ATTR[table]] = cls(**_plain(section.model_dump(exclude_unset=True))) if section else cls()
    return Protocol(**parts, given=frozenset(given))
