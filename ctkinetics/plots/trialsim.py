"""Figures of virtual-trial results (:class:`ctkinetics.trialsim.TrialSimResult`).

They draw what the result holds and compute no science: selection % by rule, the trial
duration distribution (from the stored 1-day histogram) and CAR-T expansion (Cmax) by dose
level (from the stored quantiles).
"""
from __future__ import annotations


def selection_figure(result):
    """Grouped bars: % of trials selecting each level (and no MTD) as the MTD, per rule."""
    import plotly.graph_objects as go

    s = result.summary
    fig = go.Figure()
    for rule in result.rules:
        part = s[s["rule"] == rule]
        fig.add_bar(name=rule, x=list(part["level"]), y=list(part["pct_selected"]),
                    text=[f"{v:.1f}" for v in part["pct_selected"]], textposition="outside")
    fig.update_layout(barmode="group", title=f"MTD selection over {result.n_trials:,} virtual trials",
                      xaxis_title="dose level (none: no MTD)", yaxis_title="% of trials selecting",
                      legend_title="rule")
    return fig


def duration_figure(result, phase: str = "total"):
    """Distribution of trial duration (days from the first infusion) per rule."""
    import numpy as np
    import plotly.graph_objects as go

    d = result.durations[result.durations["phase"] == phase]
    fig = go.Figure()
    for row in d.itertuples(index=False):
        counts = np.asarray(row.counts, dtype=float)
        pct = 100.0 * counts / counts.sum() if counts.sum() else counts
        fig.add_scatter(x=np.arange(counts.size) + 0.5, y=pct, mode="lines", line_shape="hv",
                        name=f"{row.rule} (median {row.q50_days:.0f} d)")
    fig.update_layout(title=f"Trial duration ({phase}) over {result.n_trials:,} virtual trials",
                      xaxis_title="days from first infusion", yaxis_title="% of trials per day",
                      legend_title="rule")
    return fig


def expansion_figure(result, metric: str = "cmax"):
    """CAR-T expansion by dose level: box of participants' exposure (5/25/50/75/95 %) per rule."""
    import plotly.graph_objects as go

    e = result.exposure[result.exposure["metric"] == metric]
    fig = go.Figure()
    for rule in result.rules:
        part = e[e["rule"] == rule]
        fig.add_trace(go.Box(name=rule, x=list(part["level"]), q1=list(part["q25"]), median=list(part["q50"]),
                             q3=list(part["q75"]), lowerfence=list(part["q05"]), upperfence=list(part["q95"])))
    label = {"cmax": "Cmax", "auc0_28": "AUC0-28"}.get(metric, metric)
    fig.update_layout(boxmode="group", yaxis_type="log", legend_title="rule",
                      title=f"{label} of all participants by dose level (whiskers 5-95 %)",
                      xaxis_title="dose level", yaxis_title=label)
    return fig


FIGURES = {"selection": selection_figure, "duration": duration_figure, "expansion": expansion_figure}
