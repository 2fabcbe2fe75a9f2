"""Turning result values into strict JSON (the one home for it).

numpy scalars become Python numbers, NaN and ±inf become ``null`` (JSON has no NaN), tuples
and arrays become lists, dict keys become strings, ``pandas.NA`` becomes ``null``.
"""
from __future__ import annotations

import math

import numpy as np


def jsonable(value):
    """A JSON-ready copy of ``value``.

    >>> jsonable({"n": np.int64(3), "p": np.float64("nan"), "levels": ("1", "2"), 1: np.bool_(True)})
    {'n': 3, 'p': None, 'levels': ['1', '2'], '1': True}
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if value is None:
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    return value


def records(frame) -> list[dict]:
    """A DataFrame as a JSON-ready list of row dicts."""
    return [jsonable(row) for row in frame.to_dict(orient="records")]
