"""Figures of the uncertainty results (issue 16): interval comparison, SIR's dOFV
diagnostic, NPDE panels, the prediction-corrected VPC and exposure intervals.

Each draws a result object (:mod:`ctkinetics.estimation.bootstrap`, ``.sir``,
``.population.npde``, ``.population.pcvpc``, ``.exposure_ci``) and computes nothing but
positions; every figure has an explicit height.
"""
from __future__ import annotations

import numpy as np

METHOD_COLOURS = {"Wald": "#7f7f7f", "bootstrap (percentile)": "#0072B2",
                  "bootstrap (BCa)": "#56B4E9", "SIR": "#D55E00"}


def interval_figure(population, bootstrap=None, sir=None, *, height: int = 420):
    """Each θ, ω² and σ of a population fit: its estimate and the 95 % intervals of the
    methods run (Wald from the covariance step, bootstrap percentile and BCa, SIR), on a
    log axis relative to the estimate (interval / estimate), one row per parameter."""
    import plotly.graph_objects as go

    from ctkinetics.plots.style import TEMPLATE, esc

    p = population.parameters
    names = [n for n, k in zip(p["parameter"], p["kind"]) if k != "covariate"]
    est = dict(zip(p["parameter"], p["estimate"].astype(float)))
    rows = {"Wald": {r.parameter: (r.ci_low, r.ci_high) for r in p.itertuples()}}
    if bootstrap is not None:
        b = bootstrap.intervals
        rows["bootstrap (percentile)"] = dict(zip(b["parameter"], zip(b["pct_low"],
                                                                      b["pct_high"])))
        if b["bca_low"].notna().any():
            rows["bootstrap (BCa)"] = dict(zip(b["parameter"], zip(b["bca_low"], b["bca_high"])))
    if sir is not None:
        s = sir.intervals
        rows["SIR"] = dict(zip(s["parameter"], zip(s["sir_low"], s["sir_high"])))
    fig = go.Figure()
    k = len(rows)
    for j, (method, lims) in enumerate(rows.items()):
        ys, xs, lo, hi = [], [], [], []
        for i, n in enumerate(names):
            a, b_ = lims.get(n, (np.nan, np.nan))
            e = est.get(n, np.nan)
            if not (np.isfinite(a) and np.isfinite(b_) and e and np.isfinite(e)):
                continue
            ys.append(i + (j - (k - 1) / 2) * 0.18)
            xs.append(1.0)
            lo.append(1.0 - a / e)
            hi.append(b_ / e - 1.0)
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers", name=method,
            marker=dict(color=METHOD_COLOURS.get(method, "#000"), size=6),
            error_x=dict(type="data", symmetric=False, array=hi, arrayminus=lo,
                         color=METHOD_COLOURS.get(method, "#000"), thickness=2, width=3)))
    fig.add_vline(x=1.0, line=dict(color="#999", dash="dot"))
    fig.update_yaxes(tickvals=list(range(len(names))), ticktext=[esc(n) for n in names],
                     autorange="reversed")
    fig.update_xaxes(type="log", title_text="interval limit / estimate")
    fig.update_layout(template=TEMPLATE, height=max(height, 120 + 34 * len(names)),
                      title={"text": "95 % intervals of the population parameters", "x": 0.01},
                      legend=dict(orientation="h", y=-0.18))
    return fig


def sir_dofv_figure(sir, *, height: int = 380):
    """SIR's diagnostic (Dosne 2016): quantiles of the resamples' dOFV per iteration against
    those of χ² with as many degrees of freedom as estimated parameters."""
    import plotly.graph_objects as go

    from ctkinetics.plots.style import PALETTE, TEMPLATE

    d = sir.dofv
    fig = go.Figure()
    last = None
    for i, (it, g) in enumerate(d.groupby("iteration", sort=True)):
        fig.add_trace(go.Scatter(x=g["quantile"], y=g["dofv_resamples"], mode="lines+markers",
                                 name=f"iteration {int(it)}",
                                 line=dict(color=PALETTE[i % len(PALETTE)])))
        last = g
    if last is not None:
        df = int(sir.iterations["df"].iloc[-1])
        fig.add_trace(go.Scatter(x=last["quantile"], y=last["dofv_chi2"], mode="lines",
                                 name=f"chi-square, {df} df",
                                 line=dict(color="black", dash="dash")))
    fig.update_xaxes(title_text="quantile", range=[0, 1])
    fig.update_yaxes(title_text="dOFV")
    fig.update_layout(template=TEMPLATE, height=height,
                      title={"text": "SIR: dOFV of the resampled vectors", "x": 0.01})
    return fig


def npde_figure(result, *, height: int = 420):
    """Three panels: npde against time and against the predicted mean (BLQ samples, whose
    value is imputed, as open markers), and the QQ plot against N(0, 1)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    from scipy.special import ndtri

    from ctkinetics.plots.style import TEMPLATE, esc

    t = result.table
    fig = make_subplots(rows=1, cols=3, subplot_titles=("npde vs time", "npde vs predicted",
                                                        "QQ plot"))
    ok = np.isfinite(t["npde"].to_numpy(float))
    for blq, name, sym in ((False, "quantified", "circle"), (True, "BLQ (imputed)",
                                                             "circle-open")):
        d = t[ok & (t["blq"].astype(bool) == blq)]
        if not len(d):
            continue
        text = [f"{esc(s)} ({esc(a)})" for s, a in zip(d["subject"], d["analyte"])]
        for col, x in ((1, d["time"]), (2, d["epred"])):
            fig.add_trace(go.Scatter(x=x, y=d["npde"], mode="markers", name=name, text=text,
                                     marker=dict(size=5, symbol=sym, color="#0072B2"),
                                     showlegend=col == 1), row=1, col=col)
    v = np.sort(t["npde"].to_numpy(float)[ok])
    if v.size:
        q = ndtri((np.arange(1, v.size + 1) - 0.5) / v.size)
        fig.add_trace(go.Scatter(x=q, y=v, mode="markers", name="npde",
                                 marker=dict(size=4, color="#0072B2"), showlegend=False),
                      row=1, col=3)
        lim = float(max(abs(q).max(), abs(v).max()))
        fig.add_trace(go.Scatter(x=[-lim, lim], y=[-lim, lim], mode="lines",
                                 line=dict(color="black", dash="dash"), name="N(0, 1)"),
                      row=1, col=3)
    for col in (1, 2):
        for y in (-1.96, 0, 1.96):
            fig.add_hline(y=y, line=dict(color="#999", dash="dot" if y else "solid"),
                          row=1, col=col)
    fig.update_xaxes(title_text="time", row=1, col=1)
    fig.update_xaxes(title_text="mean of the simulations (" + esc(str(t["scale"].iloc[0]) if
                                                                  len(t) else "") + ")",
                     row=1, col=2)
    fig.update_xaxes(title_text="N(0, 1) quantile", row=1, col=3)
    fig.update_yaxes(title_text="npde", row=1, col=1)
    fig.update_layout(template=TEMPLATE, height=height,
                      title={"text": "Normalised prediction distribution errors", "x": 0.01})
    return fig


def pcvpc_figure(result, analyte=None, *, unit: str = "", height: int = 620):
    """The prediction-corrected VPC with its BLQ-fraction panel (drawn as
    :func:`ctkinetics.plots.vpc.vpc_figure`, imputed BLQ values as open markers at their
    corrected imputed value)."""
    from ctkinetics.plots.vpc import vpc_figure
    from ctkinetics.plots.style import esc

    obs = result.observed.copy()
    obs["lloq"] = obs["value"]          # BLQ markers at their (corrected) imputed value
    view = type(result)(result.table, obs, result.model, result.method, result.n_replicates,
                        result.percentiles, result.ci, result.time_unit, result.settings)
    fig = vpc_figure(view, analyte, unit=unit, height=height,
                     title=f"Prediction-corrected VPC: {esc(result.model)} "
                           f"({result.n_replicates} replicates, BLQ imputed)")
    for tr in fig.data:
        if tr.name == "BLQ (at LLOQ)":
            tr.name = "BLQ (imputed, corrected)"
    return fig


def exposure_ci_figure(ci, metric="AUC0-28", analyte=None, *, height: int = 420):
    """One metric of every participant with its interval (log axis), grouped by dose level;
    participants without an interval as open markers."""
    import plotly.graph_objects as go

    from ctkinetics.plots.style import PALETTE, TEMPLATE, esc

    p = ci.participants
    p = p[p["metric"] == metric]
    if analyte is not None:
        p = p[p["analyte"] == analyte]
    fig = go.Figure()
    levels = list(dict.fromkeys(p["dose_level"].astype(str)))
    order = list(p["subject"].astype(str))
    for i, lv in enumerate(levels):
        d = p[p["dose_level"].astype(str) == lv]
        has = d["ci_low"].notna()
        colour = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(
            x=d.loc[has, "estimate"], y=[esc(s) for s in d.loc[has, "subject"]],
            mode="markers", name=f"level {esc(lv)}", marker=dict(color=colour, size=7),
            error_x=dict(type="data", symmetric=False,
                         array=(d.loc[has, "ci_high"] - d.loc[has, "estimate"]).tolist(),
                         arrayminus=(d.loc[has, "estimate"] - d.loc[has, "ci_low"]).tolist(),
                         color=colour)))
        if (~has).any():
            fig.add_trace(go.Scatter(
                x=d.loc[~has, "estimate"], y=[esc(s) for s in d.loc[~has, "subject"]],
                mode="markers", name=f"level {esc(lv)}: no interval",
                marker=dict(color=colour, size=7, symbol="circle-open")))
    unit = str(p["unit"].iloc[0]) if len(p) else ""
    fig.update_yaxes(categoryorder="array", categoryarray=[esc(s) for s in order][::-1])
    fig.update_xaxes(type="log", title_text=f"{esc(metric)} ({esc(unit)})" if unit else
                     esc(metric))
    fig.update_layout(template=TEMPLATE, height=max(height, 140 + 22 * len(order)),
                      title={"text": f"Model-based {esc(metric)} with 95 % intervals",
                             "x": 0.01})
    return fig


__all__ = ["interval_figure", "sir_dofv_figure", "npde_figure", "pcvpc_figure",
           "exposure_ci_figure"]
