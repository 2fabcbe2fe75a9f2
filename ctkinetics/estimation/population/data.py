"""A data set laid out for a population fit: every subject's samples in padded arrays.

The samples are labelled exactly as for the individual fits (pre-infusion structural zeros
excluded, the BLQ method applied, reasons kept): both start from one
:class:`ctkinetics.estimation.fitproblem.FitProblem`. Predictions are made once for all
subjects at the union of their sampling times (the model's ``predict`` is vectorised over
subjects) and each subject's samples are gathered from that grid; padding carries the
``EXCLUDED`` mode and so adds 0 to every likelihood. An ODE model is solved for each subject
at its own grid times only (:class:`~.structure.PopModel`'s ``needed``): each to its own
last sample.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.likelihood import EXCLUDED, BLQMethod, ErrorModel
from ctkinetics.estimation.events import StackedEvents
from ctkinetics.estimation.fitproblem import FitProblem


@dataclass(frozen=True)
class AnalyteArrays:
    """One analyte over all subjects, padded to the largest number of samples ``m``."""

    analyte: str
    kind: str
    scale_param: str
    idx: np.ndarray      # (n, m) positions in PopData.times
    y: np.ndarray        # (n, m) value used (the limit for censored samples); 1.0 in padding
    mode: np.ndarray     # (n, m) EXCLUDED / QUANTIFIED / CENSORED
    time: np.ndarray     # (n, m) NaN in padding
    lloq: np.ndarray     # (n, m) the sample's LLOQ (NaN if unknown or padding)
    rows: np.ndarray     # (n, m) row in that subject's records, -1 in padding


@dataclass(frozen=True)
class PopData:
    """Subjects, the union of their sampling times, and padded per-analyte arrays."""

    subjects: tuple[str, ...]
    times: np.ndarray
    analytes: tuple[AnalyteArrays, ...]
    model_covariates: dict          # name -> (n,) values passed to model.predict
    subject_table: pd.DataFrame     # one row per subject (all covariate columns)
    records: tuple                  # per subject: records DataFrame (status, reason, ...)
    layout: object                  # the individual-fit ParamLayout (bounds, starts, units)
    dose_levels: dict
    events: object = None           # issue 17: re-infusions, time courses (events.StackedEvents)

    @property
    def n(self):
        return len(self.subjects)

    @property
    def n_obs(self):
        return int(sum(np.count_nonzero(a.mode != EXCLUDED) for a in self.analytes))

    @property
    def n_censored(self):
        return int(sum(np.count_nonzero(a.mode == 2) for a in self.analytes))

    def take(self, rows) -> "PopData":
        """The subjects ``rows`` (indices, in that order) on the same time grid."""
        rows = np.asarray(rows, int)
        analytes = tuple(replace(a, idx=a.idx[rows], y=a.y[rows], mode=a.mode[rows],
                                 time=a.time[rows], lloq=a.lloq[rows], rows=a.rows[rows])
                         for a in self.analytes)
        return replace(self, subjects=tuple(self.subjects[i] for i in rows), analytes=analytes,
                       model_covariates={k: np.asarray(v)[rows]
                                         for k, v in self.model_covariates.items()},
                       subject_table=self.subject_table.iloc[rows].reset_index(drop=True),
                       records=tuple(self.records[i] for i in rows),
                       events=None if self.events is None else self.events.take(rows))


def build_data(dataset, model, error: ErrorModel, blq: BLQMethod, analytes=None,
               fixed=None, estimate=None) -> PopData:
    """Label and lay out the samples of ``dataset`` for ``model`` (through the one
    :class:`~ctkinetics.estimation.fitproblem.FitProblem`)."""
    problem = FitProblem.build(dataset, model, analytes=analytes, blq=blq, error=error,
                               estimate=estimate, fixed=fixed)
    return lay_out(problem)


def lay_out(problem: FitProblem) -> PopData:
    """The padded arrays of a fit problem's subjects with usable samples (at least 2)."""
    model, maps, layout = problem.model, problem.maps, problem.layout
    if layout.fixed_sigmas:
        raise SettingsError(f"a population fit estimates its residual SDs: cannot fix "
                            f"{', '.join(s.name for s in layout.fixed_sigmas)} (fixing σ is for "
                            "individual fits, e.g. ctk fit --prior DIR after ctk popfit)")
    data = [d for d in problem.subjects if d.n_obs > 0]
    if len(data) < 2:
        raise SettingsError(f"a population fit needs at least 2 subjects with usable samples "
                            f"(found {len(data)})")
    problem = problem.with_subjects(data)
    ids = [d.subject for d in data]
    times = np.unique(np.concatenate([a.times for d in data for a in d.analytes]))
    arrays = []
    for k, m in enumerate(maps):
        parts = [d.analytes[k] for d in data]
        width = max(1, max(len(a.times) for a in parts))
        n = len(parts)
        idx = np.zeros((n, width), int)
        y = np.ones((n, width))
        mode = np.full((n, width), EXCLUDED)
        tt = np.full((n, width), np.nan)
        lloq = np.full((n, width), np.nan)
        rws = np.full((n, width), -1)
        for i, (a, d) in enumerate(zip(parts, data)):
            j = len(a.times)
            idx[i, :j] = np.searchsorted(times, a.times)
            yi = np.where(np.isfinite(a.y), a.y, 1.0)
            y[i, :j], mode[i, :j], tt[i, :j], rws[i, :j] = yi, a.mode, a.times, a.rows
            lloq[i, :j] = np.asarray(d.columns["lloq"], float)[a.rows]
        arrays.append(AnalyteArrays(m.analyte, m.kind, m.scale_param, idx, y, mode, tt, lloq,
                                    rws))
    cov_names = list(getattr(model, "covariates", None) or ())
    model_cov = {}
    for c in cov_names:
        vals = np.array([d.covariates.get(c, np.nan) for d in data], float)
        if np.all(np.isfinite(vals)):
            model_cov[c] = vals
        elif np.any(np.isfinite(vals)):
            bad = [d.subject for d, v in zip(data, vals) if not np.isfinite(v)]
            raise SettingsError(f"covariate '{c}' used by model '{model.name}' is missing "
                                f"for subject(s) {bad[:10]}")
    return PopData(tuple(ids), times, tuple(arrays), model_cov, problem.subject_table(),
                   tuple(d.records for d in data), layout, problem.dose_levels(),
                   StackedEvents(data))
