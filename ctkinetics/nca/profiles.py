"""From the observations table to padded per-profile arrays, with every exclusion listed.

A profile is one (subject, analyte). Rows are packed left, sorted by time; padding cells are
NaN and ``valid`` is False there. No per-subject Python loop: grouping is done by sorting.

Samples left out of the NCA, each with its reason in :attr:`ProfileSet.exclusions`:

- pre-infusion samples (structural zeros): C(0) = 0 is used at the infusion instead;
- samples with time < 0 not flagged pre-infusion (also before the infusion);
- values missing without a BLQ flag;
- a second sample at the same time in a profile (the first in file order is kept);
- BLQ samples the BLQ rule drops (e.g. BLQ between quantifiable samples by default).

A point C(0) = 0 is added at time 0 when a profile has no post-infusion sample at time 0
(CAR-T: no vector before the infusion; extravascular PK: nothing absorbed yet).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ctkinetics.errors import DataValidationError, Problem
from ctkinetics.nca.blq import BLQRule, apply_blq_rule
from ctkinetics.stats import first_rows, group_codes

REQUIRED = ("subject", "time", "value")
EXCLUSION_COLUMNS = ["subject", "analyte", "time", "value", "blq", "source_file", "source_row", "reason"]


@dataclass(frozen=True)
class ProfileSet:
    """Padded arrays of all profiles (rows) and the samples left out."""

    keys: pd.DataFrame  # subject, analyte, unit — one row per profile
    t: np.ndarray
    c: np.ndarray
    valid: np.ndarray
    is_sample: np.ndarray  # False for the added C(0) = 0 point
    exclusions: pd.DataFrame


def _normalise(obs: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED if c not in obs.columns]
    if missing:
        raise DataValidationError.at(None, None, missing[0],
                                     f"observations need columns {', '.join(REQUIRED)}; missing {', '.join(missing)}")
    n = len(obs)
    out = pd.DataFrame(index=np.arange(n))
    out["subject"] = obs["subject"].astype(str).to_numpy()
    out["analyte"] = obs["analyte"].astype(str).to_numpy() if "analyte" in obs else "conc"
    out["time"] = pd.to_numeric(obs["time"], errors="coerce").to_numpy(float)
    out["value"] = pd.to_numeric(obs["value"], errors="coerce").to_numpy(float)
    out["blq"] = obs["blq"].fillna(False).astype(bool).to_numpy() if "blq" in obs else np.isnan(out["value"].to_numpy())
    out["pre_infusion"] = obs["pre_infusion"].fillna(False).astype(bool).to_numpy() if "pre_infusion" in obs else False
    out["lloq"] = pd.to_numeric(obs["lloq"], errors="coerce").to_numpy(float) if "lloq" in obs else np.nan
    out["unit"] = obs["unit"].fillna("").astype(str).to_numpy() if "unit" in obs else ""
    out["source_file"] = obs["source_file"].fillna("").astype(str).to_numpy() if "source_file" in obs else ""
    out["source_row"] = (pd.to_numeric(obs["source_row"], errors="coerce").to_numpy(float)
                         if "source_row" in obs else np.arange(n) + 2.0)
    bad = np.flatnonzero(np.isnan(out["time"].to_numpy()))
    if bad.size:
        problems = [Problem(out["source_file"][i], int(out["source_row"][i]) if np.isfinite(out["source_row"][i]) else None,
                            "time", "time is missing or not a number") for i in bad[:20]]
        raise DataValidationError(problems, truncated=max(0, bad.size - 20))
    return out


def _pack(valid, *arrays):
    """Move valid cells left (stable), return packed copies."""
    m = valid.shape[1]
    cols = np.arange(m)
    order = np.argsort(np.where(valid, cols, m + cols), axis=1, kind="stable")
    return [np.take_along_axis(a, order, axis=1) for a in (valid, *arrays)]


def build_profiles(obs: pd.DataFrame, blq_rule: BLQRule) -> ProfileSet:
    """Group, sort and pad the observations; apply the BLQ rule; list exclusions."""
    d = _normalise(obs)
    n = len(d)
    subj, analyte = d["subject"].to_numpy(), d["analyte"].to_numpy()
    time, value, blq = d["time"].to_numpy(), d["value"].to_numpy(), d["blq"].to_numpy()
    reason = np.full(n, "", dtype=object)
    reason[(time < 0) & ~d["pre_infusion"].to_numpy()] = "sample before infusion (time < 0)"
    reason[d["pre_infusion"].to_numpy()] = "pre-infusion sample (structural zero): C(0) = 0 used at infusion"
    reason[(reason == "") & np.isnan(value) & ~blq] = "missing value not flagged BLQ"

    pid = group_codes(d, ["subject", "analyte"])  # subjects in file order
    firsts = first_rows(pid)
    n_prof = len(firsts)
    keep = reason == ""
    rows = np.flatnonzero(keep)
    rows = rows[np.lexsort((rows, time[rows], pid[rows]))]
    if rows.size:
        dup = np.zeros(rows.size, bool)
        dup[1:] = (pid[rows[1:]] == pid[rows[:-1]]) & (time[rows[1:]] == time[rows[:-1]])
        reason[rows[dup]] = "duplicate time in profile: the first sample in file order is kept"
        rows = rows[~dup]
    counts = np.bincount(pid[rows], minlength=n_prof)
    width = max(int(counts.max(initial=0)), 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(rows.size) - starts[pid[rows]]
    shape = (n_prof, width)
    T = np.full(shape, np.nan)
    V = np.full(shape, np.nan)
    L = np.full(shape, np.nan)
    B = np.zeros(shape, bool)
    R = np.full(shape, -1, dtype=np.int64)
    valid = np.zeros(shape, bool)
    r, p = pid[rows], pos
    T[r, p], V[r, p], L[r, p] = time[rows], value[rows], d["lloq"].to_numpy()[rows]
    B[r, p], R[r, p], valid[r, p] = blq[rows], rows, True

    conc, dropped, position, no_lloq = apply_blq_rule(blq_rule, V, B, valid, L)
    for cells, text in ((dropped & ~no_lloq, None), (no_lloq, "BLQ sample without LLOQ: cannot apply an LLOQ-based BLQ rule")):
        idx = R[cells]
        if text is None:
            reason[idx] = [f"BLQ ({pos_}) dropped by BLQ rule {blq_rule.describe()}" for pos_ in position[cells]]
        else:
            reason[idx] = text
    valid = valid & ~dropped
    valid, T, conc = _pack(valid, T, conc)
    # add C(0) = 0 where no post-infusion sample sits at time 0
    has_any = valid.any(axis=1)
    need0 = has_any & (T[:, 0] > 0)
    T = np.concatenate([np.where(need0, 0.0, np.nan)[:, None], T], axis=1)
    conc = np.concatenate([np.where(need0, 0.0, np.nan)[:, None], conc], axis=1)
    is_sample = np.concatenate([np.zeros((n_prof, 1), bool), valid], axis=1)
    valid = np.concatenate([need0[:, None], valid], axis=1)
    valid, T, conc, is_sample = _pack(valid, T, conc, is_sample)
    T = np.where(valid, T, np.nan)
    conc = np.where(valid, conc, np.nan)

    # unit per profile: the first non-empty unit of its rows
    units = pd.Series(d["unit"].to_numpy()).where(d["unit"].to_numpy() != "")
    unit_by_pid = units.groupby(pid).first().reindex(np.arange(n_prof)).fillna("").to_numpy()
    keys = pd.DataFrame({
        "subject": pd.Index(subj[firsts]).astype(str),
        "analyte": pd.Index(analyte[firsts]).astype(str),
        "unit": unit_by_pid,
    })
    ex = np.flatnonzero(reason != "")
    exclusions = pd.DataFrame({
        "subject": subj[ex], "analyte": analyte[ex], "time": time[ex], "value": value[ex],
        "blq": blq[ex], "source_file": d["source_file"].to_numpy()[ex],
        "source_row": pd.array(np.round(d["source_row"].to_numpy()[ex]), dtype="Int64"),
        "reason": reason[ex].astype(str),
    }, columns=EXCLUSION_COLUMNS)
    return ProfileSet(keys, T, conc, valid, is_sample, exclusions)
