"""CAR-T expansion beside B-cell aplasia, one small panel per participant."""
from __future__ import annotations

import math

import pandas as pd

from ctkinetics.plots.profiles import analyte_meta, post_infusion
from ctkinetics.plots.spec import Spec, figure_function, grid
from ctkinetics.plots.style import empty, esc, finite

CAR_COLOR = "#0072B2"
BCELL_COLOR = "#D55E00"


@figure_function
def cart_vs_bcells(dataset, car_analyte, bcell_analyte, aplasia: pd.DataFrame | None = None, *,
                   subjects=None, cols: int = 4, panel_height: int = 210) -> Spec:
    """CAR-T (left log axis, blue) and B cells (right log axis, orange) per participant.

    Parameters
    ----------
    dataset : Dataset
    car_analyte, bcell_analyte : str
    aplasia : DataFrame, optional
        ``subject, aplasia_start, aplasia_end`` in days after infusion (``aplasia_end`` NaN
        while B cells have not returned), e.g. from
        :func:`ctkinetics.report.bcell_aplasia`; the period is shaded.
    subjects : sequence of str, optional
        Default: every participant with samples of either analyte, by dose level.

    Returns
    -------
    plotly.graph_objects.Figure
        (``cart_vs_bcells.spec(...)``: the plain JSON specification.)

    Notes
    -----
    BLQ samples are open markers at their LLOQ, as in every profile figure.
    """
    car = post_infusion(dataset, car_analyte)
    bc = post_infusion(dataset, bcell_analyte, baseline=True)
    title = f"{esc(car_analyte)} (left axis) and {esc(bcell_analyte)} (right axis) per participant"
    if subjects is None:
        subj = dataset.subjects.assign(subject=lambda s: s["subject"].astype(str))
        present = set(car["subject"].astype(str)) | set(bc["subject"].astype(str))
        subjects = [s for s in subj.sort_values("dose", kind="stable")["subject"] if s in present]
    subjects = [str(s) for s in subjects]
    if not subjects:
        return empty(title, "no samples of either analyte")
    rows = math.ceil(len(subjects) / cols)
    fig = _panels(dataset, subjects, title, rows, cols, panel_height)
    ap = {} if aplasia is None else {str(r.subject): r for r in aplasia.itertuples(index=False)}
    t_max = max([car["time"].max() if len(car) else 0, bc["time"].max() if len(bc) else 0, 28])
    # one pass over each table (a mask per participant was quadratic in participants)
    car_of = dict(tuple(car.groupby(car["subject"].astype(str), sort=False)))
    bc_of = dict(tuple(bc.groupby(bc["subject"].astype(str), sort=False)))
    for i, s in enumerate(subjects):
        r, c = i // cols + 1, i % cols + 1
        a = ap.get(s)
        if a is not None and finite(a.aplasia_start):
            _shade(fig, r, c, a.aplasia_start, a.aplasia_end if finite(a.aplasia_end) else t_max)
        for d, color, sec, name in ((car_of.get(s, car.iloc[:0]), CAR_COLOR, False, car_analyte),
                                    (bc_of.get(s, bc.iloc[:0]), BCELL_COLOR, True, bcell_analyte)):
            if not d.empty:
                _samples(fig, r, c, d, color, sec, name, first=i == 0)
        fig.axes("x", {"range": [-5, t_max * 1.03]}, row=r, col=c)
        if r == rows:
            fig.axes("x", {"title": {"text": "Days after infusion"}}, row=r, col=c)
    _axes(fig, cols, analyte_meta(dataset, car_analyte)[0], analyte_meta(dataset, bcell_analyte)[0])
    fig.note("Shaded: B-cell aplasia (B cells below their LLOQ) until return. "
             "Open markers: below LLOQ, at the LLOQ. B-cell values before day 0 are the baseline.")
    return fig


def _panels(dataset, subjects, title, rows, cols, panel_height) -> Spec:
    """One panel per participant (titled with its dose level), each with a secondary y axis."""
    level_of = dict(zip(dataset.subjects["subject"].astype(str),
                        dataset.subjects["dose_level"].astype(str)))
    g = grid(rows, cols, secondary_y=True, horizontal_spacing=0.075,
             vertical_spacing=0.6 / max(rows, 1) / 2.2, titles=True)
    return Spec(height=120 + panel_height * rows, grid=g,
                subplot_titles=[f"{esc(s)} (DL {esc(level_of.get(s, '?'))})" for s in subjects],
                title={"text": title, "x": 0.01},
                legend={"orientation": "h", "yref": "container", "y": 0.995,
                        "yanchor": "top", "x": 1, "xanchor": "right"})


def _shade(fig: Spec, r, c, start, end) -> None:
    """The aplasia period as a rectangle in this panel's x data and y domain coordinates
    (a rectangle spanning the panel's height whatever its two y axes show)."""
    x, y = fig.grid.ref(r, c)
    fig.shape({"type": "rect", "x0": float(start), "x1": float(end), "y0": 0, "y1": 1,
               "xref": x, "yref": f"{y} domain", "fillcolor": BCELL_COLOR, "opacity": 0.15,
               "line": {"width": 0}, "layer": "below"})


def _samples(fig: Spec, r, c, d, color, sec, name, first) -> None:
    """One analyte of one participant: a line, quantified markers and open BLQ markers."""
    t, y, blq = d["time"].to_numpy(float), d["y"].to_numpy(float), d["blq"].to_numpy(bool)
    # B cells: the line runs through BLQ samples at the LLOQ (aplasia reads as the
    # floor); CAR-T: quantified samples only
    fig.add({"x": t if sec else t[~blq], "y": y if sec else y[~blq], "mode": "lines",
             "line": {"color": color, "width": 1.5}, "showlegend": False, "hoverinfo": "skip"},
            r, c, secondary_y=sec)
    fig.add({"x": t[~blq], "y": y[~blq], "mode": "markers",
             "marker": {"color": color, "size": 5}, "name": esc(name), "legendgroup": esc(name),
             "showlegend": first,
             "hovertemplate": f"{esc(name)} day %{{x}}: %{{y:.3g}}<extra></extra>"},
            r, c, secondary_y=sec)
    if blq.any():
        fig.add({"x": t[blq], "y": y[blq], "mode": "markers",
                 "showlegend": False, "marker": {"color": color, "size": 6, "symbol": "circle-open"},
                 "hovertemplate": f"{esc(name)} day %{{x}}: BLQ<extra></extra>"},
                r, c, secondary_y=sec)


def _axes(fig: Spec, cols, car_unit, b_unit) -> None:
    """Log axes: CAR-T on the left (blue), B cells on the right (orange)."""
    fig.axes("y", {"type": "log", "exponentformat": "power", "dtick": 1, "tickfont": {"size": 9}})
    fig.axes("y", {"tickfont": {"color": CAR_COLOR, "size": 9}}, secondary_y=False)
    fig.axes("y", {"tickfont": {"color": BCELL_COLOR, "size": 9}, "showgrid": False}, secondary_y=True)
    fig.axes("y", {"title": {"text": f"{esc(car_unit)}", "font": {"color": CAR_COLOR, "size": 10}}},
             secondary_y=False, col=1)
    fig.axes("y", {"title": {"text": f"{esc(b_unit)}", "font": {"color": BCELL_COLOR, "size": 10}}},
             secondary_y=True, col=cols)
