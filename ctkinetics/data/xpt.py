"""SAS transport (XPORT v5) files, the format FDA submissions use for SDTM.

Reading goes through :func:`pandas.read_sas`; writing is implemented here (pandas has no
writer) following the SAS technical note TS-140: 80-byte header records, 140-byte namestr
records and numbers as 8-byte IBM hexadecimal floating point. IEEE doubles convert
exactly (53 significant bits fit in the 56-bit IBM fraction).
"""
from __future__ import annotations

import math
import struct
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ctkinetics.errors import DataValidationError

_MISSING = b"\x2e" + b"\x00" * 7  # SAS '.' missing value


def ibm_float(x: float) -> bytes:
    """IEEE double -> 8-byte IBM hexadecimal float (big-endian); NaN -> SAS missing '.'.

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
        return b"\x00" * 8  # below IBM's smallest magnitude (~5e-79): underflows to zero
    if e16 > 63:
        raise ValueError(f"{x!r} is outside the range of IBM floating point")
    return bytes([sign | (e16 + 64)]) + frac.to_bytes(7, "big")


def _rec(text: str) -> bytes:
    return text.ljust(80).encode("ascii")


def write_xpt(frame: pd.DataFrame, path, name: str, label: str = "") -> None:
    """Write ``frame`` as a one-member transport file; object columns become character."""
    path = Path(path)
    name = name.upper()[:8]
    stamp = datetime(2000, 1, 1).strftime("%d%b%y:%H:%M:%S").upper()  # fixed: files reproducible
    cols = []
    for c in frame.columns:
        if len(c) > 8:
            raise ValueError(f"XPT variable names have at most 8 characters: {c!r}")
        s = frame[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            cols.append((c, 1, 8))
        else:
            text = s.fillna("").astype(str)
            width = max(1, int(text.map(lambda v: len(v.encode("utf-8"))).max() if len(text) else 1))
            cols.append((c, 2, min(width, 200)))
    # pandas counts the observations of records of 80 bytes or less by guessing the padding
    # of the last 80-byte card, and miscounts when data end in blanks; above 80 bytes it
    # divides exactly. So the last character variable is widened to a record of 81 bytes:
    # values are unchanged (character values are blank-padded in XPT anyway).
    width_total = sum(w for _, _, w in cols)
    chars = [i for i, (_, typ, _) in enumerate(cols) if typ == 2]
    if width_total <= 80 and chars:
        c, typ, w = cols[chars[-1]]
        cols[chars[-1]] = (c, typ, w + 81 - width_total)
    elif width_total <= 80:
        cols.append(("_PAD", 2, 81 - width_total))
        frame = frame.assign(_PAD="")
    out = bytearray()
    out += _rec("HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!000000000000000000000000000000")
    out += _rec("SAS     SAS     SASLIB  9.4     X64_10HO" + " " * 24 + stamp)
    out += _rec(stamp)
    out += _rec("HEADER RECORD*******MEMBER  HEADER RECORD!!!!!!!000000000000000001600000000140")
    out += _rec("HEADER RECORD*******DSCRPTR HEADER RECORD!!!!!!!000000000000000000000000000000")
    out += _rec("SAS     " + name.ljust(8) + "SASDATA 9.4     X64_10HO" + " " * 24 + stamp)
    out += _rec(stamp + " " * 16 + label[:40].ljust(40) + "DATA    ")
    out += _rec(f"HEADER RECORD*******NAMESTR HEADER RECORD!!!!!!!000000{len(cols):04d}00000000000000000000")
    names = bytearray()
    pos = 0
    for i, (c, typ, width) in enumerate(cols, start=1):
        names += struct.pack(">hhhh", typ, 0, width, i)
        names += c.ljust(8).encode("ascii") + c[:40].ljust(40).encode("ascii")
        names += b" " * 8 + struct.pack(">hhh", 0, 0, 0) + b"\x00\x00"
        names += b" " * 8 + struct.pack(">hh", 0, 0) + struct.pack(">i", pos) + b"\x00" * 52
        pos += width
    names += b" " * (-len(names) % 80)
    out += names
    out += _rec("HEADER RECORD*******OBS     HEADER RECORD!!!!!!!000000000000000000000000000000")
    data = bytearray()
    columns = []
    for c, typ, width in cols:
        if typ == 1:
            columns.append([ibm_float(float(v)) for v in frame[c].to_numpy(dtype=float)])
        else:
            columns.append([v.encode("utf-8")[:width].ljust(width) for v in frame[c].fillna("").astype(str)])
    for row in zip(*columns):
        data += b"".join(row)
    data += b" " * (-len(data) % 80)
    out += data
    path.write_bytes(bytes(out))


def read_xpt(path) -> pd.DataFrame:
    """Read a transport file; character columns as stripped strings, numbers as floats."""
    try:
        df = pd.read_sas(path, format="xport", encoding="utf-8")
    except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
        raise DataValidationError.at(path, None, None, f"not a readable SAS transport (XPT) file: {exc}") from None
    df = df.drop(columns=["_PAD"], errors="ignore")
    for c in df.columns:
        if pd.api.types.is_float_dtype(df[c]):
            # pandas decodes an IBM zero (all bytes 0) as 16**-65 = 5.4e-79; no measured value is that small.
            df.loc[df[c].abs() < 1e-78, c] = 0.0
        if df[c].dtype == object or pd.api.types.is_string_dtype(df[c]):
            df[c] = df[c].fillna("").astype(str).str.strip()
    return df
