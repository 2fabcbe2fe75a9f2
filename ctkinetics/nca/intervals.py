"""Requested intervals as a table: start, end, parameters (PKNCA's intervals data frame).

>>> default_intervals("last")[["start", "end"]].values.tolist()
[[0.0, inf], [0.0, 28.0], [0.0, 84.0]]
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError
from ctkinetics.nca.parameters import DEFAULT_PROFILE_PARAMETERS, resolve

#: Default interval AUCs (days after infusion): AUC0-28 and AUC0-84.
DEFAULT_AUC_INTERVALS = ((0.0, 28.0), (0.0, 84.0))


def default_intervals(auc_type: str, auc_intervals=DEFAULT_AUC_INTERVALS) -> pd.DataFrame:
    rows = [{"start": 0.0, "end": np.inf, "parameters": tuple(DEFAULT_PROFILE_PARAMETERS)}]
    rows += [{"start": float(a), "end": float(b), "parameters": (f"AUCINT_{auc_type.upper()}",)}
             for a, b in auc_intervals]
    return pd.DataFrame(rows, columns=["start", "end", "parameters"])


def _names(value):
    if isinstance(value, str):
        return [v for v in (s.strip() for s in value.replace(";", ",").split(",")) if v]
    return list(value)


def normalise_intervals(intervals, auc_type: str) -> pd.DataFrame:
    """Validate an interval table; parameter names are resolved against the registry.

    ``intervals`` is None (defaults), a DataFrame or a list of dicts with ``start``,
    ``end`` and ``parameters`` (a list or a comma-separated string; plain 'AUCINT' takes
    ``auc_type``).
    """
    if intervals is None:
        return default_intervals(auc_type)
    df = pd.DataFrame(intervals)
    for col in ("start", "end", "parameters"):
        if col not in df.columns:
            raise SettingsError(f"the interval table needs a '{col}' column")
    rows = []
    for start, end, params in zip(df["start"], df["end"], df["parameters"]):
        start, end = float(start), float(end)
        if not (np.isfinite(start) and end > start):
            raise SettingsError(f"interval [{start:g}, {end:g}] must have a finite start below its end")
        names = []
        for name in _names(params):
            p = resolve(name, auc_type)
            if p.interval and not np.isfinite(end):
                raise SettingsError(f"{p.name} needs a finite interval end")
            names.append(p.name)
        if not names:
            raise SettingsError(f"interval [{start:g}, {end:g}] requests no parameter")
        rows.append({"start": start, "end": end, "parameters": tuple(dict.fromkeys(names))})
    return pd.DataFrame(rows, columns=["start", "end", "parameters"])
