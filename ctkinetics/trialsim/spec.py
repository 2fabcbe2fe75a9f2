"""The trial-simulation specification: one TOML file, read safely and validated.

Layout (``data/sample/trial_sim_seed.toml`` is a complete example)::

    name = "seed study"
    [design]                 dose_levels (labels), doses (cells), target, cohort_size,
                             max_participants, dlt_window_days, stagger_days, tite,
                             start_level (1-based), phi1, phi2, cutoff_eli, n_earlystop,
                             extrasafe, offset, bound_mtd, max_replacements (optional)
    [design.accrual]         per_month (Poisson arrivals)
    [design.manufacturing]   distribution = fixed|uniform|lognormal|gamma + its settings (days)
    [design.expansion]       levels = ["mtd", "4.5e8", ...], size (participants per group, at
                             most the protocol's [expansion] max_per_group)
    [design.dropout], [design.shortfall], [design.no_expansion], [design.committee]
                             how the trial is conducted (:mod:`ctkinetics.trialsim.conduct`)
    [protocol.evaluability], [protocol.sentinel], [protocol.no_expansion],
    [protocol.expansion], [protocol.dose_shortfall], [protocol.efficacy]
                             the protocol's rules, the same tables as study.toml
                             (:mod:`ctkinetics.data.protocol`, read by its own reader)
    [kinetics]               enabled, model, observable, until_day, rtol, atol (the ODE
                             solver's tolerances; default the model file's) (grid_step_days:
                             deprecated)
    [kinetics.typical]       parameter = [value per dose level]
    [kinetics.omega2]        parameter = ω²  (or omega2 = "model": the model file's ω²)
    [toxicity]               link = fixed|logistic; rates | metric, reference,
                             p_at_reference, slope; onset = uniform|peak, onset_lag_days
    [efficacy]               the efficacy outcome model for BOIN12 rules: link = fixed|logistic;
                             rates | metric, reference, p_at_reference, slope
    [[rules]]                name, method = boin|boin12, guards = [{kind = ..., ...}], and
                             overrides of tite, stagger_days, cohort_size

Every value is type- and range-checked by the spec's schema
(:mod:`ctkinetics.trialsim.spec_schema`, on :mod:`ctkinetics.schema`); every problem of the
file is reported at once in one :class:`~ctkinetics.errors.SettingsError`, each naming the
file, line, dotted key and what was expected. TOML is parsed with :mod:`tomllib` (data only,
never evaluated).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ctkinetics.errors import InputError, SettingsError
from ctkinetics.escalation.boundaries import BoinDesign
from ctkinetics.trialsim.conduct import Conduct, read_conduct
from ctkinetics.trialsim.distributions import DELAYS, Delay
from ctkinetics.trialsim.guards import GUARDS, Guard, RuleSpec
from ctkinetics.trialsim.kinetics import KineticsSpec
from ctkinetics.trialsim.toxicity import EfficacySpec, ToxicitySpec

# A rule may change these design settings (not the DLT window: the DLT onsets are drawn once
# per trial for all rules).
RULE_OVERRIDES = ("tite", "stagger_days", "cohort_size")


@dataclass(frozen=True)
class TrialDesign:
    """Dose levels, the engine's BOIN design (with the protocol's rules), accrual,
    manufacturing, expansion and the conduct of the trial."""

    levels: tuple
    doses: tuple
    boin: BoinDesign
    accrual_per_month: float = 2.0
    manufacturing: Delay = Delay()
    expansion_levels: tuple = ()  # "mtd" or level labels
    expansion_size: int = 0
    conduct: Conduct = Conduct()

    @property
    def protocol(self):
        return self.boin.protocol

    @property
    def n_expansion(self) -> int:
        return len(self.expansion_levels) * self.expansion_size

    @property
    def n_slots(self) -> int:
        """Escalation participants a trial may enrol: the maximum plus the replacements."""
        return self.boin.max_subjects + self.conduct.max_replacements


@dataclass(frozen=True)
class TrialSpec:
    """A complete, validated trial-simulation specification (immutable, picklable).

    ``kinetics`` is None when kinetics are switched off (then the toxicity link must be
    ``fixed`` and CK columns are empty).
    """

    name: str
    design: TrialDesign
    kinetics: KineticsSpec | None
    toxicity: ToxicitySpec
    rules: tuple
    source: str = ""
    efficacy: EfficacySpec | None = None

    @property
    def n_levels(self) -> int:
        return len(self.design.levels)

    def to_dict(self) -> dict:
        """A JSON-ready echo of the spec (for summary.json provenance)."""
        def conv(v):
            if dataclasses.is_dataclass(v):
                return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v) if not f.name.startswith("_")}
            if isinstance(v, tuple):
                return [conv(x) for x in v]
            return v
        return conv(self)


def load_spec(path) -> TrialSpec:
    """Read and validate a trial spec TOML file.

    Raises
    ------
    SettingsError
        Unreadable file, TOML syntax error, or invalid / unknown keys: every problem of the
        file at once, each naming the file, line, dotted key and what was expected.
    """
    from ctkinetics.schema import TomlSyntaxError, read_toml

    p = Path(path)
    try:
        doc = read_toml(p, "trial spec")
    except TomlSyntaxError as exc:
        raise SettingsError.from_problems([exc.problem]) from None
    return parse_spec(doc, str(p), base_dir=p.parent)


def parse_spec(data, file: str = "<spec>", base_dir=None) -> TrialSpec:
    """Validate a parsed TOML document (a dict, or a :class:`~ctkinetics.schema.TomlDocument`
    with the line of each key) into a :class:`TrialSpec`.

    The schema (:class:`~ctkinetics.trialsim.spec_schema.SpecFile`) and the protocol's tables
    are checked first and all their problems reported together; the checks that need their
    values (the model file's parameters, BOIN's ranges, the protocol's caps) follow.
    """
    from ctkinetics.schema import Problems, as_document, salvage, validate
    from ctkinetics.trialsim.spec_schema import SpecFile, SpecTables, between_tables

    doc = as_document(data, file)
    problems = Problems(doc)
    checked = validate(doc, SpecFile, problems)
    tables = checked if checked is not None else salvage(SpecTables, _without(doc.data, problems.problems))
    if checked is None and tables is not None:  # the other checks, on the keys without problems
        for loc, message in between_tables(tables):
            problems.add(loc, message)
    protocol = _protocol(doc, problems)
    if tables is None:
        problems.raise_if_any()
    kinetics = _kinetics(tables.kinetics, base_dir, problems, doc.file)
    design = _design(tables.design, protocol, problems)
    efficacy = _efficacy(tables.efficacy, protocol, problems)
    rules = tuple(_rule(r, ("rules", i), design, efficacy, problems) for i, r in enumerate(tables.rules)
                  if design is not None)
    problems.raise_if_any()
    tox = ToxicitySpec(**_link_terms(checked.toxicity, "cmax", 0.2), onset=checked.toxicity.onset,
                       onset_lag_days=float(checked.toxicity.onset_lag_days))
    if not rules:
        rules = (RuleSpec("tite-boin" if design.boin.tite else "boin", design.boin),)
    return TrialSpec(checked.name, design, kinetics, tox, rules, doc.file, efficacy)


def _without(data: dict, found) -> dict:
    """A copy of ``data`` without the keys named by the problems ``found`` (a check between
    keys names the key at fault, which :func:`ctkinetics.schema.salvage` alone would not
    single out: it leaves out the whole table)."""
    import copy
    import re

    data = copy.deepcopy(data)
    for problem in found:
        parts = [int(p[1:-1]) - 1 if p.startswith("[") else p
                 for p in re.findall(r"\[\d+\]|[^.\[\]]+", problem.column or "")]
        node = data
        for part in parts[:-1]:
            ok = (isinstance(node, dict) and part in node) or (isinstance(node, list) and isinstance(part, int)
                                                               and 0 <= part < len(node))
            node = node[part] if ok else None
        if parts and isinstance(node, dict):
            node.pop(parts[-1], None)
    return data


def _protocol(doc, problems):
    """The ``[protocol]`` tables, checked by the protocol's own schema and reader (the one
    home of their keys, types and ranges); problems are reported at ``protocol.<table>.<key>``."""
    from ctkinetics.data.protocol import PROTOCOL_TABLES, Protocol, protocol_from
    from ctkinetics.data.study_schema import ProtocolTablesOnly
    from ctkinetics.schema import Problems, suggest, validate

    raw = doc.data.get("protocol")
    if not isinstance(raw, dict):
        return Protocol()  # absent, or not a table (reported by the spec's schema)
    tables = {}
    for key, value in raw.items():
        if key in PROTOCOL_TABLES:
            tables[key] = value
        else:
            problems.add(("protocol", key), f"unknown table [protocol.{key}]{suggest(key, PROTOCOL_TABLES)} "
                                            f"(known: {', '.join(PROTOCOL_TABLES)})")
    if isinstance(tables.get("efficacy"), dict) and "endpoint" not in tables["efficacy"]:
        tables["efficacy"] = {**tables["efficacy"], "endpoint": "simulated"}  # the outcome is simulated
    validate(doc, ProtocolTablesOnly, Problems(doc, prefix=("protocol",), sink=problems), data=tables)
    return protocol_from(tables)


def _design(sec, protocol, problems) -> TrialDesign | None:
    """The :class:`TrialDesign` of a validated ``[design]`` (None after a problem)."""
    levels, doses = tuple(sec.dose_levels), tuple(float(d) for d in sec.doses)
    try:
        boin = BoinDesign(
            target=float(sec.target), phi1=_float(sec.phi1), phi2=_float(sec.phi2), cohort_size=sec.cohort_size,
            max_subjects=sec.max_participants, dlt_window_days=float(sec.dlt_window_days),
            stagger_days=float(sec.stagger_days), tite=sec.tite, cutoff_eli=float(sec.cutoff_eli),
            start_level=sec.start_level - 1, n_earlystop=sec.n_earlystop, extrasafe=sec.extrasafe,
            offset=float(sec.offset), bound_mtd=sec.bound_mtd, protocol=protocol)
    except SettingsError as exc:
        problems.add(("design",), f"invalid design: {exc}")
        return None
    per_month = float(sec.accrual.per_month) if sec.accrual is not None else 2.0
    mfg = Delay()
    if sec.manufacturing is not None:
        kind = sec.manufacturing.distribution
        mfg = Delay(kind, tuple((k, float(getattr(sec.manufacturing, k))) for k in DELAYS[kind].keys))
    exp_levels, exp_size = (), 0
    if sec.expansion is not None:
        exp_levels = tuple(sec.expansion.levels)
        cap = protocol.expansion.max_per_group
        exp_size = min(9, cap) if sec.expansion.size is None else sec.expansion.size
        if exp_size > cap:
            problems.add(("design", "expansion", "size"),
                         f"size is {exp_size}, above the protocol's cap of {cap} participants per "
                         "expansion group ([protocol.expansion] max_per_group)")
    conduct = read_conduct(sec, boin.max_subjects)
    return TrialDesign(levels, doses, boin, per_month, mfg, exp_levels, exp_size, conduct)


def _float(v):
    return None if v is None else float(v)


def _kinetics(sec, base_dir, problems, file: str) -> KineticsSpec | None:
    """The :class:`KineticsSpec` of a validated ``[kinetics]`` (None when absent or switched
    off); the model, observable and parameter names are checked against the model file."""
    from ctkinetics.trialsim.kinetics import cached_model

    if sec is None:
        return None
    ref = sec.model
    if ref.endswith(".toml") and base_dir is not None and not Path(ref).is_absolute():
        ref = str((Path(base_dir) / ref).resolve())
    try:
        model = cached_model(ref)
    except InputError as exc:  # unknown name, or a ModelFileError naming its own line
        problems.add(("kinetics", "model"), f"model {sec.model!r} cannot be loaded: {exc}")
        return None
    observable = sec.observable if sec.observable is not None else next(iter(model.observables))
    if observable not in model.observables:
        problems.add(("kinetics", "observable"), f"expected one of {', '.join(sorted(model.observables))}, "
                                                 f"got {observable!r}")
    if sec.grid_step_days is not None:  # deprecated: exposure follows the project's one rule now
        import warnings

        from ctkinetics.errors import CtkWarning

        warnings.warn(f"trial spec {file}: [kinetics] grid_step_days is no longer used (exposure "
                      "follows the project's one rule, ctkinetics.modeling.exposure); remove it",
                      CtkWarning, stacklevel=3)
    known = f"is not a parameter of model {model.name} ({', '.join(model.param_names)})"
    omega2 = {} if sec.omega2 == "model" else sec.omega2
    for table, keys in (("typical", sec.typical), ("omega2", omega2)):
        for key in keys:
            if key not in model.param_names:
                problems.add(("kinetics", table, key), f"{key} {known}")
    typical = tuple((k, tuple(float(x) for x in v)) for k, v in sec.typical.items())
    if sec.omega2 == "model":
        omega = tuple((p.name, float(p.omega2)) for p in model.parameters if p.omega2)
    else:
        omega = tuple((k, float(v)) for k, v in sec.omega2.items())
    if not sec.enabled:
        return None
    return KineticsSpec(ref, observable, typical, omega, float(sec.until_day), _float(sec.rtol), _float(sec.atol))


def _link_terms(sec, metric: str, p_at_reference: float) -> dict:
    """The keys of an outcome model's link, one home for [toxicity] and [efficacy]: ``link``
    (fixed: ``rates`` per dose level; else an exposure ``metric`` (default ``metric``),
    ``reference``, ``p_at_reference`` (default ``p_at_reference``) and ``slope``)."""
    if sec.link == "fixed":
        return {"link": "fixed", "rates": tuple(float(r) for r in sec.rates)}
    return {"link": sec.link, "metric": sec.metric or metric, "reference": float(sec.reference),
            "p_at_reference": float(sec.p_at_reference if sec.p_at_reference is not None else p_at_reference),
            "slope": float(sec.slope)}


def _efficacy(sec, protocol, problems) -> EfficacySpec | None:
    if sec is None:
        return None
    if protocol.efficacy.assessment_day is None:
        problems.add(("efficacy",), "an efficacy outcome model needs the day the response is known: "
                                    "[protocol.efficacy] assessment_day")
        return None
    return EfficacySpec(**_link_terms(sec, "auc0_28", 0.3))


def _rule(sec, loc: tuple, design: TrialDesign, efficacy, problems) -> RuleSpec | None:
    """The :class:`RuleSpec` of a validated ``[[rules]]`` table: overrides, guards (the
    engine's own options set on its design), BOIN12's design."""
    over = {k: getattr(sec, k) for k in RULE_OVERRIDES if getattr(sec, k) is not None}
    over = {k: float(v) if k == "stagger_days" else v for k, v in over.items()}
    guards, engine_options = [], {}
    for j, g in enumerate(sec.guards):
        settings = tuple((k, _guard_value(k, getattr(g, k), d)) for k, d in GUARDS[g.kind].defaults)
        option = GUARDS[g.kind].design_option
        if option is None:
            guards.append(Guard(g.kind, settings))
            continue
        engine_options[option[0]] = dict(settings)[option[1]]
        try:
            dataclasses.replace(design.boin, **{option[0]: engine_options[option[0]]})
        except SettingsError as exc:
            problems.add(loc + ("guards", j, option[1]), f"{option[1]} is invalid: {exc}")
            return None
    try:
        boin = dataclasses.replace(design.boin, **over, **engine_options) if over or engine_options else design.boin
    except SettingsError as exc:
        problems.add(loc, f"invalid design override: {exc}")
        return None
    boin12 = None
    if sec.method == "boin12" and efficacy is not None:
        from ctkinetics.escalation.boin12 import Boin12Design

        try:
            boin12 = Boin12Design.from_settings(design.protocol.efficacy, boin.target, boin.cohort_size)
        except SettingsError as exc:
            problems.add(loc, f"invalid BOIN12 settings ([protocol.efficacy]): {exc}")
            return None
    return RuleSpec(sec.name, boin, tuple(guards), sec.method, boin12)


def _guard_value(key: str, value, default):
    """A guard setting as the engine takes it (metric: text, n: integer, else a number)."""
    value = default if value is None else value
    return value if key in ("metric", "n") else float(value)
