"""Reading a CSV file as text, robustly, remembering each record's spreadsheet row.

One home for the things lab exports do to CSV files: a UTF-8 byte-order mark, semicolon
separators with decimal commas (European spreadsheets), blank trailing lines, stray spaces
around cells. Values stay strings here; each reader parses and validates its own columns.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ctkinetics.errors import DataValidationError

ROW_COL = "_row"  # spreadsheet row number of each record (header = 1)
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+([eE][+-]?\d+)?$")


@dataclass
class CsvTable:
    """A CSV file read as strings. ``frame`` has one column per header cell plus ``_row``."""

    path: Path
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.path)

    def require(self, columns, problems) -> bool:
        """Record a problem for each missing required column; True when all are present."""
        missing = [c for c in columns if c not in self.frame.columns]
        for c in missing:
            have = ", ".join(c2 for c2 in self.frame.columns if c2 != ROW_COL)
            problems.add(self.name, 1, c, f"required column '{c}' is missing (header has: {have})")
        return not missing


def read_csv_text(path, lower_header: bool = True) -> CsvTable:
    """Read ``path`` into a :class:`CsvTable` of strings.

    Raises
    ------
    DataValidationError
        The file is missing, empty, not UTF-8 text or has no header.
    """
    path = Path(path)
    if not path.exists():
        raise DataValidationError.at(path, None, None, "file not found")
    raw = path.read_bytes()
    notes = []
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
        notes.append("UTF-8 byte-order mark removed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataValidationError.at(
            path, line, None, f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8 CSV"
        ) from None
    if not text.strip():
        raise DataValidationError.at(path, None, None, "the file is empty (expected a header row and data rows)")

    first = text.lstrip().splitlines()[0]
    sep = ","
    if first.count(";") > first.count(","):
        sep = ";"
        notes.append("semicolon-separated file read with ';' as separator")
    elif "\t" in first and first.count("\t") > first.count(","):
        sep = "\t"
        notes.append("tab-separated file read with tab as separator")

    rows = list(csv.reader(io.StringIO(text), delimiter=sep))
    header = [h.strip() for h in rows[0]]
    if lower_header:
        header = [h.lower() for h in header]
    if not any(header):
        raise DataValidationError.at(path, 1, None, "the header row is empty")
    records, row_numbers = [], []
    ragged = []
    for i, r in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in r):
            continue  # blank line
        if len(r) != len(header):
            ragged.append((i, len(r)))
            r = (r + [""] * len(header))[: len(header)]
        records.append([cell.strip() for cell in r])
        row_numbers.append(i)
    if ragged:
        from ctkinetics.data.problems import ProblemCollector

        pc = ProblemCollector()
        for i, n in ragged:
            pc.add(path, i, None, f"has {n} cells but the header has {len(header)}")
        pc.raise_if_any()
    if not records:
        raise DataValidationError.at(path, None, None, "the file has a header but no data rows")
    frame = pd.DataFrame(records, columns=header, dtype=object)
    frame[ROW_COL] = row_numbers

    if sep == ";":
        # Decimal commas only make sense with a semicolon separator.
        n_fixed = 0
        for c in header:
            col = frame[c].astype(str)
            mask = col.str.match(_DECIMAL_COMMA)
            if mask.any():
                frame.loc[mask, c] = col[mask].str.replace(",", ".", regex=False)
                n_fixed += int(mask.sum())
        if n_fixed:
            notes.append(f"{n_fixed} decimal comma(s) read as decimal points")
    return CsvTable(path, frame, notes)
