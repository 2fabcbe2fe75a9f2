"""Parsing cells: numbers, 0/1 flags and below-LLOQ markers (the one place that knows how labs
write them).

A value cell is a number, or one of the below-LLOQ markers ``BLQ``, ``<LLOQ``, ``LLOQ``,
``BQL``, ``ND`` (not detected), ``NQ``, or ``<N`` where N is that sample's LLOQ (``<20``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

BLQ_MARKERS = frozenset({"blq", "bql", "<lloq", "lloq", "<loq", "nd", "nq", "bloq", "<lod", "below lloq"})
_LESS_THAN = re.compile(r"^<\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)$")
TRUE_FLAGS = frozenset({"1", "1.0", "true", "yes", "y", "t"})
FALSE_FLAGS = frozenset({"0", "0.0", "false", "no", "n", "f", ""})


@dataclass(frozen=True)
class ParsedValue:
    """A value cell, parsed. ``kind`` is 'number', 'blq' or 'missing'."""

    kind: str
    value: float = math.nan  # the number for 'number'
    lloq: float = math.nan   # the LLOQ the cell states itself ('<20' -> 20)


def parse_value(cell) -> ParsedValue | None:
    """Parse one reported value; ``None`` when it is neither a number nor a BLQ marker.

    >>> parse_value("<20")
    ParsedValue(kind='blq', value=nan, lloq=20.0)
    >>> parse_value("1.5e3").value
    1500.0
    """
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return ParsedValue("missing")
    s = str(cell).strip()
    if s == "" or s.lower() in {"na", "nan", "."}:
        return ParsedValue("missing")
    if s.lower() in BLQ_MARKERS:
        return ParsedValue("blq")
    m = _LESS_THAN.match(s)
    if m:
        return ParsedValue("blq", lloq=float(m.group(1)))
    try:
        return ParsedValue("number", value=float(s))
    except ValueError:
        return None


def parse_flag(cell) -> bool | None:
    """A 0/1 flag cell (also true/false, yes/no, empty = 0); ``None`` when unreadable."""
    s = "" if cell is None or (isinstance(cell, float) and math.isnan(cell)) else str(cell).strip().lower()
    if s in TRUE_FLAGS:
        return True
    if s in FALSE_FLAGS:
        return False
    return None


def parse_number(cell) -> float | None:
    """A numeric cell: float, NaN when empty, ``None`` when unreadable ('abc', '1,2,3')."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return math.nan
    s = str(cell).strip()
    if s == "" or s.lower() in {"na", "nan", "."}:
        return math.nan
    try:
        return float(s)
    except ValueError:
        return None
