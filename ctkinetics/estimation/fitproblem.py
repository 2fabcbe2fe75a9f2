"""The fit problem, built once: what individual and population fits both start from.

A :class:`FitProblem` holds the resolved model, the error model and BLQ method, the analytes
fitted (each mapped to a model observable, with an estimated assay scale when the model does
not observe that kind), every subject's labelled samples (pre-infusion structural zeros
excluded, the BLQ method applied, reasons kept: :func:`.problem.subjects_data`), the
estimated and fixed parameters (:func:`resolve_fixed`) and the parameter layout with its
starts and bounds (:func:`.problem.build_layout`). ``fit`` and ``fit_population`` call
:meth:`FitProblem.build`; nothing else reads analytes, kinds or units from a data set.

>>> from ctkinetics import load_study                                   # doctest: +SKIP
>>> p = FitProblem.build(load_study("study/"), "stein2019", blq="M3",
...                      fixed={"FB": 0.01})                            # doctest: +SKIP
>>> p.layout.names     # Cmax, Tmax, foldx, alpha, beta, sigma_transgene   # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.events import attach_events
from ctkinetics.estimation.likelihood import (
    QUANTIFIED, BLQMethod, ErrorModel, check_compatible, get_blq_method, get_error_model,
)
from ctkinetics.estimation.problem import (
    AnalyteMap, ParamLayout, SubjectData, analyte_maps, build_layout, subjects_data,
)
from ctkinetics.estimation.residual import SigmaChoice, check_user, choose, split_fixed


def resolve_model(model):
    """A model object from a library name or a ``.toml`` path (objects pass through)."""
    if isinstance(model, str):
        from ctkinetics.modeling import load_model

        return load_model(model)
    return model


def analyte_info(dataset, names) -> tuple[dict, dict]:
    """(kind, unit) of each analyte from ``dataset.study.analytes``: the one lookup.

    An analyte the study does not describe has its own name as kind and no unit.
    """
    table = getattr(getattr(dataset, "study", None), "analytes", None) or {}
    kinds = {a: getattr(table.get(a), "kind", None) or a for a in names}
    units = {a: getattr(table.get(a), "unit", "") or "" for a in names}
    return kinds, units


def parse_names(value) -> list[str]:
    """``"a,b"`` or a list -> list of names (order kept, blanks dropped)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value if str(v).strip()]


def parse_fixed(fixed, option="--fix", what="fixed") -> dict:
    """Fixed values from a dict, ``"A=1,B=2"`` or a list of ``"NAME=VALUE"`` (the CLI's
    repeatable ``--fix``; ``option`` and ``what`` name another such option in messages, e.g.
    popfit's ``--init`` start values) -> {name: float}."""
    if fixed is None:
        return {}
    if isinstance(fixed, dict):
        items = list(fixed.items())
    else:
        texts = fixed.split(",") if isinstance(fixed, str) else list(fixed)
        items = []
        for text in texts:
            name, sep, value = str(text).partition("=")
            if not sep or not name.strip():
                raise SettingsError(f"{option} '{text}' must read NAME=VALUE, e.g. FB=0.01")
            items.append((name.strip(), value.strip()))
    out = {}
    for name, value in items:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{what} value of '{name}' must be a number (got "
                                f"'{value}')") from None
        if not np.isfinite(v):
            raise SettingsError(f"{what} value of '{name}' must be finite (got {value})")
        out[str(name)] = v
    return out


def resolve_fixed(model, estimate=None, fixed=None) -> dict:
    """The model parameters held fixed, name -> natural-scale value, in model order.

    ``estimate`` (names, or ``"A,B"``) lists exactly the parameters estimated; every other
    one is fixed at its ``fixed`` value or the model default. Without ``estimate`` the
    model file decides (a parameter declared ``estimate = false`` is fixed at its default)
    and ``fixed`` fixes more. A name both estimated and fixed is an error.
    """
    names = [p.name for p in model.parameters]
    fixed = parse_fixed(fixed)
    unknown = sorted(set(fixed) - set(names))
    if unknown:
        raise SettingsError(f"cannot fix unknown parameter(s) {unknown}; model "
                            f"'{model.name}' has {names}")
    if estimate is None:
        chosen = [p.name for p in model.parameters if getattr(p, "estimate", True)]
        chosen = [n for n in chosen if n not in fixed]
    else:
        chosen = parse_names(estimate)
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            raise SettingsError(f"cannot estimate unknown parameter(s) {unknown}; model "
                                f"'{model.name}' has {names}")
        both = [n for n in chosen if n in fixed]
        if both:
            raise SettingsError(f"parameter(s) {both} both estimated and fixed")
    for p in model.parameters:
        if p.name in fixed:
            lo, hi = getattr(p, "lower", None), getattr(p, "upper", None)
            v = fixed[p.name]
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise SettingsError(f"fixed value {v:g} of '{p.name}' is outside its bounds "
                                    f"[{lo:g}, {hi:g}] in model '{model.name}'")
    return {p.name: float(fixed.get(p.name, p.default)) for p in model.parameters
            if p.name not in chosen}


def select_analytes(present, model, kinds, analytes=None) -> list[str]:
    """The analytes fitted: those named (each must be in the data), or by default every
    analyte whose kind the model observes."""
    if analytes is None:
        observables = list(getattr(model, "observables", {}) or {})
        chosen = [a for a in present if kinds[a] in observables]
        if not chosen:
            raise SettingsError(
                f"none of the analytes {present} is of a kind the model '{model.name}' "
                f"observes ({observables}); pass analytes=... to fit one with a scale factor")
        return chosen
    chosen = parse_names(analytes)
    missing = [a for a in chosen if a not in present]
    if missing:
        raise SettingsError(f"analyte(s) {missing} not in the data; available: {present}")
    return chosen


@dataclass(frozen=True)
class FitProblem:
    """Everything a fit needs, built once from a data set and a model (see the module).

    Attributes
    ----------
    model : Model
    error : ErrorModel
    blq : BLQMethod
    analytes : tuple of str
        Analytes fitted, in data order.
    maps : tuple of AnalyteMap
        How each analyte is predicted (observable, assay scale parameter, unit).
    subjects : tuple of SubjectData
        Every subject with samples of the fitted analytes, labelled.
    layout : ParamLayout
        Estimated parameters (model, assay scales, residual SDs) with starts and bounds;
        ``layout.fixed`` the fixed model parameters.
    subject_rows : dict
        subject -> its row of ``dataset.subjects`` (covariates, dose level), as a dict.
    """

    model: object
    error: ErrorModel
    blq: BLQMethod
    analytes: tuple
    maps: tuple[AnalyteMap, ...]
    subjects: tuple[SubjectData, ...]
    layout: ParamLayout
    subject_rows: dict = field(default_factory=dict, repr=False)
    #: the residual SDs held fixed and where they come from (:mod:`.residual`)
    sigma: SigmaChoice = field(default_factory=SigmaChoice)

    @classmethod
    def build(cls, dataset, model, *, analytes=None, subjects=None, blq="M3",
              error="proportional", estimate=None, fixed=None,
              prior=None, estimate_sigma=False) -> "FitProblem":
        """Resolve the model and methods, select analytes and subjects, label the samples
        and lay out the parameters.

        Parameters
        ----------
        dataset : Dataset
            ``.observations``, ``.subjects`` and ``.study.analytes`` (DEVELOPERS.md).
        model : str or Model
        analytes : list of str or "a,b", optional
            Default: every analyte whose kind the model observes.
        subjects : list of str, optional
            Default: every subject with samples of those analytes (data order).
        blq, error : str or BLQMethod / ErrorModel
        estimate : list of str or "a,b", optional
            Exactly the model parameters estimated (default: the model file's choice).
        fixed : dict, "A=1,B=2" or list of "NAME=VALUE", optional
            Model parameters and residual SDs (``sigma_<analyte>``) held at natural-scale
            values.
        prior : "model", a ``ctk popfit`` folder, a PopulationResult or a Prior, optional
            MAP fits with this prior on the estimated parameters (:mod:`.prior`); the
            residual SDs are then held at the population fit's or the model file's
            (:mod:`.residual`).
        estimate_sigma : bool
            With a prior, estimate the residual SDs instead (those in ``fixed`` stay fixed).
        """
        err = error if isinstance(error, ErrorModel) else get_error_model(error)
        blqm = blq if isinstance(blq, BLQMethod) else get_blq_method(blq)
        check_compatible(err, blqm)
        model = resolve_model(model)
        fixed, user_sigma = split_fixed(parse_fixed(fixed), model)
        fixed_all = resolve_fixed(model, estimate, fixed)
        obs = dataset.observations
        obs = obs.assign(subject=obs["subject"].astype(str), analyte=obs["analyte"].astype(str))
        present = list(dict.fromkeys(obs["analyte"]))
        kinds, units = analyte_info(dataset, present)
        chosen = select_analytes(present, model, kinds, analytes)
        maps = analyte_maps(model, chosen, kinds, units)
        obs = obs[obs["analyte"].isin(chosen)]
        ids = list(dict.fromkeys(obs["subject"]))
        if subjects is not None:
            wanted = [str(s) for s in ([subjects] if isinstance(subjects, str) else subjects)]
            unknown = [s for s in wanted if s not in ids]
            if unknown:
                raise SettingsError(f"subject(s) {unknown} have no samples of {chosen}")
            ids = wanted
        rows = {}
        table = getattr(dataset, "subjects", None)
        if table is not None and len(table):
            st = table.assign(subject=table["subject"].astype(str))
            rows = dict(zip(st["subject"], st.to_dict(orient="records")))
        data = subjects_data(ids, obs, rows, model, maps, blqm, err)
        data = attach_events(data, dataset, model)  # issue 17: re-infusions, time-varying covariates
        user_sigma = check_user(user_sigma, maps, err, model)
        layout = build_layout(model, maps, err, _pooled(data, maps), fixed_all)
        problem = cls(model, err, blqm, tuple(chosen), maps, tuple(data), layout, rows)
        p = None
        if prior is not None:
            from ctkinetics.estimation.prior import resolve_prior

            p = resolve_prior(prior, model, problem.estimated, problem.subject_table())
        sigma = choose(user_sigma, p, model, maps, err, estimate_sigma)
        layout = build_layout(model, maps, err, _pooled(data, maps), fixed_all, sigma.values)
        return replace(problem, layout=replace(layout, prior=p), sigma=sigma)

    # ----------------------------------------------------------------------------------
    @property
    def subject_ids(self) -> list[str]:
        return [d.subject for d in self.subjects]

    @property
    def fixed(self) -> dict:
        return dict(self.layout.fixed)

    @property
    def fixed_all(self) -> dict:
        """Everything held fixed: the model parameters, then the residual SDs."""
        return {**self.layout.fixed, **{s.name: s.default for s in self.layout.fixed_sigmas}}

    @property
    def estimated(self) -> list[str]:
        """The model parameters estimated (scales and SDs not included)."""
        return [s.name for s in self.layout.specs if s.role == "model"]

    def dose_levels(self) -> dict:
        """subject -> dose level label ('' when unknown)."""
        rows = self.subject_rows
        return {s: str(rows[s]["dose_level"]) if s in rows and "dose_level" in rows[s] else ""
                for s in self.subject_ids}

    def subject_table(self) -> pd.DataFrame:
        """One row per subject of the problem (all columns of ``dataset.subjects``)."""
        ids = self.subject_ids
        if not self.subject_rows:
            return pd.DataFrame({"subject": ids})
        table = pd.DataFrame([self.subject_rows.get(s, {"subject": s}) for s in ids])
        table = table.reset_index(drop=True)
        table["subject"] = ids
        return table

    def with_subjects(self, keep) -> "FitProblem":
        """The same problem for the subjects ``keep`` (SubjectData or ids), layout kept."""
        ids = {k if isinstance(k, str) else k.subject for k in keep}
        return replace(self, subjects=tuple(d for d in self.subjects if d.subject in ids))

    @property
    def prior(self):
        """The MAP prior (:class:`.prior.Prior`) or None for maximum likelihood."""
        return self.layout.prior

    def settings(self) -> dict:
        """What a result records of the problem (JSON-ready)."""
        return dict(analytes=list(self.analytes), blq=self.blq.name, error=self.error.name,
                    estimate=self.estimated, fixed=self.fixed_all,
                    sigma_sources=dict(self.sigma.sources), sigma_note=self.sigma.note,
                    scale_factors=[m.scale_param for m in self.maps if m.scale_param],
                    prior=self.prior.source if self.prior is not None else None)


def _pooled(data, maps) -> dict:
    """analyte -> quantified values pooled over the subjects (they set SD starts/bounds)."""
    out = {}
    for m in maps:
        vals = [a.y[a.mode == QUANTIFIED] for d in data for a in d.analytes
                if a.analyte == m.analyte]
        out[m.analyte] = np.concatenate(vals) if vals else np.array([])
    return out


__all__ = ["FitProblem", "resolve_model", "analyte_info", "resolve_fixed", "parse_fixed",
           "parse_names", "select_analytes"]
