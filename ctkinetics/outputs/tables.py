"""Tables that read back: a CSV plus its column types (kept in the manifest).

A CSV cannot tell a missing text from an empty one, nor ``1`` from ``1.0``. :func:`as_written`
gives a table exactly as it reads back from its CSV (text columns as strings, missing text as
``""``); :func:`schema` records its column types and :func:`restore` applies them to the
strings read from the file, so that ``restore(read, schema(t)) == as_written(t)``.
"""
from __future__ import annotations

import math


def _kind(series) -> str:
    import pandas as pd

    t = pd.api.types
    if t.is_bool_dtype(series):
        return "boolean" if str(series.dtype) == "boolean" else "bool"
    if t.is_integer_dtype(series):
        return "Int64" if str(series.dtype).startswith("Int") else "int64"
    if t.is_float_dtype(series):
        return "float64"
    return "str"


def schema(df) -> list:
    """``[[column, type], ...]`` with types ``str``, ``float64``, ``int64``, ``Int64``,
    ``bool``, ``boolean``."""
    return [[str(c), _kind(df[c])] for c in df.columns]


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and math.isnan(v):
        return ""
    try:
        import pandas as pd

        if v is pd.NA or v is pd.NaT:
            return ""
    except ImportError:  # pragma: no cover
        pass
    return str(v)


def as_written(df):
    """``df`` as it reads back from its CSV: column names as strings, text columns as strings
    ('' for missing), numeric and boolean columns with the types :func:`schema` records."""
    import pandas as pd

    out = pd.DataFrame(df).reset_index(drop=True).copy()
    out.columns = [str(c) for c in out.columns]
    for j, (_, kind) in enumerate(schema(out)):
        s = out.iloc[:, j]
        if kind == "str":
            text = s.fillna("") if str(s.dtype) in ("str", "string") else s.map(_text)
            out.isetitem(j, text.astype(str))
        elif kind == "float64":
            out.isetitem(j, s.astype("float64"))
    return out


def restore(raw, columns: list):
    """Apply a :func:`schema` to a table read with every column as text (``dtype=str,
    keep_default_na=False``)."""
    import numpy as np
    import pandas as pd

    out = raw.copy()
    for j, (name, kind) in enumerate(columns):
        s = out.iloc[:, j]
        if kind == "str":
            out.isetitem(j, s.astype(str))
        elif kind in ("float64", "int64", "Int64"):
            num = pd.to_numeric(s.replace("", np.nan))
            out.isetitem(j, num.astype(kind))
        elif kind in ("bool", "boolean"):
            mapped = s.map({"True": True, "False": False, "": pd.NA})
            out.isetitem(j, mapped.astype(kind))
    out.columns = [c for c, _ in columns]
    return out
