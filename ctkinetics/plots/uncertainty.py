"""Figures of the uncertainty results (issue 16): interval comparison, SIR's dOFV
diagnostic, NPDE panels, the prediction-corrected VPC and exposure intervals.

Each draws a result object (:mod:`ctkinetics.estimation.bootstrap`, ``.sir``,
``.population.npde``, ``.population.pcvpc``, ``.exposure_ci``) and computes nothing but
positions; every figure has an explicit height. Each returns a
:class:`plotly.graph_objects.Figure`; ``.spec(...)`` gives the plain JSON the report writes
(:mod:`ctkinetics.plots.spec`).
"""
from __future__ import annotations

import numpy as np

from ctkinetics.plots.spec import Spec, figure_function, grid
from ctkinetics.plots.style import PALETTE, esc

METHOD_COLOURS = {"Wald": "#7f7f7f", "bootstrap (percentile)": "#0072B2",
                  "bootstrap (BCa)": "#56B4E9", "SIR": "#D55E00"}


def _title(text: str) -> dict:
    return {"text": text, "x": 0.01}


def _intervals(population, bootstrap, sir) -> dict:
    """Method -> {parameter: (low, high)} of the methods run."""
    p = population.parameters
    rows = {"Wald": {r.parameter: (r.ci_low, r.ci_high) for r in p.itertuples()}}
    if bootstrap is not None:      # parameters no replicate moved: no interval to draw
        b = bootstrap.intervals[~bootstrap.intervals["parameter"].isin(bootstrap.unmoved())]
        rows["bootstrap (percentile)"] = dict(zip(b["parameter"], zip(b["pct_low"],
                                                                      b["pct_high"])))
        if b["bca_low"].notna().any():
            rows["bootstrap (BCa)"] = dict(zip(b["parameter"], zip(b["bca_low"], b["bca_high"])))
    if sir is not None:
        s = sir.intervals
        rows["SIR"] = dict(zip(s["parameter"], zip(s["sir_low"], s["sir_high"])))
    return rows


@figure_function
def interval_figure(population, bootstrap=None, sir=None, *, height: int = 420) -> Spec:
    """Each θ, ω² and σ of a population fit: its estimate and the 95 % intervals of the
    methods run (Wald from the covariance step, bootstrap percentile and BCa, SIR), on a
    log axis relative to the estimate (interval / estimate), one row per parameter."""
    p = population.parameters
    names = [n for n, k in zip(p["parameter"], p["kind"]) if k != "covariate"]
    est = dict(zip(p["parameter"], p["estimate"].astype(float)))
    rows = _intervals(population, bootstrap, sir)
    fig = Spec(_title("95 % intervals of the population parameters"),
               height=max(height, 120 + 34 * len(names)), legend={"orientation": "h", "y": -0.18})
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
            lo.append(float(1.0 - a / e))
            hi.append(float(b_ / e - 1.0))
        colour = METHOD_COLOURS.get(method, "#000")
        fig.add({"x": xs, "y": ys, "mode": "markers", "name": method,
                 "marker": {"color": colour, "size": 6},
                 "error_x": {"type": "data", "symmetric": False, "array": hi, "arrayminus": lo,
                             "color": colour, "thickness": 2, "width": 3}})
    fig.vline(1.0, {"color": "#999", "dash": "dot"})
    fig.axes("y", {"tickvals": list(range(len(names))), "ticktext": [esc(n) for n in names],
                   "autorange": "reversed"})
    fig.axes("x", {"type": "log", "title": {"text": "interval limit / estimate"}})
    return fig


@figure_function
def sir_dofv_figure(sir, *, height: int = 380) -> Spec:
    """SIR's diagnostic (Dosne 2016): quantiles of the resamples' dOFV per iteration against
    those of χ² with as many degrees of freedom as estimated parameters."""
    d = sir.dofv
    fig = Spec(_title("SIR: dOFV of the resampled vectors"), height=height)
    last = None
    for i, (it, g) in enumerate(d.groupby("iteration", sort=True)):
        fig.add({"x": g["quantile"].to_numpy(float), "y": g["dofv_resamples"].to_numpy(float),
                 "mode": "lines+markers", "name": f"iteration {int(it)}",
                 "line": {"color": PALETTE[i % len(PALETTE)]}})
        last = g
    if last is not None:
        df = int(sir.iterations["df"].iloc[-1])
        fig.add({"x": last["quantile"].to_numpy(float), "y": last["dofv_chi2"].to_numpy(float),
                 "mode": "lines", "name": f"chi-square, {df} df",
                 "line": {"color": "black", "dash": "dash"}})
    fig.axes("x", {"title": {"text": "quantile"}, "range": [0, 1]})
    fig.axes("y", {"title": {"text": "dOFV"}})
    return fig


@figure_function
def npde_figure(result, *, time_unit: str = "", height: int = 420) -> Spec:
    """Three panels: npde against time (``time_unit``: the model's, e.g. day) and against the
    predicted mean (BLQ samples, whose value is imputed, as open markers), and the QQ plot
    against N(0, 1)."""
    from scipy.special import ndtri

    t = result.table
    fig = Spec(_title("Normalised prediction distribution errors"), height=height,
               grid=grid(1, 3, titles=True),
               subplot_titles=("npde vs time", "npde vs predicted", "QQ plot"))
    ok = np.isfinite(t["npde"].to_numpy(float))
    for blq, name, sym in ((False, "quantified", "circle"), (True, "BLQ (imputed)",
                                                             "circle-open")):
        d = t[ok & (t["blq"].astype(bool) == blq)]
        if not len(d):
            continue
        text = [f"{esc(s)} ({esc(a)})" for s, a in zip(d["subject"], d["analyte"])]
        for col, x in ((1, d["time"]), (2, d["epred"])):
            fig.add({"x": x.to_numpy(float), "y": d["npde"].to_numpy(float), "mode": "markers",
                     "name": name, "text": text,
                     "marker": {"size": 5, "symbol": sym, "color": "#0072B2"},
                     "showlegend": col == 1}, 1, col)
    v = np.sort(t["npde"].to_numpy(float)[ok])
    if v.size:
        q = ndtri((np.arange(1, v.size + 1) - 0.5) / v.size)
        fig.add({"x": q, "y": v, "mode": "markers", "name": "npde",
                 "marker": {"size": 4, "color": "#0072B2"}, "showlegend": False}, 1, 3)
        lim = float(max(abs(q).max(), abs(v).max()))
        fig.add({"x": [-lim, lim], "y": [-lim, lim], "mode": "lines",
                 "line": {"color": "black", "dash": "dash"}, "name": "N(0, 1)"}, 1, 3)
    for col in (1, 2):
        for y in (-1.96, 0, 1.96):
            fig.hline(y, {"color": "#999", "dash": "dot" if y else "solid"}, row=1, col=col)
    scale = esc(str(t["scale"].iloc[0]) if len(t) else "")
    fig.axes("x", {"title": {"text": f"time ({esc(time_unit)})" if time_unit else "time"}},
             row=1, col=1)
    fig.axes("x", {"title": {"text": f"mean of the simulations ({scale})"}}, row=1, col=2)
    fig.axes("x", {"title": {"text": "N(0, 1) quantile"}}, row=1, col=3)
    fig.axes("y", {"title": {"text": "npde"}}, row=1, col=1)
    return fig


@figure_function
def pcvpc_figure(result, analyte=None, *, unit: str = "", height: int = 620) -> Spec:
    """The prediction-corrected VPC with its BLQ-fraction panel (drawn as
    :func:`ctkinetics.plots.vpc.vpc_figure`, imputed BLQ values as open markers at their
    corrected imputed value)."""
    from ctkinetics.plots.vpc import vpc_figure

    obs = result.observed.copy()
    obs["lloq"] = obs["value"]          # BLQ markers at their (corrected) imputed value
    view = type(result)(result.table, obs, result.model, result.method, result.n_replicates,
                        result.percentiles, result.ci, result.time_unit, result.settings)
    fig = vpc_figure.build(view, analyte, unit=unit, height=height,
                           title=f"Prediction-corrected VPC: {esc(result.model)} "
                                 f"({result.n_replicates} replicates, BLQ imputed)")
    for tr in fig.data:
        if tr.get("name") == "BLQ (at LLOQ)":
            tr["name"] = "BLQ (imputed, corrected)"
    return fig


@figure_function
def exposure_ci_figure(ci, metric="AUC0-28", analyte=None, *, height: int = 420) -> Spec:
    """One metric of every participant with its interval (log axis), grouped by dose level;
    participants without an interval as open markers."""
    p = ci.participants
    p = p[p["metric"] == metric]
    if analyte is not None:
        p = p[p["analyte"] == analyte]
    levels = list(dict.fromkeys(p["dose_level"].astype(str)))
    order = list(p["subject"].astype(str))
    fig = Spec(_title(f"Model-based {esc(metric)} with 95 % intervals"),
               height=max(height, 140 + 22 * len(order)))
    for i, lv in enumerate(levels):
        d = p[p["dose_level"].astype(str) == lv]
        has = d["ci_low"].notna()
        colour = PALETTE[i % len(PALETTE)]
        est = d.loc[has, "estimate"]
        fig.add({"x": est.to_numpy(float), "y": [esc(s) for s in d.loc[has, "subject"]],
                 "mode": "markers", "name": f"level {esc(lv)}",
                 "marker": {"color": colour, "size": 7},
                 "error_x": {"type": "data", "symmetric": False,
                             "array": (d.loc[has, "ci_high"] - est).to_numpy(float),
                             "arrayminus": (est - d.loc[has, "ci_low"]).to_numpy(float),
                             "color": colour}})
        if (~has).any():
            fig.add({"x": d.loc[~has, "estimate"].to_numpy(float),
                     "y": [esc(s) for s in d.loc[~has, "subject"]], "mode": "markers",
                     "name": f"level {esc(lv)}: no interval",
                     "marker": {"color": colour, "size": 7, "symbol": "circle-open"}})
    unit = str(p["unit"].iloc[0]) if len(p) else ""
    fig.axes("y", {"categoryorder": "array", "categoryarray": [esc(s) for s in order][::-1]})
    fig.axes("x", {"type": "log",
                   "title": {"text": f"{esc(metric)} ({esc(unit)})" if unit else esc(metric)}})
    return fig


__all__ = ["interval_figure", "sir_dofv_figure", "npde_figure", "pcvpc_figure",
           "exposure_ci_figure"]
