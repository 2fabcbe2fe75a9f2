"""From a data set and a model to numeric fit problems.

Two things are built here, and nothing is optimised:

* :class:`ParamLayout` — the estimated parameters in order: the model's kinetic parameters
  (on their declared scale: a ``log`` parameter is optimised as its logarithm), one scale
  factor per assay the model does not observe itself, and the residual SDs per analyte
  (always optimised on ln).
* :class:`SubjectData` — one subject's samples of the fitted analytes, each labelled
  quantified / censored / excluded by the BLQ method, with the reason of every exclusion
  (pre-infusion structural zeros, M1 drops, missing values, non-positive values on a log
  scale).

A model object needs ``name``, ``parameters`` (items with ``name, default, lower, upper,
unit, scale``), ``observables`` (kind -> expression), ``covariates`` and
``predict(params, times, covariates=None, observables=None) -> {kind: array}`` — see
DEVELOPERS.md; tests use small stand-ins with the same attributes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.likelihood import (
    CENSORED, EXCLUDED, QUANTIFIED, BLQMethod, ErrorModel,
)

_SCALE_BOUNDS = (1e-9, 1e9)


@dataclass(frozen=True)
class ParamSpec:
    """One estimated (or fixed) quantity of a fit.

    ``role`` is ``model``, ``scale`` (per-assay factor) or ``sigma`` (residual SD);
    ``log`` says whether it is optimised as its natural logarithm.
    """

    name: str
    role: str
    default: float
    lower: float
    upper: float
    log: bool
    unit: str = ""
    analyte: str = ""
    model_name: str = ""  # the model's own parameter name (role 'model'), or sigma kind

    def to_est(self, x):
        x = np.asarray(x, dtype=float)
        return np.log(x) if self.log else x

    def from_est(self, t):
        t = np.asarray(t, dtype=float)
        return np.exp(t) if self.log else t

    @property
    def est_bounds(self):
        lo, hi = self.lower, self.upper
        if self.log:
            lo = np.log(lo) if lo > 0 else -np.inf
            hi = np.log(hi) if np.isfinite(hi) and hi > 0 else np.inf
        return float(lo), float(hi)


@dataclass(frozen=True)
class AnalyteMap:
    """How one analyte is predicted: model observable ``kind``, times a scale factor or not."""

    analyte: str
    kind: str            # the model observable used
    scale_param: str     # name of the scale parameter, '' when the model observes it itself
    unit: str = ""


@dataclass(frozen=True)
class ParamLayout:
    """The ordered estimated parameters of a fit and the fixed ones."""

    specs: tuple[ParamSpec, ...]
    fixed: dict = field(default_factory=dict)   # model parameter name -> natural value
    analytes: tuple[AnalyteMap, ...] = ()
    prior: object = None                        # MAP fits: a prior.Prior (None: ML)
    #: residual SDs held fixed (not estimated): ParamSpecs of role ``sigma`` whose
    #: ``default`` is the value used (:mod:`.residual` says where it came from)
    fixed_sigmas: tuple[ParamSpec, ...] = ()

    @property
    def names(self):
        return [s.name for s in self.specs]

    def index(self, name):
        return self.names.index(name)


@dataclass(frozen=True)
class AnalyteData:
    """One subject's samples of one analyte that enter the likelihood machinery."""

    analyte: str
    times: np.ndarray
    y: np.ndarray        # value, substitute, or the limit for censored samples
    mode: np.ndarray     # EXCLUDED / QUANTIFIED / CENSORED
    rows: np.ndarray = None  # positions of these samples in SubjectData.records


#: Columns of :attr:`SubjectData.records`.
RECORD_COLUMNS = ["subject", "analyte", "time", "observed", "blq", "pre_infusion", "lloq",
                  "value_used", "status", "reason", "source_file", "source_row"]


@dataclass(frozen=True)
class SubjectData:
    """One subject's fitted samples: per analyte the likelihood arrays, and every sample
    (used or not) as ``records`` (built on first access from the ``columns`` arrays: a
    batch of a thousand subjects needs no thousand DataFrames until someone asks)."""

    subject: str
    covariates: dict
    analytes: tuple[AnalyteData, ...]
    columns: dict  # RECORD_COLUMNS -> array, every sample of the fitted analytes
    # issue 17 (SCI): re-infusions (rows time, amount) and time-varying covariates
    # (name -> TimeCourse), set by estimation/events.attach_events
    doses: np.ndarray | None = None
    courses: dict = field(default_factory=dict)

    @cached_property
    def records(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns, columns=RECORD_COLUMNS)

    @property
    def n_obs(self):
        return int(sum(np.count_nonzero(a.mode != EXCLUDED) for a in self.analytes))

    @property
    def n_blq(self):
        c = self.columns
        return int(np.count_nonzero(c["blq"] & ~c["pre_infusion"])) if len(c["blq"]) else 0

    def signature(self):
        """Subjects with the same signature can be stacked in one vectorised problem."""
        return tuple((a.analyte, a.times.tobytes()) for a in self.analytes)


# --------------------------------------------------------------------------------------
# the model side
# --------------------------------------------------------------------------------------
def model_observables(model) -> list[str]:
    obs = getattr(model, "observables", None) or {}
    return list(obs)


def analyte_maps(model, analytes, kinds, units) -> tuple[AnalyteMap, ...]:
    """Map each analyte to a model observable; unknown kinds get an estimated scale factor.

    An analyte whose kind the model observes (``qpcr``, ``flow``, ``bcell``, ``conc``) uses
    that observable and whatever conversion the model carries. Another analyte (e.g. flow
    data with a model that only predicts qPCR) is predicted as the model's primary observable
    times ``scale_<analyte>``, estimated — never a silent fixed conversion. When no analyte
    matches, the first is taken as the primary observable without a scale.
    """
    observables = model_observables(model)
    if not observables:
        raise SettingsError(f"model '{getattr(model, 'name', '?')}' declares no observables")
    primary = observables[0]
    maps, any_direct = [], any(kinds[a] in observables for a in analytes)
    for i, a in enumerate(analytes):
        kind = kinds[a]
        if kind in observables:
            maps.append(AnalyteMap(a, kind, "", units.get(a, "")))
        elif not any_direct and i == 0:
            maps.append(AnalyteMap(a, primary, "", units.get(a, "")))
        else:
            maps.append(AnalyteMap(a, primary, f"scale_{a}", units.get(a, "")))
    return tuple(maps)


def build_layout(model, maps, error: ErrorModel, data_by_analyte, fixed=None,
                 fixed_sigmas=None) -> ParamLayout:
    """Estimated parameters: model (declared scale), per-assay scales, residual SDs.

    ``data_by_analyte`` maps analyte -> quantified values pooled over the subjects being
    fitted; they only set the SD bounds and starts. ``fixed_sigmas`` (SD name, e.g.
    ``sigma_bcell`` -> value) are held at the value instead of estimated.
    """
    fixed = dict(fixed or {})
    fixed_sigmas = dict(fixed_sigmas or {})
    held = []
    names = [p.name for p in model.parameters]
    unknown = sorted(set(fixed) - set(names))
    if unknown:
        raise SettingsError(f"cannot fix unknown parameter(s) {unknown}; model "
                            f"'{model.name}' has {names}")
    specs = []
    for p in model.parameters:
        if p.name in fixed:
            continue
        scale = str(getattr(p, "scale", "linear")).lower()
        lo = -np.inf if p.lower is None else float(p.lower)
        hi = np.inf if p.upper is None else float(p.upper)
        specs.append(ParamSpec(p.name, "model", float(p.default), lo, hi, scale == "log",
                               getattr(p, "unit", "") or "", model_name=p.name))
    # per-assay scale factors: start at the ratio of median observed values
    direct = [m for m in maps if not m.scale_param]
    ref = np.nanmedian(data_by_analyte.get(direct[0].analyte, [np.nan])) if direct else np.nan
    for m in maps:
        if m.scale_param:
            med = np.nanmedian(data_by_analyte.get(m.analyte, [np.nan]))
            start = med / ref if np.isfinite(med / ref) and med / ref > 0 else 1.0
            specs.append(ParamSpec(m.scale_param, "scale", float(start), *_SCALE_BOUNDS, True,
                                   f"{m.unit} per model unit", analyte=m.analyte))
    for m in maps:
        y = np.asarray(data_by_analyte.get(m.analyte, []), dtype=float)
        for sname, start, (lo, hi) in zip(error.sigma_names, error.sigma_starts(y),
                                          error.sigma_bounds(y)):
            unit = "ln units" if (sname == "sigma" and error.log_transform) or \
                sname == "sigma_prop" else m.unit
            name = f"{sname}_{m.analyte}"
            if name in fixed_sigmas:   # held: its bounds only keep the SD floor below it
                v = float(fixed_sigmas[name])
                held.append(ParamSpec(name, "sigma", v, min(lo, v), max(hi, v), True, unit,
                                      analyte=m.analyte, model_name=sname))
                continue
            specs.append(ParamSpec(name, "sigma", float(start), lo, hi, True, unit,
                                   analyte=m.analyte, model_name=sname))
    return ParamLayout(tuple(specs), fixed, tuple(maps), fixed_sigmas=tuple(held))


# --------------------------------------------------------------------------------------
# the data side
# --------------------------------------------------------------------------------------
def _covariates_of(subject_row, model) -> dict:
    names = getattr(model, "covariates", None) or ()
    out = {}
    for name in names:
        if subject_row is not None and name in subject_row and pd.notna(subject_row[name]):
            out[name] = float(subject_row[name])
    return out


def _column(d, name, dtype, default):
    if name in d:
        return d[name].to_numpy(dtype) if dtype is not None else d[name].to_numpy()
    return np.full(len(d), default, dtype=dtype or (object if isinstance(default, str) else None))


def subject_data(subject, obs: pd.DataFrame, subject_row, model, maps,
                 blq: BLQMethod, error: ErrorModel) -> SubjectData:
    """Label one subject's samples (``obs``: that subject's rows of the fitted analytes)."""
    per = []
    for m in maps:
        d = obs[obs["analyte"] == m.analyte].sort_values("time", kind="stable")
        per.append({"time": d["time"].to_numpy(float), "value": d["value"].to_numpy(float),
                    "lloq": _column(d, "lloq", float, np.nan),
                    "blq": _column(d, "blq", bool, False),
                    "pre_infusion": _column(d, "pre_infusion", bool, False),
                    "source_file": _column(d, "source_file", None, ""),
                    "source_row": _column(d, "source_row", None, -1)})
    return _label(subject, per, _covariates_of(subject_row, model), maps, blq, error)


def subjects_data(subjects, obs: pd.DataFrame, subject_rows: dict, model, maps,
                  blq: BLQMethod, error: ErrorModel) -> list[SubjectData]:
    """:func:`subject_data` for many subjects at once: one sort of the whole table instead of
    a filter and a sort per subject (``obs``: the fitted analytes' rows; ``subject`` and
    ``analyte`` as str)."""
    if not len(obs):
        return [subject_data(s, obs, subject_rows.get(s), model, maps, blq, error)
                for s in subjects]
    subj_code = {s: i for i, s in enumerate(subjects)}
    an_code = {m.analyte: i for i, m in enumerate(maps)}
    sc = obs["subject"].map(subj_code).to_numpy()
    keep = ~pd.isna(sc)
    ac = obs["analyte"].map(an_code).to_numpy()
    keep &= ~pd.isna(ac)
    sc = sc[keep].astype(int)
    ac = ac[keep].astype(int)
    t = obs["time"].to_numpy(float)[keep]
    order = np.lexsort((t, ac, sc))                 # stable: ties keep the table's order
    sc, ac = sc[order], ac[order]
    cols = {"time": t[order], "value": obs["value"].to_numpy(float)[keep][order],
            "lloq": _column(obs, "lloq", float, np.nan)[keep][order],
            "blq": _column(obs, "blq", bool, False)[keep][order],
            "pre_infusion": _column(obs, "pre_infusion", bool, False)[keep][order],
            "source_file": _column(obs, "source_file", None, "")[keep][order],
            "source_row": _column(obs, "source_row", None, -1)[keep][order]}
    nA = len(maps)
    cell = sc * nA + ac
    bounds = np.searchsorted(cell, np.arange(len(subjects) * nA + 1))
    out = []
    for i, s in enumerate(subjects):
        per = []
        for k in range(nA):
            lo, hi = bounds[i * nA + k], bounds[i * nA + k + 1]
            per.append({c: v[lo:hi] for c, v in cols.items()})
        out.append(_label(s, per, _covariates_of(subject_rows.get(s), model), maps, blq,
                          error))
    return out


def _label(subject, per, covariates, maps, blq: BLQMethod, error: ErrorModel) -> SubjectData:
    """Likelihood arrays and records of one subject from its per-analyte sample arrays
    (sorted by time)."""
    parts, recs, offset = [], [], 0
    for m, c in zip(maps, per):
        time, value, lloq = c["time"], c["value"], c["lloq"]
        isblq, pre = c["blq"], c["pre_infusion"]
        n = len(time)
        reason = np.full(n, "", dtype=object)
        reason[pre] = "pre-infusion sample (structural zero)"
        before = ~pre & (time < 0)
        reason[before] = "sampled before infusion"
        missing = ~pre & ~before & ~isblq & ~np.isfinite(value)
        reason[missing] = "missing value"
        post = ~pre & ~before & ~missing
        y = np.full(n, np.nan)
        mode = np.full(n, EXCLUDED)
        yp, mp, rp = blq.prepare(value[post], lloq[post], isblq[post])
        y[post], mode[post] = yp, mp
        reason[post] = np.where(rp == "", reason[post], rp)
        if error.log_transform:
            bad = (mode != EXCLUDED) & ~(y > 0)
            reason[bad] = [f"non-positive {'limit' if mo == CENSORED else 'value'} on the "
                           "log scale of the proportional error model" for mo in mode[bad]]
            mode[bad] = EXCLUDED
        # samples before infusion stay in the records (with their reason) but are never
        # predicted: a model starts at the infusion
        keep = ~pre & ~before
        parts.append(AnalyteData(m.analyte, time[keep], y[keep], mode[keep],
                                 offset + np.flatnonzero(keep)))
        offset += n
        status = np.select([mode == QUANTIFIED, mode == CENSORED], ["quantified", "censored"],
                           "excluded").astype(object)
        status[(mode == QUANTIFIED) & isblq] = "substituted"
        recs.append({"subject": np.full(n, str(subject), dtype=object),
                     "analyte": np.full(n, m.analyte, dtype=object), "time": time,
                     "observed": value, "blq": isblq, "pre_infusion": pre, "lloq": lloq,
                     "value_used": y, "status": status, "reason": reason,
                     "source_file": c["source_file"], "source_row": c["source_row"]})
    columns = {k: (np.concatenate([r[k] for r in recs]) if recs else np.zeros(0))
               for k in RECORD_COLUMNS}
    return SubjectData(str(subject), covariates, tuple(parts), columns)
