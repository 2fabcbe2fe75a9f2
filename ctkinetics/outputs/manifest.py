"""``manifest.json``: what an output folder holds, written last.

A folder written by :class:`ctkinetics.outputs.OutputFolder` carries a manifest: every file
with its size and SHA-256, the command line, the ctkinetics version, the time, the status
(``complete``, or ``complete with failures`` naming them) and, for CSV tables, the column
types that let :func:`ctkinetics.outputs.read_table` read a table back as it was.
:func:`verify` re-hashes the files: a folder whose manifest says complete but whose files
disagree is reported, never trusted.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

NAME = "manifest.json"
FORMAT = "ctkinetics output manifest"
VERSION = 1
COMPLETE = "complete"
WITH_FAILURES = "complete with failures"


def sha256(path) -> str:
    """SHA-256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """The content of ``manifest.json``.

    Attributes
    ----------
    status : str
        ``complete`` or ``complete with failures``.
    files : tuple of dict
        ``{"name", "bytes", "sha256"}`` per file, names relative to the folder ('/'-separated).
    command : str or None
    ctkinetics : str
        Version that wrote the folder.
    created : str
        UTC time (ISO 8601), or ``SOURCE_DATE_EPOCH`` when set.
    failures : tuple of str
        What failed (participants, runs), one line each.
    tables : dict
        CSV name -> ``{"columns": [[name, dtype], ...]}``.
    """

    status: str
    files: tuple
    command: str | None
    ctkinetics: str
    created: str
    failures: tuple = ()
    tables: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "status": self.status,
                "command": self.command, "ctkinetics": self.ctkinetics, "created": self.created,
                "failures": list(self.failures), "files": [dict(f) for f in self.files],
                "tables": self.tables}

    @classmethod
    def from_dict(cls, doc: dict) -> "Manifest":
        return cls(status=str(doc["status"]), files=tuple(doc["files"]),
                   command=doc.get("command"), ctkinetics=str(doc.get("ctkinetics", "")),
                   created=str(doc.get("created", "")),
                   failures=tuple(doc.get("failures") or ()), tables=dict(doc.get("tables") or {}))

    @property
    def names(self) -> tuple:
        return tuple(f["name"] for f in self.files)


def read(folder) -> Manifest | None:
    """The manifest of ``folder``, or None when it has none (or one that is not ours)."""
    p = Path(folder) / NAME
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return None
    try:
        return Manifest.from_dict(doc)
    except (KeyError, TypeError):
        return None


def listing(folder) -> list[str]:
    """Every file under ``folder`` ('/'-separated relative names), sorted."""
    root = Path(folder)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def verify(folder) -> list[str]:
    """What is wrong with an output folder: [] when its manifest is there and every file it
    lists is present with the listed size and SHA-256, and nothing else is there."""
    folder = Path(folder)
    m = read(folder)
    if m is None:
        return [f"{folder}: no {NAME} (not a complete ctkinetics output folder)"]
    problems = []
    if m.status not in (COMPLETE, WITH_FAILURES):
        problems.append(f"{folder}: status {m.status!r}")
    for f in m.files:
        p = folder / f["name"]
        if not p.is_file():
            problems.append(f"{f['name']}: missing")
        elif p.stat().st_size != f["bytes"] or sha256(p) != f["sha256"]:
            problems.append(f"{f['name']}: differs from the manifest (size or SHA-256)")
    extra = sorted(set(listing(folder)) - set(m.names) - {NAME})
    problems += [f"{name}: not in the manifest" for name in extra]
    return problems
