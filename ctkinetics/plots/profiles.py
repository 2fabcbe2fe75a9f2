"""Concentration–time figures: one participant's profile, and all participants by dose level.

Conventions (stated in every figure's note): log10 y axis; quantified samples as filled
markers; below-LLOQ (BLQ) samples as open markers drawn *at* their LLOQ (they are not values);
pre-infusion samples are not drawn (structural zeros, no vector yet); the dashed grey line is
the analyte's LLOQ.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.formatting import dose as fmt_dose
from ctkinetics.plots.spec import Spec, figure_function, grid
from ctkinetics.plots.style import (
    GREY, dose_colors, empty, esc, figure, finite, log_axis, log_range, unit_label,
)

BLQ_NOTE = ("Open markers: below LLOQ, drawn at the LLOQ. Dashed line: LLOQ. "
            "Pre-infusion samples not shown.")


def analyte_meta(dataset, analyte) -> tuple[str, float]:
    """(unit, default LLOQ) of an analyte from the study definition (NaN when unknown)."""
    info = (getattr(getattr(dataset, "study", None), "analytes", None) or {}).get(analyte)
    unit = getattr(info, "unit", "") or ""
    lloq = getattr(info, "lloq", None)
    return unit, float(lloq) if finite(lloq) else float("nan")


def post_infusion(dataset, analyte, subjects=None, *, baseline: bool = False) -> pd.DataFrame:
    """Post-infusion samples of one analyte with the y at which to draw each (BLQ: its LLOQ).

    ``baseline=True`` keeps the pre-infusion samples too (B cells have a real baseline; CAR-T
    pre-infusion samples are structural zeros and are left out).
    """
    obs = dataset.observations
    keep = np.array(obs["analyte"].astype(str) == str(analyte), dtype=bool)   # one mask, one take
    if "pre_infusion" in obs and not baseline:
        keep &= ~obs["pre_infusion"].astype(bool).to_numpy(bool)
    if subjects is not None:
        keep &= obs["subject"].astype(str).isin([str(s) for s in subjects]).to_numpy(bool)
    d = obs[keep].sort_values(["subject", "time"], kind="stable")
    _, default_lloq = analyte_meta(dataset, analyte)
    lloq = d["lloq"].astype(float) if "lloq" in d else pd.Series(np.nan, index=d.index)
    d["lloq_used"] = lloq.fillna(default_lloq)
    d["blq"] = d["blq"].astype(bool) if "blq" in d else False
    d["y"] = np.where(d["blq"], d["lloq_used"], d["value"].astype(float))
    return d[np.isfinite(d["y"]) & (d["y"] > 0)]


def _lloq_line(fig: Spec, lloq, row=None, col=None):
    if finite(lloq) and lloq > 0:
        fig.hline(float(lloq), {"dash": "dash", "color": GREY, "width": 1}, row=row, col=col)


def _arrays(d: pd.DataFrame, *columns) -> list:
    return [d[c].to_numpy(float) for c in columns]


@figure_function
def individual_profile(dataset, subject, analyte, curve: pd.DataFrame | None = None, *,
                       curve_label: str = "fit", fit_flags=(), fit_failed: bool = False,
                       height: int = 380) -> Spec:
    """One participant's profile on a log scale, with the fitted curve and its 95 % band.

    Parameters
    ----------
    dataset : Dataset
        ``observations`` (subject, time, analyte, value, blq, lloq, pre_infusion) and
        ``study.analytes`` (unit, default LLOQ).
    subject, analyte : str
    curve : DataFrame, optional
        ``time, pred`` and optionally ``lower, upper`` (the 95 % band) on a time grid, e.g.
        from :func:`ctkinetics.report.fitted_curves`. Drawn as given.
    curve_label : str
        Legend text of the curve (trusted: built by the caller).
    fit_flags : sequence of str
        Flags of the fit; a flagged fit is drawn dashed in orange and named in the title.
    fit_failed : bool
        The fit failed: no curve, and the title says so.

    Returns
    -------
    plotly.graph_objects.Figure
        (``individual_profile.spec(...)``: the same figure as a plain JSON specification.)
    """
    unit, lloq = analyte_meta(dataset, analyte)
    d = post_infusion(dataset, analyte, [subject])
    status = ""
    if fit_failed:
        status = " — <span style='color:#C00000'><b>fit failed</b></span>"
    elif fit_flags:
        status = f" — <span style='color:#D55E00'><b>fit flagged: {esc(', '.join(fit_flags))}</b></span>"
    fig = figure(f"{esc(subject)} · {esc(analyte)}{status}", height=height)
    lloq_shown = float(d["lloq_used"].median()) if len(d) else lloq
    extent = [d["y"].to_numpy(float), np.array([lloq_shown])]
    if curve is not None and len(curve) and not fit_failed:
        color = "#D55E00" if fit_flags else "#0072B2"
        c = curve.sort_values("time")
        c = c[np.isfinite(c["pred"]) & (c["pred"] > 0)]
        if {"lower", "upper"} <= set(c.columns) and np.isfinite(c["lower"]).any():
            b = c[np.isfinite(c["lower"]) & np.isfinite(c["upper"]) & (c["lower"] > 0)]
            t, lo, hi = _arrays(b, "time", "lower", "upper")
            fig.add({"x": np.concatenate([t, t[::-1]]), "y": np.concatenate([hi, lo[::-1]]),
                     "fill": "toself", "fillcolor": "rgba(0,114,178,0.15)" if not fit_flags
                     else "rgba(213,94,0,0.15)", "line": {"width": 0}, "hoverinfo": "skip",
                     "name": "95 % band (parameter uncertainty)"})
        else:
            fig.annotate({"text": "no 95 % band: covariance of the estimates not available",
                          "xref": "paper", "yref": "paper", "x": 0.99, "y": 0.02,
                          "showarrow": False, "xanchor": "right",
                          "font": {"size": 10, "color": "#D55E00"}})
        t, pred = _arrays(c, "time", "pred")
        extent.append(pred)
        fig.add({"x": t, "y": pred, "mode": "lines", "name": curve_label,
                 "line": {"color": color, "width": 2, "dash": "dash" if fit_flags else "solid"}})
    t, y, blq = d["time"].to_numpy(float), d["y"].to_numpy(float), d["blq"].to_numpy(bool)
    fig.add({"x": t[~blq], "y": y[~blq], "mode": "markers",
             "name": "observed", "marker": {"color": "#222", "size": 7}})
    if blq.any():
        fig.add({"x": t[blq], "y": y[blq], "mode": "markers",
                 "name": "BLQ (at LLOQ)", "marker": {"color": "#222", "size": 7,
                                                      "symbol": "circle-open", "line": {"width": 1.5}}})
    if d.empty:
        fig.annotate({"text": "no post-infusion sample", "xref": "paper", "yref": "paper",
                      "x": 0.5, "y": 0.5, "showarrow": False, "font": {"color": GREY}})
    _lloq_line(fig, lloq_shown)
    fig.axes("x", {"title": {"text": "Days after infusion"}})
    fig.axes("y", log_axis(unit_label(analyte, unit)))
    rng = log_range(np.concatenate(extent))
    if rng:
        fig.axes("y", {"range": rng})
    fig.update(legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0,
                       "font": {"size": 10}}, margin={"t": 80})
    fig.note(BLQ_NOTE)
    return fig


def _gaps(d: pd.DataFrame, key: str, *columns) -> list:
    """``columns`` of ``d`` (sorted by ``key``) as arrays with a gap (NaN; None for text)
    between consecutive groups of ``key``: one trace draws every group's line apart."""
    keys = d[key].to_numpy()
    cut = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    out = []
    for c in columns:
        v = d[c].to_numpy()
        if v.dtype.kind == "f":
            out.append(np.insert(v, cut, np.nan))
        else:
            out.append(np.insert(v.astype(object), cut, None))
    return out


def _level_mean(mean_profile, lv):
    """The geometric-mean curve of dose level ``lv`` (finite values, by time), or None."""
    if mean_profile is None or not len(mean_profile):
        return None
    m = mean_profile[(mean_profile["dose_level"].astype(str) == lv)
                     & np.isfinite(mean_profile["geo_mean"])].sort_values("time")
    return m if len(m) else None


def _spaghetti_panel(fig, dl, color, j, mean) -> None:
    """One dose level's participants (one gapped line trace, quantified markers, open BLQ
    markers) and its geometric-mean curve in column ``j``."""
    dl = dl.sort_values(["subject", "time"], kind="stable")
    dl = dl.assign(label=[esc(s) for s in dl["subject"]])
    q = dl[~dl["blq"]]
    x, y, text = _gaps(q, "subject", "time", "y", "label")
    fig.add({"x": x.astype(float), "y": y.astype(float), "text": text, "mode": "lines",
             "line": {"color": color, "width": 1}, "opacity": 0.55, "showlegend": False,
             "hovertemplate": "%{text}<br>day %{x}<br>%{y:.3g}<extra></extra>"}, 1, j)
    fig.add({"x": q["time"].to_numpy(float), "y": q["y"].to_numpy(float), "mode": "markers",
             "showlegend": False, "marker": {"color": color, "size": 4},
             "hoverinfo": "skip"}, 1, j)
    b = dl[dl["blq"]]
    if len(b):
        fig.add({"x": b["time"].to_numpy(float), "y": b["y"].to_numpy(float),
                 "text": list(b["label"]), "mode": "markers", "showlegend": False,
                 "marker": {"color": color, "size": 6, "symbol": "circle-open"},
                 "hovertemplate": "%{text}<br>day %{x}: BLQ<extra></extra>"}, 1, j)
    if mean is not None:
        fig.add({"x": mean["time"].to_numpy(float), "y": mean["geo_mean"].to_numpy(float),
                 "mode": "lines+markers", "line": {"color": "#111", "width": 3},
                 "marker": {"size": 5}, "name": "geometric mean", "legendgroup": "gm",
                 "showlegend": j == 1,
                 "hovertemplate": "geometric mean<br>day %{x}<br>%{y:.3g}<extra></extra>"},
                1, j)


@figure_function
def spaghetti(dataset, analyte, mean_profile: pd.DataFrame | None = None, *,
              dose_levels=None, height: int = 400) -> Spec:
    """Every participant's profile, one panel per dose level, with the geometric-mean curve.

    Parameters
    ----------
    dataset : Dataset
    analyte : str
    mean_profile : DataFrame, optional
        ``dose_level, time, geo_mean`` (e.g. :func:`ctkinetics.report.geometric_mean_profile`);
        drawn as a thick line per panel, where given.
    dose_levels : sequence of str, optional
        Panel order (default: the study's dose levels, lowest dose first).

    Notes
    -----
    The participants of a dose level are one line trace with a gap between participants (and
    one trace of their markers): thousands of participants stay a handful of traces. Hovering
    a point names its participant.
    """
    unit, lloq = analyte_meta(dataset, analyte)
    d = post_infusion(dataset, analyte)
    if d.empty:
        return empty(f"{esc(analyte)}: all participants", f"no post-infusion {analyte} samples")
    subj = dataset.subjects.assign(subject=lambda s: s["subject"].astype(str))
    level_of = dict(zip(subj["subject"], subj["dose_level"].astype(str)))
    dose_of = dict(zip(subj["dose_level"].astype(str)[::-1], subj["dose"][::-1]))  # first wins
    levels = list(dose_levels or getattr(dataset.study, "dose_levels", {}) or
                  dict.fromkeys(subj["dose_level"].astype(str)))
    d = d.assign(subject=d["subject"].astype(str),
                 dose_level=d["subject"].astype(str).map(level_of).fillna(""))
    present = set(d["dose_level"])
    levels = [lv for lv in levels if lv in present]
    counts = d.groupby("dose_level")["subject"].nunique()
    titles = []
    for lv in levels:
        dose = dose_of.get(lv, float("nan"))
        titles.append(f"Dose level {esc(lv)}" + (f" ({fmt_dose(dose)} cells)" if finite(dose) else "")
                      + f", n = {int(counts[lv])}")
    g = grid(1, len(levels), shared_yaxes=True, shared_xaxes="all", horizontal_spacing=0.03,
             titles=True)
    fig = Spec({"text": f"{esc(analyte)}: every participant by dose level", "x": 0.01},
               height=height, grid=g, subplot_titles=titles)
    colors = dose_colors(levels)
    lloq_shown = float(d["lloq_used"].median()) if len(d) else lloq
    by_level = {lv: x for lv, x in d.groupby("dose_level", sort=False)}
    for j, lv in enumerate(levels, start=1):
        _spaghetti_panel(fig, by_level[lv], colors[lv], j, _level_mean(mean_profile, lv))
        _lloq_line(fig, lloq_shown, row=1, col=j)
        fig.axes("x", {"title": {"text": "Days after infusion"}}, row=1, col=j)
    fig.axes("y", {"type": "log", "exponentformat": "power", "dtick": 1,
                   "range": log_range(np.concatenate([d["y"].to_numpy(float),
                                                      d["lloq_used"].to_numpy(float)]))})
    fig.axes("y", {"title": {"text": unit_label(analyte, unit)}}, row=1, col=1)
    fig.note(BLQ_NOTE + " Thick line: geometric mean of quantified samples at each "
             "sampling day (shown where at least half were quantified).")
    fig.update(legend={"orientation": "h", "yref": "container", "y": 0.99,
                       "yanchor": "top", "x": 1, "xanchor": "right"})
    return fig
