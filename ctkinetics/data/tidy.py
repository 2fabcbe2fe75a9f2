"""The canonical study folder: study.toml, subjects.csv, observations.csv, safety.csv (and the
optional doses.csv and covariates_tv.csv: :mod:`ctkinetics.data.doses`,
:mod:`ctkinetics.data.timevarying`)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ctkinetics.data.assemble import Audit, build_dataset
from ctkinetics.data.cells import (BAD_KIND, BLQ_KIND, MISSING_KIND, NUMBER_KIND, decimal_commas, parse_flags,
                                   parse_values)
from ctkinetics.data.csvfile import read_csv_text
from ctkinetics.data.dataset import Dataset
from ctkinetics.data.problems import ProblemCollector
from ctkinetics.data.study import read_study_toml
from ctkinetics.data.subjects import read_subjects_csv
from ctkinetics.data.safety import write_protocol_tables
from ctkinetics.data.tables import read_safety_csv

REQUIRED = ("subject", "time", "analyte", "value", "unit")
OPTIONAL = ("lloq", "blq")
MISSING_REASON = "empty value, blq not 1"


def read_study_folder(folder) -> Dataset:
    """Read a study folder (see README): study.toml, subjects.csv, observations.csv[, safety.csv].

    Every file is read and checked before anything is raised, so one run reports the problems
    of all of them (study definition, values, structure and cross-file rules) together.
    """
    folder = Path(folder)
    pc = ProblemCollector()
    study = read_study_toml(folder / "study.toml", pc)
    notes: list[str] = []
    subjects = read_subjects_csv(folder / "subjects.csv", pc, notes)
    obs_path = folder / "observations.csv"
    ignore = _ignored_columns(study)
    records = read_observations_csv(obs_path, pc, notes, ignore=ignore)
    safety_path = folder / "safety.csv"
    safety = None
    if safety_path.exists() or safety_path.is_symlink():
        with pc.collecting():
            safety = read_safety_csv(safety_path, pc, notes)
    sources = [folder / "study.toml", folder / "subjects.csv", obs_path] + ([safety_path] if safety is not None else [])
    doses, tv = read_event_files(folder, pc, notes, sources)  # issue 17: doses.csv, covariates_tv.csv
    return build_dataset(
        study, subjects, records, safety, audit=Audit(), warnings=notes, sources=sources,
        columns={}, subjects_file=str(folder / "subjects.csv"),
        safety_file=str(safety_path), problems=pc, fmt="tidy", doses=doses, time_varying=tv,
    )


def read_event_files(folder: Path, pc: ProblemCollector, notes: list, sources: list):
    """The optional ``doses.csv`` and ``covariates_tv.csv`` of a study folder (None when
    absent); the files read are appended to ``sources``."""
    from ctkinetics.data.doses import DOSES_FILE, read_doses_csv
    from ctkinetics.data.timevarying import TV_FILE, read_covariates_tv_csv

    out = []
    for name, reader in ((DOSES_FILE, read_doses_csv), (TV_FILE, read_covariates_tv_csv)):
        table = None
        if (folder / name).exists() or (folder / name).is_symlink():
            with pc.collecting():
                table = reader(folder / name, pc, notes)
            sources.append(folder / name)
        out.append(table)
    return tuple(out)


def _ignored_columns(study) -> tuple:
    """Columns of observations.csv declared in study.toml as kept unread:
    ``[formats.tidy] ignore_columns = ["comment"]``."""
    if study is None:
        return ()
    cols = dict(study.formats.get("tidy", {})).get("ignore_columns", [])
    return tuple(str(c).strip().lower() for c in (cols if isinstance(cols, (list, tuple)) else [cols]))


def read_observations_csv(path, pc: ProblemCollector, notes: list | None = None, ignore=()) -> pd.DataFrame | None:
    """Parse ``observations.csv`` into canonical records, in one vectorised pass per column.

    The value, ``blq`` and ``lloq`` columns must agree; a contradiction is a problem naming
    the row and column, never a silent choice:

    - ``blq = 1`` on a quantified number, or ``blq = 0`` on a below-LLOQ marker (``<20``,
      ``BLQ``); an empty ``blq`` cell states nothing;
    - an ``lloq`` cell that differs from the LLOQ a ``<N`` marker states.

    An empty value with ``blq`` not 1 is a missing sample (kept as such, listed in the audit).
    Returns None when the file cannot be read or lacks a required column (problems in ``pc``).
    """
    path = Path(path)
    t = None
    with pc.collecting():
        t = read_csv_text(path)
    if t is None:
        return None
    known = REQUIRED + OPTIONAL
    t.refuse_unknown(known + tuple(ignore), pc,
                     hint="; rename or remove it, or list it in study.toml [formats.tidy] ignore_columns")
    ok = t.require(REQUIRED, pc)
    f = t.frame
    n = len(f)
    rows = t.rows
    time = t.numbers("time", pc, what="a time in days since infusion", required=True) if "time" in f else None
    lloq = t.numbers("lloq", pc, what="a positive LLOQ") if "lloq" in f else np.full(n, np.nan)
    blq_true, blq_stated, blq_bad = parse_flags(f["blq"]) if "blq" in f else (np.zeros(n, bool),) * 3
    for i in np.flatnonzero(blq_bad):
        pc.add(t.name, int(rows[i]), "blq", f"expected 1, 0 or empty, got '{f['blq'].iat[i]}'")
    if "value" in f:
        text = f["value"]
        if t.decimal_comma:
            text, k = decimal_commas(text)
            t._note_commas(k)
        kind, value, marker_lloq = parse_values(text)
        _check_value_cells(t, pc, kind, blq_true, blq_stated & ~blq_true, lloq, marker_lloq)
    if notes is not None:
        notes += [f"{path}: {x}" for x in t.notes]
    if not ok:
        return None
    blq = (kind == BLQ_KIND) | (blq_true & (kind == MISSING_KIND))
    missing = (kind == MISSING_KIND) & ~blq_true
    lloq = np.where(np.isnan(marker_lloq), lloq, marker_lloq)
    bad = (kind == BAD_KIND) | np.isnan(time)  # reported above; kept out of the cross-row rules
    frame = pd.DataFrame({
        "subject": f["subject"].to_numpy(), "time": time, "analyte": f["analyte"].to_numpy(),
        "value": value, "unit": f["unit"].to_numpy(), "lloq": lloq, "blq": blq,
        "pre_infusion": (time < 0) | ((time == 0) & np.signbit(time)), "source_file": str(path), "source_row": rows,
        "missing_reason": np.where(missing, MISSING_REASON, ""),
    })
    return frame.loc[~bad].reset_index(drop=True)


def _check_value_cells(t, pc, kind, blq_one, blq_zero, lloq, marker_lloq) -> None:
    """The contradictions between value, blq and lloq cells (see read_observations_csv)."""
    rows, values = t.rows, t.frame["value"]
    for i in np.flatnonzero(kind == BAD_KIND):
        pc.add(t.name, int(rows[i]), "value",
               f"expected a number or a below-LLOQ marker (BLQ, <LLOQ, <20, ND), got '{values.iat[i]}'")
    for i in np.flatnonzero(blq_one & (kind == NUMBER_KIND)):
        pc.add(t.name, int(rows[i]), "blq",
               f"blq is 1 but the value '{values.iat[i]}' is a quantified number; a sample is either quantified "
               "(blq 0 or empty) or below the LLOQ (a marker such as BLQ or <20, or an empty value, with blq 1)")
    for i in np.flatnonzero(blq_zero & (kind == BLQ_KIND)):
        pc.add(t.name, int(rows[i]), "blq",
               f"blq is 0 but the value '{values.iat[i]}' is a below-LLOQ marker; correct one of them")
    with np.errstate(invalid="ignore"):
        differ = ~np.isnan(lloq) & ~np.isnan(marker_lloq) & ~np.isclose(lloq, marker_lloq, rtol=1e-12, atol=0)
    for i in np.flatnonzero(differ):
        pc.add(t.name, int(rows[i]), "lloq",
               f"the value '{values.iat[i]}' states an LLOQ of {marker_lloq[i]:g} but the lloq cell says {lloq[i]:g}; "
               "correct one of them")


def write_study_folder(dataset: Dataset, folder, warnings: list | None = None) -> list[Path]:
    """Write ``dataset`` as a study folder; BLQ samples as ``BLQ`` with their own LLOQ, missing
    samples as rows with an empty value (so a conversion loses none of them)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.toml").write_text(dataset.study.to_toml(), encoding="utf-8")
    subjects = dataset.subjects
    for c in dataset.covariate_names:
        if pd.api.types.is_numeric_dtype(subjects[c]):
            subjects[c] = subjects[c].map(_fmt)
    subjects["dose"] = subjects["dose"].map(_fmt)
    subjects.to_csv(folder / "subjects.csv", index=False)
    obs = dataset.observations
    blq = obs["blq"].to_numpy(bool)
    # a pre-infusion sample taken at the infusion time (NONMEM: before the dose record) is "-0"
    time = np.where(obs["pre_infusion"].to_numpy(bool) & (obs["time"].to_numpy(float) == 0), "-0",
                    obs["time"].map(_fmt).to_numpy(dtype=object))
    out = pd.DataFrame({
        "subject": obs["subject"], "time": time, "analyte": obs["analyte"],
        "value": np.where(blq, "BLQ", obs["value"].map(_fmt)),
        "unit": obs["unit"], "lloq": obs["lloq"].map(_fmt), "blq": blq.astype(int).astype(str),
    })
    miss = dataset.missing_samples
    if len(miss):
        unit = {a: x.unit for a, x in dataset.study.analytes.items()}
        out = pd.concat([out, pd.DataFrame({
            "subject": miss["subject"], "time": miss["time"].map(_fmt), "analyte": miss["analyte"], "value": "",
            "unit": miss["analyte"].map(unit), "lloq": "", "blq": ""})], ignore_index=True)
    out.to_csv(folder / "observations.csv", index=False)
    files = [folder / "study.toml", folder / "subjects.csv", folder / "observations.csv"]
    from ctkinetics.data.doses import write_doses_csv
    from ctkinetics.data.timevarying import write_covariates_tv_csv

    files += write_doses_csv(dataset, folder) + write_covariates_tv_csv(dataset, folder)  # issue 17
    if dataset.safety is not None:
        write_safety_csv(dataset.safety, folder / "safety.csv")
        files.append(folder / "safety.csv")
        files += write_protocol_tables(dataset, folder)  # decisions.csv, efficacy.csv (data/safety.py)
    return files


def write_safety_csv(safety: pd.DataFrame, path) -> None:
    s = safety.copy()
    for c in ("dlt", "crs_grade", "icans_grade", "evaluable"):
        if c in s.columns:
            s[c] = s[c].map(lambda x: "" if pd.isna(x) else str(int(x)))
    for c in ("infusion_day", "dlt_day", "last_followup_day", "crs_day", "icans_day", "window_end_day"):
        if c in s.columns:
            s[c] = s[c].map(_fmt)
    s.to_csv(path, index=False)


def _fmt(x) -> str:
    """Numbers written so they read back exactly (repr), blanks for NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)
