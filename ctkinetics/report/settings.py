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

Unknown tables or keys, or values of the wrong type, raise :class:`SettingsError` naming the
file and the key: a typo must never be silently ignored in a batch.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from ctkinetics.errors import SettingsError


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

    def to_dict(self) -> dict:
        """Every setting, JSON-ready (tuples as lists), for provenance."""
        def plain(v):
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            return v
        return {k: plain(v) for k, v in asdict(self).items()}

    def with_overrides(self, **values) -> "ReportSettings":
        """A copy with the given (non-None) values, e.g. from the command line."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


# TOML table -> key -> (field, type check, converter)
def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pair(v):
    return isinstance(v, list) and len(v) == 2 and all(_num(x) for x in v)


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
    return settings_from_mapping(data, str(p))


SETTING_NAMES = tuple(f.name for f in fields(ReportSettings))
