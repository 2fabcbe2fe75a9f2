"""SAS transport (XPORT) files, the format FDA submissions use for SDTM.

Reading and writing go through pyreadstat (ReadStat), the library of the field for SAS files.
What ReadStat does not check is checked here, so that a damaged or unrepresentable file is an
input error instead of silently different data:

- before writing (:func:`xpt_problems`): variable names of at most 8 characters (letters,
  digits, underscore, not starting with a digit), unique; labels of at most 40 characters;
  character values of at most 200 bytes (XPT version 5); numbers within the range of IBM
  hexadecimal floating point as ReadStat writes it (from 16**-65 ~ 5.4e-79 to 2**249 ~ 9.0e74
  in magnitude; others would become zeros or infinities);
- before reading (:func:`check_structure`): the file length is a multiple of 80 bytes, the
  headers are where TS-140 puts them, the variable positions add up to the record length,
  and the data end in whole records plus at most 79 blank padding bytes. A file cut at any
  byte count is refused, except one cut exactly at a record boundary that is also an 80-byte
  boundary: version 5 stores no record count, so such a cut cannot be told from a complete
  file by the file alone (the SDTM reader also checks the record counts study.toml carries
  for files ctkinetics wrote, and version 8 files carry their own count).

Numbers: IEEE doubles convert to IBM floats exactly (53 significant bits fit in the 56-bit
IBM fraction), so values read back bit for bit (tested against hand-encoded bytes and pandas'
independent reader).
"""
from __future__ import annotations

import math
import re
import struct
from pathlib import Path

import numpy as np
import pandas as pd

from ctkinetics.data.csvfile import read_input_bytes, regular_file
from ctkinetics.errors import DataValidationError

NAME_MAX, LABEL_MAX, CHAR_MAX = 8, 40, 200
IBM_MAX = 2.0 ** 249  # ReadStat writes larger numbers as its overflow pattern (read back as inf);
                      # IBM's own limit is 16**63 ~ 7.2e75
IBM_MIN = 16.0 ** -65  # smallest normalised IBM double; smaller ones would become 0
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,7}$", re.ASCII)
_MISSING = b"\x2e" + b"\x00" * 7  # SAS '.' missing value
_HDR = b"HEADER RECORD*******"


def ibm_float(x: float) -> bytes:
    """IEEE double -> 8-byte IBM hexadecimal float (big-endian); NaN -> SAS missing '.'.

    An independent encoder of the TS-140 rule, used by the tests to check the bytes that
    pyreadstat writes.

    >>> ibm_float(1.0).hex()
    '4110000000000000'
    """
    if x is None or math.isnan(x):
        return _MISSING
    if x == 0:
        return b"\x00" * 8
    sign = 0x80 if x < 0 else 0
    f, e = math.frexp(abs(x))  # abs(x) = f * 2**e, 0.5 <= f < 1
    e16 = -((-e) // 4)  # ceil(e / 4)
    frac = int(round(math.ldexp(f, e - 4 * e16 + 56)))  # f * 2**(e - 4*e16) in [1/16, 1), as 56 bits
    if frac >= 1 << 56:
        frac >>= 4
        e16 += 1
    if e16 < -64:
        return b"\x00" * 8
    if e16 > 63:
        raise ValueError(f"{x!r} is outside the range of IBM floating point")
    return bytes([sign | (e16 + 64)]) + frac.to_bytes(7, "big")


def xpt_problems(frame: pd.DataFrame, path, labels: dict | None = None) -> list[tuple]:
    """Everything in ``frame`` that a version-5 transport file cannot hold, as
    ``(column, record, message)`` tuples (record 1-based, None for the whole column)."""
    out = []
    seen = {}
    for c in frame.columns:
        name = str(c)
        if not _NAME.match(name):
            out.append((name, None, f"variable name '{name}' is not a SAS name of at most {NAME_MAX} characters "
                                     "(letters, digits, _)"))
        if name.upper() in seen:
            out.append((name, None, f"variable names '{seen[name.upper()]}' and '{name}' are the same in SAS"))
        seen[name.upper()] = name
        label = (labels or {}).get(c, "")
        if len(str(label)) > LABEL_MAX:
            out.append((name, None, f"label '{label}' is longer than {LABEL_MAX} characters"))
        s = frame[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            x = np.abs(s.to_numpy(float))
            with np.errstate(invalid="ignore"):
                bad = np.isinf(x) | (x >= IBM_MAX) | ((x > 0) & (x < IBM_MIN))
            for i in np.flatnonzero(bad)[:5]:
                out.append((name, int(i) + 1, f"the number {float(s.iat[i])!r} is outside the range of the IBM "
                                               "floating point XPT stores (5.4e-79 to 9.0e74 in magnitude)"))
        else:
            nbytes = s.fillna("").astype(str).str.encode("utf-8").str.len().to_numpy()
            for i in np.flatnonzero(nbytes > CHAR_MAX)[:5]:
                v = str(s.iat[i])
                out.append((name, int(i) + 1, f"the value '{v[:40]}…' is {nbytes[i]} bytes; XPT version 5 character "
                                               f"values hold at most {CHAR_MAX} bytes"))
    return out


def write_xpt(frame: pd.DataFrame, path, name: str, label: str = "", column_labels: dict | None = None) -> None:
    """Write ``frame`` as a one-member version-5 transport file (pyreadstat).

    Raises
    ------
    DataValidationError
        Something in ``frame`` does not fit the format (see :func:`xpt_problems`); nothing is
        written then.
    """
    import pyreadstat

    path = Path(path)
    problems = xpt_problems(frame, path, column_labels)
    if not _NAME.match(name) or len(label) > LABEL_MAX:
        problems.append((None, None, f"dataset name '{name}' / label '{label}' do not fit XPT version 5"))
    if problems:
        from ctkinetics.errors import Problem

        raise DataValidationError([Problem(str(path), r, c, m) for c, r, m in problems])
    out = frame.copy()
    for c in out.columns:
        s = out[c]
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            out[c] = s.fillna("").astype(str).astype(object)
        else:
            out[c] = s.astype(float)
    if len(out) and not any(pd.api.types.is_float_dtype(out[c]) for c in out.columns):
        blank = np.logical_and.reduce([(out[c] == "").to_numpy() for c in out.columns])
        if blank[-1]:
            raise ValueError("the last record of a character-only XPT file may not be blank (it would read as padding)")
    labels = [(column_labels or {}).get(c) for c in out.columns] if column_labels else None
    pyreadstat.write_xport(out, str(path), file_label=label, column_labels=labels, table_name=name.upper(),
                           file_format_version=5)


def read_xpt(path) -> pd.DataFrame:
    """Read a transport file: character columns as stripped strings, numbers as floats.

    The file's structure is checked first (:func:`check_structure`); every problem is a
    :class:`DataValidationError` naming the file.
    """
    import pyreadstat

    path = regular_file(path, "SAS transport (.xpt) file")
    raw = read_input_bytes(path)
    layout = check_structure(raw, path)
    try:
        df, meta = pyreadstat.read_xport(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
        raise DataValidationError.at(path, None, None, f"not a readable SAS transport (XPT) file: {exc}") from None
    _check_count(raw, layout, len(df), path)
    from ctkinetics.data.cells import _cells

    for c in df.columns:
        if df[c].dtype == object or pd.api.types.is_string_dtype(df[c]):
            df[c] = np.array(_cells(df[c]), dtype=object)  # stripped, '' for missing (one pass)
        else:
            df[c] = df[c].astype(float)
    return df.drop(columns=["_PAD"], errors="ignore")


def check_structure(raw: bytes, path) -> dict:
    """The layout of a one-member transport file: ``{'version', 'record_length', 'data_start',
    'count'}``; a :class:`DataValidationError` when it is damaged or truncated."""
    def bad(msg):
        return DataValidationError.at(path, None, None, f"not a complete SAS transport (XPT) file: {msg}")

    if len(raw) < 80 * 8:
        raise bad(f"only {len(raw)} bytes (headers alone take at least 640)")
    if len(raw) % 80:
        raise bad(f"its length ({len(raw):,} bytes) is not a multiple of 80: the file is truncated or damaged")
    lib = raw[:80]
    if lib.startswith(_HDR + b"LIBV8   HEADER RECORD"):
        version = 8
    elif lib.startswith(_HDR + b"LIBRARY HEADER RECORD"):
        version = 5
    else:
        raise bad("the first record is not a LIBRARY HEADER RECORD")
    pos = 240
    if not raw[pos:pos + 80].startswith(_HDR + b"MEMBER  HEADER RECORD" if version == 5 else _HDR + b"MEMBV8  HEADER RECORD"):
        raise bad("no MEMBER HEADER RECORD where it belongs (byte 240)")
    nlen = int(raw[pos + 74:pos + 78] or b"140")
    pos += 80 * 4  # member header, descriptor header, two descriptor records
    nam = raw[pos:pos + 80]
    if not nam.startswith(_HDR + (b"NAMESTR HEADER RECORD" if version == 5 else b"NAMSTV8 HEADER RECORD")):
        raise bad("no NAMESTR HEADER RECORD where it belongs")
    try:
        nvar = int(nam[54:58])
    except ValueError:
        raise bad("the NAMESTR header does not give the number of variables") from None
    pos += 80
    end_names = pos + nvar * nlen
    names = raw[pos:end_names]
    if len(names) < nvar * nlen:
        raise bad("the variable descriptions are cut short")
    reclen = 0
    for k in range(nvar):
        ntype, _, nlng = struct.unpack(">hhh", names[k * nlen:k * nlen + 6])
        npos = struct.unpack(">i", names[k * nlen + 84:k * nlen + 88])[0]
        if ntype not in (1, 2) or nlng <= 0 or (ntype == 1 and not 2 <= nlng <= 8) or npos != reclen:
            raise bad(f"the description of variable {k + 1} is damaged (type {ntype}, length {nlng}, position {npos})")
        reclen += nlng
    pos = end_names + (-(end_names) % 80)
    if version == 8:  # long labels (LABELV8/LABELV9 sections) may come before the OBS header
        found = raw.find(_HDR + b"OBSV8   HEADER RECORD", pos)
        pos = found if found >= 0 and found % 80 == 0 else pos
    obs = raw[pos:pos + 80]
    if not obs.startswith(_HDR + (b"OBS     HEADER RECORD" if version == 5 else b"OBSV8   HEADER RECORD")):
        raise bad("no OBS HEADER RECORD after the variable descriptions (only one dataset per file is supported)")
    count = None
    if version == 8:
        digits = obs[48:63].strip()
        count = int(digits) if digits.isdigit() else None
    if reclen <= 0:
        raise bad("the records have no variables")
    return {"version": version, "record_length": reclen, "data_start": pos + 80, "count": count}


def _check_count(raw: bytes, layout: dict, n: int, path) -> None:
    """The data hold ``n`` whole records and then at most 79 blank padding bytes."""
    data = raw[layout["data_start"]:]
    reclen = layout["record_length"]
    used = n * reclen
    tail = data[used:]
    if used > len(data) or len(tail) >= 80 or tail.strip(b" "):
        full, part = divmod(len(data), reclen)
        raise DataValidationError.at(
            path, None, None,
            f"truncated or damaged SAS transport (XPT) file: {len(data):,} data bytes hold {full} records of "
            f"{reclen} bytes and {part} bytes of a further one, but {n} record(s) were read; the data must end "
            "in whole records followed by at most 79 blank bytes")
    if layout["count"] is not None and layout["count"] != n:
        raise DataValidationError.at(path, None, None, f"the file says it holds {layout['count']} records but "
                                                      f"{n} were read: the file is truncated or damaged")
