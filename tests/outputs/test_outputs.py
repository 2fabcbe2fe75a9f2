"""The output-writing home: spreadsheet-safe CSV, tables that read back, atomic folders with
their manifest, and the output checks made before any computation.

Expected values are written out by hand from the OWASP rule (prefix a text cell starting
with = + - @ tab or CR by a single quote) and from what a folder must hold after a crash."""
from __future__ import annotations

import hashlib
import io
import json
import os

import numpy as np
import pandas as pd
import pytest

from ctkinetics.errors import OutputError, OutputWriteError
from ctkinetics.outputs import (
    OutputFolder, atomic_file, check_folder, neutralise_cell, read_csv, read_table, verify,
    write_csv,
)
from ctkinetics.outputs import faults
from ctkinetics.outputs.tables import as_written

EVIL = ['=HYPERLINK("http://x","click")', "+cmd|' /C calc'!A0", "@SUM(A1:A9)", "-2+3",
        "\tTAB", "\rCR", "'=already quoted", "-", "ok", "-1.5", "+3", "-2e-5", ""]


def test_cells_by_the_owasp_rule():
    expected = ["'" + EVIL[0], "'" + EVIL[1], "'@SUM(A1:A9)", "'-2+3", "'\tTAB", "'\rCR",
                "''=already quoted", "'-", "ok", "-1.5", "+3", "-2e-5", ""]
    assert [neutralise_cell(c) for c in EVIL] == expected


def test_written_csv_is_safe_in_text_columns_and_names_and_reads_back():
    df = pd.DataFrame({"subject": EVIL, "value": np.linspace(-3, 3, len(EVIL)),
                       "n": np.arange(-6, len(EVIL) - 6), "=bad name": ["x"] * len(EVIL)})
    buf = io.StringIO()
    write_csv(df, buf)
    text = buf.getvalue()
    raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    # no text cell (nor header) starts with a formula character unless it is a plain number
    for col in ("subject", "'=bad name"):
        for cell in raw[col]:
            assert not cell[:1] in ("=", "+", "-", "@", "\t", "\r") or cell in ("-1.5", "+3", "-2e-5")
    assert "'=bad name" in raw.columns
    # negative numbers in numeric columns are written as numbers
    assert raw["value"].iloc[0] == "-3.0" and raw["n"].iloc[0] == "-6"
    back = read_csv(io.StringIO(text), keep_default_na=False)
    assert list(back["subject"]) == EVIL and "=bad name" in back.columns


def test_tables_read_back_with_their_types(tmp_path):
    df = pd.DataFrame({"subject": ["=a", None, "b"], "x": [1.0, np.nan, -np.inf],
                       "k": [1, 2, 3], "ok": [True, False, True],
                       "m": pd.array([1, None, 3], dtype="Int64")})
    with OutputFolder(tmp_path / "out") as out:
        out.write_csv("t.csv", df)
        out.commit()
    back = read_table(tmp_path / "out", "t.csv")
    pd.testing.assert_frame_equal(back, as_written(df))
    assert list(back["subject"]) == ["=a", "", "b"] and back["x"].iloc[2] == -np.inf


def _write_run(target, names, text="x", failures=()):
    with OutputFolder(target, command="ctk test") as out:
        for n in names:
            out.write_text(n, f"{n}:{text}\n" * 100)
        return out.commit(failures=failures)


def test_manifest_lists_every_file_with_its_hash_and_is_written_last(tmp_path):
    m = _write_run(tmp_path / "out", ["a.csv", "sub/b.html"], failures=["S1: solver failed"])
    doc = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert doc["status"] == "complete with failures" and doc["failures"] == ["S1: solver failed"]
    assert doc["command"] == "ctk test" and doc["ctkinetics"]
    for f in doc["files"]:
        data = (tmp_path / "out" / f["name"]).read_bytes()
        assert f["sha256"] == hashlib.sha256(data).hexdigest() and f["bytes"] == len(data)
    assert sorted(m.names) == ["a.csv", "sub/b.html"]
    assert verify(tmp_path / "out") == []
    (tmp_path / "out" / "a.csv").write_text("tampered")
    assert any("a.csv" in p for p in verify(tmp_path / "out"))


def test_a_rerun_replaces_the_previous_folder_whole(tmp_path):
    _write_run(tmp_path / "out", ["report.html", "mtd.csv", "escalation_levels.csv"], "study A")
    _write_run(tmp_path / "out", ["report.html"], "study B")
    assert sorted(os.listdir(tmp_path / "out")) == ["manifest.json", "report.html"]
    assert "study B" in (tmp_path / "out" / "report.html").read_text()
    assert verify(tmp_path / "out") == []
    assert [p.name for p in tmp_path.iterdir()] == ["out"]   # no temporary folder left


def test_output_problems_are_found_before_any_computation(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_folder(tmp_path / "file")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_folder(tmp_path / "file" / "out")
    study = tmp_path / "study"
    (study / "x").mkdir(parents=True)
    with pytest.raises(OutputError, match="is the input"):
        check_folder(study, inputs=[study])
    with pytest.raises(OutputError, match="holds the input"):
        check_folder(tmp_path, inputs=[study / "x"])
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"did not write \(notes.txt\)"):
        check_folder(mine)
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(OutputError, match="cannot write"):
            check_folder(ro / "out")


@pytest.mark.parametrize("exchange", [True, False], ids=["rename-exchange", "two-renames"])
@pytest.mark.parametrize("kind", ["crash", "enospc"])
def test_a_fault_at_any_write_never_leaves_a_complete_manifest_over_wrong_files(
        tmp_path, kind, exchange, monkeypatch):
    """Every checkpoint of a rerun (study B over study A), one fault each: afterwards the folder
    is study A complete, study B complete, or (crash between two renames) absent with A kept
    aside and put back by the next run; never a manifest that disagrees with its files."""
    from ctkinetics.outputs import folder

    if not exchange:
        monkeypatch.setattr(folder, "_exchange", lambda a, b: False)
    target = tmp_path / "out"
    _write_run(target, ["report.html", "mtd.csv"], "A")
    faults.arm(None)
    _write_run(target, ["report.html"], "B")    # a dry run counts the checkpoints of a rerun
    n = faults.passed()
    assert n == (3 if exchange else 4)   # report.html, manifest, rename (, second rename)
    _write_run(target, ["report.html", "mtd.csv"], "A")
    try:
        for k in range(1, n + 1):
            faults.arm(kind, k)
            try:
                _write_run(target, ["report.html"], "B")
            except faults.InjectedCrash:
                pass
            except OutputWriteError as exc:
                assert "No space left on device" in str(exc) and "nothing was replaced" in str(exc)
            faults.arm(None)
            if target.exists():
                assert verify(target) == [], f"fault at checkpoint {k}"
                html = (target / "report.html").read_text()
                assert ("report.html:A" in html) != ("report.html:B" in html)
                assert (target / "mtd.csv").exists() == ("report.html:A" in html)
            else:
                assert kind == "crash"
            # the next run cleans up whatever a crash left and is complete
            _write_run(target, ["report.html", "mtd.csv"], "A")
            assert verify(target) == []
            assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    finally:
        faults.arm(None)


def test_a_full_disk_leaves_no_truncated_single_file(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old,complete\n")
    faults.arm("enospc", 1)
    try:
        with pytest.raises(OutputWriteError, match="No space left"):
            with atomic_file(target) as fh:
                fh.write("new," * 50000)
    finally:
        faults.arm(None)
    assert target.read_text() == "old,complete\n"
    assert os.listdir(tmp_path) == ["table.csv"]
