"""Figures of virtual-trial results (:class:`ctkinetics.trialsim.TrialSimResult`).

They draw what the result holds and compute no science: selection % by rule, the trial
duration distribution (from the stored 1-day histogram) and CAR-T expansion (Cmax) by dose
level (from the stored quantiles). Each has an explicit height (a figure without one renders
at plotly's 200 px minimum in a page), the house template and a legend above the plot.
"""
from __future__ import annotations

from ctkinetics.plots.spec import Spec, figure_function
from ctkinetics.plots.style import esc

HEIGHT = 420
#: Legend in a row just above the plot area, under the title.
_LEGEND = {"orientation": "h", "y": 1.03, "yanchor": "bottom", "x": 0, "title": {"text": "rule"}}


def _figure(title, height, **kw) -> Spec:
    return Spec(height=height, legend=_LEGEND, margin={"t": 110},
                title={"text": title, "x": 0.01, "y": 0.98, "yref": "container", "yanchor": "top"},
                **kw)


@figure_function
def selection_figure(result, *, height: int = HEIGHT) -> Spec:
    """Grouped bars: % of trials selecting each level (and no MTD) as the MTD, per rule."""
    s = result.summary
    fig = _figure(f"MTD selection over {result.n_trials:,} virtual trials", height, barmode="group",
                  xaxis={"title": {"text": "dose level (none: no MTD)"}},
                  yaxis={"title": {"text": "% of trials selecting"}, "range": [0, 105]})
    for rule in result.rules:
        part = s[s["rule"] == rule]
        fig.add({"type": "bar", "name": esc(rule), "x": [esc(x) for x in part["level"]],
                 "y": list(part["pct_selected"]),
                 "text": [f"{v:.0f}" for v in part["pct_selected"]], "textposition": "outside",
                 "cliponaxis": False})
    return fig


@figure_function
def duration_figure(result, phase: str = "total", *, height: int = HEIGHT) -> Spec:
    """Distribution of trial duration (days from the first infusion) per rule."""
    import numpy as np

    d = result.durations[result.durations["phase"] == phase]
    fig = _figure(f"Trial duration ({esc(phase)}) over {result.n_trials:,} virtual trials", height,
                  xaxis={"title": {"text": "days from first infusion"}},
                  yaxis={"title": {"text": "% of trials per day"}})
    for row in d.itertuples(index=False):
        counts = np.asarray(row.counts, dtype=float)
        pct = 100.0 * counts / counts.sum() if counts.sum() else counts
        fig.add({"x": np.arange(counts.size) + 0.5, "y": pct, "mode": "lines",
                 "line": {"shape": "hv"}, "name": f"{esc(row.rule)} (median {row.q50_days:.0f} d)"})
    return fig


@figure_function
def expansion_figure(result, metric: str = "cmax", unit: str = "", *, height: int = HEIGHT) -> Spec:
    """CAR-T expansion by dose level: box of participants' exposure (5/25/50/75/95 %) per rule."""
    e = result.exposure[result.exposure["metric"] == metric]
    label = {"cmax": "Cmax", "auc0_28": "AUC0-28"}.get(metric, metric)
    axis = f"{label} ({esc(unit)})" if unit else label
    fig = _figure(f"{label} of all participants by dose level (whiskers 5-95 %)", height,
                  boxmode="group", xaxis={"title": {"text": "dose level"}},
                  yaxis={"type": "log", "exponentformat": "power", "title": {"text": axis}})
    for rule in result.rules:
        part = e[e["rule"] == rule]
        fig.add({"type": "box", "name": esc(rule), "x": [esc(x) for x in part["level"]],
                 "q1": list(part["q25"]), "median": list(part["q50"]), "q3": list(part["q75"]),
                 "lowerfence": list(part["q05"]), "upperfence": list(part["q95"])})
    return fig


FIGURES = {"selection": selection_figure, "duration": duration_figure, "expansion": expansion_figure}
