"""Parsing cells: numbers, 0/1 flags and below-LLOQ markers (the one place that knows how labs
write them).

A value cell is a number, or one of the below-LLOQ markers ``BLQ``, ``<LLOQ``, ``LLOQ``,
``BQL``, ``ND`` (not detected), ``NQ``, or ``<N`` where N is that sample's LLOQ (``<20``).

Numbers are read strictly: ASCII digits, one optional sign, one optional decimal point and an
optional exponent (``12``, ``-0.5``, ``1.5e3``, ``.5``), or ``inf``. Python's own ``float()``
would also accept ``4_31.6`` (431.6), full-width digits (``４３１``), Arabic-Indic digits and
``nan``-with-payload spellings; a lab export containing such a cell is a mistake to report, not
a number to guess. Every function here has a vectorised twin (``*s``) over a pandas Series,
the one used by the readers (one pass per column, linear in the number of rows).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

BLQ_MARKERS = frozenset({"blq", "bql", "<lloq", "lloq", "<loq", "nd", "nq", "bloq", "<lod", "below lloq"})
MISSING_MARKERS = frozenset({"", "na", "nan", "."})
TRUE_FLAGS = frozenset({"1", "1.0", "true", "yes", "y", "t"})
FALSE_FLAGS = frozenset({"0", "0.0", "false", "no", "n", "f"})
_NUMBER = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
NUMBER = re.compile(rf"^{_NUMBER}$", re.ASCII)
_INF = re.compile(r"^[+-]?inf(?:inity)?$", re.ASCII | re.IGNORECASE)
_LESS_THAN = re.compile(r"^<\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)$", re.ASCII)
DECIMAL_COMMA = re.compile(r"^([+-]?[0-9]+),([0-9]+(?:[eE][+-]?[0-9]+)?)$", re.ASCII)
_DECIMAL_COMMA_LT = re.compile(r"^(<\s*[0-9]+),([0-9]+(?:[eE][+-]?[0-9]+)?)$", re.ASCII)

# kinds of a value cell (vectorised form)
NUMBER_KIND, BLQ_KIND, MISSING_KIND, BAD_KIND = 0, 1, 2, -1


@dataclass(frozen=True)
class ParsedValue:
    """A value cell, parsed. ``kind`` is 'number', 'blq' or 'missing'."""

    kind: str
    value: float = math.nan  # the number for 'number'
    lloq: float = math.nan   # the LLOQ the cell states itself ('<20' -> 20)


def _is_missing(cell) -> bool:
    return cell is None or (isinstance(cell, float) and math.isnan(cell))


def strict_float(text: str) -> float | None:
    """``text`` as a float when it is a plain ASCII number (or inf), else None.

    >>> strict_float("1.5e3"), strict_float("4_31.6"), strict_float("４３１")
    (1500.0, None, None)
    """
    s = text.strip()
    if NUMBER.match(s) or _INF.match(s):
        return float(s)
    return None


def parse_value(cell) -> ParsedValue | None:
    """Parse one reported value; ``None`` when it is neither a number nor a BLQ marker.

    >>> parse_value("<20")
    ParsedValue(kind='blq', value=nan, lloq=20.0)
    >>> parse_value("1.5e3").value
    1500.0
    """
    if _is_missing(cell):
        return ParsedValue("missing")
    s = str(cell).strip()
    if s.lower() in MISSING_MARKERS:
        return ParsedValue("missing")
    if s.lower() in BLQ_MARKERS:
        return ParsedValue("blq")
    m = _LESS_THAN.match(s)
    if m:
        return ParsedValue("blq", lloq=float(m.group(1)))
    x = strict_float(s)
    return None if x is None else ParsedValue("number", value=x)


def parse_flag(cell) -> bool | None:
    """A 0/1 flag cell (also true/false, yes/no, empty = 0); ``None`` when unreadable."""
    s = "" if _is_missing(cell) else str(cell).strip().lower()
    if s in TRUE_FLAGS:
        return True
    if s in FALSE_FLAGS or s == "":
        return False
    return None


def parse_number(cell) -> float | None:
    """A numeric cell: float, NaN when empty, ``None`` when unreadable ('abc', '1,2,3', '4_31.6')."""
    if _is_missing(cell):
        return math.nan
    s = str(cell).strip()
    if s.lower() in MISSING_MARKERS:
        return math.nan
    return strict_float(s)


# ---------------------------------------------------------------------------------------------
# Vectorised forms (one pass over a column)


def per_unique(values, fn, dtype=object) -> np.ndarray:
    """``fn`` applied once per distinct value and broadcast back to every cell (IDs, codes,
    dates and flags repeat a lot: a column of 200,000 cells often has a few hundred values).

    >>> per_unique(["a", "b", "a"], str.upper).tolist()
    ['A', 'B', 'A']
    """
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=False)
    out = np.empty(len(uniques), dtype=dtype)
    for k, u in enumerate(uniques):
        out[k] = fn(u)
    return out[codes]


_SPACES = (" ", "\t", "\r", "\f", "\v")


def _edge_space(joined: str) -> bool:
    """Whether a cell of a newline-joined column starts or ends with white space (substring
    tests, fast on a large column)."""
    if not any(w in joined for w in _SPACES):   # one memchr per character: no white space
        return False
    return (joined[:1] in _SPACES and joined != "") or joined[-1:] in _SPACES or any(
        "\n" + w in joined or w + "\n" in joined for w in _SPACES)


def _cells(series) -> list[str]:
    """Cells as a list of stripped strings; None/NaN become ''. Columns of a CSV file (already
    strings, already stripped) pass through one C-level join and search."""
    vals = series.tolist() if hasattr(series, "tolist") else list(series)
    try:
        joined = "\n".join(vals)
    except TypeError:  # not all strings
        return ["" if v is None or (isinstance(v, float) and v != v) else str(v).strip() for v in vals]
    return [v.strip() for v in vals] if _edge_space(joined) else vals


def decimal_commas(text: pd.Series) -> tuple[pd.Series, int]:
    """Replace decimal commas (``25,5``, ``<20,5``) by points; returns the text and the count.

    Used only for numeric columns of semicolon-separated files: an ID such as ``101,5`` is
    text and is never read through here.
    """
    cells = _cells(text)
    out, n = [], 0
    for c in cells:
        if "," in c and (DECIMAL_COMMA.match(c) or _DECIMAL_COMMA_LT.match(c)):
            c = c.replace(",", ".")
            n += 1
        out.append(c)
    return pd.Series(out, index=getattr(text, "index", None), dtype=object), n


_NOT_FLOAT = frozenset({"", ".", "NA", "na", "Na", "nA"})  # missing markers float() does not know
_ALL_NUMBERS = re.compile(rf"(?:{_NUMBER}|[+-]?inf(?:inity)?|nan|na|\.|)(?:\n(?:{_NUMBER}|[+-]?inf(?:inity)?|nan|na|\.|))*",
                          re.ASCII | re.IGNORECASE)


def parse_numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`parse_number`: ``(values, bad)``; empty cells are NaN and not bad.

    One regular-expression pass over the whole column decides whether every cell is a plain
    number or empty (the usual case); the column is then converted in one call. Otherwise
    each cell is checked on its own.

    >>> v, bad = parse_numbers(pd.Series(["1", "", "4_31.6", "-2e1"]))
    >>> v.tolist()[0], v.tolist()[3], bad.tolist()
    (1.0, -20.0, [False, False, True, False])
    """
    cells = _cells(series)
    joined = "\n".join(cells)
    if joined.count("\n") == len(cells) - 1 and _ALL_NUMBERS.fullmatch(joined):
        return np.array([c if c not in _NOT_FLOAT else "nan" for c in cells], dtype=float), np.zeros(len(cells), bool)
    match, inf = NUMBER.match, _INF.match
    ok = [bool(match(c) or inf(c)) for c in cells]
    values = np.array([c if k else "nan" for c, k in zip(cells, ok)], dtype=float)
    bad = np.array([not k and c.lower() not in MISSING_MARKERS for c, k in zip(cells, ok)], dtype=bool)
    return values, bad


def parse_values(series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised :func:`parse_value`: ``(kind, value, lloq)`` arrays.

    ``kind`` holds NUMBER_KIND, BLQ_KIND, MISSING_KIND or BAD_KIND (unreadable); ``lloq`` the
    LLOQ stated by a ``<N`` marker (NaN otherwise).
    """
    cells = _cells(series)
    values, bad = parse_numbers(cells)
    kind = np.where(np.isnan(values), MISSING_KIND, NUMBER_KIND)
    lloq = np.full(len(cells), np.nan)
    for i in np.flatnonzero(bad):  # markers and unreadable cells: usually a minority
        c = cells[i]
        if c.lower() in BLQ_MARKERS:
            kind[i] = BLQ_KIND
            continue
        m = _LESS_THAN.match(c)
        if m:
            kind[i], lloq[i] = BLQ_KIND, float(m.group(1))
        else:
            kind[i] = BAD_KIND
    return kind, values, lloq


def parse_flags(series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised 0/1 flags: ``(flag, stated, bad)``.

    ``stated`` is False for an empty cell (the flag says nothing), so a reader can tell
    ``blq = 0`` (a claim that can contradict a ``<20`` marker) from an empty ``blq`` cell.
    """
    code = per_unique(_cells(series), _flag_code, dtype=np.int8)
    true, false, empty = code == 1, code == 0, code == 2
    return true, true | false, ~(true | false | empty)


def _flag_code(cell: str) -> int:
    c = cell.lower()
    return 1 if c in TRUE_FLAGS else 0 if c in FALSE_FLAGS else 2 if c == "" else 3
