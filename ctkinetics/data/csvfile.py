"""Reading input files strictly, and CSV files as text, remembering each record's spreadsheet row.

One home for what lab exports do to CSV files: a UTF-8 byte-order mark, semicolon separators
with decimal commas (European spreadsheets), blank lines, stray spaces around cells. Values stay
strings here; each reader parses its own columns (:meth:`CsvTable.numbers` for numeric ones, so
a decimal comma is only ever read in a numeric column: the subject ``101,5`` stays ``101,5``).

Every structural problem is an input error naming the file (and row or column where there is
one), never a traceback or a hang: a path that is a folder, a FIFO or another non-regular file
(refused before it is opened, so reading cannot block), an unreadable file, text that is not
UTF-8, NUL bytes, a cell larger than :data:`MAX_CELL_CHARS`, lines ended by a carriage return
only, duplicated or empty column names with data below them, rows with more or fewer cells than
the header.
"""
from __future__ import annotations

import csv
import difflib
import io
import operator
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ctkinetics.data.cells import decimal_commas, parse_numbers
from ctkinetics.errors import DataValidationError

ROW_COL = "_row"  # spreadsheet row number of each record (header = 1)
MAX_CELL_CHARS = 100_000  # a cell longer than this is not lab data (csv's own limit is 131,072)


def regular_file(path, what: str = "file") -> Path:
    """``path`` when it names a readable regular file, else a :class:`DataValidationError`.

    A FIFO, socket or device is refused before it is opened (opening a FIFO for reading
    blocks until a writer appears), a folder is refused with a message saying so.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataValidationError.at(path, None, None, "file not found") from None
    except OSError as exc:
        raise DataValidationError.at(path, None, None, f"cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataValidationError.at(path, None, None, f"is a folder; expected a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise DataValidationError.at(path, None, None,
                                     f"is not a regular file (a FIFO, socket or device); expected a {what}")
    return path


def read_input_bytes(path, what: str = "file") -> bytes:
    """The bytes of an input file, with every way of failing turned into an input error."""
    path = regular_file(path, what)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataValidationError.at(path, None, None, f"cannot be read: {exc.strerror or exc}") from None


def read_input_text(path, what: str = "file") -> tuple[str, list[str]]:
    """UTF-8 text of an input file (a byte-order mark removed, noted) and the notes."""
    raw = read_input_bytes(path, what)
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
    return text, notes


def suggest(name: str, known) -> str:
    """' (did you mean 'lloq'?)' when ``name`` is close to one of ``known``, else ''."""
    close = difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def anagram_of(name: str, known) -> str | None:
    """The known column ``name`` is a typo of: the same letters in another order (LLQO for
    LLOQ, CPLLQO for CPLLOQ), else None. Names merely close to a known one (RACE, RATE) are
    not flagged: they are usually real columns.

    >>> anagram_of("LLQO", {"LLOQ", "DV"}), anagram_of("RACE", {"RATE"})
    ('LLOQ', None)
    """
    for k in sorted(known):
        if len(k) >= 3 and k != name and sorted(k) == sorted(name):
            return k
    return None


@dataclass
class CsvTable:
    """A CSV file read as strings. ``frame`` has one column per header cell plus ``_row``."""

    path: Path
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    decimal_comma: bool = False  # semicolon-separated: numeric cells may use a decimal comma
    _n_commas: int = 0

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def columns(self) -> list[str]:
        return [c for c in self.frame.columns if c != ROW_COL]

    @property
    def rows(self) -> np.ndarray:
        return self.frame[ROW_COL].to_numpy()

    def require(self, columns, problems) -> bool:
        """Record a problem for each missing required column; True when all are present."""
        missing = [c for c in columns if c not in self.frame.columns]
        for c in missing:
            have = ", ".join(self.columns)
            problems.add(self.name, 1, c, f"required column '{c}' is missing (header has: {have})"
                         + suggest(c, [h for h in self.columns if h not in columns]))
        return not missing

    def refuse_unknown(self, known, problems, hint: str = "") -> list[str]:
        """Record a problem for each column not in ``known`` (with a close match suggested)."""
        unknown = [c for c in self.columns if c not in known]
        for c in unknown:
            problems.add(self.name, 1, c, f"unknown column '{c}'{suggest(c, known)}: its values would not be "
                                          f"read (known columns: {', '.join(known)}){hint}")
        return unknown

    def text(self, column: str) -> pd.Series:
        return self.frame[column]

    def numbers(self, column: str, problems, *, what: str = "a number", required: bool = False,
                minimum: float | None = None, finite: bool = True) -> np.ndarray:
        """Parse one column to floats in one pass, recording a problem for every bad cell.

        Decimal commas are read as points in semicolon-separated files (counted in the notes).
        Returns NaN where a cell is empty or bad.
        """
        text = self.frame[column]
        if self.decimal_comma:
            text, n = decimal_commas(text)
            self._note_commas(n)
        values, bad = parse_numbers(text)
        rows = self.rows
        for i in np.flatnonzero(bad):
            problems.add(self.name, int(rows[i]), column, f"expected {what}, got '{text.iat[i]}'")
        if required:
            for i in np.flatnonzero(np.isnan(values) & ~bad):
                problems.add(self.name, int(rows[i]), column, f"expected {what}, got an empty cell")
        inf = np.isinf(values)
        if finite:
            for i in np.flatnonzero(inf):
                problems.add(self.name, int(rows[i]), column, f"expected a finite number, got '{text.iat[i]}'")
            values[inf] = np.nan
        if minimum is not None:
            low = values < minimum
            for i in np.flatnonzero(low):
                problems.add(self.name, int(rows[i]), column, f"expected {what} >= {minimum:g}, got '{text.iat[i]}'")
            values[low] = np.nan
        return values

    def _note_commas(self, n: int) -> None:
        if not n:
            return
        self._n_commas += n
        self.notes = [x for x in self.notes if "decimal comma" not in x]
        self.notes.append(f"{self._n_commas} decimal comma(s) in numeric columns read as decimal points")


def read_csv_text(path, lower_header: bool = True) -> CsvTable:
    """Read ``path`` into a :class:`CsvTable` of strings.

    Raises
    ------
    DataValidationError
        The path is not a readable regular file; the file is empty, not UTF-8 text, not CSV
        text (NUL bytes, a huge cell), has CR-only line endings, duplicated or unnamed columns,
        or ragged rows (all ragged rows are listed).
    """
    path = Path(path)
    text, notes = read_input_text(path, "CSV file")
    if not text.strip():
        raise DataValidationError.at(path, None, None, "the file is empty (expected a header row and data rows)")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataValidationError.at(path, line, None, "not readable as CSV text: it contains NUL bytes "
                                                       "(a binary file, or text in UTF-16?); save it as UTF-8 CSV")
    if "\r" in text and "\n" not in text:
        raise DataValidationError.at(
            path, None, None, "lines end with a carriage return only (classic Mac OS text); "
                              "save the file as CSV with LF or CRLF line endings")
    first = text.lstrip().splitlines()[0]
    sep = ","
    if first.count(";") > first.count(","):
        sep = ";"
        notes.append("semicolon-separated file read with ';' as separator")
    elif "\t" in first and first.count("\t") > first.count(","):
        sep = "\t"
        notes.append("tab-separated file read with tab as separator")
    fast = _plain_table(text, sep)
    rows = None if fast is not None else _csv_rows(path, text, sep)
    header = [h.strip() for h in (fast[0] if fast is not None else rows[0])]
    if lower_header:
        header = [h.lower() for h in header]
    if not any(header):
        raise DataValidationError.at(path, 1, None, "the header row is empty")
    _check_names(path, header)
    if fast is not None:
        frame, row_numbers = fast[1], list(range(2, len(fast[1]) + 2))
    else:
        frame, row_numbers = _records(path, rows, header, text, sep)
    header, frame = _drop_unnamed(path, header, frame, notes)
    frame[ROW_COL] = row_numbers
    return CsvTable(path, frame, notes, decimal_comma=(sep == ";"))


def _plain_table(text: str, sep: str):
    """``(header cells, frame)`` read by pandas' C parser when the file is plain (no quotes,
    no spaces around cells, no blank or ragged lines, no huge line), else None: the general
    path (csv module, every problem located) then reads it. Both give the same strings."""
    if '"' in text or _needs_strip(text, sep):
        return None
    lines = text.splitlines()
    width = lines[0].count(sep)
    if (len(lines) < 2 or set(map(operator.methodcaller("count", sep), lines)) != {width}
            or not all(map(operator.methodcaller("strip", sep), lines)) or max(map(len, lines)) > MAX_CELL_CHARS):
        return None
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, header=None, dtype=object, na_filter=False,
                            skip_blank_lines=False, quoting=csv.QUOTE_NONE, engine="c")
    except (ValueError, pd.errors.ParserError):
        return None
    if len(frame) != len(lines) or frame.shape[1] != width + 1:
        return None
    header = [str(h) for h in frame.iloc[0]]
    return header, frame.iloc[1:].reset_index(drop=True).set_axis(range(width + 1), axis=1)


def _csv_rows(path: Path, text: str, sep: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    rows = []
    try:
        for r in reader:
            rows.append(r)
    except csv.Error as exc:
        msg = str(exc)
        if "field larger" in msg:
            msg = f"a cell is larger than the CSV reader's limit ({csv.field_size_limit():,} characters)"
        raise DataValidationError.at(path, len(rows) + 1, None, f"not readable as CSV text: {msg}") from None
    return rows


def _needs_strip(text: str, sep: str) -> bool:
    """Whether any cell may have spaces around it (substring tests: fast on large files)."""
    if '"' not in text and " " not in text and "\t" not in text and text.rstrip("\n\r"):
        return False    # every test below needs a space or a tab
    return ('"' in text or text[:1] in " \t" or any(
        a + b in text for a in (sep, "\n") for b in (" ", "\t")) or any(
        a + b in text for a in (" ", "\t") for b in (sep, "\n", "\r")) or text.rstrip("\n\r")[-1:] in " \t")


def _records(path: Path, rows: list[list[str]], header: list[str], text: str, sep: str):
    """Data rows as a frame of stripped strings with their spreadsheet row numbers (blank
    rows skipped); ragged rows and oversized cells are problems."""
    from ctkinetics.data.problems import ProblemCollector

    width = len(header)
    pc = ProblemCollector()
    if _needs_strip(text, sep):
        rows = [[c.strip() for c in r] for r in rows]
    body = rows[1:]
    if set(map(len, body)) == {width} and all(map(any, body)):  # the usual file: one pass in C
        keep, numbers = body, list(range(2, len(body) + 2))
    else:
        keep, numbers = [], []
        for i, r in enumerate(body, start=2):
            if not any(r):
                continue  # blank line
            if len(r) != width:
                pc.add(path, i, None, f"has {len(r)} cells but the header has {width}")
                continue
            keep.append(r)
            numbers.append(i)
    pc.raise_if_any()
    if keep and max(map(len, text.splitlines())) > MAX_CELL_CHARS:
        for r, i in zip(keep, numbers):
            for j, c in enumerate(r):
                if len(c) > MAX_CELL_CHARS:
                    raise DataValidationError.at(path, i, header[j] or None,
                                                 f"a cell of {len(c):,} characters (at most {MAX_CELL_CHARS:,})")
    if not keep:
        raise DataValidationError.at(path, None, None, "the file has a header but no data rows")
    columns = list(zip(*keep))  # transposed in C: one tuple per column
    return pd.DataFrame({j: np.array(col, dtype=object) for j, col in enumerate(columns)}), numbers


def _check_names(path: Path, header: list[str]) -> None:
    """A column name given twice is refused (checked before the rows: it is the cause)."""
    from ctkinetics.data.problems import ProblemCollector

    pc = ProblemCollector()
    seen: dict[str, int] = {}
    for j, h in enumerate(header):
        if h and h in seen:
            pc.add(path, 1, h, f"column '{h}' appears twice in the header (columns {seen[h] + 1} and {j + 1}); "
                               "one value per column name")
        seen.setdefault(h, j)
    pc.raise_if_any()


def _drop_unnamed(path: Path, header: list[str], frame: pd.DataFrame, notes: list):
    """Columns without a name: ignored (noted) when empty, refused when they hold data."""
    from ctkinetics.data.problems import ProblemCollector

    pc = ProblemCollector()
    drop = []
    for j, h in enumerate(header):
        if h == "":
            if (frame[j] != "").any():
                pc.add(path, 1, None, f"column {j + 1} has data but no name in the header row")
            else:
                drop.append(j)
    pc.raise_if_any()
    if drop:
        notes.append(f"{len(drop)} empty unnamed column(s) ignored")
    keep = [j for j in range(len(header)) if j not in drop]
    frame = frame[keep]
    frame.columns = [header[j] for j in keep]
    return [header[j] for j in keep], frame
