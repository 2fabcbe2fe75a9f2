"""Each subject's re-infusions and time-varying covariates, from the data set to
``Model.solve`` (issue 17): the one place the fits learn about them.

:func:`attach_events` gives every :class:`~ctkinetics.estimation.problem.SubjectData` of a fit
problem its later doses (``Dataset.later_doses``: rows ``(time, amount)``) and the time
courses of the covariates the model declares ``time_varying`` (``Dataset.covariate_course``).
:class:`StackedEvents` keeps them in the order of a stack of subjects (a fit group, a
population) and :meth:`StackedEvents.extend` adds them to the covariate mapping the stack
passes to :class:`~ctkinetics.estimation.predictor.ModelPredictor`: a list of
:class:`~ctkinetics.modeling.solution.TimeCourse` per time-varying covariate and the doses
under :data:`DOSES`, which the predictor hands to ``Model.solve(doses=...)``. A stack without
events is untouched (same objects, same numbers).

Before a subject's first record a covariate takes the model's declared default (the data
layer's rule, :mod:`ctkinetics.data.timevarying`): a course whose first record is after
time 0 starts with the default at time 0.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ctkinetics.errors import SettingsError

#: key of the covariate mapping that carries per-subject doses to the predictor
DOSES = "__doses__"


def _course(times, values, default):
    from ctkinetics.modeling.solution import TimeCourse

    times, values = np.asarray(times, float), np.asarray(values, float)
    if not times.size:
        return TimeCourse([0.0], [default])
    if times[0] > 0:
        times, values = np.r_[0.0, times], np.r_[default, values]
    return TimeCourse(times, values)


def attach_events(data, dataset, model) -> list:
    """``data`` (SubjectData) with each subject's later doses and time courses.

    A model that does not say what a later dose does (no ``[dosing]``) cannot follow a
    re-infused subject past the re-infusion: those samples are excluded, each with the
    reason, and the subject is fitted on what came before.

    Raises
    ------
    SettingsError
        The data hold a time-varying covariate the model reads as constant.
    """
    later = getattr(dataset, "later_doses", None)
    names = list(getattr(dataset, "time_varying_names", []) or [])
    if later is None:
        return list(data)
    specs = {c.name: c for c in getattr(model, "covariate_specs", ())}
    constant = [c for c in names if c in specs and not specs[c].time_varying]
    if constant:
        raise SettingsError(f"covariate(s) {constant} change with time in the data but model "
                            f"'{model.name}' reads them as constant (declare time_varying = true "
                            "in the model file, or give one value per participant in subjects.csv)")
    used = [c for c in names if c in specs]
    dosing = bool(getattr(model, "dosing", None))
    out = []
    for d in data:
        doses = later(d.subject)
        courses = {c: _course(*dataset.covariate_course(d.subject, c), specs[c].default) for c in used}
        if len(doses) and not dosing:
            d, doses = _before_reinfusion(d, float(doses[0, 0]), model.name), doses[:0]
        out.append(dataclasses.replace(d, doses=doses if len(doses) else None, courses=courses))
    return out


def _before_reinfusion(d, day: float, model_name: str):
    """``d`` with its samples after a re-infusion on ``day`` excluded (a sample at the dose
    time is pre-dose and stays)."""
    from ctkinetics.estimation.likelihood import EXCLUDED

    columns = {k: np.array(v, copy=True) for k, v in d.columns.items()}
    parts = []
    reason = (f"after the re-infusion on day {day:g}: model '{model_name}' does not say what a later "
              "dose does (no [dosing] table)")
    for a in d.analytes:
        late = a.times > day
        mode = np.where(late, EXCLUDED, a.mode)
        rows = a.rows[late & (a.mode != EXCLUDED)]
        columns["status"][rows], columns["reason"][rows], columns["value_used"][rows] = "excluded", reason, np.nan
        parts.append(dataclasses.replace(a, mode=mode))
    d = dataclasses.replace(d, analytes=tuple(parts), columns=columns)
    d.__dict__.pop("records", None)    # rebuilt from the new columns on first use
    return d


def subject_inputs(dataset, model, subject: str, covariates: dict) -> tuple[dict, dict]:
    """For one subject's curve: (covariates with the model's time-varying courses, keyword
    arguments of ``model.predict`` — ``doses`` when the subject was infused again)."""
    specs = {c.name: c for c in getattr(model, "covariate_specs", ())}
    names = [c for c in (getattr(dataset, "time_varying_names", []) or [])
             if c in specs and specs[c].time_varying]
    out = dict(covariates or {})
    for c in names:
        out[c] = _course(*dataset.covariate_course(str(subject), c), specs[c].default)
    later = getattr(dataset, "later_doses", None)
    doses = later(str(subject)) if later is not None else np.zeros((0, 2))
    return out, ({"doses": doses} if len(doses) and getattr(model, "dosing", None) else {})


class StackedEvents:
    """Doses and time courses of a stack of subjects, in stack order (see the module)."""

    def __init__(self, subjects):
        subjects = list(subjects)
        self.doses = [getattr(s, "doses", None) for s in subjects]
        names = sorted(set().union(*[getattr(s, "courses", None) or {} for s in subjects])) if subjects else []
        self.courses = {c: [s.courses[c] for s in subjects] for c in names}
        self.any = any(d is not None for d in self.doses) or bool(self.courses)

    def extend(self, covariates: dict, reps: int = 1) -> dict:
        """``covariates`` with the time courses (one per row: the stack ``reps`` times) and,
        under :data:`DOSES`, the doses; unchanged when the stack has no events."""
        if not self.any:
            return covariates
        out = dict(covariates)
        for c, items in self.courses.items():
            out[c] = list(items) * reps
        if any(d is not None for d in self.doses):
            empty = np.zeros((0, 2))
            out[DOSES] = [empty if d is None else d for d in self.doses] * reps
        return out

    def take(self, rows) -> "StackedEvents":
        """The events of the subjects ``rows`` of the stack."""
        if not self.any:
            return self
        new = object.__new__(StackedEvents)
        rows = [int(r) for r in np.asarray(rows, int)]
        new.doses = [self.doses[r] for r in rows]
        new.courses = {c: [v[r] for r in rows] for c, v in self.courses.items()}
        new.any = any(d is not None for d in new.doses) or bool(new.courses)
        return new


def split(covariates):
    """(covariates without the doses, doses or None): what the predictor passes on."""
    if not covariates or DOSES not in covariates:
        return covariates, None
    cov = dict(covariates)
    return cov, cov.pop(DOSES)


def static(covariates):
    """The covariates that are numbers (the time courses left out), for the checks that
    evaluate parameters without solving."""
    if not covariates:
        return covariates
    return {k: v for k, v in covariates.items()
            if k != DOSES and not (isinstance(v, list) and v and not np.isscalar(v[0]))}


__all__ = ["attach_events", "subject_inputs", "StackedEvents", "DOSES", "split", "static"]
