"""Spreadsheet-safe CSV: the one writer (and its reader) of every CSV ctkinetics produces.

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets; a participant ID such as
``=HYPERLINK("http://x", "click")`` or ``+cmd|' /C calc'!A0`` in a CSV that a committee opens
is a formula injection (OWASP, "CSV Injection"). The OWASP rule is applied to every text cell
and every column name:

- a text cell starting with one of those characters is written with a leading single quote
  (``'=HYPERLINK(...)``), which spreadsheets show as text;
- plain numbers are left alone: numeric columns are never touched, and a text cell that is
  only a number (``-1.5``, ``+3``, ``-2e-5``) is not a formula;
- a cell that already starts with quotes before such a character gets one more quote, so
  that :func:`read_csv` (which removes exactly one) gives back every cell unchanged.

>>> neutralise_cell("=1+1"), neutralise_cell("-1.5"), neutralise_cell("'=x"), neutralise_cell("ok")
("'=1+1", '-1.5', "''=x", 'ok')
>>> restore_cell("'=1+1"), restore_cell("''=x"), restore_cell("'quoted")
('=1+1', "'=x", "'quoted")
"""
from __future__ import annotations

import re

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")
# one regex for whole columns: quotes, then a trigger character
_RISKY = r"^'*[=+\-@\t\r]"
_RISKY_START = re.compile(_RISKY)


def neutralise_cell(text: str) -> str:
    """``text`` as it is safe to write in a CSV cell (see the module docstring)."""
    if not text:
        return text
    rest = text.lstrip("'")
    if not rest or rest[0] not in TRIGGERS:
        return text
    if rest is text and _PLAIN_NUMBER.match(text):
        return text
    return "'" + text


def restore_cell(text: str) -> str:
    """The inverse of :func:`neutralise_cell`."""
    if text.startswith("'") and text.lstrip("'")[:1] in TRIGGERS and text.lstrip("'"):
        return text[1:]
    return text


def _is_text_column(series) -> bool:
    import pandas as pd

    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
                or pd.api.types.is_datetime64_any_dtype(series))


def _is_string_dtype(series) -> bool:
    """A pandas string column (``str``/``string`` dtype), not an object column."""
    import pandas as pd

    return isinstance(series.dtype, pd.StringDtype)


def _distinct(series) -> list:
    """The distinct non-missing values of a string column (hashed in C: a table of 18,000
    rows has a few hundred distinct subjects, parameters and reasons)."""
    import pandas as pd

    return list(pd.unique(series.dropna().to_numpy(object)))


def neutralise_frame(df):
    """A copy of ``df`` whose text cells and column names are spreadsheet-safe."""
    import pandas as pd

    out = df.copy(deep=False)
    for j, col in enumerate(df.columns):
        s = df.iloc[:, j]
        if not _is_text_column(s) or not len(s):
            continue
        if _is_string_dtype(s):  # only str cells: check each distinct value once
            risky_values = [v for v in _distinct(s) if _RISKY_START.match(v)]
            if risky_values:
                mask = s.isin(risky_values).to_numpy(bool)
                fixed = s.astype(object).to_numpy(copy=True)
                fixed[mask] = [neutralise_cell(v) for v in fixed[mask]]
                out.isetitem(j, pd.Series(fixed, index=s.index, dtype=object))
            continue
        try:   # an object column of text (and missing values): one vectorised regex
            risky = s.str.contains(_RISKY, regex=True, na=False).to_numpy(bool)
        except (AttributeError, TypeError):   # text mixed with numbers: cell by cell
            risky = s.map(lambda v: isinstance(v, str) and bool(_RISKY_START.match(v))
                          ).to_numpy(bool)
        if risky.any():
            fixed = s.astype(object).copy()
            fixed[risky] = [neutralise_cell(v) for v in fixed[risky]]
            out.isetitem(j, fixed)
    out.columns = pd.Index([neutralise_cell(c) if isinstance(c, str) else c for c in df.columns])
    return out


def _csv_mode(frame) -> int:
    """QUOTE_MINIMAL, or QUOTE_NONNUMERIC when a text cell holds a carriage return: such a
    cell is only safe quoted, and with "\\n" line ends the csv module does not quote it by
    itself, so such a table has every text cell quoted."""
    import csv

    cr = any(any("\r" in v for v in _distinct(frame[c])) if _is_string_dtype(frame[c])
             else frame[c].map(lambda v: isinstance(v, str) and "\r" in v).any()
             for c in frame.columns if _is_text_column(frame[c]))
    return csv.QUOTE_NONNUMERIC if cr else csv.QUOTE_MINIMAL


def write_csv(df, path_or_buffer, *, header: bool = True) -> None:
    """Write ``df`` (without its index) as spreadsheet-safe CSV, ``\\n`` line ends, UTF-8."""
    text = csv_text(df, header=header)
    if hasattr(path_or_buffer, "write"):
        path_or_buffer.write(text)
    else:
        with open(path_or_buffer, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)


def csv_text(df, *, header: bool = True) -> str:
    """``df`` (without its index) as spreadsheet-safe CSV text, ``\\n`` line ends.

    The text is what :meth:`pandas.DataFrame.to_csv` writes for the neutralised frame
    (:func:`neutralise_frame`). The common column types are neutralised and serialised in
    one pass by :func:`ctkinetics.outputs.csvtext.frame_text` (each distinct text of a
    column checked, neutralised and quoted once); other tables by pandas itself."""
    import pandas as pd

    from ctkinetics.outputs.csvtext import frame_text

    frame = pd.DataFrame(df)
    text = frame_text(frame, header=header, cell=neutralise_cell)
    if text is None:
        frame = neutralise_frame(frame)
        text = frame.to_csv(index=False, header=header, lineterminator="\n",
                            quoting=_csv_mode(frame))
    return text


def read_csv(path, **kwargs):
    """Read a CSV written by :func:`write_csv`: the quotes it added are removed again
    (text columns and column names). Keyword arguments go to :func:`pandas.read_csv`."""
    import pandas as pd

    df = pd.read_csv(path, **kwargs)
    df.columns = pd.Index([restore_cell(c) if isinstance(c, str) else c for c in df.columns])
    for j in range(df.shape[1]):
        s = df.iloc[:, j]
        if not _is_text_column(s) or not len(s):
            continue
        mask = s.map(lambda v: isinstance(v, str) and v.startswith("'")).to_numpy(bool)
        if mask.any():
            fixed = s.astype(object).copy()
            fixed[mask] = [restore_cell(v) for v in s[mask]]
            df.isetitem(j, fixed.astype(s.dtype))
    return df
