"""A trial-sim output folder: :func:`write_results` writes it, :func:`load_results` reads it back.

The folder (``ctk trial-sim SPEC --out DIR``) holds ``summary.json`` (everything of the
result but the per-trial table, plus the spec and notes), ``summary.csv`` (the summary
table), unless ``--no-trials-table`` ``trials.csv``, and ``manifest.json`` (written last by
:class:`ctkinetics.outputs.OutputFolder`: the folder is complete or absent).
:func:`load_results` rebuilds the result from them so that the figures of
:mod:`ctkinetics.plots.trialsim` and the report can show a run made earlier or elsewhere. The
summary table is read from ``summary.csv`` when present (pandas writes floats with their
shortest round-trip repr, so the numbers are exact), else from ``summary.json`` (where NaN
was written as ``null``). CSVs are spreadsheet-safe (:mod:`ctkinetics.outputs.spreadsheet`:
a rule named ``=HYPERLINK(...)`` is written ``'=HYPERLINK(...)`` and read back unchanged).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ctkinetics.errors import SettingsError
from ctkinetics.trialsim.result import TrialSimResult

#: Files of a trial-sim output folder, in the order they are listed in provenance.
RESULT_FILES = ("summary.json", "summary.csv", "trials.csv")
_TEXT_COLUMNS = ("rule", "level", "mtd", "phase", "metric")
#: How to read the numbers of summary.json / summary.csv (stored in summary.json).
NOTES = (
    "pct_selected: % of trials selecting the level as MTD (level 'none': no MTD)",
    "durations in days from the first infusion; escalation ends when the last DLT window "
    "resolves (or on the day the lowest dose is eliminated), total adds expansion + one window",
    "CK summaries pool every participant (escalation and expansion) at the level; medians and "
    "percentiles from 0.01-log10 histograms (within 2.3 %), geometric mean and CV exact",
)


def write_summaries(result: TrialSimResult, out, spec=None) -> None:
    """Write ``summary.csv`` and ``summary.json`` of ``result`` into ``out``, an open
    :class:`ctkinetics.outputs.OutputFolder` (the caller commits it; ``trials.csv`` may have
    been streamed into it by :func:`~ctkinetics.trialsim.simulate_trials`)."""
    out.write_csv("summary.csv", result.summary)
    doc = result.to_dict()
    if spec is not None:
        doc["spec"] = spec.to_dict()
    doc["notes"] = list(NOTES)
    out.write_text("summary.json", json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n")


def write_results(result: TrialSimResult, folder, spec=None, command: str | None = None):
    """Write ``result`` as a complete trial-sim output folder (atomically, with its manifest):
    ``summary.csv``, ``summary.json`` and, when the result kept it, ``trials.csv``.

    Returns the folder's :class:`ctkinetics.outputs.Manifest`. :func:`load_results` reads the
    folder back into an equal result.
    """
    from ctkinetics.outputs import OutputFolder

    with OutputFolder(folder, command=command) as out:
        if result.trials is not None:
            out.write_csv("trials.csv", result.trials)
        write_summaries(result, out, spec)
        return out.commit()


def _frame_from_csv(path):
    """A CSV with the label columns kept as text ('none', 'NA' are labels, not missing)."""
    import pandas as pd

    from ctkinetics.outputs import read_csv  # undoes the spreadsheet-safe quoting of labels

    df = read_csv(path, dtype=str, keep_default_na=False)
    for c in df.columns:
        if c not in _TEXT_COLUMNS:
            df[c] = pd.to_numeric(df[c].replace("", math.nan))
    return df


def _frame_from_records(rows, columns=None):
    import pandas as pd

    df = pd.DataFrame(rows, columns=columns)
    for c in df.columns:
        if c not in _TEXT_COLUMNS and c != "counts":
            df[c] = pd.to_numeric(df[c].astype(object).where(df[c].notna(), math.nan))
    return df


def read_summary_json(folder) -> dict:
    """The parsed ``summary.json`` of a trial-sim output folder (SettingsError if unusable)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SettingsError(f"trial-sim results folder {folder} does not exist (run `ctk trial-sim "
                            "SPEC --out DIR` first)")
    p = folder / "summary.json"
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read {p}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{p}: not valid JSON: {exc}") from None
    missing = [k for k in ("name", "n_trials", "seed", "levels", "doses", "rules", "summary",
                           "durations", "exposure") if k not in (doc if isinstance(doc, dict) else {})]
    if missing:
        raise SettingsError(f"{p}: not a `ctk trial-sim` summary (missing {', '.join(missing)})")
    return doc


def load_results(folder, trials: bool = False) -> TrialSimResult:
    """Rebuild the :class:`TrialSimResult` that ``ctk trial-sim`` wrote to ``folder``.

    Parameters
    ----------
    folder : path
        The ``--out`` folder of ``ctk trial-sim``.
    trials : bool
        Also read ``trials.csv`` (one row per trial × rule × level; can be large). Without
        it, or when the file is absent, ``result.trials`` is None.

    Returns
    -------
    TrialSimResult
        ``summary``, ``durations`` (with the 1-day histogram ``counts`` as tuples) and
        ``exposure`` as the runner built them.
    """
    folder = Path(folder)
    doc = read_summary_json(folder)
    csv = folder / "summary.csv"
    try:
        summary = _frame_from_csv(csv) if csv.exists() else _frame_from_records(doc["summary"])
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"{csv}: not a trial-sim summary table: {exc}") from None
    durations = _frame_from_records(doc["durations"])
    if "counts" in durations.columns:
        durations["counts"] = [tuple(int(c) for c in (v or ())) for v in durations["counts"]]
    from ctkinetics.trialsim.result import QUANTILES

    exposure = _frame_from_records(doc["exposure"], ["rule", "level", "metric", "n"]
                                   + [f"q{int(q * 100):02d}" for q in QUANTILES])
    table = None
    if trials and (folder / "trials.csv").exists():
        table = _frame_from_csv(folder / "trials.csv")
    return TrialSimResult(str(doc["name"]), tuple(str(v) for v in doc["levels"]),
                          tuple(float(v) for v in doc["doses"]), tuple(str(r) for r in doc["rules"]),
                          int(doc["n_trials"]), int(doc["seed"]), table, summary, durations,
                          exposure, bool(doc.get("kinetics", True)))


__all__ = ["write_results", "write_summaries", "load_results", "read_summary_json", "RESULT_FILES", "NOTES"]
