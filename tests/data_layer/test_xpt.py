"""SAS transport files written by pyreadstat: the bytes against an independent hand encoding of
the TS-140 rules, the values against pandas' own XPORT reader, and the format's limits checked
before anything is written."""
import numpy as np
import pandas as pd
import pytest

from ctkinetics.data.xpt import check_structure, ibm_float, read_xpt, write_xpt
from ctkinetics.errors import DataValidationError


@pytest.mark.parametrize("x, hexa", [
    (1.0, "4110000000000000"),       # 1 = 16**1 * 1/16
    (-118.625, "c276a00000000000"),  # the IBM example: -118.625 = -0x76.A
    (0.5, "4080000000000000"),
    (0.0, "0000000000000000"),
])
def test_ibm_float_matches_hand_encoding(x, hexa):
    assert ibm_float(x).hex() == hexa


@pytest.fixture
def values():
    rng = np.random.default_rng(3)
    x = rng.lognormal(0, 15, 500) * rng.choice([-1, 1], 500)
    x[::17] = np.nan
    x[5] = 0.0
    x[6] = 300000000.0
    x[7] = 12345.678901234567
    return x


def test_numbers_written_are_the_hand_encoded_ibm_bytes(tmp_path, values):
    s = [f"S-{i}" if i % 7 else "" for i in range(len(values))]
    p = tmp_path / "t.xpt"
    write_xpt(pd.DataFrame({"X": values, "S": s}), p, "T")
    raw = p.read_bytes()
    lay = check_structure(raw, p)
    width_s = lay["record_length"] - 8
    data = raw[lay["data_start"]:]
    for i, x in enumerate(values):
        rec = data[i * lay["record_length"]:(i + 1) * lay["record_length"]]
        assert rec[:8] == ibm_float(x), (i, x)
        assert rec[8:].decode().rstrip() == s[i] and len(rec[8:]) == width_s


def test_values_read_back_exactly_by_pandas_and_by_read_xpt(tmp_path, values):
    s = [f"S-{i}" if i % 7 else "" for i in range(len(values))]
    p = tmp_path / "t.xpt"
    write_xpt(pd.DataFrame({"X": values, "S": s}), p, "T")
    back = pd.read_sas(p, format="xport", encoding="utf-8")
    x = back["X"].to_numpy().copy()
    x[np.abs(x) < 1e-78] = 0.0  # pandas decodes an IBM zero as 16**-65
    assert len(back) == len(values) and np.array_equal(x, values, equal_nan=True)
    assert back["S"].fillna("").tolist() == s
    ours = read_xpt(p)
    assert np.array_equal(ours["X"].to_numpy(), values, equal_nan=True)
    assert ours["S"].tolist() == s


@pytest.mark.parametrize("frame, words", [
    (pd.DataFrame({"TOOLONGNAME": [1.0]}), "is not a SAS name of at most 8 characters"),
    (pd.DataFrame({"S": ["x" * 201]}), "is 201 bytes; XPT version 5 character values hold at most 200 bytes"),
    (pd.DataFrame({"S": ["é" * 101]}), "is 202 bytes"),
    (pd.DataFrame({"X": [1e80]}), "outside the range of the IBM floating point"),
    (pd.DataFrame({"X": [2.0 ** 249]}), "outside the range of the IBM floating point"),
    (pd.DataFrame({"X": [1e-80]}), "outside the range of the IBM floating point"),
    (pd.DataFrame({"X": [np.inf]}), "outside the range of the IBM floating point"),
])
def test_limits_are_checked_before_writing(tmp_path, frame, words):
    p = tmp_path / "t.xpt"
    with pytest.raises(DataValidationError, match=words):
        write_xpt(frame, p, "T")
    assert not p.exists()


def test_the_largest_and_smallest_ibm_numbers_are_written(tmp_path):
    # the ends of the range write_xpt accepts (ReadStat turns 2**249 and above into inf)
    x = np.array([np.nextafter(2.0 ** 249, 0), -np.nextafter(2.0 ** 249, 0), 16.0 ** -65, 1.0])
    write_xpt(pd.DataFrame({"X": x}), tmp_path / "t.xpt", "T")
    assert np.array_equal(read_xpt(tmp_path / "t.xpt")["X"].to_numpy(), x)
