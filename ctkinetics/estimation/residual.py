"""Residual SDs held fixed in individual fits, and where each one comes from.

A participant's few samples cannot estimate a residual SD of their own: with most B-cell
samples after infusion BLQ, one quantified value is fitted exactly and σ runs to its lower
bound. Empirical-Bayes (POSTHOC) estimates use the POPULATION residual error instead (NONMEM
``$EST POSTHOC``, Monolix EBEs, TDM "Bayesian forecasting" with a published model). The SDs
of a fit (``sigma_<analyte>``; ``sigma_prop_<analyte>`` and ``sigma_add_<analyte>`` of the
combined model — the names of the parameter table) are held fixed, in this order:

1. the user's value: ``fit(..., fixed={"sigma_bcell": 0.2})``, ``ctk fit --fix sigma_bcell=0.2``;
2. with a prior (MAP fits), unless ``estimate_sigma=True``:

   * a ``ctk popfit`` folder or PopulationResult: its σ estimates, when the population fit
     used the same error model (else estimated, and the note says why);
   * ``"model"``: the model file's ``[residual_error.<kind>]`` of the analyte's observable,
     when its error model is the fit's (else estimated, and the note says why). An analyte
     predicted through an assay scale factor is another assay: its σ is estimated;

3. every other SD is estimated.

>>> from ctkinetics.estimation.residual import split_fixed                # doctest: +SKIP
>>> split_fixed({"B50": 0.05, "sigma_bcell": 0.2}, model)                 # doctest: +SKIP
({'B50': 0.05}, {'sigma_bcell': 0.2})
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ctkinetics.errors import SettingsError


@dataclass(frozen=True)
class SigmaChoice:
    """The residual SDs of a fit held fixed and where each comes from.

    Attributes
    ----------
    values : dict
        SD name (``sigma_bcell``) -> natural-scale value held fixed.
    sources : dict
        SD name -> where the value comes from, in words.
    note : str
        One sentence for the outputs: what was fixed, from where, and what was estimated
        and why.
    """

    values: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)
    note: str = "residual SDs estimated"


def sigma_names(maps, error) -> dict:
    """SD name -> (analyte map, the error model's own SD name) of a fit's analytes."""
    return {f"{s}_{m.analyte}": (m, s) for m in maps for s in error.sigma_names}


def split_fixed(fixed: dict, model) -> tuple[dict, dict]:
    """(model parameters, other names — residual SDs, checked by :func:`check_user`)."""
    names = {p.name for p in model.parameters}
    return ({k: v for k, v in fixed.items() if k in names},
            {k: v for k, v in fixed.items() if k not in names})


def check_user(values: dict, maps, error, model) -> dict:
    """The user's fixed SDs, each a residual SD of this fit and > 0 (SettingsError)."""
    known = sigma_names(maps, error)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise SettingsError(
            f"cannot fix unknown parameter(s) {unknown}; model '{model.name}' has "
            f"{[p.name for p in model.parameters]} and this fit ({error.name} error) the "
            f"residual SDs {list(known)}")
    bad = [k for k, v in values.items() if not v > 0]
    if bad:
        raise SettingsError(f"a fixed residual SD must be > 0: {', '.join(bad)}")
    return dict(values)


def from_model_file(model, maps, error) -> tuple[dict, dict, list]:
    """(values, sources, notes) from the model file's ``[residual_error]`` tables."""
    declared = {r.kind: r for r in getattr(model, "residual_error", ()) or ()}
    values, sources, notes = {}, {}, []
    if not declared:
        return values, sources, [f"model '{model.name}' declares no [residual_error]"]
    for name, (m, s) in sigma_names(maps, error).items():
        r = declared.get(m.kind)
        if m.scale_param or r is None:
            why = "an assay scale factor" if m.scale_param else "no [residual_error]"
            notes.append(f"{name} estimated ({why} for {m.analyte})")
        elif r.model != error.name:
            notes.append(f"{name} estimated (the model file declares a {r.model} residual "
                         f"error for {m.kind}, the fit uses {error.name})")
        else:
            values[name] = float(r.sigmas[s])
            sources[name] = f"model file [residual_error.{m.kind}]: {r.source}"
    return values, sources, notes


def from_prior(prior, maps, error) -> tuple[dict, dict, list]:
    """(values, sources, notes) from a population fit's σ (:attr:`Prior.sigma`)."""
    values, sources, notes = {}, {}, []
    if prior.sigma_error and prior.sigma_error != error.name:
        return values, sources, [f"residual SDs estimated (the population fit used a "
                                 f"{prior.sigma_error} error model, this fit {error.name})"]
    for name in sigma_names(maps, error):
        if name in prior.sigma:
            values[name] = float(prior.sigma[name])
            where = "" if prior.source == "population fit" else f" ({prior.source})"
            sources[name] = f"the population fit's estimate{where}"
        else:
            notes.append(f"{name} estimated (not in the population fit)")
    return values, sources, notes


def choose(user: dict, prior, model, maps, error, estimate_sigma=False) -> SigmaChoice:
    """The SDs held fixed: the user's, then the prior's (unless ``estimate_sigma``)."""
    values, sources, notes = {}, {}, []
    if prior is not None and not estimate_sigma:
        if prior.sigma or prior.source != "model":
            values, sources, notes = from_prior(prior, maps, error)
        else:
            values, sources, notes = from_model_file(model, maps, error)
    elif prior is not None:
        notes = ["residual SDs estimated (estimate_sigma)"]
    for name, v in user.items():
        values[name], sources[name] = float(v), "the user's value"
    return SigmaChoice(values, sources, _note(values, sources, notes))


def _note(values, sources, notes) -> str:
    """'residual SDs fixed (not estimated) at <origin>: a = 0.2, b = 0.3 (<detail>); ...'
    (a source reads '<origin>: <detail>'; the same detail is said once)."""
    if not values:
        return "; ".join(notes) if notes else "residual SDs estimated"
    groups: dict = {}
    for name, v in values.items():
        origin, _, detail = sources[name].partition(": ")
        if origin.startswith("model file [residual_error"):
            origin = "the model file's assay precision ([residual_error])"
        names, details = groups.setdefault(origin, ([], []))
        names.append(f"{name} = {v:g}")
        if detail and detail not in details:
            details.append(detail)
    parts = [f"at {o}: {', '.join(n)}" + (f" ({'; '.join(d)})" if d else "")
             for o, (n, d) in groups.items()]
    return "residual SDs fixed (not estimated) " + "; ".join(parts) + \
        ("; " + "; ".join(notes) if notes else "")


__all__ = ["SigmaChoice", "sigma_names", "split_fixed", "check_user", "from_model_file",
           "from_prior", "choose"]
