"""Writing outputs (layer 0): atomic folders and files, the manifest, spreadsheet-safe CSV.

Every ``ctk`` command that writes goes through here:

- :class:`OutputFolder` / :func:`atomic_file`: checked before any computation, written
  beside the target and renamed into place at the end (:mod:`.folder`);
- ``manifest.json``, written last: files, SHA-256, command, version, status (:mod:`.manifest`);
  :func:`verify` checks a folder against it;
- :func:`write_csv` / :func:`read_csv`: the one CSV writer, neutralising formula-like cells
  (OWASP), and its reader (:mod:`.spreadsheet`); :func:`read_table` reads a table of an
  output folder back with its column types (:mod:`.tables`);
- :mod:`.faults`: the fault-injection hook the tests use.
"""
from __future__ import annotations

from pathlib import Path

from ctkinetics.outputs.folder import (
    OutputFolder, atomic_file, check_file, check_folder, write_csv_file,
)
from ctkinetics.outputs.manifest import Manifest, read as read_manifest, verify
from ctkinetics.outputs.spreadsheet import (
    csv_text, neutralise_cell, neutralise_frame, read_csv, restore_cell, write_csv,
)


def read_table(folder, name: str, manifest: Manifest | None = None):
    """Table ``name`` of an output folder, with the column types its manifest recorded
    (text columns as strings, '' for missing text), as :func:`.tables.as_written` gives it."""
    from ctkinetics.errors import OutputError
    from ctkinetics.outputs.tables import restore

    folder = Path(folder)
    m = manifest or read_manifest(folder)
    info = (m.tables.get(name) if m is not None else None)
    raw = read_csv(folder / name, dtype=str, keep_default_na=False)
    if info is None:
        raise OutputError(f"{folder / name}: no column types in {folder}/manifest.json")
    return restore(raw, info["columns"])


__all__ = ["OutputFolder", "atomic_file", "check_file", "check_folder", "write_csv_file",
           "Manifest", "read_manifest", "verify", "csv_text", "neutralise_cell",
           "neutralise_frame", "read_csv", "restore_cell", "write_csv", "read_table"]
