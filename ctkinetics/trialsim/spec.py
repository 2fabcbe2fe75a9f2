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

Every value is type- and range-checked; a wrong or unknown key raises
:class:`~ctkinetics.errors.SettingsError` naming the table and key. TOML is parsed with
:mod:`tomllib` (data only, never evaluated).
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ctkinetics.errors import InputError, SettingsError
from ctkinetics.escalation.boundaries import BoinDesign
from ctkinetics.trialsim.distributions import DELAYS, Delay
from ctkinetics.trialsim.guards import GUARDS, METHODS, Guard, RuleSpec
from ctkinetics.trialsim.kinetics import METRICS, KineticsSpec
from ctkinetics.trialsim.settings import _MISSING, Section
from ctkinetics.trialsim.conduct import Conduct, read_conduct
from ctkinetics.trialsim.toxicity import LINKS, ONSETS, EfficacySpec, ToxicitySpec

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
        Unreadable file, TOML syntax error, or an invalid / unknown key (named).
    """
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read trial spec {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"trial spec {p} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"trial spec {p}: invalid TOML: {exc}") from None
    return parse_spec(data, str(p), base_dir=p.parent)


def parse_spec(data: dict, file: str = "<spec>", base_dir=None) -> TrialSpec:
    """Validate a parsed TOML document (a dict) into a :class:`TrialSpec`."""
    top = Section(data, "", file)
    name = top.string("name", "trial simulation")
    protocol = _protocol(top.section("protocol"))
    design_sec = top.section("design", required=True)
    design = _design(design_sec, protocol)
    kin_sec = top.section("kinetics")
    kinetics = _kinetics(kin_sec, design, base_dir) if kin_sec is not None else None
    if design.conduct.no_expansion_lloq is not None and kinetics is None:
        raise design_sec.error("no_expansion", "needs kinetics: add an enabled [kinetics] table")
    tox = _toxicity(top.section("toxicity", required=True), design, kinetics)
    eff_sec = top.section("efficacy")
    efficacy = _efficacy(eff_sec, design, kinetics) if eff_sec is not None else None
    rules = tuple(_rule(s, design, kinetics, efficacy) for s in top.sections("rules"))
    if not rules:
        rules = (RuleSpec("tite-boin" if design.boin.tite else "boin", design.boin),)
    names = [r.name for r in rules]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise top.error("rules", f"names must be unique; repeated: {', '.join(dup)}")
    top.done()
    return TrialSpec(name, design, kinetics, tox, rules, file, efficacy)


def _protocol(sec: Section | None):
    """The ``[protocol]`` tables, read by the protocol's own reader (the one home of their
    keys, types and ranges); a problem is reported as ``[protocol.<table>] key ...``."""
    from ctkinetics.data.problems import ProblemCollector
    from ctkinetics.data.protocol import PROTOCOL_TABLES, Protocol, read_protocol

    if sec is None:
        return Protocol()
    doc = {}
    for key in list(sec.table):
        if key not in PROTOCOL_TABLES:
            raise sec.error(key, f"is not a protocol table (known: {', '.join(PROTOCOL_TABLES)})")
        doc[key] = sec.raw(key)
    if isinstance(doc.get("efficacy"), dict) and "endpoint" not in doc["efficacy"]:
        doc["efficacy"] = {**doc["efficacy"], "endpoint": "simulated"}  # the outcome is simulated
    pc = ProblemCollector()
    protocol = read_protocol(doc, sec.file, pc)
    if pc.problems:
        prob = pc.problems[0]
        table, _, key = str(prob.column).partition(".")
        raise SettingsError(f"trial spec {sec.file}: [protocol.{table}] {key or ''} {prob.message}".replace("  ", " "))
    sec.done()
    return protocol


def _boin(sec: Section, **kw) -> BoinDesign:
    try:
        return BoinDesign(**kw)
    except SettingsError as exc:
        raise sec.error(None, f"invalid design: {exc}") from None


def _design(sec: Section, protocol) -> TrialDesign:
    levels = sec.strings("dose_levels")
    if len(set(levels)) != len(levels):
        raise sec.error("dose_levels", "must be unique labels")
    doses = sec.numbers("doses", length=len(levels), minimum=0, strict=True)
    if list(doses) != sorted(doses) or len(set(doses)) != len(doses):
        raise sec.error("doses", "must increase strictly, lowest dose first")
    start = sec.integer("start_level", 1, minimum=1)
    if start > len(levels):
        raise sec.error("start_level", f"is {start} but there are {len(levels)} dose levels")
    target = sec.number("target", 0.30, 0, 1, strict_min=True, strict_max=True)
    boin = _boin(
        sec, target=target, phi1=sec.number("phi1", None, 0, 1, True, True),
        phi2=sec.number("phi2", None, 0, 1, True, True), cohort_size=sec.integer("cohort_size", 3, 1),
        max_subjects=sec.integer("max_participants", 12, 1),
        dlt_window_days=sec.number("dlt_window_days", 28.0, 0, strict_min=True),
        stagger_days=sec.number("stagger_days", 14.0, 0), tite=sec.boolean("tite", True),
        cutoff_eli=sec.number("cutoff_eli", 0.95, 0, 1, True, True), start_level=start - 1,
        n_earlystop=sec.integer("n_earlystop", None, minimum=1) if sec.has("n_earlystop") else None,
        extrasafe=sec.boolean("extrasafe", False), offset=sec.number("offset", 0.05, 0, 0.5, True, True),
        bound_mtd=sec.boolean("bound_mtd", False), protocol=protocol,
    )
    acc = sec.section("accrual")
    per_month = 2.0
    if acc is not None:
        per_month = acc.number("per_month", 2.0, 0, strict_min=True)
        acc.done()
    mfg = Delay()
    msec = sec.section("manufacturing")
    if msec is not None:
        kind = msec.string("distribution", "fixed", DELAYS)
        settings = tuple((k, msec.number(k, minimum=0)) for k in DELAYS[kind].keys)
        if kind == "uniform" and settings[0][1] > settings[1][1]:
            raise msec.error("low_days", "must not exceed high_days")
        msec.done()
        mfg = Delay(kind, settings)
    exp_levels, exp_size = (), 0
    esec = sec.section("expansion")
    if esec is not None:
        exp_levels = esec.strings("levels", [])
        for lab in exp_levels:
            if lab != "mtd" and lab not in levels:
                raise esec.error("levels", f"entry {lab!r} is neither 'mtd' nor a dose level ({', '.join(levels)})")
        cap = protocol.expansion.max_per_group
        exp_size = esec.integer("size", min(9, cap), minimum=0)
        if exp_size > cap:
            raise esec.error("size", f"is {exp_size}, above the protocol's cap of {cap} participants per "
                                     "expansion group ([protocol.expansion] max_per_group)")
        esec.done()
    conduct = read_conduct(sec, boin.max_subjects)
    sec.done()
    return TrialDesign(levels, doses, boin, per_month, mfg, exp_levels, exp_size, conduct)


def _kinetics(sec: Section, design: TrialDesign, base_dir) -> KineticsSpec | None:
    from ctkinetics.trialsim.kinetics import cached_model

    enabled = sec.boolean("enabled", True)
    ref = sec.string("model", "stein2019")
    if ref.endswith(".toml") and base_dir is not None and not Path(ref).is_absolute():
        ref = str((Path(base_dir) / ref).resolve())
    try:
        model = cached_model(ref)
    except InputError as exc:  # unknown name, or a ModelFileError naming its own line
        raise sec.error("model", f"cannot be loaded: {exc}") from None
    observable = sec.string("observable", next(iter(model.observables)), set(model.observables))
    if sec.has("grid_step_days"):  # deprecated: exposure follows the project's one rule now
        sec.number("grid_step_days", minimum=0, strict_min=True)
        import warnings

        from ctkinetics.errors import CtkWarning

        warnings.warn(f"trial spec {sec.file}: [kinetics] grid_step_days is no longer used (exposure "
                      "follows the project's one rule, ctkinetics.modeling.exposure); remove it",
                      CtkWarning, stacklevel=2)
    until = sec.number("until_day", 28.0, 28.0)
    # solver tolerances of the virtual participants (default: the model file's [solver])
    rtol = sec.number("rtol", None, 1e-12, 1e-2)
    atol = sec.number("atol", None, 0.0, 1.0, strict_min=True)
    typical = []
    tsec = sec.section("typical")
    if tsec is not None:
        for key in list(tsec.table):
            if key not in model.param_names:
                raise tsec.error(key, f"is not a parameter of model {model.name} ({', '.join(model.param_names)})")
            typical.append((key, tsec.numbers(key, length=len(design.levels), minimum=0, strict=True)))
        tsec.done()
    if sec.has("omega2") and isinstance(sec.table["omega2"], str):
        if sec.string("omega2", choices={"model"}) == "model":
            omega = tuple((p.name, float(p.omega2)) for p in model.parameters if p.omega2)
    else:
        omega = []
        osec = sec.section("omega2")
        if osec is not None:
            for key in list(osec.table):
                if key not in model.param_names:
                    raise osec.error(key, f"is not a parameter of model {model.name} ({', '.join(model.param_names)})")
                omega.append((key, osec.number(key, minimum=0)))
            osec.done()
        omega = tuple(omega)
    sec.done()
    if not enabled:
        return None
    return KineticsSpec(ref, observable, tuple(typical), omega, until, rtol, atol)


def _link_terms(sec: Section, design: TrialDesign, metric: str, p_at_reference: float,
                check=None) -> dict:
    """The keys of an outcome model's link, one home for [toxicity] and [efficacy]: ``link``
    (fixed: ``rates`` per dose level; else an exposure ``metric`` (default ``metric``),
    ``reference``, ``p_at_reference`` (default ``p_at_reference``) and ``slope``).
    ``check(link)`` runs before the exposure keys are read for a non-fixed link."""
    link = sec.string("link", "fixed", LINKS)
    kw = {"link": link}
    if link == "fixed":
        kw["rates"] = sec.numbers("rates", length=len(design.levels), minimum=0, maximum=1)
        return kw
    if check is not None:
        check(link)
    kw["metric"] = sec.string("metric", metric, set(METRICS) - {"tmax"})
    kw["reference"] = sec.number("reference", minimum=0, strict_min=True)
    kw["p_at_reference"] = sec.number("p_at_reference", p_at_reference, 0, 1, True, True)
    kw["slope"] = sec.number("slope", 1.0)
    return kw


def _toxicity(sec: Section, design: TrialDesign, kinetics) -> ToxicitySpec:
    kw = _link_terms(sec, design, "cmax", 0.2)
    link = kw["link"]
    kw["onset"] = sec.string("onset", "uniform", ONSETS)
    kw["onset_lag_days"] = sec.number("onset_lag_days", 0.0)
    if kinetics is None and (LINKS[link].needs_kinetics or ONSETS[kw["onset"]].needs_kinetics):
        what = f"link = {link!r}" if LINKS[link].needs_kinetics else f"onset = {kw['onset']!r}"
        raise sec.error(None, f"{what} needs kinetics: add an enabled [kinetics] table or use link = 'fixed' "
                              f"with onset = 'uniform'")
    sec.done()
    return ToxicitySpec(**kw)


def _efficacy(sec: Section, design: TrialDesign, kinetics) -> EfficacySpec:
    def needs_kinetics(link):
        if kinetics is None:
            raise sec.error("link", f"{link!r} needs kinetics: add an enabled [kinetics] table or use 'fixed'")

    kw = _link_terms(sec, design, "auc0_28", 0.3, needs_kinetics)
    sec.done()
    if design.protocol.efficacy.assessment_day is None:
        raise sec.error(None, "needs the day the response is known: [protocol.efficacy] assessment_day")
    return EfficacySpec(**kw)


def _rule(sec: Section, design: TrialDesign, kinetics, efficacy=None) -> RuleSpec:
    name = sec.string("name")
    method = sec.string("method", "boin", set(METHODS))
    over = {}
    for key in RULE_OVERRIDES:
        if sec.has(key):
            if key == "tite":
                over[key] = sec.boolean(key)
            elif key == "cohort_size":
                over[key] = sec.integer(key, minimum=1)
            else:
                over[key] = sec.number(key, minimum=0)
    guards = []
    engine_options = {}
    raw_guards = sec.raw("guards", [])
    if not isinstance(raw_guards, list):
        raise sec.error("guards", "must be an array of inline tables, e.g. [{kind = \"min_completers\", n = 2}]")
    for i, g in enumerate(raw_guards):
        gsec = Section(g, f"{sec.path}.guards[{i + 1}]", sec.file)
        kind = gsec.string("kind", choices=GUARDS)
        settings = []
        for key, default in GUARDS[kind].defaults:
            if key == "metric":
                settings.append((key, gsec.string(key, default, set(METRICS) - {"tmax"})))
            elif key == "n":
                settings.append((key, gsec.integer(key, default, minimum=1)))
            else:
                settings.append((key, gsec.number(key, _MISSING if default is None else default, minimum=0)))
        gsec.done()
        if kind == "min_median_expansion" and kinetics is None:
            raise gsec.error("kind", "min_median_expansion needs kinetics: add an enabled [kinetics] table")
        option = GUARDS[kind].design_option
        if option is not None:  # the escalation engine's own rule (one home for it)
            if option[0] in engine_options:
                raise gsec.error("kind", f"{kind} is given twice")
            engine_options[option[0]] = dict(settings)[option[1]]
            try:
                dataclasses.replace(design.boin, **{option[0]: engine_options[option[0]]})
            except SettingsError as exc:
                raise gsec.error(option[1], f"is invalid: {exc}") from None
        else:
            guards.append(Guard(kind, tuple(settings)))
    sec.done()
    try:
        boin = dataclasses.replace(design.boin, **over, **engine_options) if over or engine_options else design.boin
    except SettingsError as exc:
        raise sec.error(None, f"invalid design override: {exc}") from None
    boin12 = None
    if method == "boin12":
        from ctkinetics.escalation.boin12 import Boin12Design

        if efficacy is None:
            raise sec.error("method", "boin12 needs an efficacy outcome model: add an [efficacy] table")
        if guards or engine_options:
            raise sec.error("guards", "are BOIN options; a boin12 rule takes none")
        try:
            boin12 = Boin12Design.from_settings(design.protocol.efficacy, boin.target, boin.cohort_size)
        except SettingsError as exc:
            raise sec.error(None, f"invalid BOIN12 settings ([protocol.efficacy]): {exc}") from None
    return RuleSpec(name, boin, tuple(guards), method, boin12)

