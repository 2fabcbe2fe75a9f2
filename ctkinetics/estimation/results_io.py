"""Results that travel: the tables and metadata of a fit, their writer and, beside it, the
reader that gives back an equal result (as Pharmpy's ``to_dict``/``from_dict``).

Each table has one producer (:func:`fit_tables`, :func:`population_tables`); ``ctk fit`` and
``ctk popfit`` write them under these names, the report under its own (the mapping is
:data:`REPORT_FILE_NAMES`, applied by the report):

=====================  ==========================  ==================================
ctk fit / ctk popfit   cohort report               content
=====================  ==========================  ==================================
parameters.csv         fit_parameters.csv          one row per subject and parameter
fits.csv               fits.csv                    one row per subject: −2LL, flags, ...
predictions.csv        fit_predictions.csv         one row per sample: IPRED, IWRES, ...
derived.csv            fit_derived.csv             model-based Cmax, Tmax, AUC0-28, ...
summary.csv            fit_summary.csv             two-stage summary per dose level
excluded.csv           fit_excluded.csv            samples left out, with the reason
covariance.csv         —                           covariance of each fit (long)
identifiability.csv    —                           the check at the start values
prior.csv              —                           MAP fits: the prior and η-shrinkage
starts.csv             —                           every local optimisation of each fit
fit.json               summary.json ("fits")       model, methods, analytes, settings
theta.csv              population_theta.csv        θ, covariate effects, σ
omega.csv              population_omega.csv        Ω entry by entry
individual.csv         population_individual.csv   EBEs
predictions.csv        population_predictions.csv  PRED, IPRED, IWRES, CWRES, P(BLQ)
covariance.csv         —                           covariance of the optimiser's vector
history.csv            —                           iterations
fit.json               summary.json ("population") everything else (parameters, spec, x)
=====================  ==========================  ==================================

>>> write_fit(result, "out/")          # or through an open OutputFolder   # doctest: +SKIP
>>> read_fit("out/") == result                                            # doctest: +SKIP
True
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ctkinetics.estimation.identifiability import COLUMNS as IDENTIFIABILITY_COLUMNS
from ctkinetics.estimation.results import (
    DERIVED_COLUMNS, FIT_COLUMNS, PARAMETER_COLUMNS, PREDICTION_COLUMNS, FitResult, SubjectFit,
)
from ctkinetics.jsonable import jsonable
from ctkinetics.outputs import read_table

#: Format of ``fit.json``; a reader refuses a newer one.
FORMAT = 1

#: The file names the cohort report gives the same tables (the report applies them).
REPORT_FILE_NAMES = {
    "parameters.csv": "fit_parameters.csv", "fits.csv": "fits.csv",
    "predictions.csv": "fit_predictions.csv", "derived.csv": "fit_derived.csv",
    "summary.csv": "fit_summary.csv", "excluded.csv": "fit_excluded.csv",
}
POPULATION_REPORT_FILE_NAMES = {
    "theta.csv": "population_theta.csv", "omega.csv": "population_omega.csv",
    "individual.csv": "population_individual.csv",
    "predictions.csv": "population_predictions.csv",
}
COVARIANCE_COLUMNS = ["subject", "parameter", "parameter2", "value"]
START_COLUMNS = ["subject", "start", "ofv", "success"]


# --------------------------------------------------------------------------------------
# individual fits
# --------------------------------------------------------------------------------------
def fit_tables(result: FitResult) -> dict:
    """File name -> table of a :class:`FitResult` (the one producer of each)."""
    cov = []
    for f in result.fits:
        if f.cov is None:
            continue
        names = f.param_names
        k = len(names)
        cov.append(pd.DataFrame({"subject": f.subject, "parameter": np.repeat(names, k),
                                 "parameter2": np.tile(names, k),
                                 "value": np.asarray(f.cov, float).ravel()}))
    starts = [pd.DataFrame([(f.subject, str(s), float(o), bool(ok))
                            for s, o, ok in f.start_history], columns=START_COLUMNS)
              for f in result.fits if f.start_history]
    return {
        "parameters.csv": result.to_frame(), "fits.csv": result.fits_frame(),
        "predictions.csv": result.predictions_frame(), "derived.csv": result.derived_frame(),
        "summary.csv": result.summary(), "excluded.csv": result.excluded_frame(),
        "covariance.csv": (pd.concat(cov, ignore_index=True) if cov
                           else pd.DataFrame(columns=COVARIANCE_COLUMNS)),
        "starts.csv": (pd.concat(starts, ignore_index=True) if starts
                       else pd.DataFrame(columns=START_COLUMNS)),
        "identifiability.csv": (result.identifiability if result.identifiability is not None
                                else pd.DataFrame(columns=IDENTIFIABILITY_COLUMNS)),
        **({"prior.csv": result.prior} if result.prior is not None else {}),
    }


def fit_meta(result: FitResult) -> dict:
    """What ``fit.json`` holds: the fields of the result that are not tables."""
    return jsonable({"format": FORMAT, "kind": "individual fits", "model": result.model,
                     "blq_method": result.blq_method, "error_model": result.error_model,
                     "analytes": list(result.analytes), "dose_levels": result.dose_levels,
                     "settings": result.settings, "subjects": [f.subject for f in result.fits]})


def write_fit(result: FitResult, folder, **extra) -> list:
    """Write the tables and ``fit.json`` (with ``extra`` entries, e.g. ``study``) into
    ``folder``: an open :class:`ctkinetics.outputs.OutputFolder` (the CLI's) or a path (an
    atomic folder with its manifest is made here). Returns the names written."""
    return _write(folder, fit_tables(result), {**fit_meta(result), **jsonable(extra)})


def read_fit(folder) -> FitResult:
    """The :class:`FitResult` written by :func:`write_fit` / ``ctk fit``."""
    meta, t = _read(folder, ("parameters.csv", "fits.csv", "predictions.csv", "derived.csv",
                             "covariance.csv", "starts.csv", "identifiability.csv"),
                    "individual fits")
    by = {name: _by_subject(frame) for name, frame in t.items()}
    fits = tuple(_subject_fit(row, by, s) for s, row in
                 zip(t["fits.csv"]["subject"], t["fits.csv"].to_dict(orient="records")))
    settings = dict(meta.get("settings") or {})
    for key in ("analytes", "scale_factors"):
        if key in settings and isinstance(settings[key], list):
            settings[key] = tuple(settings[key])
    prior = read_table(folder, "prior.csv") if (Path(folder) / "prior.csv").exists() \
        else None
    return FitResult(meta["model"], meta["blq_method"], meta["error_model"],
                     tuple(meta["analytes"]), fits, dict(meta.get("dose_levels") or {}),
                     settings, t["identifiability.csv"], prior)


def _by_subject(frame):
    return {s: d for s, d in frame.groupby("subject", sort=False)} if len(frame) else {}


def _columns(frame, columns) -> dict:
    out = {}
    for c in columns:
        v = frame[c].to_numpy()
        out[c] = v.astype(object) if v.dtype.kind in "OUT" or str(frame[c].dtype) == "str" \
            else v
    return out


def _subject_fit(row, by, subject) -> SubjectFit:
    params = by["parameters.csv"].get(subject)
    preds = by["predictions.csv"].get(subject)
    derived = by["derived.csv"].get(subject)
    cov = by["covariance.csv"].get(subject)
    starts = by["starts.csv"].get(subject)
    names = [] if params is None else [   # the estimated ones: a fixed SD has no covariance
        n for n, c in zip(params["parameter"], params["ci_method"]) if c != "fixed"]
    matrix = None
    if cov is not None:
        pos = {n: i for i, n in enumerate(names)}
        matrix = np.full((len(names), len(names)), np.nan)
        matrix[[pos[a] for a in cov["parameter"]], [pos[b] for b in cov["parameter2"]]] = \
            cov["value"].to_numpy(float)
    history = () if starts is None else tuple(
        (str(a), float(b), bool(c)) for a, b, c in zip(starts["start"], starts["ofv"],
                                                        starts["success"]))
    return SubjectFit(
        subject=subject, model=row["model"], blq_method=row["blq_method"],
        error_model=row["error_model"], success=bool(row["success"]), message=row["message"],
        ofv=float(row["ofv"]), n_obs=int(row["n_obs"]), n_blq=int(row["n_blq"]),
        n_params=int(row["n_params"]), aic=float(row["aic"]), bic=float(row["bic"]),
        n_starts=int(row["n_starts"]), n_starts_at_best=int(row["n_starts_at_best"]),
        flags=tuple(f for f in str(row["flags"]).split(";") if f),
        param_columns=_columns(params, PARAMETER_COLUMNS) if params is not None else {},
        pred_columns=_columns(preds, PREDICTION_COLUMNS) if preds is not None else {},
        cov=matrix,
        derived_rows=_columns(derived, DERIVED_COLUMNS) if derived is not None else None,
        start_history=history, engine=row["engine"], ci_method=row["ci_method"],
        ci_df=float(row["ci_df"]), failed=bool(row["failed"]),
        ofv_second=float(row["ofv_second"]))


# --------------------------------------------------------------------------------------
# population fits
# --------------------------------------------------------------------------------------
def population_tables(result) -> dict:
    """File name -> table of a PopulationResult (the one producer of each)."""
    pars = result.to_frame()
    cov = result.covariance
    return {"theta.csv": pars[pars["kind"] != "omega"] if len(pars) else pars,
            "omega.csv": result.omega, "individual.csv": result.individual,
            "predictions.csv": result.predictions,
            "covariance.csv": cov.rename_axis("parameter").reset_index() if len(cov)
            else pd.DataFrame(columns=["parameter"]),
            "history.csv": result.history}


def population_meta(result) -> dict:
    """``fit.json`` of a population fit: its summary, the full parameter table, the
    structure of the estimated vector (``spec``) and the vector itself (``x``)."""
    meta = result.summary()
    meta.update(format=FORMAT, kind="population fit",
                spec=_spec_dict(result.spec) if result.spec is not None else None,
                x=None if result.x is None else [float(v) for v in result.x])
    return jsonable(meta)


def write_population(result, folder, **extra) -> list:
    """Write a PopulationResult (see :func:`write_fit`)."""
    return _write(folder, population_tables(result),
                  {**population_meta(result), **jsonable(extra)})


def read_population(folder):
    """The PopulationResult written by :func:`write_population` / ``ctk popfit``."""
    from ctkinetics.estimation.population.results import (
        PARAMETER_COLUMNS as POP_COLUMNS, PopulationResult,
    )

    meta, t = _read(folder, ("omega.csv", "individual.csv", "predictions.csv",
                             "covariance.csv", "history.csv"), "population fit")
    params = pd.DataFrame(meta.get("parameters") or [], columns=POP_COLUMNS)
    for c in POP_COLUMNS:
        if c in ("parameter", "kind", "unit", "scale", "description"):
            params[c] = params[c].map(lambda v: "" if v is None else str(v)).astype(str)
        else:
            params[c] = pd.to_numeric(params[c]).astype(float)
    cov = t["covariance.csv"]
    cov = cov.set_index("parameter").rename_axis(None) if len(cov.columns) > 1 \
        else pd.DataFrame()
    sd = np.sqrt(np.where(np.diag(cov) > 0, np.diag(cov), np.nan)) if len(cov) else []
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd) if len(cov) else pd.DataFrame()
    spec = _spec_from(meta["spec"]) if meta.get("spec") else None
    x = np.array(meta["x"], float) if meta.get("x") is not None else None
    return PopulationResult(
        model=meta["model"], method=meta["method"], blq_method=meta["blq_method"],
        error_model=meta["error_model"], parameters=params, omega=t["omega.csv"],
        individual=t["individual.csv"], predictions=t["predictions.csv"],
        ofv=_num(meta["ofv"]), aic=_num(meta["aic"]), bic=_num(meta["bic"]),
        n_subjects=int(meta["n_subjects"]), n_obs=int(meta["n_obs"]),
        n_censored=int(meta["n_censored"]), n_params=int(meta["n_params"]),
        converged=bool(meta["converged"]), message=meta["message"], covariance=cov,
        correlation=corr, diagnostics=meta.get("diagnostics") or {},
        history=t["history.csv"], settings=meta.get("settings") or {}, spec=spec, x=x,
        failed=bool(meta.get("failed", False)), failure=meta.get("failure", "") or "")


def _num(v):
    return np.nan if v is None else float(v)


def _spec_dict(spec) -> dict:
    return {"thetas": [vars(t) for t in spec.thetas], "random": list(spec.random),
            "effects": [vars(e) for e in spec.effects], "sigmas": [vars(s) for s in spec.sigmas],
            "omega": spec.structure.name, "fixed": dict(spec.fixed or {})}


def _spec_from(d):
    from ctkinetics.estimation.population.omega import resolve_omega
    from ctkinetics.estimation.population.spec import (
        CovariateEffect, PopulationSpec, SigmaSpec, ThetaSpec,
    )

    return PopulationSpec(tuple(ThetaSpec(**t) for t in d["thetas"]), tuple(d["random"]),
                          tuple(CovariateEffect(**e) for e in d["effects"]),
                          tuple(SigmaSpec(**s) for s in d["sigmas"]),
                          resolve_omega(d["omega"]), dict(d.get("fixed") or {}))


# --------------------------------------------------------------------------------------
def _write(folder, tables: dict, meta: dict) -> list:
    from ctkinetics.estimation.result_folder import write_tables

    return write_tables(folder, tables, "fit.json", meta)


def _read(folder, names, kind):
    from ctkinetics.errors import OutputError
    from ctkinetics.outputs import read_table

    folder = Path(folder)
    meta = json.loads((folder / "fit.json").read_text())
    if meta.get("kind") != kind:
        raise OutputError(f"{folder}/fit.json holds a {meta.get('kind') or 'older'} result, "
                          f"not {kind}")
    if int(meta.get("format", 0)) > FORMAT:
        raise OutputError(f"{folder}/fit.json has format {meta['format']}; this ctkinetics "
                          f"reads up to {FORMAT}")
    return meta, {n: read_table(folder, n) for n in names}


__all__ = ["fit_tables", "fit_meta", "write_fit", "read_fit", "population_tables",
           "population_meta", "write_population", "read_population", "REPORT_FILE_NAMES",
           "POPULATION_REPORT_FILE_NAMES", "FIT_COLUMNS"]
