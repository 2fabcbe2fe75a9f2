"""A table as CSV text, column by column: what ``pandas.DataFrame.to_csv`` writes, faster.

``to_csv`` formats and quotes every cell on its own: for the 18,000-row ``nca.csv`` of a
1,000-participant study, where every row repeats the same subjects, parameters, units and
the 200-character ``method`` text, that is ~0.1 s of a command that should take well under a
second. Here each *distinct* cell of a column is formatted and quoted once (a column has a
few hundred distinct values at most, except measured numbers), the cells are picked by their
codes, and the rows are joined in one pass.

The text is byte for byte what ``to_csv(index=False, lineterminator="\\n")`` (QUOTE_MINIMAL)
writes, because the same rules are applied:

- ``float64``: Python's shortest round-trip repr (``0.1``, ``1e-05``, ``inf``; pandas writes
  ``ndarray.astype(str)``, which numpy defines as that repr), missing as an empty cell;
- integers and booleans (numpy, or pandas' nullable ``Int64``/``boolean``): ``str()``,
  missing as an empty cell;
- text (pandas ``str`` dtype, or object columns holding only text): as is, missing empty;
- quoting: a cell holding a comma, a double quote or a line break is quoted by the csv
  module itself (the writer pandas uses), so its rules hold on any Python version.

Any other column type (dates, categories, object columns mixing text and numbers), a
one-column table (the csv module quotes an empty single field), a column name that is not
text or a text cell holding a carriage return (which :mod:`.spreadsheet` writes with every
text cell quoted): :func:`frame_text` returns ``None`` and the caller lets pandas write it.
"""
from __future__ import annotations

import re

_NEEDS_CSV = re.compile(r'[",\r\n]')   # only such cells can be quoted under QUOTE_MINIMAL


def quoted(texts) -> list:
    """Each text as one CSV field (QUOTE_MINIMAL, the csv module's rules); ``str`` items.

    >>> quoted(["a", "b,c", 'a "b" c', ""])
    ['a', '"b,c"', '"a ""b"" c"', '']
    """
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    out = []
    for t in texts:
        if not _NEEDS_CSV.search(t):
            out.append(t)
            continue
        buf.seek(0)
        buf.truncate()
        writer.writerow((t, ""))     # two fields: the single-empty-field rule never applies
        out.append(buf.getvalue()[:-2])
    return out


def _coded(codes, texts: list):
    """The column's cells: ``texts[code]``, code -1 (missing) as an empty cell."""
    import numpy as np

    table = np.array(texts + [""], dtype=object)
    return table[codes]


def _float_cells(values):
    import numpy as np
    import pandas as pd

    bits = np.ascontiguousarray(values).view(np.int64)   # exact: 0.0 and -0.0 stay apart
    codes, uniq = pd.factorize(bits)
    codes = np.where(np.isnan(values), -1, codes)
    return _coded(codes, list(map(repr, uniq.view(np.float64).tolist())))


def column_cells(series, cell=None):
    """The CSV cells of one column (object array of ``str``), or ``None`` if its type is not
    one of those listed in the module docstring, or a text cell holds a carriage return.
    ``cell`` (e.g. :func:`~ctkinetics.outputs.spreadsheet.neutralise_cell`) is applied to
    each distinct text of a text column before it is quoted."""
    import numpy as np
    import pandas as pd

    dtype = series.dtype
    values = series.array
    text = isinstance(dtype, pd.StringDtype) or dtype == object
    if isinstance(dtype, np.dtype):
        array = series.to_numpy()
        if dtype == np.float64:
            return _float_cells(array)
        if dtype.kind not in "iub" and not (text and pd.api.types.infer_dtype(
                array, skipna=True) in ("string", "empty")):
            return None
        codes, uniq = pd.factorize(array)
        texts = [str(v) for v in uniq.tolist()]
    elif isinstance(dtype, pd.StringDtype):
        codes, uniq = pd.factorize(values)
        texts = list(uniq.to_numpy(object))
    elif dtype.kind in "iub":      # pandas' nullable Int64/boolean (or pyarrow) columns
        codes, uniq = pd.factorize(values)
        texts = [str(v) for v in uniq.to_numpy(object).tolist()]
    else:
        return None
    if text:
        if any("\r" in t for t in texts):
            return None
        if cell is not None:
            texts = [cell(t) for t in texts]
    return _coded(codes, quoted(texts))


def frame_text(frame, *, header: bool = True, cell=None) -> str | None:
    """``frame`` (without its index) as CSV text with ``\\n`` line ends, as ``to_csv`` writes
    it with QUOTE_MINIMAL; ``None`` where this module does not handle the table. ``cell`` is
    applied to the column names and to the distinct texts of text columns (see
    :func:`column_cells`)."""
    names = list(frame.columns)
    k, n = len(names), len(frame)
    if k < 2 or not all(isinstance(c, str) for c in names):
        return None
    columns = []
    for j in range(k):
        cells = column_cells(frame.iloc[:, j], cell)
        if cells is None:
            return None
        columns.append(cells)
    flat = [","] * (2 * k * n)        # cell, separator, cell, ..., cell, line end
    for j, cells in enumerate(columns):
        flat[2 * j::2 * k] = cells.tolist()
    flat[2 * k - 1::2 * k] = ["\n"] * n
    if cell is not None:
        names = [cell(c) for c in names]
    head = ",".join(quoted(names)) + "\n" if header else ""
    return head + "".join(flat)
