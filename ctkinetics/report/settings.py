"""Every option of a report, in one immutable object that a TOML file can fix entirely.

A config file (``ctk report STUDY --config review.toml``) has these tables, all optional::

    [report]
    model = "stein2019"        # model fitted to each participant
    as_of = 200                # study day of the escalation decision (default: latest data)
    car_analyte = "transgene"  # analyte of the expansion plots (default: first qpcr/flow/conc)
    bcell_analyte = "bcell"    # B-cell analyte (default: first of kind bcell)

    [fit]
    analytes = ["transgene"]   # default: every analyte the model observes
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

    [population]               # optional: a population fit beside the individual ones
    method = "saem"            # focei or saem (absent: no population fit)
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
    npde = 1000                # NPDE with this many simulated replicates (needs [population])
    pcvpc = 500                # prediction-corrected VPC replicates (needs [population])
    workers = 2                # local Dask workers for bootstrap/SIR (0: this process)
    seed = 0

Unknown tables or keys, or values of the wrong type, raise :class:`SettingsError` naming the
file and the key: a typo must never be silently ignored in a batch.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from ctkinetics.errors import SettingsError

#: Population estimation methods (``ctkinetics.estimation.population.METHODS``; repeated here so
#: that reading settings does not import the estimation layer).
POPULATION_METHODS = ("focei", "saem")


@dataclass(frozen=True)
class ReportSettings:
    """Options of :func:`ctkinetics.report.build_review` (see the module docstring)."""

    model: str = "stein2019"
    as_of: float | None = None
    car_analyte: str | None = None
    bcell_analyte: str | None = None
    fit_analytes: tuple | None = None
    fit_blq: str = "M3"
    fit_error: str = "proportional"
    fit_starts: int = 4
    fit_seed: int = 0
    nca_auc_method: str = "lin-up/log-down"
    nca_blq: str | None = None
    nca_auc_type: str = "last"
    nca_intervals: tuple = ((0.0, 28.0), (0.0, 84.0))
    nca_lambda_z_window: tuple | None = None
    nca_cmax_exclude_before: float | None = None
    tite: bool = True
    band_level: float = 0.95
    band_draws: int = 400
    band_seed: int = 0
    population_method: str | None = None
    population_random_effects: tuple | None = None
    population_vpc_replicates: int = 200
    population_seed: int = 0
    trial_sim_results: str | None = None
    uncertainty_exposure_ci: bool = False
    uncertainty_draws: int = 500
    uncertainty_bootstrap: int = 0
    uncertainty_sir: bool = False
    uncertainty_sir_samples: tuple = (1000, 1000, 1000, 2000, 2000)
    uncertainty_sir_resamples: tuple = (200, 400, 500, 1000, 1000)
    uncertainty_npde: int = 0
    uncertainty_pcvpc: int = 0
    uncertainty_workers: int | None = None
    uncertainty_seed: int = 0

    def __post_init__(self):
        if not 0.5 <= float(self.band_level) < 1.0:
            raise SettingsError(f"band level must be in [0.5, 1), got {self.band_level!r}")
        if int(self.band_draws) < 20:
            raise SettingsError(f"band draws must be at least 20, got {self.band_draws!r}")
        if self.as_of is not None and not math.isfinite(float(self.as_of)):
            raise SettingsError(f"as_of must be a study day, got {self.as_of!r}")
        for a, b in self.nca_intervals:
            if not float(b) > float(a):
                raise SettingsError(f"NCA interval [{a}, {b}] must have its start below its end")
        if self.population_method is not None and self.population_method not in POPULATION_METHODS:
            raise SettingsError(f"population method must be one of {', '.join(POPULATION_METHODS)}, "
                                f"got {self.population_method!r}")
        if int(self.population_vpc_replicates) < 2:
            raise SettingsError("population vpc_replicates must be at least 2, "
                                f"got {self.population_vpc_replicates!r}")
        self._check_uncertainty()

    def _check_uncertainty(self):
        """The [uncertainty] options (issue 16): counts in range, population parts only
        with a population fit."""
        pop = {"bootstrap": self.uncertainty_bootstrap, "sir": self.uncertainty_sir,
               "npde": self.uncertainty_npde, "pcvpc": self.uncertainty_pcvpc}
        asked = [k for k, v in pop.items() if v]
        if asked and self.population_method is None:
            raise SettingsError(f"[uncertainty] {', '.join(asked)} need a population fit: give "
                                "[population] method (or ctk report --population focei|saem)")
        for key, low in (("bootstrap", 2), ("npde", 100), ("pcvpc", 100)):
            v = int(pop[key])
            if v and v < low:
                raise SettingsError(f"[uncertainty] {key} must be 0 (off) or at least {low}, "
                                    f"got {v}")
        if int(self.uncertainty_draws) < 20:
            raise SettingsError(f"[uncertainty] draws must be at least 20, got "
                                f"{self.uncertainty_draws!r}")
        s, r = self.uncertainty_sir_samples, self.uncertainty_sir_resamples
        if len(s) != len(r) or not s or any(m < 2 or m > n for n, m in zip(s, r)):
            raise SettingsError(f"[uncertainty] sir_samples {list(s)} / sir_resamples "
                                f"{list(r)}: as many of each, 2 <= resamples <= samples")
        if self.uncertainty_workers is not None and int(self.uncertainty_workers) < 0:
            raise SettingsError(f"[uncertainty] workers must be >= 0, got "
                                f"{self.uncertainty_workers!r}")

    def to_dict(self) -> dict:
        """Every setting, JSON-ready (tuples as lists), for provenance."""
        def plain(v):
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            return v
        out = {k: plain(v) for k, v in asdict(self).items()}
        # optional parts leave no trace when off: the default report stays byte-identical
        if self.population_method is None:
            for k in [k for k in out if k.startswith("population_")]:
                del out[k]
        if self.trial_sim_results is None:
            del out["trial_sim_results"]
        if not (self.uncertainty_exposure_ci or self.uncertainty_bootstrap or self.uncertainty_sir
                or self.uncertainty_npde or self.uncertainty_pcvpc):
            for k in [k for k in out if k.startswith("uncertainty_")]:
                del out[k]
        return out

    def with_overrides(self, **values) -> "ReportSettings":
        """A copy with the given (non-None) values, e.g. from the command line."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


# TOML table -> key -> (field, type check, converter)
def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pair(v):
    return isinstance(v, list) and len(v) == 2 and all(_num(x) for x in v)


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _int_list(v):
    return isinstance(v, list) and bool(v) and all(_int(x) and x >= 1 for x in v)


_SCHEMA = {
    "report": {
        "model": ("model", lambda v: isinstance(v, str), str, "a model name or .toml path"),
        "as_of": ("as_of", _num, float, "a number (study day)"),
        "car_analyte": ("car_analyte", lambda v: isinstance(v, str), str, "an analyte name"),
        "bcell_analyte": ("bcell_analyte", lambda v: isinstance(v, str), str, "an analyte name"),
    },
    "fit": {
        "analytes": ("fit_analytes", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                     tuple, "a list of analyte names"),
        "blq": ("fit_blq", lambda v: isinstance(v, str), str, "M1, M3, M5, M6 or M7"),
        "error": ("fit_error", lambda v: isinstance(v, str), str, "an error model name"),
        "starts": ("fit_starts", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                   int, "an integer >= 1"),
        "seed": ("fit_seed", lambda v: isinstance(v, int) and not isinstance(v, bool), int, "an integer"),
    },
    "nca": {
        "auc_method": ("nca_auc_method", lambda v: isinstance(v, str), str, "an AUC method"),
        "blq": ("nca_blq", lambda v: isinstance(v, str), str, "a BLQ rule string"),
        "auc_type": ("nca_auc_type", lambda v: isinstance(v, str), str, "last, all or inf"),
        "intervals": ("nca_intervals", lambda v: isinstance(v, list) and v and all(_pair(x) for x in v),
                      lambda v: tuple((float(a), float(b)) for a, b in v),
                      "a list of [start, end] pairs"),
        "lambda_z_window": ("nca_lambda_z_window", _pair, lambda v: (float(v[0]), float(v[1])),
                            "a pair [lo, hi]"),
        "cmax_exclude_before": ("nca_cmax_exclude_before", _num, float, "a number of days"),
    },
    "escalation": {
        "tite": ("tite", lambda v: isinstance(v, bool), bool, "true or false"),
    },
    "band": {
        "level": ("band_level", _num, float, "a number in [0.5, 1)"),
        "draws": ("band_draws", lambda v: isinstance(v, int) and not isinstance(v, bool), int, "an integer"),
        "seed": ("band_seed", lambda v: isinstance(v, int) and not isinstance(v, bool), int, "an integer"),
    },
    "population": {
        "method": ("population_method", lambda v: v in POPULATION_METHODS, str, "focei or saem"),
        "random_effects": ("population_random_effects",
                           lambda v: isinstance(v, list) and v and all(isinstance(x, str) for x in v),
                           tuple, "a list of parameter names"),
        "vpc_replicates": ("population_vpc_replicates",
                           lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2,
                           int, "an integer >= 2"),
        "seed": ("population_seed", lambda v: isinstance(v, int) and not isinstance(v, bool), int,
                 "an integer"),
    },
    "trial_sim": {
        "results": ("trial_sim_results", lambda v: isinstance(v, str) and v != "", str,
                    "the path of a `ctk trial-sim` output folder"),
    },
    "uncertainty": {
        "exposure_ci": ("uncertainty_exposure_ci", lambda v: isinstance(v, bool), bool,
                        "true or false"),
        "draws": ("uncertainty_draws", lambda v: _int(v) and v >= 20, int, "an integer >= 20"),
        "bootstrap": ("uncertainty_bootstrap", lambda v: _int(v) and v >= 0, int,
                      "an integer (replicates; 0 = off)"),
        "sir": ("uncertainty_sir", lambda v: isinstance(v, bool), bool, "true or false"),
        "sir_samples": ("uncertainty_sir_samples", _int_list, tuple, "a list of integers"),
        "sir_resamples": ("uncertainty_sir_resamples", _int_list, tuple, "a list of integers"),
        "npde": ("uncertainty_npde", lambda v: _int(v) and v >= 0, int,
                 "an integer (replicates; 0 = off)"),
        "pcvpc": ("uncertainty_pcvpc", lambda v: _int(v) and v >= 0, int,
                  "an integer (replicates; 0 = off)"),
        "workers": ("uncertainty_workers", lambda v: _int(v) and v >= 0, int,
                    "an integer >= 0 (0: this process)"),
        "seed": ("uncertainty_seed", _int, int, "an integer"),
    },
}


def settings_from_mapping(data: dict, source: str = "<config>") -> ReportSettings:
    """Settings from a parsed TOML mapping; every key is checked."""
    values = {}
    for table, entries in data.items():
        if table not in _SCHEMA:
            raise SettingsError(f"{source}: unknown table [{table}]; known: "
                                f"{', '.join('[' + t + ']' for t in _SCHEMA)}")
        if not isinstance(entries, dict):
            raise SettingsError(f"{source}: '{table}' must be a table")
        for key, value in entries.items():
            spec = _SCHEMA[table].get(key)
            if spec is None:
                raise SettingsError(f"{source}: unknown key '{key}' in [{table}]; known: "
                                    f"{', '.join(_SCHEMA[table])}")
            name, ok, conv, expected = spec
            if not ok(value):
                raise SettingsError(f"{source}: [{table}] {key} must be {expected}, got {value!r}")
            values[name] = conv(value)
    return ReportSettings(**values)


def load_settings(path) -> ReportSettings:
    """Settings from a TOML file (see the module docstring)."""
    import tomllib

    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise SettingsError(f"cannot read config file {p}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{p}: not valid TOML: {exc}") from None
    settings = settings_from_mapping(data, str(p))
    ts = settings.trial_sim_results
    if ts is not None and not Path(ts).is_absolute():
        # a path in a config file means the same folder wherever the command is run from
        settings = replace(settings, trial_sim_results=str(p.parent / ts))
    return settings


SETTING_NAMES = tuple(f.name for f in fields(ReportSettings))
