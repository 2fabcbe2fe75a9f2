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
import math
from dataclasses import dataclass, field



def suggest(name: str, known) -> str:
    """' (did you mean 'design'?)' when ``name`` is close to one of ``known``, else ''."""
    import difflib

    close = difflib.get_close_matches(str(name).lower(), [str(k).lower() for k in known], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""

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
_DESIGN_TYPES = {
    "target_dlt_rate": float, "dlt_window_days": float, "stagger_days": float,
    "cohort_size": int, "max_subjects": int, "phi1": float, "phi2": float,
    "cutoff_eli": float, "n_earlystop": int, "extrasafe": bool, "offset": float, "bound_mtd": bool,
    "mtd_pending": str, "min_completers": int, "min_pending_followup": float,
}


def read_design(doc: dict, file: str, pc) -> Design:
    """``[design]`` of a parsed ``study.toml``; every key checked (problems go to ``pc``)."""
    design_doc = doc.get("design", {})
    kw = {}
    if not isinstance(design_doc, dict):
        pc.add(file, None, "design", "expected a [design] table")
        design_doc = {}
    for k, v in design_doc.items():
        typ = _DESIGN_TYPES.get(k)
        if typ is None:
            pc.add(file, None, f"design.{k}", f"unknown design setting{suggest(k, _DESIGN_TYPES)} "
                                              f"(known: {', '.join(_DESIGN_TYPES)})")
        elif typ is bool:
            if isinstance(v, bool):
                kw[k] = v
            else:
                pc.add(file, None, f"design.{k}", f"expected true or false, got {v!r}")
        elif typ is str:
            if v in MTD_PENDING:
                kw[k] = v
            else:
                pc.add(file, None, f"design.{k}", f"expected one of {', '.join(MTD_PENDING)}, got {v!r}")
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or (typ is int and int(v) != v):
            pc.add(file, None, f"design.{k}", f"expected {'an integer' if typ is int else 'a number'}, got {v!r}")
        else:
            kw[k] = typ(v)
    _check_design_ranges(kw, file, pc)
    return Design(**kw, given=frozenset(kw))


def _check_design_ranges(kw: dict, f: str, pc) -> None:
    t = kw.get("target_dlt_rate", 0.3)
    if not 0 < t < 1:
        pc.add(f, None, "design.target_dlt_rate", f"expected a probability in (0, 1), got {t}")
    for k in ("dlt_window_days", "cohort_size", "max_subjects"):
        if k in kw and kw[k] <= 0:
            pc.add(f, None, f"design.{k}", f"expected a positive value, got {kw[k]}")
    if kw.get("stagger_days", 0) < 0:
        pc.add(f, None, "design.stagger_days", "expected zero or a positive number of days")
    for k in ("cutoff_eli", "offset", "phi1", "phi2"):
        if k in kw and not 0 < kw[k] < 1:
            pc.add(f, None, f"design.{k}", f"expected a probability in (0, 1), got {kw[k]}")
    if "offset" in kw and not kw["offset"] < 0.5:
        pc.add(f, None, "design.offset", f"expected an offset below 0.5 (R BOIN's limit), got {kw['offset']}")
    if "n_earlystop" in kw and kw["n_earlystop"] < 1:
        pc.add(f, None, "design.n_earlystop", f"expected a positive number of participants, got {kw['n_earlystop']}")
    for k in ("min_completers", "min_pending_followup"):
        if k in kw and kw[k] < 0:
            pc.add(f, None, f"design.{k}", f"expected zero (off) or a positive value, got {kw[k]}")


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


def check_top_level_tables(doc: dict, known, file: str, pc) -> None:
    """A misspelled table (``[desing]``) is an error naming it, never silently ignored."""
    for table in doc:
        if table not in known:
            pc.add(file, None, table, f"unknown table [{table}]{suggest(table, known)}: its settings "
                                      f"would be ignored (known tables: {', '.join(known)})")


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


# table name -> (Protocol attribute, {key: (type check, converter, expected text)})
def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_prob(v):
    return _is_num(v) and 0 < v < 1


def _is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


_OUTCOME = (lambda v: v in OUTCOMES, str, f"one of {', '.join(OUTCOMES)}")
_BOOL = (lambda v: isinstance(v, bool), bool, "true or false")
_ATTR = {"evaluability": "evaluability", "sentinel": "sentinel", "no_expansion": "no_expansion",
         "expansion": "expansion", "dose_shortfall": "shortfall", "efficacy": "efficacy"}
_SCHEMA = {
    "evaluability": {**{r: _OUTCOME for r in EARLY_END_REASONS}, "no_expansion_needs_confirmation": _BOOL},
    "sentinel": {
        "enabled": _BOOL,
        "hold_on_dlt": _BOOL,
        "crs_grade": (lambda v: _is_num(v) and 1 <= v <= 5, float, "a grade 1-5"),
        "icans_grade": (lambda v: _is_num(v) and 1 <= v <= 5, float, "a grade 1-5"),
        "within_days": (lambda v: _is_num(v) and v > 0, float, "a positive number of days"),
    },
    "no_expansion": {
        "kinds": (lambda v: isinstance(v, list) and v and all(k in ANALYTE_KINDS_CHECKED for k in v),
                  tuple, f"a list of analyte kinds from {', '.join(ANALYTE_KINDS_CHECKED)}"),
        "fold_lloq": (lambda v: _is_num(v) and v > 0, float, "a positive number"),
        "by_day": (lambda v: _is_num(v) and v > 0, float, "a positive number of days"),
    },
    "expansion": {"max_per_group": (_is_count, int, "an integer >= 1")},
    "dose_shortfall": {
        "min_fraction": (lambda v: _is_num(v) and 0 < v <= 1, float, "a fraction in (0, 1]"),
        "rule": (lambda v: v in SHORTFALL_RULES, str, f"one of {', '.join(SHORTFALL_RULES)}"),
    },
    "efficacy": {
        "endpoint": (lambda v: isinstance(v, str) and v.strip() != "", str, "an endpoint name"),
        "assessment_day": (lambda v: _is_num(v) and v > 0, float, "a positive number of days"),
        "threshold": (_is_num, float, "a number"),
        "direction": (lambda v: v in ("ge", "le"), str, "ge or le"),
        "phi_e": (_is_prob, float, "a probability in (0, 1)"),
        "phi_t": (_is_prob, float, "a probability in (0, 1)"),
        "utilities": (lambda v: isinstance(v, list) and len(v) == 4 and all(_is_num(x) for x in v),
                      lambda v: tuple(float(x) for x in v),
                      "four numbers [u(E, no DLT), u(neither), u(both), u(DLT, no E)]"),
        "c_t": (_is_prob, float, "a probability in (0, 1)"),
        "c_e": (_is_prob, float, "a probability in (0, 1)"),
        "n_star": (_is_count, int, "an integer >= 1"),
        "n_explore": (_is_count, int, "an integer >= 1"),
    },
}
PROTOCOL_TABLES = tuple(_SCHEMA)


def read_protocol(doc: dict, file: str, pc) -> Protocol:
    """The protocol settings of a parsed ``study.toml`` (problems go to ``pc``)."""
    parts, given = {}, set()
    for table, schema in _SCHEMA.items():
        entries = doc.get(table)
        if entries is None:
            continue
        given.add(table)
        if not isinstance(entries, dict):
            pc.add(file, None, table, f"expected a [{table}] table")
            continue
        kwargs = {}
        for key, value in entries.items():
            spec = schema.get(key)
            if spec is None:
                pc.add(file, None, f"{table}.{key}",
                       f"unknown setting in [{table}] (known: {', '.join(schema)})")
                continue
            ok, conv, expected = spec
            if not ok(value):
                pc.add(file, None, f"{table}.{key}", f"expected {expected}, got {value!r}")
                continue
            kwargs[key] = conv(value)
        cls = type(getattr(Protocol(), _ATTR[table]))
        parts[_ATTR[table]] = cls(**kwargs)
    eff = parts.get("efficacy")
    if eff is not None:
        u = eff.utilities
        if not (u[0] == max(u) and u[3] == min(u)):
            pc.add(file, None, "efficacy.utilities",
                   f"u(efficacy, no DLT) must be the largest and u(DLT, no efficacy) the smallest, got {list(u)}")
        if eff.endpoint is None:
            pc.add(file, None, "efficacy.endpoint", "the [efficacy] table needs endpoint = \"...\"")
    return Protocol(**parts, given=frozenset(given))
