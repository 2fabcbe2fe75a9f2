"""The study dataset: one validated, immutable object that every other layer reads."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ctkinetics.data.study import Study

OBSERVATION_COLUMNS = (
    "subject", "time", "analyte", "value", "unit", "lloq", "blq", "pre_infusion", "source_file", "source_row",
)
SUBJECT_COLUMNS = ("subject", "dose_level", "dose")
SAFETY_COLUMNS = (
    "subject", "infusion_day", "dlt", "dlt_day", "last_followup_day", "crs_grade", "icans_grade", "phase",
)
AUDIT_COLUMNS = ("file", "row", "column", "subject", "time", "analyte", "action", "reason")


def empty_audit() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in AUDIT_COLUMNS})


@dataclass(frozen=True, eq=False)
class Dataset:
    """A validated CAR-T kinetics study (see DEVELOPERS.md for the column contract).

    Tables are returned as copies, so a ``Dataset`` cannot be changed after validation.

    Attributes
    ----------
    study : Study
        Dose levels, design and analytes (from ``study.toml``).
    subjects, observations, safety, audit : pandas.DataFrame
        ``safety`` is None when the study has no safety data.
    warnings : tuple of str
        Suspicious but legal findings (quantified below LLOQ, no pre-infusion sample, ...).
    sources : tuple of Path
        Input files read, for provenance.
    """

    study: Study
    _subjects: pd.DataFrame
    _observations: pd.DataFrame
    _safety: pd.DataFrame | None
    _audit: pd.DataFrame
    warnings: tuple = ()
    sources: tuple = ()
    format: str = "tidy"

    @property
    def subjects(self) -> pd.DataFrame:
        return self._subjects.copy()

    @property
    def observations(self) -> pd.DataFrame:
        return self._observations.copy()

    @property
    def safety(self) -> pd.DataFrame | None:
        return None if self._safety is None else self._safety.copy()

    @property
    def audit(self) -> pd.DataFrame:
        return self._audit.copy()

    @property
    def subject_ids(self) -> list[str]:
        return list(self._subjects["subject"])

    @property
    def covariate_names(self) -> list[str]:
        return [c for c in self._subjects.columns if c not in SUBJECT_COLUMNS]

    def analyte_kind(self, analyte: str) -> str:
        return self.study.analytes[analyte].kind

    def dose_of(self, subject: str) -> float:
        row = self._subjects.loc[self._subjects["subject"] == subject]
        if row.empty:
            raise KeyError(f"unknown subject {subject!r}")
        return float(row["dose"].iloc[0])

    def covariates_of(self, subject: str) -> dict:
        """Dose and covariates of one subject, as a dict (for model predictions)."""
        row = self._subjects.loc[self._subjects["subject"] == subject]
        if row.empty:
            raise KeyError(f"unknown subject {subject!r}")
        return {k: v for k, v in row.iloc[0].items() if k not in ("subject", "dose_level")}

    def samples(self, subject=None, analyte=None, include_pre_infusion=True) -> pd.DataFrame:
        """Observations filtered by subject and analyte, sorted by time."""
        obs = self._observations
        mask = np.ones(len(obs), dtype=bool)
        if subject is not None:
            mask &= (obs["subject"] == subject).to_numpy()
        if analyte is not None:
            mask &= (obs["analyte"] == analyte).to_numpy()
        if not include_pre_infusion:
            mask &= ~obs["pre_infusion"].to_numpy(dtype=bool)
        return obs.loc[mask].sort_values(["subject", "analyte", "time"]).reset_index(drop=True)

    def counts(self) -> pd.DataFrame:
        """Samples, BLQ samples and pre-infusion samples per analyte (what `ctk validate` prints)."""
        obs = self._observations
        g = obs.groupby("analyte", sort=True)
        out = pd.DataFrame({
            "subjects": g["subject"].nunique(),
            "samples": g.size(),
            "blq": g["blq"].sum().astype(int),
            "pre_infusion": g["pre_infusion"].sum().astype(int),
        })
        out["unit"] = [self.study.analytes[a].unit for a in out.index]
        return out.reset_index()

    def equals(self, other: "Dataset", atol_time: float = 1e-9) -> bool:
        """Same study content, subjects and observations (ignoring where they were read from)."""
        return not self.differences(other, atol_time)

    def differences(self, other: "Dataset", atol_time: float = 1e-9) -> list[str]:
        """Human-readable differences in content (empty when the datasets are equal)."""
        diffs = []
        a, b = self.study, other.study
        if dict(a.dose_levels) != dict(b.dose_levels):
            diffs.append(f"dose levels differ: {dict(a.dose_levels)} vs {dict(b.dose_levels)}")
        if dict(a.analytes) != dict(b.analytes):
            diffs.append("analytes differ")
        cols = list(self._subjects.columns)
        if sorted(cols) != sorted(other._subjects.columns):
            diffs.append(f"subject columns differ: {cols} vs {list(other._subjects.columns)}")
        else:
            s1 = self._subjects.sort_values("subject").reset_index(drop=True)
            s2 = other._subjects[cols].sort_values("subject").reset_index(drop=True)
            if not _frames_equal(s1, s2, atol_time):
                diffs.append("subjects differ")
        keys = ["subject", "analyte", "time"]
        content = ["subject", "time", "analyte", "value", "unit", "lloq", "blq", "pre_infusion"]
        o1 = self._observations[content].sort_values(keys).reset_index(drop=True)
        o2 = other._observations[content].sort_values(keys).reset_index(drop=True)
        if len(o1) != len(o2):
            diffs.append(f"{len(o1)} vs {len(o2)} observations")
        elif not _frames_equal(o1, o2, atol_time):
            diffs.append("observations differ")
        return diffs

    def __repr__(self) -> str:
        return (f"Dataset({self.study.name!r}: {len(self._subjects)} subjects, "
                f"{len(self._observations)} observations, {len(self._audit)} audit records)")


def _frames_equal(x: pd.DataFrame, y: pd.DataFrame, atol: float) -> bool:
    for c in x.columns:
        u, v = x[c], y[c]
        if pd.api.types.is_numeric_dtype(u) and pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(u):
            uu, vv = u.to_numpy(float), v.to_numpy(float)
            if not np.allclose(uu, vv, rtol=1e-9, atol=atol, equal_nan=True):
                return False
        elif not (u.astype(str).to_numpy() == v.astype(str).to_numpy()).all():
            return False
    return True
