"""The column-by-column CSV serialiser against an independent writer: pandas' own
``DataFrame.to_csv`` (cell by cell through the csv module), which wrote every ctkinetics CSV
before. The texts must be equal byte for byte on tables built to break it: separators,
quotes and line breaks in text, missing values of every kind, -0.0, infinities, subnormal
and extreme floats, nullable integers and booleans, empty tables."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from ctkinetics.outputs import write_csv
from ctkinetics.outputs.csvtext import frame_text
from ctkinetics.outputs.spreadsheet import neutralise_cell, neutralise_frame

TEXTS = ["plain", "a,b", 'say "x"', "two\nlines", "", " padded ", "ünïcödé µg", "'", '"',
         ",", "x" * 300, "=1+1", '=HYPERLINK("http://x","click")', "+cmd|' /C calc'!A0",
         "@SUM(A1:A9)", "-2+3", "\tTAB", "'=already quoted", "-", "-1.5", "+3", "-2e-5"]


def _reference(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, lineterminator="\n")


def _random_frame(rng, n: int) -> pd.DataFrame:
    bits = rng.integers(0, 2 ** 63, n, dtype=np.uint64) | (
        rng.integers(0, 2, n, dtype=np.uint64) << np.uint64(63))
    floats = bits.view(np.float64).copy()
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e16, 1e-5, 1e-4, 5e-324, 0.1])
    mask = rng.random(n) < 0.3
    floats[mask] = rng.choice(special, mask.sum())
    floats[: min(n, special.size)] = special[: min(n, special.size)]
    text = np.array(TEXTS, dtype=object)[rng.integers(0, len(TEXTS), n)]
    with_missing = text.copy()
    with_missing[rng.random(n) < 0.2] = None
    ints = pd.array(rng.integers(-10 ** 12, 10 ** 12, n), dtype="Int64")
    ints[rng.random(n) < 0.2] = pd.NA
    flags = pd.array(rng.random(n) < 0.5, dtype="boolean")
    flags[rng.random(n) < 0.2] = pd.NA
    return pd.DataFrame({
        "f": floats, "rounded": np.round(rng.normal(0, 1e4, n), 3),
        "few": rng.choice([0.0, 28.0, np.inf, np.nan], n),
        "s": pd.array(with_missing, dtype="str"), "o": with_missing,
        "i": rng.integers(-5, 5, n), "b": rng.random(n) < 0.5, "I": ints, "B": flags,
        "u": rng.integers(0, 2 ** 63, n, dtype=np.uint64),
    })


@pytest.mark.parametrize("seed", range(4))
def test_equals_pandas_to_csv_on_adversarial_tables(seed):
    rng = np.random.default_rng(seed)
    df = _random_frame(rng, 400)
    got = frame_text(df)
    assert got is not None          # every one of these column types is serialised here
    assert got == _reference(df)
    assert frame_text(df, header=False) == df.to_csv(index=False, header=False,
                                                     lineterminator="\n")


def test_column_names_and_empty_tables():
    df = pd.DataFrame({"a,b": [1.5], 'q"': ["x"], "": [2]})
    assert frame_text(df) == _reference(df)
    empty = _random_frame(np.random.default_rng(0), 0)
    assert frame_text(empty) == _reference(empty)


def test_other_tables_are_left_to_pandas():
    """Types this writer does not serialise, and one-column tables (the csv module writes a
    lone empty field as ""), are refused so that the caller uses pandas."""
    assert frame_text(pd.DataFrame({"a": [""]})) is None
    assert frame_text(pd.DataFrame({"t": pd.to_datetime(["2026-01-01"]), "x": [1]})) is None
    assert frame_text(pd.DataFrame({"m": [1, "a"], "x": [1, 2]})) is None
    assert frame_text(pd.DataFrame({0: [1], 1: [2]})) is None


def test_the_writer_writes_what_pandas_wrote_for_the_neutralised_table():
    """write_csv = neutralise (OWASP, cell by cell in neutralise_frame) + serialise: the
    bytes are those pandas writes for the neutralised table, with and without a carriage
    return (which switches every text cell to quoted), formula-like names included."""
    df = _random_frame(np.random.default_rng(7), 200).rename(columns={"o": "=o"})
    assert frame_text(df, cell=neutralise_cell) is not None     # the one-pass path is tested
    for frame in (df, df.assign(**{"=o": ["\rCR"] + [None] * (len(df) - 1)})):
        safe = neutralise_frame(frame)
        buf = io.StringIO()
        write_csv(frame, buf)
        cr = frame["=o"].map(lambda v: isinstance(v, str) and "\r" in v).any()
        quoting = 2 if cr else 0    # csv.QUOTE_NONNUMERIC / QUOTE_MINIMAL
        assert buf.getvalue() == safe.to_csv(index=False, lineterminator="\n", quoting=quoting)
