"""The NCA parameter registry: each parameter declared as data beside its function.

An entry names the parameter (its CDISC PPTESTCD), its CDISC label (PPTEST), a one-sentence
definition (the report's data dictionary shows it), its unit type, the parameters it depends
on, how it is summarised across participants, its Phoenix WinNonlin and PKNCA names, and a
function ``compute(profiles, start, end) -> (values, reasons)`` over all profiles at once (see
:class:`ctkinetics.nca.engine.Profiles`), as PKNCA's ``add.interval.col`` does.

Adding a parameter is adding one entry here; ``tests/nca/test_nca_registry.py`` then checks
it like every other one (unit, CDISC code, definition, dependencies, a reference value).

>>> PARAMETERS["AUCPEO"].depends
('AUCIFO',)
>>> sorted(dependents("AUCIFO"))
['AUCIFO', 'AUCIFOD', 'AUCPEO', 'CLFO', 'VZFO']
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
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


#: How a parameter is summarised across participants (see :mod:`ctkinetics.nca.summary`).
SUMMARY_KINDS = ("geometric", "arithmetic", "median_range")


@dataclass(frozen=True)
class NCAParameter:
    """One NCA parameter, declared as data.

    Attributes
    ----------
    name : str
        Registry key: the CDISC PPTESTCD, with the AUC type appended for AUCINT
        (``AUCINT_LAST``, ``AUCINT_ALL``, ``AUCINT_INF``).
    pptest : str
        CDISC PPTEST label.
    unit_type : str
        Key of :data:`UNIT_TYPES` (the unit follows from the data's units).
    compute : callable
        ``compute(profiles, start, end) -> (values, reasons)`` for all profiles at once.
    definition : str
        What the parameter is, with its formula, in one sentence.
    depends : tuple of str
        Parameters this one is computed from (an exclusion of one of them excludes it).
    summary : str
        One of :data:`SUMMARY_KINDS`.
    winnonlin, pknca : str
        The Phoenix WinNonlin and PKNCA names of the same quantity.
    interval : bool
        An interval AUC: needs a finite [start, end] and the whole profile.
    needs_dose : bool
        Divided by (or divides) the dose.
    pptestcd : str
        CDISC PPTESTCD (default: ``name``).
    """

    name: str
    pptest: str
    unit_type: str
    compute: Callable
    definition: str
    depends: tuple = ()
    summary: str = "geometric"
    winnonlin: str = ""
    pknca: str = ""
    interval: bool = False
    needs_dose: bool = False
    pptestcd: str = ""

    def __post_init__(self):
        if not self.pptestcd:
            object.__setattr__(self, "pptestcd", self.name)


def _with(reason_source):
    """Reasons for a parameter: ''/text where the value is missing (from a dependency)."""
    def wrap(fn):
        def compute(p, start, end):
            with np.errstate(divide="ignore", invalid="ignore"):
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


def _observed_entries():
    q = _with(lambda p: p.quant_reason)
    P = NCAParameter
    yield P("CMAX", "Max Conc", "conc", _with(lambda p: p.cmax_reason)(lambda p: p.cmax),
            "highest observed value (after infusion)", winnonlin="Cmax", pknca="cmax")
    yield P("TMAX", "Time of CMAX", "time", _with(lambda p: p.tmax_reason)(lambda p: p.tmax),
            "time of CMAX (first occurrence)", ("CMAX",), summary="median_range",
            winnonlin="Tmax", pknca="tmax")
    yield P("CLST", "Last Nonzero Conc", "conc", q(lambda p: p.clast),
            "last quantified value (above the LLOQ)", winnonlin="Clast", pknca="clast.obs")
    yield P("TLST", "Time of Last Nonzero Conc", "time", q(lambda p: p.tlast), "time of CLST",
            summary="median_range", winnonlin="Tlast", pknca="tlast")
    yield P("AUCLST", "AUC to Last Nonzero Conc", "auc", q(lambda p: p.auclast),
            "area under the curve from the start to TLST", ("TLST",), winnonlin="AUClast",
            pknca="auclast")
    yield P("AUCALL", "AUC All", "auc", q(lambda p: p.aucall),
            "area under the curve to the last sample, BLQ samples after TLST counted as 0",
            winnonlin="AUCall", pknca="aucall")


def _lambda_z_entries():
    lz = _with(_lamz_reason)
    P = NCAParameter
    yield P("LAMZ", "Lambda z", "inverse_time", lz(lambda p: p.lamz.lamz),
            "terminal rate constant λz: −slope of the ln-linear regression on the terminal samples",
            ("TMAX", "TLST"), winnonlin="Lambda_z", pknca="lambda.z")
    yield P("LAMZHL", "Half-Life Lambda z", "time", lz(lambda p: LN2 / p.lamz.lamz),
            "terminal half-life ln 2/λz", ("LAMZ",), winnonlin="HL_Lambda_z", pknca="half.life")
    yield P("R2", "R Squared", "fraction", lz(lambda p: p.lamz.r2), "R² of the λz regression",
            ("LAMZ",), summary="arithmetic", winnonlin="Rsq", pknca="r.squared")
    yield P("R2ADJ", "R Squared Adjusted", "fraction", lz(lambda p: p.lamz.adj_r2),
            "adjusted R² of the λz regression: 1 − (1 − R²)(n − 1)/(n − 2)", ("LAMZ",),
            summary="arithmetic", winnonlin="Rsq_adjusted", pknca="adj.r.squared")
    yield P("LAMZNPT", "Number of Points for Lambda z", "count", lz(lambda p: p.lamz.n_points),
            "number of samples in the λz regression", ("LAMZ",), summary="median_range",
            winnonlin="No_points_lambda_z", pknca="lambda.z.n.points")
    yield P("LAMZLL", "Lambda z Lower Limit", "time", lz(lambda p: p.lamz.t_lower),
            "time of the first sample in the λz regression", ("LAMZ",), summary="median_range",
            winnonlin="Lambda_z_lower", pknca="lambda.z.time.first")
    yield P("LAMZUL", "Lambda z Upper Limit", "time", lz(lambda p: p.lamz.t_upper),
            "time of the last sample in the λz regression", ("LAMZ",), summary="median_range",
            winnonlin="Lambda_z_upper", pknca="lambda.z.time.last")
    yield P("LAMZSPN", "Lambda z Span", "fraction",
            lz(lambda p: (p.lamz.t_upper - p.lamz.t_lower) * p.lamz.lamz / LN2),
            "half-lives spanned by the λz regression: (LAMZUL − LAMZLL)/LAMZHL (PKNCA span.ratio)",
            ("LAMZ", "LAMZHL", "LAMZLL", "LAMZUL"), pknca="span.ratio")
    yield P("CLSTP", "Last Nonzero Conc Predicted", "conc", lz(lambda p: p.clast_pred),
            "value at TLST predicted by the λz regression", ("LAMZ", "TLST"),
            winnonlin="Clast_pred", pknca="clast.pred")
    yield P("AUCIFO", "AUC Infinity Obs", "auc", lz(lambda p: p.aucifo),
            "AUC extrapolated to infinity from the observed CLST: AUCLST + CLST/λz",
            ("AUCLST", "CLST", "LAMZ"), winnonlin="AUCINF_obs", pknca="aucinf.obs")
    yield P("AUCPEO", "AUC %Extrapolation Obs", "percent",
            lz(lambda p: 100.0 * (p.aucifo - p.auclast) / p.aucifo),
            "share of AUCIFO extrapolated beyond TLST: 100·(AUCIFO − AUCLST)/AUCIFO", ("AUCIFO",),
            summary="arithmetic", winnonlin="AUC_%Extrap_obs", pknca="aucpext.obs")
    yield P("AUCIFP", "AUC Infinity Pred", "auc", lz(lambda p: p.aucifp),
            "AUC extrapolated to infinity from the predicted CLSTP: AUCLST + CLSTP/λz",
            ("AUCLST", "CLSTP", "LAMZ"), winnonlin="AUCINF_pred", pknca="aucinf.pred")
    yield P("AUCPEP", "AUC %Extrapolation Pred", "percent",
            lz(lambda p: 100.0 * (p.aucifp - p.auclast) / p.aucifp),
            "share of AUCIFP extrapolated beyond TLST: 100·(AUCIFP − AUCLST)/AUCIFP", ("AUCIFP",),
            summary="arithmetic", winnonlin="AUC_%Extrap_pred", pknca="aucpext.pred")


def _dose_and_interval_entries():
    P = NCAParameter
    # dose-normalised and apparent clearance / volume (dose from the subjects table)
    yield P("CMAXD", "Max Conc Norm by Dose", "conc_per_dose",
            _with(_dose_or(lambda p: p.cmax_reason))(lambda p: p.cmax / p.dose),
            "CMAX divided by the dose", ("CMAX",), winnonlin="Cmax_D", pknca="cmax.dn",
            needs_dose=True)
    lzd = _with(_dose_or(_lamz_reason))
    yield P("AUCIFOD", "AUC Infinity Obs Norm by Dose", "auc_per_dose", lzd(lambda p: p.aucifo / p.dose),
            "AUCIFO divided by the dose", ("AUCIFO",), winnonlin="AUCINF_D_obs",
            pknca="aucinf.obs.dn", needs_dose=True)
    yield P("CLFO", "Total CL Obs by F", "clearance", lzd(lambda p: p.dose / p.aucifo),
            "apparent clearance dose/AUCIFO", ("AUCIFO",), winnonlin="Cl_F_obs", pknca="cl.obs",
            needs_dose=True)
    yield P("VZFO", "Vz Obs by F", "volume", lzd(lambda p: p.dose / (p.lamz.lamz * p.aucifo)),
            "apparent terminal volume dose/(λz·AUCIFO)", ("AUCIFO", "LAMZ"), winnonlin="Vz_F_obs",
            pknca="vz.obs", needs_dose=True)
    for auc_type, text in AUC_TYPES.items():
        pknca = {"last": "aucint.last", "all": "aucint.all", "inf": "aucint.inf.obs"}[auc_type]
        yield P(f"AUCINT_{auc_type.upper()}", f"AUC from T1 to T2 ({text})", "auc", _aucint(auc_type),
                f"AUC over the interval [T1, T2] (values interpolated at T1 and T2), {text}",
                ("TLST", "LAMZ") if auc_type == "inf" else ("TLST",), pknca=pknca, interval=True,
                pptestcd="AUCINT")


#: Registry of NCA parameters by name.
PARAMETERS: dict[str, NCAParameter] = {
    p.name: p for group in (_observed_entries, _lambda_z_entries, _dose_and_interval_entries)
    for p in group()}

#: Parameters computed over (0, inf) by default.
DEFAULT_PROFILE_PARAMETERS = (
    "CMAX", "TMAX", "CLST", "TLST", "AUCLST", "AUCALL", "LAMZ", "LAMZHL", "R2", "R2ADJ",
    "LAMZNPT", "LAMZLL", "LAMZUL", "LAMZSPN", "AUCIFO", "AUCPEO",
)


@lru_cache(maxsize=None)
def dependents(name: str) -> frozenset:
    """``name`` and every parameter computed from it, directly or through others.

    An exclusion of ``name`` applies to all of them (PKNCA's ``get.parameter.deps``).
    """
    out = {name}
    grew = True
    while grew:
        more = {p.name for p in PARAMETERS.values() if out.intersection(p.depends)} - out
        out |= more
        grew = bool(more)
    return frozenset(out)


def resolve(name: str, auc_type: str) -> NCAParameter:
    """A registry entry by name; plain 'AUCINT' means the AUCINT of ``auc_type``."""
    from ctkinetics.errors import SettingsError

    key = name.strip().upper().replace(".", "_")
    if key == "AUCINT":
        key = f"AUCINT_{auc_type.upper()}"
    if key not in PARAMETERS:
        raise SettingsError(f"unknown NCA parameter {name!r}; known: {', '.join(PARAMETERS)}")
    return PARAMETERS[key]
