"""Diagnostics: goodness of fit of individual fits, and the NCA terminal slope (λz)."""
from __future__ import annotations

import math

import numpy as np

from ctkinetics.plots.profiles import post_infusion
from ctkinetics.plots.spec import Spec, figure_function, grid
from ctkinetics.plots.style import GREY, empty, esc, finite

GOOD_COLOR = "#0072B2"
FLAG_COLOR = "#D55E00"


def _gof_group(fig, g, gc, color, label) -> None:
    """The three panels' markers of one group of fits (quantified samples ``g``; censored
    BLQ samples ``gc`` at their LLOQ in the first panel)."""
    text = [f"{esc(s)}, day {t:g}" for s, t in zip(g["subject"], g["time"])]
    ipred, obs, iwres, time = (g[c].to_numpy(float) for c in ("ipred", "observed", "iwres", "time"))

    def common():
        return {"marker": {"color": color, "size": 6, "opacity": 0.8}, "text": text,
                "legendgroup": label}

    fig.add({"x": ipred, "y": obs, "mode": "markers", "name": label,
             "hovertemplate": "%{text}<br>IPRED %{x:.3g}, obs %{y:.3g}<extra></extra>",
             **common()}, 1, 1)
    fig.add({"x": time, "y": iwres, "mode": "markers", "showlegend": False,
             "hovertemplate": "%{text}<br>IWRES %{y:.2f}<extra></extra>", **common()}, 1, 2)
    fig.add({"x": ipred, "y": iwres, "mode": "markers", "showlegend": False,
             "hovertemplate": "%{text}<br>IWRES %{y:.2f}<extra></extra>", **common()}, 1, 3)
    if len(gc):
        fig.add({"x": gc["ipred"].to_numpy(float), "y": gc["lloq"].to_numpy(float),
                 "mode": "markers", "name": f"BLQ at LLOQ ({label})", "legendgroup": label,
                 "marker": {"color": color, "size": 7, "symbol": "circle-open"},
                 "text": [f"{esc(s)}, day {t:g}: BLQ" for s, t in zip(gc["subject"], gc["time"])],
                 "hovertemplate": "%{text}<br>IPRED %{x:.3g}, LLOQ %{y:.3g}<extra></extra>"}, 1, 1)


def _gof_reference_lines_and_axes(fig, p) -> None:
    """Identity line, IWRES 0 and ±1.96 lines, and the axes of the three panels."""
    both = np.concatenate([p["ipred"].to_numpy(float), p["observed"].to_numpy(float),
                           p["lloq"].to_numpy(float)])
    both = both[np.isfinite(both) & (both > 0)]
    lo, hi = float(both.min()) / 1.5, float(both.max()) * 1.5
    fig.add({"x": [lo, hi], "y": [lo, hi], "mode": "lines", "showlegend": False,
             "line": {"color": GREY, "dash": "dash", "width": 1}, "hoverinfo": "skip"}, 1, 1)
    for col in (2, 3):
        fig.hline(0, {"color": GREY, "width": 1}, row=1, col=col)
        for y in (-1.96, 1.96):
            fig.hline(y, {"color": GREY, "width": 1, "dash": "dot"}, row=1, col=col)
    log = {"type": "log", "exponentformat": "power"}
    fig.axes("x", {**log, "title": {"text": "IPRED"}}, row=1, col=1)
    fig.axes("y", {**log, "title": {"text": "Observed"}}, row=1, col=1)
    fig.axes("x", {"title": {"text": "Days after infusion"}}, row=1, col=2)
    fig.axes("x", {**log, "title": {"text": "IPRED"}}, row=1, col=3)
    fig.axes("y", {"title": {"text": "IWRES"}}, row=1, col=2)

@figure_function
def goodness_of_fit(fit_result, analyte=None, *, height: int = 400) -> Spec:
    """Observed vs IPRED, IWRES vs time and IWRES vs IPRED, BLQ samples shown.

    Parameters
    ----------
    fit_result : FitResult
        Its ``predictions_frame()`` (subject, analyte, time, observed, blq, lloq, ipred,
        iwres, status) and each fit's success and flags.
    analyte : str, optional
        Default: the first fitted analyte.

    Returns
    -------
    plotly.graph_objects.Figure
        (``goodness_of_fit.spec(...)``: the plain JSON specification.)

    Notes
    -----
    Participants whose fit failed or carries a flag are drawn in orange, the others in blue.
    Censored (M3) BLQ samples appear in the first panel as open markers at their LLOQ; they
    have no IWRES. Samples excluded from the likelihood are not drawn.
    """
    p = fit_result.predictions_frame()
    analyte = analyte or (fit_result.analytes[0] if fit_result.analytes else None)
    title = f"Goodness of fit: {esc(fit_result.model)} · {esc(analyte)}"
    p = p[(p["analyte"] == analyte) & (p["status"] != "excluded") & np.isfinite(p["ipred"].astype(float))]
    if p.empty:
        return empty(title, "no fitted predictions (all fits failed?)")
    flagged = {f.subject for f in fit_result.fits if (not f.success) or f.flags}
    p = p.assign(flagged=p["subject"].isin(flagged))
    g3 = grid(1, 3, horizontal_spacing=0.08, titles=True)
    fig = Spec(height=height, grid=g3, title={"text": title, "x": 0.01},
               subplot_titles=["Observed vs individual prediction", "IWRES vs time",
                               "IWRES vs individual prediction"])
    censored = p["status"] == "censored"
    for is_flag, color, label in ((False, GOOD_COLOR, "fit without flags"),
                                  (True, FLAG_COLOR, "fit flagged or failed")):
        g = p[(p["flagged"] == is_flag) & ~censored]
        gc = p[(p["flagged"] == is_flag) & censored]
        if g.empty and gc.empty:
            continue
        _gof_group(fig, g, gc, color, label)
    _gof_reference_lines_and_axes(fig, p)
    fig.update(legend={"orientation": "h", "yref": "container", "y": 0.99, "yanchor": "top",
                       "x": 1, "xanchor": "right", "font": {"size": 10}}, margin={"t": 90})
    fig.note(f"Dotted: IWRES ±1.96. BLQ method {esc(fit_result.blq_method)}, "
             f"error model {esc(fit_result.error_model)}.", below=58)
    return fig


def _values(nca_result, analyte, subjects=None) -> dict:
    """(subject, parameter) -> (value, exclusion reason) of the whole-profile NCA of
    ``subjects`` (default all), looked up in one pass (a mask per participant and parameter was
    quadratic in participants; so was reading every participant's rows for each page)."""
    r = nca_result.results
    keep = (r["analyte"] == analyte) & (r["start"] == 0) & np.isinf(r["end"])
    if subjects is not None:
        keep &= r["subject"].astype(str).isin([str(s) for s in subjects])
    d = r[keep]
    out = {}
    for s, p, v, e in zip(d["subject"], d["parameter"], d["value"], d["exclude"]):
        out.setdefault((s, p), (float(v), str(e)))
    return out


def _value(values, subject, parameter):
    return values.get((subject, parameter), (math.nan, "not computed"))


def _short_reason(why: str) -> str:
    """A panel title's reason without its explanation: 'R2ADJ < 0.9 (poor λz regression);
    LAMZSPN < 2 (...)' -> 'R2ADJ < 0.9; LAMZSPN < 2' (the note and the NCA table give the rest;
    a full reason ran into the neighbouring panel's title)."""
    parts = [p.split(" (", 1)[0].strip() for p in str(why or "not estimable").split(";")]
    return "; ".join(p for p in parts if p) or "not estimable"


@figure_function
def lambda_z(nca_result, dataset, analyte, *, subjects=None, cols: int = 4,
             panel_height: int = 200) -> Spec:
    """The NCA terminal phase per participant: quantified samples, the points used and the line.

    The line is the result's own regression, ln C = ln CLSTP − λz·(t − TLST), drawn over
    [LAMZLL, LAMZUL] (the NCA must have computed ``CLSTP``, the predicted Clast); the points in
    that window are the ones the λz fit used (quantified samples only).

    Returns
    -------
    plotly.graph_objects.Figure
        (``lambda_z.spec(...)``: the plain JSON specification.)
    """
    d = post_infusion(dataset, analyte)
    d = d[~d["blq"]]
    title = f"NCA terminal slope λz · {esc(analyte)}"
    if subjects is None:
        present = set(d["subject"].astype(str))
        subjects = [s for s in nca_result.subjects.sort_values("dose", kind="stable")["subject"]
                    if s in present]
    if not len(subjects):
        return empty(title, f"no quantified {analyte} samples")
    rows = math.ceil(len(subjects) / cols)
    info = {}
    values = _values(nca_result, analyte, subjects)
    for s in subjects:
        lz, why = _value(values, s, "LAMZ")
        vals = {k: _value(values, s, k)[0] for k in
                ("LAMZLL", "LAMZUL", "CLSTP", "TLST", "R2ADJ", "LAMZHL", "LAMZNPT")}
        info[s] = (lz, why, vals)
    titles = []
    for s in subjects:
        lz, why, v = info[s]
        if why or not finite(lz):
            titles.append(f"{esc(s)}: no λz<br>{esc(_short_reason(why))}")
        else:
            titles.append(f"{esc(s)}: t½ {v['LAMZHL']:.3g} d, R²adj {v['R2ADJ']:.3f}, n {v['LAMZNPT']:g}")
    g = grid(rows, cols, horizontal_spacing=0.06, vertical_spacing=0.6 / max(rows, 1) / 2.2,
             titles=True)
    fig = Spec(height=120 + panel_height * rows, grid=g, showlegend=False,
               title={"text": title, "x": 0.01})
    fig.layout["annotations"] = g.titles(titles, font={"size": 10})
    by_subject = dict(tuple(d.groupby(d["subject"].astype(str), sort=False)))
    for i, s in enumerate(subjects):
        r, c = i // cols + 1, i % cols + 1
        ds = by_subject.get(s, d.iloc[:0])
        t, y = ds["time"].to_numpy(float), ds["y"].to_numpy(float)
        lz, why, v = info[s]
        used = np.zeros(len(ds), bool)
        if not why and finite(lz) and finite(v["LAMZLL"]):
            used = (t >= v["LAMZLL"] - 1e-9) & (t <= v["LAMZUL"] + 1e-9)
        fig.add({"x": t[~used], "y": y[~used], "mode": "markers",
                 "marker": {"color": "#999", "size": 5}, "hoverinfo": "x+y"}, r, c)
        fig.add({"x": t[used], "y": y[used], "mode": "markers",
                 "marker": {"color": FLAG_COLOR, "size": 7}, "hoverinfo": "x+y"}, r, c)
        if used.any() and finite(v["CLSTP"]):
            tl = np.array([v["LAMZLL"], v["LAMZUL"]])
            fig.add({"x": tl, "y": v["CLSTP"] * np.exp(-lz * (tl - v["TLST"])), "mode": "lines",
                     "line": {"color": FLAG_COLOR, "width": 2}, "hoverinfo": "skip"}, r, c)
        if r == rows:
            fig.axes("x", {"title": {"text": "Days after infusion"}}, row=r, col=c)
    fig.axes("y", {"type": "log", "exponentformat": "power", "dtick": 1, "tickfont": {"size": 9}})
    fig.note("Orange: the points the λz regression used and its line; grey: other "
             "quantified samples. BLQ samples are not used for λz.")
    return fig
