"""Virtual trials in the report: a `ctk trial-sim` output folder read back for display.

The report does not simulate: it shows a run made with ``ctk trial-sim SPEC --out DIR``
(:func:`ctkinetics.trialsim.load_results`), with the spec and notes the runner stored in
``summary.json`` and the SHA-256 of the files read (for the provenance).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class TrialSimView:
    """What the report shows of a trial-sim run.

    Attributes
    ----------
    folder : Path
    result : TrialSimResult
    spec : dict
        The spec as the runner wrote it (``summary.json["spec"]``; empty if absent).
    notes : tuple of str
    files : pandas.DataFrame
        file (``<folder name>/<file>``), bytes, sha256 of every result file present.
    """

    folder: Path
    result: object
    spec: dict
    notes: tuple
    files: pd.DataFrame


def load_trial_sim(folder) -> TrialSimView:
    """Read a trial-sim output folder (SettingsError when it is missing or not one)."""
    from ctkinetics.report.provenance import sha256
    from ctkinetics.trialsim.results_io import RESULT_FILES, load_results, read_summary_json

    folder = Path(folder)
    result = load_results(folder)
    doc = read_summary_json(folder)
    rows = [{"file": f"{folder.name}/{name}", "bytes": (folder / name).stat().st_size,
             "sha256": sha256(folder / name)}
            for name in RESULT_FILES if (folder / name).is_file()]
    spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
    notes = tuple(str(n) for n in doc.get("notes") or ())
    return TrialSimView(folder, result, spec, notes,
                        pd.DataFrame(rows, columns=["file", "bytes", "sha256"]))


__all__ = ["TrialSimView", "load_trial_sim"]
