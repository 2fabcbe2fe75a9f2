"""Figures of virtual-trial results (:class:`ctkinetics.trialsim.TrialSimResult`).

They draw what the result holds and compute no science: selection % by rule, the trial
duration distribution (from the stored 1-day histogram) and CAR-T expansion (Cmax) by dose
level (from the stored quantiles). Each has an explicit height (a figure without one renders
at plotly's 200 px minimum in a page), the house template and a legend above the plot.
"""
from __future__ import annotations

from ctkinetics.plots.style import TEMPLATE, esc

HEIGHT = 420
#: Legend in a row just above the plot area, under the title.
_LEGEND = {"orientation": "h", "y": 1.03, "yanchor": "bottom", "x": 0, "title": {"text": "rule"}}


def _layout(fig, title, height, **kw):
    fig.update_layout(template=TEMPLATE, height=height, legend=_LEGEND, margin={"t": 110},
                      title={"text": title, "x": 0.01, "y": 0.98, "yref": "container",
                             "yanchor": "top"}, **kw)
    return fig


def selection_figure(result, *, height: int = HEIGHT):
    """Grouped bars: % of trials selecting each level (and no MTD) as the MTD, per rule."""
    import plotly.graph_objects as go

    s = result.summary
    fig = go.Figure()
    for rule in result.rules:
        part = s[s["rule"] == rule]
        fig.add_bar(name=esc(rule), x=[esc(x) for x in part["level"]], y=list(part["pct_selected"]),
                    text=[f"{v:.0f}" for v in part["pct_selected"]], textposition="outside",
                    cliponaxis=False)
    return _layout(fig, f"MTD selection over {result.n_trials:,} virtual trials", height,
                   barmode="group", xaxis_title="dose level (none: no MTD)",
                   yaxis={"title": {"text": "% of trials selecting"}, "range": [0, 105]})


def duration_figure(result, phase: str = "total", *, height: int = HEIGHT):
    """Distribution of trial duration (days from the first infusion) per rule."""
    import numpy as np
    import plotly.graph_objects as go

    d = result.durations[result.durations["phase"] == phase]
    fig = go.Figure()
    for row in d.itertuples(index=False):
        counts = np.asarray(row.counts, dtype=float)
        pct = 100.0 * counts / counts.sum() if counts.sum() else counts
        fig.add_scatter(x=np.arange(counts.size) + 0.5, y=pct, mode="lines", line_shape="hv",
                        name=f"{esc(row.rule)} (median {row.q50_days:.0f} d)")
    return _layout(fig, f"Trial duration ({esc(phase)}) over {result.n_trials:,} virtual trials",
                   height, xaxis_title="days from first infusion", yaxis_title="% of trials per day")


def expansion_figure(result, metric: str = "cmax", unit: str = "", *, height: int = HEIGHT):
    """CAR-T expansion by dose level: box of participants' exposure (5/25/50/75/95 %) per rule."""
    import plotly.graph_objects as go

    e = result.exposure[result.exposure["metric"] == metric]
    fig = go.Figure()
    for rule in result.rules:
        part = e[e["rule"] == rule]
        fig.add_trace(go.Box(name=esc(rule), x=[esc(x) for x in part["level"]], q1=list(part["q25"]),
                             median=list(part["q50"]), q3=list(part["q75"]),
                             lowerfence=list(part["q05"]), upperfence=list(part["q95"])))
    label = {"cmax": "Cmax", "auc0_28": "AUC0-28"}.get(metric, metric)
    axis = f"{label} ({esc(unit)})" if unit else label
    return _layout(fig, f"{label} of all participants by dose level (whiskers 5-95 %)", height,
                   boxmode="group", xaxis_title="dose level",
                   yaxis={"type": "log", "exponentformat": "power", "title": {"text": axis}})


FIGURES = {"selection": selection_figure, "duration": duration_figure, "expansion": expansion_figure}
