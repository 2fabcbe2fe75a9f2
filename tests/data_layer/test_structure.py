"""Issue 19.3: every structural problem of an input file is an input error (exit 2, the file
named), never a traceback, exit 1 or a hang. Real files on disk, real `ctk` processes where a
hang is possible."""
import os
import signal
import subprocess
import sys

import pytest

from ctkinetics.cli.main import main
from ctkinetics.data import load_study, write_study
from ctkinetics.data.xpt import read_xpt
from ctkinetics.errors import DataValidationError


def _exit2(folder, capsys, *words):
    assert main(["validate", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    for w in words:
        assert w in err, err
    return err


def test_a_folder_where_a_file_belongs(mini, capsys):
    (mini / "observations.csv").unlink()
    (mini / "observations.csv").mkdir()
    _exit2(mini, capsys, "observations.csv", "is a folder; expected a CSV file")


def test_study_toml_that_is_a_folder(mini, capsys):
    (mini / "study.toml").unlink()
    (mini / "study.toml").mkdir()
    _exit2(mini, capsys, "study.toml", "is a folder; expected a TOML file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_is_refused_without_blocking(mini):
    (mini / "observations.csv").unlink()
    os.mkfifo(mini / "observations.csv")
    # nobody ever writes into the FIFO: opening it for reading would block forever (a real
    # process with a timeout, so that a regression fails instead of hanging the suite)
    out = subprocess.run([sys.executable, "-m", "ctkinetics.cli.main", "validate", str(mini)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "observations.csv" in out.stderr and "is not a regular file (a FIFO, socket or device)" in out.stderr


@pytest.mark.skipif(not hasattr(signal, "SIGALRM") or not hasattr(os, "mkfifo"), reason="no FIFOs or alarms")
@pytest.mark.parametrize("name", ["safety.csv", "study.toml", "subjects.csv"])
def test_other_fifos_are_refused_without_blocking(mini, capsys, name):
    (mini / name).unlink()
    os.mkfifo(mini / name)

    def hang(*_):
        raise TimeoutError(f"reading {name} blocked")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(60)
    try:
        _exit2(mini, capsys, name, "is not a regular file (a FIFO, socket or device)")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_named_as_a_nonmem_file_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "data.csv")
    out = subprocess.run([sys.executable, "-m", "ctkinetics.cli.main", "validate", str(tmp_path / "data.csv"),
                          "--format", "nonmem"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "is not a regular file" in out.stderr, out.stderr


@pytest.mark.parametrize("size, words", [
    (120_000, ["row 4", "a cell of 120,000 characters (at most 100,000)"]),
    (400_000, ["row 4", "not readable as CSV text", "larger than the CSV reader's limit"]),
])
def test_a_huge_cell(mini, capsys, size, words):
    lines = (mini / "observations.csv").read_text().splitlines()
    lines[3] = "S01,7,transgene," + "9" * size + ",copies/ug,,"
    (mini / "observations.csv").write_text("\n".join(lines) + "\n")
    _exit2(mini, capsys, "observations.csv", *words)


def test_cr_only_line_endings(mini, capsys):
    p = mini / "observations.csv"
    p.write_bytes(p.read_bytes().replace(b"\n", b"\r"))
    _exit2(mini, capsys, "observations.csv", "carriage return only")


def test_crlf_line_endings_are_fine(mini):
    for name in ("observations.csv", "subjects.csv"):
        p = mini / name
        p.write_bytes(p.read_bytes().replace(b"\n", b"\r\n"))
    assert load_study(mini, warn=False).samples("S01", "transgene")["value"].tolist()[2] == 12000.0


def test_duplicated_header(mini, capsys):
    p = mini / "observations.csv"
    lines = p.read_text().splitlines()
    lines[0] = "subject,time,analyte,value,unit,lloq,value"
    p.write_text("\n".join(lines) + "\n")
    _exit2(mini, capsys, "observations.csv", "row 1", "column 'value'", "appears twice in the header (columns 4 and 7)")


def test_column_with_data_but_no_name(mini, capsys):
    p = mini / "subjects.csv"
    p.write_text("subject,dose_level,dose,,sex\nS01,1,3.0e8,34,F\nS02,2,4.5e8,41,M\n")
    _exit2(mini, capsys, "subjects.csv", "row 1", "column 4 has data but no name")


def test_nul_bytes(mini, capsys):
    p = mini / "observations.csv"
    p.write_bytes(p.read_bytes().replace(b"12000", b"12\x0000"))
    _exit2(mini, capsys, "observations.csv", "not readable as CSV text")


def test_unreadable_file(mini, capsys):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    p = mini / "observations.csv"
    p.chmod(0)
    _exit2(mini, capsys, "observations.csv", "cannot be read")


# --------------------------------------------------------------------------------------------
# Truncated SAS transport files


@pytest.fixture
def sdtm(mini, tmp_path):
    d = tmp_path / "sdtm"
    write_study(load_study(mini, warn=False), d, "sdtm")
    return d


def _record_length(path) -> int:
    from ctkinetics.data.xpt import check_structure

    return check_structure(path.read_bytes(), path)["record_length"]


@pytest.mark.parametrize("cut", ["mid-record at 80", "not a multiple of 80", "last byte"])
def test_truncated_xpt_is_an_input_error(sdtm, capsys, cut):
    p = sdtm / "cp.xpt"
    raw = p.read_bytes()
    n = len(raw) - {"mid-record at 80": 160, "not a multiple of 80": 97, "last byte": 1}[cut]
    p.write_bytes(raw[:n])
    with pytest.raises(DataValidationError, match="truncated"):
        read_xpt(p)
    _exit2(sdtm, capsys, "cp.xpt", "truncated")


def test_xpt_cut_at_a_record_boundary_is_caught_by_the_record_count(sdtm, capsys):
    # A cut that falls on a record boundary which is also an 80-byte boundary cannot be told
    # from a complete version-5 file by its bytes; study.toml's record count catches it.
    from ctkinetics.data.xpt import check_structure

    p = sdtm / "cp.xpt"
    raw = p.read_bytes()
    lay = check_structure(raw, p)
    reclen, start = lay["record_length"], lay["data_start"]
    n_before = len(read_xpt(p))
    keep = next(k for k in range(n_before - 1, 0, -1) if (k * reclen) % 80 == 0)
    p.write_bytes(raw[:start + keep * reclen])
    assert len(read_xpt(p)) == keep < n_before  # the file alone reads "fine"
    _exit2(sdtm, capsys, "cp.xpt", f"holds {keep} records but study.toml [formats.sdtm.records] says cp = {n_before}")


def test_xpt_that_is_not_transport_at_all(sdtm, capsys):
    (sdtm / "dm.xpt").write_bytes(b"subject,dose\n" * 100)
    _exit2(sdtm, capsys, "dm.xpt", "not a complete SAS transport (XPT) file")


def test_plain_and_general_csv_paths_read_the_same_strings(monkeypatch):
    """Plain files go through pandas' C parser, the others through the csv module (which
    locates every problem); on the same file both give the same strings and row numbers."""
    from pathlib import Path

    import ctkinetics.data.csvfile as cf

    sample = Path(__file__).resolve().parents[2] / "data" / "sample"
    files = sorted(sample.glob("*/*.csv"))
    assert len(files) >= 4
    fast = {f: cf.read_csv_text(f, lower_header=False) for f in files}
    assert any(cf._plain_table(f.read_text(), ",") is not None for f in files)  # the C path is used
    monkeypatch.setattr(cf, "_plain_table", lambda text, sep: None)
    for f in files:
        slow = cf.read_csv_text(f, lower_header=False)
        assert list(slow.frame.columns) == list(fast[f].frame.columns), f
        assert slow.frame.astype(str).equals(fast[f].frame.astype(str)), f
