"""Provenance of a report: what was read (SHA-256 of every input file), with what, and when.

The timestamp is the only part that changes between two runs on the same inputs. It honours
``SOURCE_DATE_EPOCH`` (the reproducible-builds convention) when set.
"""
from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

import pandas as pd

from ctkinetics.outputs.folder import timestamp  # noqa: F401 (one home: now, or SOURCE_DATE_EPOCH)
from ctkinetics.outputs.manifest import sha256  # noqa: F401 (one home; report/trialsim uses it)

LIBRARIES = ("numpy", "scipy", "pandas", "lmfit", "plotly")


def input_files(sources, root=None) -> pd.DataFrame:
    """file (relative to ``root`` when inside it), bytes, sha256 of each input file."""
    rows = []
    root = Path(root).resolve() if root is not None else None
    for s in sources:
        p = Path(s)
        shown = p.name
        if root is not None:
            try:
                shown = p.resolve().relative_to(root if root.is_dir() else root.parent).as_posix()
            except ValueError:
                shown = str(p)
        rows.append({"file": shown, "bytes": p.stat().st_size, "sha256": sha256(p)})
    return pd.DataFrame(rows, columns=["file", "bytes", "sha256"])


def versions() -> dict:
    from ctkinetics import __version__

    out = {"ctkinetics": __version__, "python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out
