"""The study dataset: one validated, immutable object that every other layer reads."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ctkinetics.data.study import Study

OBSERVATION_COLUMNS = (
    "subject", "time", "analyte", "value", "unit", "lloq", "blq", "pre_infusion", "source_file", "source_row",
)
SUBJECT_COLUMNS = ("subject", "dose_level", "dose")
SAFETY_COLUMNS = (
    "subject", "infusion_day", "dlt", "dlt_day", "last_followup_day", "crs_grade", "icans_grade", "phase",
    "crs_day", "icans_day", "group", "window_end_day", "window_end_reason", "evaluable",
)
AUDIT_COLUMNS = ("file", "row", "column", "subject", "time", "analyte", "action", "reason")
MISSING_COLUMNS = ("subject", "time", "analyte", "source_file", "source_row", "reason")


def empty_audit() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in AUDIT_COLUMNS})


def empty_missing() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in MISSING_COLUMNS})


@dataclass(frozen=True, eq=False)
class Dataset:
    """A validated CAR-T kinetics study (see DEVELOPERS.md for the column contract).

    Tables are returned as copies, so a ``Dataset`` cannot be changed after validation.
    Per-participant accessors (:meth:`samples`, :meth:`dose_of`, :meth:`covariates_of`) use an
    index built once, so calling them for every participant is linear, not quadratic.

    Attributes
    ----------
    study : Study
        Dose levels, design and analytes (from ``study.toml``).
    subjects, observations, safety, audit : pandas.DataFrame
        ``safety`` is None when the study has no safety data.
    missing_samples : pandas.DataFrame
        Planned samples without a result (``subject, time, analyte, source_file, source_row,
        reason``); also listed in ``audit`` as excluded. Writers carry them over.
    doses : pandas.DataFrame
        Every infusion (``subject, time, amount, source_file, source_row``): the first at time 0
        (the subject's ``dose``) and any re-infusion after it (:mod:`ctkinetics.data.doses`).
    time_varying : pandas.DataFrame
        Time-varying covariates (``subject, time, covariate, value, source_file, source_row``;
        a value holds from its time until the next record: :mod:`ctkinetics.data.timevarying`).
    decisions, efficacy : pandas.DataFrame or None
        The committee's dated record (``decisions.csv``: day, action, level, subject, decision,
        rationale) and efficacy outcomes (``efficacy.csv``: subject, day, endpoint, value,
        response), when the study has them (:mod:`ctkinetics.data.decisions`,
        :mod:`ctkinetics.data.efficacy`).
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
    _missing: pd.DataFrame | None = None
    _decisions: pd.DataFrame | None = None
    _efficacy: pd.DataFrame | None = None
    _doses: pd.DataFrame | None = None          # issue 17 (SCI): every infusion; None = first only
    _time_varying: pd.DataFrame | None = None   # issue 17 (SCI): None = no time-varying covariate

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
    def missing_samples(self) -> pd.DataFrame:
        return empty_missing() if self._missing is None else self._missing.copy()

    @property
    def decisions(self) -> pd.DataFrame | None:
        return None if self._decisions is None else self._decisions.copy()

    @property
    def efficacy(self) -> pd.DataFrame | None:
        return None if self._efficacy is None else self._efficacy.copy()

    @property
    def doses(self) -> pd.DataFrame:
        """Every infusion, the first at time 0 (see :mod:`ctkinetics.data.doses`)."""
        if self._doses is not None:
            return self._doses.copy()
        from ctkinetics.data.doses import finish_doses

        return finish_doses(None, self._subjects, "subjects.csv", None)

    def later_doses(self, subject: str) -> np.ndarray:
        """Rows ``(time, amount)`` of the re-infusions of ``subject`` (shape (m, 2); m = 0
        for a single infusion): what ``Model.solve(..., doses=)`` takes."""
        from ctkinetics.data.doses import later_doses

        return later_doses(self._doses, subject) if self._doses is not None else np.zeros((0, 2))

    @property
    def time_varying(self) -> pd.DataFrame:
        """Time-varying covariate records (see :mod:`ctkinetics.data.timevarying`)."""
        from ctkinetics.data.timevarying import empty_time_varying

        return empty_time_varying() if self._time_varying is None else self._time_varying.copy()

    @property
    def time_varying_names(self) -> list[str]:
        tv = self._time_varying
        return [] if tv is None else list(dict.fromkeys(tv["covariate"]))

    def covariate_course(self, subject: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(times, values) of a time-varying covariate of one participant, sorted by time."""
        from ctkinetics.data.timevarying import course

        return course(self._time_varying, subject, name)

    def as_of(self, day: float) -> "Dataset":
        """The study as it was known on study ``day``: participants infused, samples taken and
        outcomes known after it are left out (and listed in the audit as "after the as-of
        day"); see :func:`ctkinetics.data.asof.cut_as_of`."""
        from ctkinetics.data.asof import cut_as_of

        return cut_as_of(self, day)

    @property
    def subject_ids(self) -> list[str]:
        return list(self._subjects["subject"])

    @property
    def covariate_names(self) -> list[str]:
        return [c for c in self._subjects.columns if c not in SUBJECT_COLUMNS]

    def analyte_kind(self, analyte: str) -> str:
        return self.study.analytes[analyte].kind

    @cached_property
    def _subject_pos(self) -> dict:
        return {s: i for i, s in enumerate(self._subjects["subject"])}

    @cached_property
    def _obs_pos(self) -> tuple[dict, dict, dict]:
        """Positions of the observations of each (subject, analyte), subject and analyte (one
        groupby each, built on first use)."""
        obs = self._observations
        return tuple(obs.groupby(by, sort=False).indices for by in (["subject", "analyte"], "subject", "analyte"))

    @cached_property
    def _pre(self) -> np.ndarray:
        return self._observations["pre_infusion"].to_numpy(dtype=bool)

    def _subject_row(self, subject: str) -> int:
        i = self._subject_pos.get(subject)
        if i is None:
            raise KeyError(f"unknown subject {subject!r}")
        return i

    def dose_of(self, subject: str) -> float:
        return float(self._subjects["dose"].iat[self._subject_row(subject)])

    def covariates_of(self, subject: str) -> dict:
        """Dose and covariates of one subject, as a dict (for model predictions)."""
        row = self._subjects.iloc[self._subject_row(subject)]
        return {k: v for k, v in row.items() if k not in ("subject", "dose_level")}

    def samples(self, subject=None, analyte=None, include_pre_infusion=True) -> pd.DataFrame:
        """Observations filtered by subject and analyte, sorted by subject, analyte and time."""
        obs = self._observations
        if subject is None and analyte is None:
            pos = np.arange(len(obs))
        else:
            both, by_subject, by_analyte = self._obs_pos
            where, key = ((both, (subject, analyte)) if subject is not None and analyte is not None else
                          (by_subject, subject) if subject is not None else (by_analyte, analyte))
            pos = where.get(key, np.empty(0, dtype=np.intp))
        if not include_pre_infusion:
            pos = pos[~self._pre[pos]]
        # observations are stored sorted by (subject, analyte, time), so no sort is needed
        return obs.take(pos).reset_index(drop=True)

    def counts(self) -> pd.DataFrame:
        """The data-description table per analyte (what `ctk validate` prints and the report
        shows): see :func:`ctkinetics.data.describe.describe_samples`."""
        from ctkinetics.data.describe import describe_samples

        return describe_samples(self)

    def equals(self, other: "Dataset", atol_time: float = 1e-9) -> bool:
        """Same study content, subjects and observations (ignoring where they were read from)."""
        return not self.differences(other, atol_time)

    def differences(self, other: "Dataset", atol_time: float = 1e-9) -> list[str]:
        """Human-readable differences in content (empty when the datasets are equal).

        Compared: the study definition (every field but the format options), subjects and
        covariates (names, values and whether they are numbers or text), observations,
        missing samples, infusions, time-varying covariates and the safety table. Times (and study days) agree within ``atol_time``
        days (SDTM durations keep microseconds) and a relative 1e-12, other numbers within a
        relative 1e-12 (the writers keep every digit); IDs and text exactly.
        """
        diffs = _study_differences(self.study, other.study)
        diffs += _table_differences("subjects", self._subjects, other._subjects, ["subject"], atol_time)
        content = ["subject", "time", "analyte", "value", "unit", "lloq", "blq", "pre_infusion"]
        diffs += _table_differences("observations", self._observations[content], other._observations[content],
                                    ["subject", "analyte", "time"], atol_time)
        m = ["subject", "time", "analyte"]
        diffs += _table_differences("missing samples", self.missing_samples[m], other.missing_samples[m],
                                    ["subject", "analyte", "time"], atol_time)
        if (self._safety is None) != (other._safety is None):
            diffs.append("one dataset has a safety table, the other none")
        elif self._safety is not None:
            diffs += _table_differences("safety", self._safety, other._safety, ["subject"], atol_time)
        d = ["subject", "time", "amount"]
        diffs += _table_differences("doses", self.doses[d], other.doses[d], ["subject", "time"], atol_time)
        v = ["subject", "time", "covariate", "value"]
        diffs += _table_differences("time-varying covariates", self.time_varying[v], other.time_varying[v],
                                    ["subject", "covariate", "time"], atol_time)
        for what, keys in (("decisions", ["day", "action"]), ("efficacy", ["subject", "endpoint", "day"])):
            x, y = getattr(self, "_" + what), getattr(other, "_" + what)
            if (x is None) != (y is None):
                diffs.append(f"one dataset has a {what} table, the other none")
            elif x is not None:
                diffs += _table_differences(what, x, y, keys, atol_time)
        return diffs

    def __repr__(self) -> str:
        return (f"Dataset({self.study.name!r}: {len(self._subjects)} subjects, "
                f"{len(self._observations)} observations, {len(self._audit)} audit records)")


def _study_differences(a: Study, b: Study) -> list[str]:
    diffs = []
    for f in dataclasses.fields(Study):
        if f.name == "formats":
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if hasattr(x, "items"):
            x, y = dict(x), dict(y)
        if x != y and not (_is_nan_equal(x, y)):
            diffs.append(f"study {f.name} differs: {x!r} vs {y!r}")
    return diffs


def _is_nan_equal(x, y) -> bool:
    """Analytes with NaN LLOQs compare unequal with ==; compare their text instead."""
    return repr(x) == repr(y)


def _table_differences(what, x: pd.DataFrame, y: pd.DataFrame, keys, atol) -> list[str]:
    if sorted(x.columns) != sorted(y.columns):
        return [f"{what}: columns differ: {list(x.columns)} vs {list(y.columns)}"]
    if len(x) != len(y):
        return [f"{what}: {len(x)} vs {len(y)} rows"]
    cols = list(x.columns)
    x = x.sort_values(keys, kind="stable").reset_index(drop=True)
    y = y[cols].sort_values(keys, kind="stable").reset_index(drop=True)
    bad = _columns_differing(x, y, atol)
    return [f"{what} differ in column(s) {', '.join(bad)}"] if bad else []


def _columns_differing(x: pd.DataFrame, y: pd.DataFrame, atol: float) -> list[str]:
    """Columns whose values differ; ``atol`` (days) only for times and days."""
    bad = []
    for c in x.columns:
        u, v = x[c], y[c]
        num_u = pd.api.types.is_numeric_dtype(u) and not pd.api.types.is_bool_dtype(u)
        num_v = pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v)
        if num_u != num_v:
            bad.append(f"{c} (number vs text)")
        elif num_u:
            tol = atol if (c == "time" or c == "day" or str(c).endswith("_day")) else 0.0
            if not np.allclose(u.to_numpy(float), v.to_numpy(float), rtol=1e-12, atol=tol, equal_nan=True):
                bad.append(c)
        elif not (u.astype(str).to_numpy() == v.astype(str).to_numpy()).all():
            bad.append(c)
    return bad
