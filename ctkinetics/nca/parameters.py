"""The NCA parameter registry: each parameter declared as data beside its function.

An entry names the parameter (its CDISC PPTESTCD where one exists), its CDISC label, its
unit type, the parameters it depends on, how it is summarised across participants, its
Phoenix WinNonlin name, and a function ``compute(profiles, start, end) -> (values,
reasons)`` over all profiles at once (see :class:`ctkinetics.nca.engine.Profiles`).

Adding a parameter is adding one entry here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ctkinetics.nca.options import AUC_TYPES

LN2 = float(np.log(2.0))

#: unit type -> function(conc_unit, time_unit, dose_unit) -> unit string
UNIT_TYPES: dict[str, Callable[[str, str, str], str]] = {
    "conc": lambda c, t, d: c,
    "time": lambda c, t, d: t,
    "auc": lambda c, t, d: f"{c}*{t}" if c else t,
    "inverse_time": lambda c, t, d: f"1/{t}",
    "percent": lambda c, t, d: "%",
    "count": lambda c, t, d: "",
    "fraction": lambda c, t, d: "",
    "conc_per_dose": lambda c, t, d: f"({c})/{d}",
    "auc_per_dose": lambda c, t, d: f"({c}*{t})/{d}",
    "clearance": lambda c, t, d: f"{d}/({c}*{t})",
    "volume": lambda c, t, d: f"{d}/({c})",
}


@dataclass(frozen=True)
class NCAParameter:
    name: str
    pptestcd: str
    pptest: str
    unit_type: str
    compute: Callable
    depends: tuple = ()
    summary: str = "geometric"  # 'geometric' | 'median_range' | 'arithmetic'
    winnonlin: str = ""
    interval: bool = False  # needs a finite [start, end] and the whole profile (AUCINT)
    needs_dose: bool = False
    definition: str = ""  # what it is, for the report's data dictionary (set below)


def _with(reason_source):
    """Reasons for a parameter: ''/text where the value is missing (from a dependency)."""
    def wrap(fn):
        def compute(p, start, end):
            val = np.asarray(fn(p), float)
            src = reason_source(p)
            return val, np.where(np.isnan(val), src, "")
        return compute
    return wrap


def _lamz_reason(p):
    return p.lamz.reason


def _dose_or(other):
    def r(p):
        base = other(p)
        return np.where(base != "", base, p.dose_reason)
    return r


def _aucint(auc_type):
    def compute(p, start, end):
        val, reason = p.auc_interval(start, end, auc_type)
        return val, np.where(np.isnan(val), reason, "")
    return compute


def _entries():
    q = lambda p: p.quant_reason  # noqa: E731
    lz = _lamz_reason
    P = NCAParameter
    yield P("CMAX", "CMAX", "Max Conc", "conc", _with(lambda p: p.cmax_reason)(lambda p: p.cmax),
            winnonlin="Cmax")
    yield P("TMAX", "TMAX", "Time of CMAX", "time", _with(lambda p: p.tmax_reason)(lambda p: p.tmax),
            ("CMAX",), summary="median_range", winnonlin="Tmax")
    yield P("CLST", "CLST", "Last Nonzero Conc", "conc", _with(q)(lambda p: p.clast), winnonlin="Clast")
    yield P("TLST", "TLST", "Time of Last Nonzero Conc", "time", _with(q)(lambda p: p.tlast),
            summary="median_range", winnonlin="Tlast")
    yield P("AUCLST", "AUCLST", "AUC to Last Nonzero Conc", "auc",
            _with(lambda p: p.quant_reason)(lambda p: p.auclast), ("TLST",), winnonlin="AUClast")
    yield P("AUCALL", "AUCALL", "AUC All", "auc", _with(lambda p: p.quant_reason)(lambda p: p.aucall),
            winnonlin="AUCall")
    yield P("LAMZ", "LAMZ", "Lambda z", "inverse_time", _with(lz)(lambda p: p.lamz.lamz),
            ("TMAX", "TLST"), winnonlin="Lambda_z")
    yield P("LAMZHL", "LAMZHL", "Half-Life Lambda z", "time", _with(lz)(lambda p: LN2 / p.lamz.lamz),
            ("LAMZ",), winnonlin="HL_Lambda_z")
    yield P("R2", "R2", "R Squared", "fraction", _with(lz)(lambda p: p.lamz.r2), ("LAMZ",),
            summary="arithmetic", winnonlin="Rsq")
    yield P("R2ADJ", "R2ADJ", "R Squared Adjusted", "fraction", _with(lz)(lambda p: p.lamz.adj_r2),
            ("LAMZ",), summary="arithmetic", winnonlin="Rsq_adjusted")
    yield P("LAMZNPT", "LAMZNPT", "Number of Points for Lambda z", "count",
            _with(lz)(lambda p: p.lamz.n_points), ("LAMZ",), summary="median_range",
            winnonlin="No_points_lambda_z")
    yield P("LAMZLL", "LAMZLL", "Lambda z Lower Limit", "time", _with(lz)(lambda p: p.lamz.t_lower),
            ("LAMZ",), summary="median_range", winnonlin="Lambda_z_lower")
    yield P("LAMZUL", "LAMZUL", "Lambda z Upper Limit", "time", _with(lz)(lambda p: p.lamz.t_upper),
            ("LAMZ",), summary="median_range", winnonlin="Lambda_z_upper")
    yield P("CLSTP", "CLSTP", "Last Nonzero Conc Predicted", "conc", _with(lz)(lambda p: p.clast_pred),
            ("LAMZ", "TLST"), winnonlin="Clast_pred")
    yield P("AUCIFO", "AUCIFO", "AUC Infinity Obs", "auc", _with(lz)(lambda p: p.aucifo),
            ("AUCLST", "CLST", "LAMZ"), winnonlin="AUCINF_obs")
    yield P("AUCPEO", "AUCPEO", "AUC %Extrapolation Obs", "percent",
            _with(lz)(lambda p: 100.0 * (p.aucifo - p.auclast) / p.aucifo), ("AUCIFO",),
            summary="arithmetic", winnonlin="AUC_%Extrap_obs")
    yield P("AUCIFP", "AUCIFP", "AUC Infinity Pred", "auc", _with(lz)(lambda p: p.aucifp),
            ("AUCLST", "CLSTP", "LAMZ"), winnonlin="AUCINF_pred")
    yield P("AUCPEP", "AUCPEP", "AUC %Extrapolation Pred", "percent",
            _with(lz)(lambda p: 100.0 * (p.aucifp - p.auclast) / p.aucifp), ("AUCIFP",),
            summary="arithmetic", winnonlin="AUC_%Extrap_pred")
    # dose-normalised and apparent clearance / volume (dose from the subjects table)
    yield P("CMAXD", "CMAXD", "Max Conc Norm by Dose", "conc_per_dose",
            _with(_dose_or(lambda p: p.cmax_reason))(lambda p: p.cmax / p.dose), ("CMAX",),
            winnonlin="Cmax_D", needs_dose=True)
    yield P("AUCIFOD", "AUCIFOD", "AUC Infinity Obs Norm by Dose", "auc_per_dose",
            _with(_dose_or(lz))(lambda p: p.aucifo / p.dose), ("AUCIFO",), winnonlin="AUCINF_D_obs",
            needs_dose=True)
    yield P("CLFO", "CLFO", "Total CL Obs by F", "clearance",
            _with(_dose_or(lz))(lambda p: p.dose / p.aucifo), ("AUCIFO",), winnonlin="Cl_F_obs",
            needs_dose=True)
    yield P("VZFO", "VZFO", "Vz Obs by F", "volume",
            _with(_dose_or(lz))(lambda p: p.dose / (p.lamz.lamz * p.aucifo)), ("AUCIFO", "LAMZ"),
            winnonlin="Vz_F_obs", needs_dose=True)
    for auc_type, text in AUC_TYPES.items():
        yield P(f"AUCINT_{auc_type.upper()}", "AUCINT", f"AUC from T1 to T2 ({text})", "auc",
                _aucint(auc_type), ("TLST", "LAMZ") if auc_type == "inf" else ("TLST",),
                interval=True, definition=f"AUC over the interval [T1, T2] (values interpolated "
                f"at T1 and T2), {text}")


#: What each parameter is, in one sentence (the report's data dictionary shows it).
_DEFINITIONS = {
    "CMAX": "highest observed value (after infusion)",
    "TMAX": "time of CMAX (first occurrence)",
    "CLST": "last quantified value (above the LLOQ)",
    "TLST": "time of CLST",
    "AUCLST": "area under the curve from the start to TLST",
    "AUCALL": "area under the curve to the last sample, BLQ samples after TLST counted as 0",
    "LAMZ": "terminal rate constant λz: −slope of the ln-linear regression on the terminal samples",
    "LAMZHL": "terminal half-life ln 2/λz",
    "R2": "R² of the λz regression",
    "R2ADJ": "adjusted R² of the λz regression: 1 − (1 − R²)(n − 1)/(n − 2)",
    "LAMZNPT": "number of samples in the λz regression",
    "LAMZLL": "time of the first sample in the λz regression",
    "LAMZUL": "time of the last sample in the λz regression",
    "CLSTP": "value at TLST predicted by the λz regression",
    "AUCIFO": "AUC extrapolated to infinity from the observed CLST: AUCLST + CLST/λz",
    "AUCPEO": "share of AUCIFO extrapolated beyond TLST: 100·(AUCIFO − AUCLST)/AUCIFO",
    "AUCIFP": "AUC extrapolated to infinity from the predicted CLSTP: AUCLST + CLSTP/λz",
    "AUCPEP": "share of AUCIFP extrapolated beyond TLST: 100·(AUCIFP − AUCLST)/AUCIFP",
    "CMAXD": "CMAX divided by the dose",
    "AUCIFOD": "AUCIFO divided by the dose",
    "CLFO": "apparent clearance dose/AUCIFO",
    "VZFO": "apparent terminal volume dose/(λz·AUCIFO)",
}

#: Registry of NCA parameters by name.
PARAMETERS: dict[str, NCAParameter] = {
    p.name: dataclasses.replace(p, definition=_DEFINITIONS.get(p.name, p.definition))
    for p in _entries()}

#: Parameters computed over (0, inf) by default.
DEFAULT_PROFILE_PARAMETERS = (
    "CMAX", "TMAX", "CLST", "TLST", "AUCLST", "AUCALL", "LAMZ", "LAMZHL", "R2", "R2ADJ",
    "LAMZNPT", "LAMZLL", "LAMZUL", "AUCIFO", "AUCPEO",
)


def resolve(name: str, auc_type: str) -> NCAParameter:
    """A registry entry by name; plain 'AUCINT' means the AUCINT of ``auc_type``."""
    from ctkinetics.errors import SettingsError

    key = name.strip().upper().replace(".", "_")
    if key == "AUCINT":
        key = f"AUCINT_{auc_type.upper()}"
    if key not in PARAMETERS:
        raise SettingsError(f"unknown NCA parameter {name!r}; known: {', '.join(PARAMETERS)}")
    return PARAMETERS[key]
