"""Exposure figures from an NCA result: by dose level, and against toxicity.

Values are the NCA result's own (``exclude == ''``); geometric means are read from
:meth:`NCAResult.summary` — nothing is recomputed here.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ctkinetics.plots.spec import Spec, figure_function, grid
from ctkinetics.plots.style import DLT_COLOR, GREY, dose_colors, empty, esc

#: Default exposure metrics: Cmax over the whole profile and AUC from day 0 to 28.
DEFAULT_METRICS = (("CMAX", 0.0, math.inf), ("AUCINT_LAST", 0.0, 28.0))


def metric_label(parameter: str, start: float, end: float) -> str:
    """'Cmax', 'AUC0-28' ... as a committee reads them."""
    if parameter.startswith("AUCINT"):
        return f"AUC{start:g}-{end:g}"
    return {"CMAX": "Cmax", "TMAX": "Tmax", "AUCLST": "AUClast", "AUCIFO": "AUCinf",
            "CLST": "Clast", "LAMZHL": "t½ (λz)"}.get(parameter, parameter)


def metric_values(nca_result, analyte, parameter, start, end) -> pd.DataFrame:
    """Usable values (``exclude == ''``, finite) of one metric: subject, dose_level, value, unit."""
    r = nca_result.results
    sel = ((r["analyte"] == analyte) & (r["parameter"] == parameter)
           & np.isclose(r["start"], start) & ((r["end"] == end) | np.isclose(r["end"], end)))
    d = r[sel]
    return d[(d["exclude"] == "") & np.isfinite(d["value"])][["subject", "dose_level", "value",
                                                              "unit"]]


def _available(nca_result, analyte, metrics):
    return [m for m in metrics if len(metric_values(nca_result, analyte, *m))]


def _panels(title: str, metrics, height: int, **layout) -> Spec:
    """One panel per metric, titled 'Cmax', 'AUC0-28' ... (title at the left, no xanchor)."""
    g = grid(1, len(metrics), horizontal_spacing=0.12, titles=True)
    fig = Spec(height=height, grid=g, subplot_titles=[metric_label(*m) for m in metrics],
               title={"text": title, "x": 0.01}, **layout)
    return fig


def _log_y(fig: Spec, label: str, unit, col: int) -> None:
    fig.axes("y", {"type": "log", "exponentformat": "power",
                   "title": {"text": f"{label} ({esc(unit)})"}}, row=1, col=col)


@figure_function
def exposure_by_dose(nca_result, analyte, metrics=DEFAULT_METRICS, *, height: int = 400) -> Spec:
    """Cmax and AUC0-28 (or other metrics) by dose level: box, every participant, geometric mean.

    Parameters
    ----------
    nca_result : NCAResult
    analyte : str
    metrics : sequence of (parameter, start, end)
        Rows of the NCA long table, e.g. ``("AUCINT_LAST", 0, 28)``.

    Returns
    -------
    plotly.graph_objects.Figure
        (``exposure_by_dose.spec(...)``: the plain JSON specification.)
    """
    metrics = _available(nca_result, analyte, metrics)
    title = f"{esc(analyte)}: exposure by dose level"
    if not metrics:
        return empty(title, f"no usable NCA values for {analyte}")
    levels = list(nca_result.dose_levels) or sorted(set(nca_result.results["dose_level"]))
    colors = dose_colors(levels)
    summ = nca_result.summary()
    fig = _panels(title, metrics, height, showlegend=False)
    for j, (par, start, end) in enumerate(metrics, start=1):
        d = metric_values(nca_result, analyte, par, start, end)
        for lv in levels:
            v = d[d["dose_level"] == lv]
            if v.empty:
                continue
            x = f"DL {esc(lv)}"
            fig.add({"type": "box", "x": [x] * len(v), "y": v["value"].to_numpy(float), "name": x,
                     "boxpoints": "all", "jitter": 0.3, "pointpos": 0,
                     "marker": {"color": colors[lv], "size": 7}, "line": {"color": colors[lv]},
                     "fillcolor": "rgba(0,0,0,0)", "text": [esc(s) for s in v["subject"]],
                     "hovertemplate": "%{text}: %{y:.3g}<extra></extra>"}, 1, j)
            s = summ[(summ["dose_level"] == lv) & (summ["analyte"] == analyte)
                     & (summ["parameter"] == par) & np.isclose(summ["start"], start)
                     & ((summ["end"] == end) | np.isclose(summ["end"], end))]
            if len(s) and np.isfinite(s["geo_mean"].iloc[0]):
                fig.add({"x": [x], "y": [float(s["geo_mean"].iloc[0])], "mode": "markers",
                         "marker": {"symbol": "diamond", "size": 13, "color": "#111",
                                    "line": {"color": "white", "width": 1}},
                         "hovertemplate": "geometric mean %{y:.3g}<extra></extra>"}, 1, j)
        _log_y(fig, metric_label(par, start, end), d["unit"].iloc[0] if len(d) else "", j)
    fig.note("Box: median and quartiles; dots: participants; black diamond: geometric mean "
             "(NCA summary). Log scale.")
    return fig


def _dlt_status(safety) -> dict:
    out = {}
    if safety is None:
        return out
    for r in safety.itertuples(index=False):
        dlt = getattr(r, "dlt", np.nan)
        out[str(r.subject)] = "DLT" if dlt == 1 else "no DLT" if dlt == 0 else "pending"
    return out


@figure_function
def exposure_vs_toxicity(nca_result, safety: pd.DataFrame | None, analyte,
                         metrics=DEFAULT_METRICS, *, grade: str = "crs_grade",
                         height: int = 400) -> Spec:
    """Exposure (Cmax, AUC0-28) against the worst CRS grade, DLTs marked.

    Parameters
    ----------
    nca_result : NCAResult
    safety : DataFrame
        The dataset's safety table (subject, dlt 1/0/NaN, crs_grade, icans_grade, ...).
    grade : str
        Column on the x axis (``crs_grade`` or ``icans_grade``).

    Returns
    -------
    plotly.graph_objects.Figure
        (``exposure_vs_toxicity.spec(...)``: the plain JSON specification.)
    """
    metrics = _available(nca_result, analyte, metrics)
    name = {"crs_grade": "CRS", "icans_grade": "ICANS"}.get(grade, grade)
    title = f"{esc(analyte)}: exposure against {name} grade and DLT"
    if not metrics or safety is None or grade not in safety.columns:
        return empty(title, "no safety data" if safety is None else f"no usable NCA values for {analyte}")
    status = _dlt_status(safety)
    grades = dict(zip(safety["subject"].astype(str), safety[grade]))
    other = "icans_grade" if grade == "crs_grade" else "crs_grade"
    others = dict(zip(safety["subject"].astype(str), safety[other])) if other in safety else {}
    levels = list(nca_result.dose_levels)
    colors = dose_colors(levels)
    # DLT: red ×; pending: an open diamond in the dose level's colour
    styles = {"no DLT": ("circle", None), "DLT": ("x", DLT_COLOR), "pending": ("diamond-open", None)}
    fig = _panels(title, metrics, height)
    shown = set()
    for j, m in enumerate(metrics, start=1):
        d = metric_values(nca_result, analyte, *m)
        d = d.assign(grade=d["subject"].astype(str).map(grades),
                     status=d["subject"].astype(str).map(status).fillna("pending"))
        # a small fixed offset per dose level keeps participants with the same grade apart
        offs = {lv: (i - (len(levels) - 1) / 2) * 0.12 for i, lv in enumerate(levels)}
        for (lv, st), g in d.groupby(["dose_level", "status"], sort=False):
            sym, col = styles.get(st, ("circle", None))
            key = (lv, st)
            fig.add({"x": g["grade"].astype(float).to_numpy() + offs.get(lv, 0.0),
                     "y": g["value"].to_numpy(float), "mode": "markers",
                     "marker": {"symbol": sym, "size": 11 if st == "DLT" else 9,
                                "color": col or colors.get(lv, GREY),
                                "line": {"width": 2 if st != "no DLT" else 0,
                                         "color": colors.get(lv, GREY)}},
                     "name": f"DL {esc(lv)} · {st}", "legendgroup": f"{lv}{st}",
                     "showlegend": key not in shown,
                     "text": [f"{esc(s)} (DL {esc(lv)}): {name} {gr:g}, "
                              f"{other.split('_')[0].upper()} {others.get(str(s), np.nan):g}, {st}"
                              for s, gr in zip(g["subject"], g["grade"].astype(float))],
                     "hovertemplate": "%{text}<br>%{y:.3g}<extra></extra>"}, 1, j)
            shown.add(key)
        fig.axes("x", {"title": {"text": f"Worst {name} grade"}, "tickmode": "array",
                       "tickvals": [0, 1, 2, 3, 4], "range": [-0.5, 4.5]}, row=1, col=j)
        _log_y(fig, metric_label(*m), d["unit"].iloc[0] if len(d) else "", j)
    fig.note("Colour: dose level. ×: DLT; open diamond: DLT window still open. "
             "Points are spread slightly by dose level within a grade.")
    return fig
