"""Model-based exposure of fitted subjects: Cmax, Tmax and AUC0-28 of each fitted analyte,
plus the model's own derived quantities (doubling time, half-lives, ... from
``model.derived``).

The metrics come from the one exposure registry, :func:`ctkinetics.modeling.exposure.
model_exposure` (the report and the virtual trials use the same rule, so "AUC0-28" is one
number everywhere): Cmax/Tmax on a grid plus the switch times, refined by parabolas, up to
the subject's last sample (at least day 28); AUC0-28 the exact integral of the curve. An
analyte predicted as an assay scale × the observable has its Cmax and AUC multiplied by the
scale. A model without a compiled solver (a test stand-in with ``predict`` only) has no
exposure rows, only its ``derived`` quantities.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: AUC window (model time unit).
AUC_WINDOW = (0.0, 28.0)
DERIVED_COLUMNS = ["subject", "analyte", "quantity", "value", "unit"]


def exposure_rows(model, params, covariates, maps, scales, t_end) -> list:
    """Per fitted analyte (Cmax, Tmax, AUC0-28) rows for n subjects: a list of
    (analyte, quantity, values (n,), unit); [] for a model without ``solve``."""
    if not (callable(getattr(model, "solve", None)) and hasattr(model, "phases")):
        return []
    from ctkinetics.modeling.exposure import auc_name, model_exposure

    n = len(np.atleast_1d(t_end))
    kinds = sorted({m.kind for m in maps})
    t_hi = np.maximum(AUC_WINDOW[1], np.asarray(t_end, float))
    from ctkinetics.estimation.events import split

    covariates, doses = split(covariates)   # later doses travel under events.DOSES
    with np.errstate(all="ignore"):
        e = model_exposure(model, params, covariates or None, kinds=kinds, t_end=t_hi,
                           window=AUC_WINDOW, metrics=("Cmax", "Tmax", "AUC"), doses=doses)
    tu = getattr(model, "time_unit", "") or "day"
    auc = auc_name(AUC_WINDOW)
    rows = []
    for m in maps:
        scale = np.asarray(scales.get(m.analyte, np.ones(n)), float)
        rows += [(m.analyte, "Cmax", e.values[(m.kind, "Cmax")] * scale, m.unit),
                 (m.analyte, "Tmax", e.values[(m.kind, "Tmax")], tu),
                 (m.analyte, auc, e.values[(m.kind, auc)] * scale,
                  f"{m.unit}*{tu}" if m.unit else "")]
    return rows


def derived_batch(subjects, model, params, covariates, maps, scales, t_end) -> list:
    """Derived rows of n subjects, as one column dict (:data:`DERIVED_COLUMNS`) each.

    ``params``/``covariates``: name -> (n,) arrays; ``scales``: analyte -> (n,) (absent: 1);
    ``t_end``: (n,) last sampling time. Times are in the model's ``time_unit`` (day for the
    CAR-T models, hour for ``onecpt_oral``), the model's derived quantities carry the units
    its file declares. A failing computation gives NaN, never an exception.
    """
    n = len(subjects)
    rows = [[] for _ in range(n)]
    try:
        metrics = exposure_rows(model, params, covariates, maps, scales, t_end)
    except Exception:  # noqa: BLE001 - a derived value must never sink the fit
        metrics = [(m.analyte, q, np.full(n, np.nan), "") for m in maps
                   for q in ("Cmax", "Tmax", "AUC0-28")]
    for analyte, quantity, values, unit in metrics:
        for i in range(n):
            rows[i].append((analyte, quantity, float(values[i]), unit))
    derived = getattr(model, "derived", None)
    if callable(derived):
        try:
            values = derived(params)
        except Exception:  # noqa: BLE001
            values = {}
        units = {d.name: getattr(d, "unit", "") or ""
                 for d in getattr(model, "derived_specs", ()) or ()}
        for name, value in (values or {}).items():
            v = np.asarray(value, dtype=float)
            if v.size == 1 or v.shape == (n,):
                v = np.broadcast_to(v.reshape(-1) if v.size == n else v.reshape(()), (n,))
                for i in range(n):
                    rows[i].append(("", name, float(v[i]), units.get(name, "")))
    out = []
    for s, r in zip(subjects, rows):
        out.append({"subject": np.full(len(r), s, dtype=object),
                    "analyte": np.array([x[0] for x in r], dtype=object),
                    "quantity": np.array([x[1] for x in r], dtype=object),
                    "value": np.array([x[2] for x in r], dtype=float),
                    "unit": np.array([x[3] for x in r], dtype=object)})
    return out


def derived_table(subject, model, params, covariates, maps, scales, t_end) -> pd.DataFrame:
    """Tidy rows (subject, analyte, quantity, value, unit) for one subject (see
    :func:`derived_batch`)."""
    cols = derived_batch([subject], model, params, covariates, maps,
                         {k: np.atleast_1d(v) for k, v in scales.items()}, [t_end])[0]
    return pd.DataFrame(cols, columns=DERIVED_COLUMNS)
