"""Every option of a report, in one immutable object that a TOML file can fix entirely.

A config file (``ctk report STUDY --config review.toml``) has these tables, all optional::

    [report]
    model = "auto"             # model fitted to each participant: "auto" (default) is
                               # cart_bcell_sle when the study has flow or B-cell samples
                               # after infusion, else stein2019; or a model name / .toml
    as_of = 200                # study day of the escalation decision (default: latest data)
    car_analyte = "transgene"  # analyte of the expansion plots (default: first qpcr/flow/conc)
    bcell_analyte = "bcell"    # B-cell analyte (default: first of kind bcell)

    [fit]
    analytes = ["transgene"]   # default: every analyte the model observes
    prior = "auto"             # individual fits: "none" (maximum likelihood), "model" (MAP,
                               # the model file's typical values and omega2), "population"
                               # (MAP with the population fit as prior: the EBEs); "auto":
                               # population for an ODE model (its model prior if the
                               # population fit failed), none for a closed form
    estimate_sigma = false     # with a prior: estimate each participant's residual SDs
                               # instead of holding them at the popfit's or the model file's
                               # [residual_error] (POSTHOC, the default)
    blq = "M3"
    error = "proportional"
    starts = 4
    seed = 0

    [nca]
    auc_method = "lin-up/log-down"
    blq = "first=keep,middle=drop,last=keep"
    auc_type = "last"
    intervals = [[0, 28], [0, 84]]
    lambda_z_window = [14, 84]
    cmax_exclude_before = 0.25

    [escalation]
    tite = true

    [band]
    level = 0.95
    draws = 400
    seed = 0

    [population]               # a population fit beside (before) the individual ones
    method = "auto"            # focei, saem, none; "auto": none (see AUTO_POPULATION_METHOD)
    covariance = true          # the covariance step (SEs of theta, omega, sigma)
    random_effects = ["Cmax", "foldx"]   # default: every kinetic parameter
    vpc_replicates = 200
    seed = 0                   # SAEM's and the VPC's random numbers

    [trial_sim]
    results = "trialsim-out"   # a `ctk trial-sim` output folder (relative to this file)

    [uncertainty]              # optional (issue 16); section 3c
    exposure_ci = true         # 95 % intervals on the fits' model-based Cmax, Tmax, AUC0-28
    draws = 500                # parameter draws of those intervals
    bootstrap = 200            # bootstrap replicates of the population fit (needs [population])
    sir = true                 # SIR of the population fit (needs [population])
    sir_samples = [1000, 1000, 1000, 2000, 2000]    # PsN's default schedule
    sir_resamples = [200, 400, 500, 1000, 1000]
    sir_inflation = 1.0        # factor on the covariance step for SIR's first proposal
    npde = 1000                # NPDE with this many simulated replicates (needs [population])
    pcvpc = 500                # prediction-corrected VPC replicates (needs [population])
    workers = 2                # local Dask workers for bootstrap/SIR (0: this process)
    seed = 0

Every table is a section of :class:`ReportSettings` (``settings.fit.starts``,
``settings.uncertainty.bootstrap``); the former flat names (``fit_starts``, ``tite``,
``trial_sim_results``) still work as keyword arguments and attributes, and ``to_dict()`` keeps
them for provenance. Types and ranges live in one schema (:mod:`ctkinetics.report.
settings_schema`, read through :mod:`ctkinetics.schema`): a file's problems are reported all
at once as a :class:`SettingsError` naming the file, the line and the key, e.g.
``review.toml, line 7, key 'fit.start': unknown key 'start' in [fit] (did you mean
'starts'?)``: a typo must never be silently ignored in a batch.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields, replace
from pathlib import Path

from ctkinetics.errors import SettingsError

#: Population estimation methods (``ctkinetics.estimation.population.METHODS``; repeated here so
#: that reading settings does not import the estimation layer).
POPULATION_METHODS = ("focei", "saem")
#: ``[population] method`` values: a method, ``none`` (no population fit) or ``auto``.
POPULATION_CHOICES = ("auto", "none") + POPULATION_METHODS
#: ``[fit] prior`` values (see the module docstring).
PRIORS = ("auto", "none", "model", "population")
#: ``[report] model = "auto"``: the mechanistic model when the study has flow or B-cell
#: samples after infusion (it observes qPCR, flow and B cells), else the closed form.
AUTO_MODEL = "auto"
MECHANISTIC_MODEL, CLOSED_FORM_MODEL = "cart_bcell_sle", "stein2019"
#: ``[population] method = "auto"`` for a model without a closed form. None for now: the
#: population fit of cart_bcell_sle on the 12-participant sample cohort costs 102 s CPU by
#: FOCE-I (converged) and SAEM 40+30 iterations 26 s CPU without converging (issue 12.5 note,
#: benchmarks/bench_report.py --population), far over the report's 15 s; the default fits
#: are then MAP fits with the model file's population (typical values, omega2) as prior.
#: Set "focei" once a population fit costs a few seconds.
AUTO_POPULATION_METHOD = None


@dataclass(frozen=True)
class FitSettings:
    """``[fit]``: the individual fits (``analytes`` None: every analyte the model observes)."""

    analytes: tuple | None = None
    prior: str = "auto"
    blq: str = "M3"
    error: str = "proportional"
    starts: int = 4
    seed: int = 0
    estimate_sigma: bool = False


@dataclass(frozen=True)
class NcaSettings:
    """``[nca]``: the NCA options (None: run_nca's default)."""

    auc_method: str = "lin-up/log-down"
    blq: str | None = None
    auc_type: str = "last"
    intervals: tuple = ((0.0, 28.0), (0.0, 84.0))
    lambda_z_window: tuple | None = None
    cmax_exclude_before: float | None = None


@dataclass(frozen=True)
class EscalationSettings:
    """``[escalation]``."""

    tite: bool = True


@dataclass(frozen=True)
class BandSettings:
    """``[band]``: the fitted curves' prediction band."""

    level: float = 0.95
    draws: int = 400
    seed: int = 0


@dataclass(frozen=True)
class PopulationSettings:
    """``[population]`` (``method`` None or ``"none"``: no population fit; ``"auto"``:
    resolved by the review, :func:`ctkinetics.report.review.resolve_settings`)."""

    method: str | None = "auto"
    random_effects: tuple | None = None
    covariance: bool = True
    vpc_replicates: int = 200
    seed: int = 0


@dataclass(frozen=True)
class TrialSimSettings:
    """``[trial_sim]``: a ``ctk trial-sim`` output folder to show (None: none)."""

    results: str | None = None


@dataclass(frozen=True)
class UncertaintySettings:
    """``[uncertainty]`` (issue 16; off by default)."""

    exposure_ci: bool = False
    draws: int = 500
    bootstrap: int = 0
    sir: bool = False
    sir_samples: tuple = (1000, 1000, 1000, 2000, 2000)
    sir_resamples: tuple = (200, 400, 500, 1000, 1000)
    sir_inflation: float = 1.0
    npde: int = 0
    pcvpc: int = 0
    workers: int | None = None
    seed: int = 0

    @property
    def on(self) -> bool:
        return bool(self.exposure_ci or self.bootstrap or self.sir or self.npde or self.pcvpc)


#: The sections of ReportSettings: TOML table -> section class (``[report]`` keys are
#: ReportSettings' own fields).
SECTIONS = {"fit": FitSettings, "nca": NcaSettings, "escalation": EscalationSettings, "band": BandSettings,
            "population": PopulationSettings, "trial_sim": TrialSimSettings, "uncertainty": UncertaintySettings}
REPORT_KEYS = ("model", "as_of", "car_analyte", "bcell_analyte")
#: The former flat names (``fit_starts``) -> (section, key); ``tite`` is ``escalation.tite``.
FLAT = {("tite" if t == "escalation" else f"{t}_{f.name}"): (t, f.name)
        for t, cls in SECTIONS.items() for f in fields(cls)}


@dataclass(frozen=True)
class ReportSettings:
    """Options of :func:`ctkinetics.report.build_review` (see the module docstring): the
    ``[report]`` keys and one section per table. Checked on construction by the schema."""

    model: str = AUTO_MODEL
    as_of: float | None = None
    car_analyte: str | None = None
    bcell_analyte: str | None = None
    fit: FitSettings = FitSettings()
    nca: NcaSettings = NcaSettings()
    escalation: EscalationSettings = EscalationSettings()
    band: BandSettings = BandSettings()
    population: PopulationSettings = PopulationSettings()
    trial_sim: TrialSimSettings = TrialSimSettings()
    uncertainty: UncertaintySettings = UncertaintySettings()

    def __init__(self, model=AUTO_MODEL, as_of=None, car_analyte=None, bcell_analyte=None, *,
                 fit=None, nca=None, escalation=None, band=None, population=None, trial_sim=None,
                 uncertainty=None, **flat):
        given = {"fit": fit, "nca": nca, "escalation": escalation, "band": band, "population": population,
                 "trial_sim": trial_sim, "uncertainty": uncertainty}
        sections = {t: given[t] if given[t] is not None else cls() for t, cls in SECTIONS.items()}
        for name, value in flat.items():
            if name not in FLAT:
                raise TypeError(f"ReportSettings got an unknown setting {name!r}")
            table, key = FLAT[name]
            sections[table] = replace(sections[table], **{key: value})
        if sections["population"].method == "none":  # one spelling of "no population fit"
            sections["population"] = replace(sections["population"], method=None)
        for name, value in (("model", model), ("as_of", as_of), ("car_analyte", car_analyte),
                            ("bcell_analyte", bcell_analyte), *sections.items()):
            object.__setattr__(self, name, value)
        _check(self)

    def __getattr__(self, name):
        """The former flat names: ``settings.fit_starts`` is ``settings.fit.starts``."""
        if name in FLAT:
            table, key = FLAT[name]
            return getattr(getattr(self, table), key)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def to_mapping(self) -> dict:
        """The settings as a settings file's tables (None values left out)."""
        def plain(v):
            return [plain(x) for x in v] if isinstance(v, tuple) else v

        out = {"report": {k: getattr(self, k) for k in REPORT_KEYS if getattr(self, k) is not None}}
        for table in SECTIONS:
            section = getattr(self, table)
            out[table] = {f.name: plain(getattr(section, f.name)) for f in fields(section)
                          if getattr(section, f.name) is not None}
        return out

    def to_dict(self) -> dict:
        """Every setting under its flat name, JSON-ready (tuples as lists), for provenance;
        optional parts leave no trace when off (the default report stays byte-identical)."""
        def plain(v):
            return [plain(x) for x in v] if isinstance(v, tuple) else v

        out = {k: getattr(self, k) for k in REPORT_KEYS}
        for name, (table, key) in FLAT.items():
            out[name] = plain(getattr(getattr(self, table), key))
        if self.population.method is None:
            out = {k: v for k, v in out.items() if not k.startswith("population_")}
        if self.trial_sim.results is None:
            del out["trial_sim_results"]
        if not self.uncertainty.on:
            out = {k: v for k, v in out.items() if not k.startswith("uncertainty_")}
        return out

    def with_overrides(self, **values) -> "ReportSettings":
        """A copy with the given (non-None) values (flat names), e.g. from the command line."""
        values = {k: v for k, v in values.items() if v is not None}
        own = {k: values.pop(k) for k in list(values) if k in REPORT_KEYS}
        sections = {t: getattr(self, t) for t in SECTIONS}
        for name, value in values.items():
            if name not in FLAT:
                raise TypeError(f"ReportSettings got an unknown setting {name!r}")
            table, key = FLAT[name]
            sections[table] = replace(sections[table], **{key: value})
        return ReportSettings(**{**{k: getattr(self, k) for k in REPORT_KEYS}, **own}, **sections)


def _check(settings: ReportSettings, source: str = "report settings") -> None:
    """Every value checked by the schema (one home of the types and ranges); all problems
    raised together."""
    from ctkinetics.report.settings_schema import ReportFile
    from ctkinetics.schema import TomlDocument, validate

    validate(TomlDocument(source, settings.to_mapping()), ReportFile)


def settings_from_mapping(data: dict, source: str = "<config>", document=None) -> ReportSettings:
    """Settings from a parsed TOML mapping; every key is checked, all problems reported."""
    from ctkinetics.report.settings_schema import ReportFile
    from ctkinetics.schema import TomlDocument, validate

    checked = validate(document or TomlDocument(source, data), ReportFile)
    own = checked.report.model_dump(exclude_unset=True) if checked.report else {}
    sections = {}
    for table, cls in SECTIONS.items():
        section = getattr(checked, table)
        if section is not None:
            sections[table] = cls(**{k: _tuples(v) for k, v in section.model_dump(exclude_unset=True).items()})
    return ReportSettings(**own, **sections)


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def load_settings(path, population_method=None) -> ReportSettings:
    """Settings from a TOML file (see the module docstring). ``population_method``: the
    command line's ``--population``, given before the file is checked (a file whose
    ``[uncertainty]`` asks for a bootstrap relies on it when it has no ``[population]``)."""
    from ctkinetics.schema import TomlSyntaxError, read_toml

    p = Path(path)
    try:
        doc = read_toml(p, "config file")
    except TomlSyntaxError as exc:
        raise SettingsError.from_problems([exc.problem]) from None
    if population_method is not None and isinstance(doc.data.get("population", {}), dict):
        pop = {**doc.data.get("population", {}), "method": population_method}
        doc = dataclasses.replace(doc, data={**doc.data, "population": pop})
    settings = settings_from_mapping(doc.data, str(p), document=doc)
    ts = settings.trial_sim.results
    if ts is not None and not Path(ts).is_absolute():
        # a path in a config file means the same folder wherever the command is run from
        settings = dataclasses.replace(settings, trial_sim=TrialSimSettings(str(p.parent / ts)))
    return settings


SETTING_NAMES = REPORT_KEYS + tuple(FLAT)
