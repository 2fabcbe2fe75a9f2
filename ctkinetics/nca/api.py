"""``run_nca(data, ...)``: non-compartmental analysis of every participant and analyte."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.errors import DataValidationError
from ctkinetics.nca.engine import Profiles
from ctkinetics.nca.intervals import normalise_intervals
from ctkinetics.nca.options import NCAOptions
from ctkinetics.nca.parameters import PARAMETERS, UNIT_TYPES
from ctkinetics.nca.profiles import build_profiles
from ctkinetics.nca.quality import exclusion_reasons
from ctkinetics.nca.result import LONG_COLUMNS, NCAResult, exclusion_table

#: analyte kinds that are not exposures (see ctkinetics.data.Analyte.kind)
NON_EXPOSURE_KINDS = ("bcell",)


def _inputs(data, subjects):
    """(observations, subjects) from a Dataset or a plain observations DataFrame."""
    if hasattr(data, "observations"):
        obs = data.observations
        if subjects is None:
            subjects = getattr(data, "subjects", None)
    elif isinstance(data, pd.DataFrame):
        obs = data
    else:
        raise DataValidationError.at(None, None, None, f"run_nca() needs a Dataset or a DataFrame, got {type(data).__name__}")
    if subjects is None:
        cols = [c for c in ("subject", "dose_level", "dose") if c in obs.columns]
        subjects = obs[cols].drop_duplicates("subject") if "subject" in cols else pd.DataFrame()
    subjects = pd.DataFrame(subjects).copy()
    if "subject" not in subjects.columns:
        subjects["subject"] = pd.Series(dtype=str)
    subjects["subject"] = subjects["subject"].astype(str)
    if "dose" not in subjects.columns:
        subjects["dose"] = np.nan
    if "dose_level" not in subjects.columns:
        subjects["dose_level"] = subjects["dose"].map(lambda d: "" if pd.isna(d) else f"{d:g}")
    subjects["dose_level"] = subjects["dose_level"].fillna("").astype(str)
    subjects["dose"] = pd.to_numeric(subjects["dose"], errors="coerce")
    return obs, subjects[["subject", "dose_level", "dose"]].drop_duplicates("subject")


def run_nca(data, subjects=None, *, intervals=None, options: NCAOptions | None = None, analytes=None,
        **option_kwargs) -> NCAResult:
    """Non-compartmental analysis with PKNCA / Phoenix WinNonlin semantics.

    Parameters
    ----------
    data : Dataset or DataFrame
        A :class:`ctkinetics.data.Dataset` (its ``observations`` and ``subjects``) or an
        observations table with at least ``subject, time, value`` (optional ``analyte, blq,
        lloq, pre_infusion, unit, source_file, source_row``, and ``dose``/``dose_level``
        when ``subjects`` is not given). ``value`` is NaN for BLQ samples.
    subjects : DataFrame, optional
        ``subject, dose_level, dose``; needed for dose-normalised parameters, summaries
        by dose level and dose proportionality.
    intervals : DataFrame or list of dict, optional
        Table of ``start, end, parameters`` (see :mod:`ctkinetics.nca.intervals`).
        Default: the standard parameters over (0, inf) and AUCINT over 0–28 and 0–84.
    analytes : list of str, optional
        Analytes to analyse. Default: all, except, for a Dataset, analytes of kind 'bcell'
        (the antigen, whose pre-infusion level is no structural zero).
    options : NCAOptions, optional
        All choices; or give its fields as keyword arguments (``auc_method='linear'``,
        ``blq='first=keep,middle=drop,last=keep'``, ``auc_type='inf'``,
        ``lamz_window=(14, 84)``, ``cmax_exclude_before=0.25`` ...).

    Returns
    -------
    NCAResult
        Long table (subject, dose_level, analyte, parameter, start, end, value, unit,
        exclude), the exclusions table, the intervals and the options.

    Examples
    --------
    >>> import pandas as pd
    >>> obs = pd.DataFrame({"subject": "1", "time": [0, 1, 2, 4],
    ...                     "value": [0.0, 4.0, 2.0, 1.0]})
    >>> r = run_nca(obs, auc_method="linear")
    >>> float(r.get("AUCLST").iloc[0])   # 0.5·1·4 + 0.5·1·6 + 0.5·2·3
    8.0
    """
    if options is None:
        options = NCAOptions(**option_kwargs)
    elif option_kwargs:
        from dataclasses import replace

        options = replace(options, **option_kwargs)
    obs, subj = _inputs(data, subjects)
    if analytes is None and hasattr(data, "analyte_kind") and "analyte" in obs.columns:
        # B cells are the antigen, not an exposure: baseline is not a structural zero, so
        # the C(0) = 0 convention would be wrong. Analyse them only when asked explicitly.
        analytes = [a for a in pd.unique(obs["analyte"]) if data.analyte_kind(a) not in NON_EXPOSURE_KINDS]
    if analytes is not None:
        obs = obs[obs["analyte"].isin(list(analytes))]
    table = normalise_intervals(intervals, options.auc_type)
    ps = build_profiles(obs, options.blq)
    keys = ps.keys.merge(subj, on="subject", how="left")
    keys["dose_level"] = keys["dose_level"].fillna("")
    base = Profiles(ps.t, ps.c, ps.valid, ps.is_sample, options, keys["dose"].to_numpy(float))

    parts = _compute(table, base, keys["unit"].to_numpy(object), options)
    cat = {k: (np.concatenate(v) if v else np.empty(0)) for k, v in parts.items()}
    prof = cat.pop("profile").astype(int)
    results = pd.DataFrame({
        "subject": keys["subject"].to_numpy(object)[prof],
        "dose_level": keys["dose_level"].to_numpy(object)[prof],
        "analyte": keys["analyte"].to_numpy(object)[prof],
        **cat,
    }, columns=LONG_COLUMNS)
    results["exclude"] = results["exclude"].fillna("").astype(str)
    order = subj.dropna(subset=["dose"]).sort_values("dose", kind="stable")["dose_level"]
    dose_levels = tuple(dict.fromkeys(order.tolist()))
    return NCAResult(results, exclusion_table(ps.exclusions, results), table, options,
                     keys[["subject", "dose_level", "dose"]].drop_duplicates("subject").reset_index(drop=True),
                     dose_levels)


#: The historical name of :func:`run_nca` (``from ctkinetics.nca import nca``).
nca = run_nca


def _compute(table, base: Profiles, conc_units, options) -> dict:
    """Every requested (interval, parameter) for all profiles: column arrays of the long table.

    Interval AUCs use the whole profile; other parameters the points inside [start, end].
    The quality rules (:mod:`ctkinetics.nca.quality`) then fill ``exclude`` for values that
    were computed but fail them.
    """
    n = base.n
    uniq_units, unit_idx = np.unique(conc_units.astype(str), return_inverse=True)
    parts = {k: [] for k in ("profile", "parameter", "start", "end", "value", "unit", "exclude")}
    for start, end, names in table.itertuples(index=False):
        profs, quality = {}, {}
        for name in names:
            par = PARAMETERS[name]
            whole = par.interval
            if whole not in profs:
                profs[whole] = base if whole else base.restrict(start, end)
                same = [m for m in names if PARAMETERS[m].interval == whole]
                quality[whole] = exclusion_reasons(profs[whole], start, end, same)
            val, reason = par.compute(profs[whole], start, end)
            if name in quality[whole]:
                reason = np.where(reason == "", quality[whole][name], reason)
            fn = UNIT_TYPES[par.unit_type]
            units = np.array([fn(u, options.time_unit, options.dose_unit) for u in uniq_units], dtype=object)
            parts["profile"].append(np.arange(n))
            parts["parameter"].append(np.full(n, name, dtype=object))
            parts["start"].append(np.full(n, start))
            parts["end"].append(np.full(n, end))
            parts["value"].append(np.asarray(val, float))
            parts["unit"].append(units[unit_idx] if n else np.empty(0, object))
            parts["exclude"].append(np.asarray(reason, dtype=object))
    return parts
