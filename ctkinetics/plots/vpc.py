"""Visual predictive check figure: percentiles over time and the BLQ fraction panel.

Draws a :class:`ctkinetics.estimation.population.VPCResult`; it computes nothing.
"""
from __future__ import annotations

from ctkinetics.plots.spec import Spec, figure_function, grid


@figure_function
def vpc_figure(result, analyte=None, log_y=True, title=None, *, unit: str = "",
               height: int = 620) -> Spec:
    """Plotly figure of a VPC.

    Top panel: observed samples (BLQ shown at their LLOQ as open markers), the observed
    percentiles (lines) and the simulated intervals of each percentile (bands, median
    dashed). Bottom panel: the observed fraction BLQ per bin with the simulated interval.

    Parameters
    ----------
    result : VPCResult
    analyte : str, optional
        Which analyte (default: the first).
    log_y : bool
    title : str, optional
    unit : str
        The analyte's unit, for the y axis title.
    height : int
        Pixels (the legend sits beside the panels, the title above them).

    Returns
    -------
    plotly.graph_objects.Figure
        (``vpc_figure.spec(...)``: the plain JSON specification.)
    """
    from ctkinetics.plots.style import esc

    table = result.table
    analytes = list(dict.fromkeys(table["analyte"]))
    analyte = analyte or (analytes[0] if analytes else "")
    t = table[table["analyte"] == analyte]
    obs = result.observed[result.observed["analyte"] == analyte]
    time_unit = f" ({result.time_unit})" if result.time_unit else ""
    g = grid(2, 1, shared_xaxes=True, row_heights=(0.72, 0.28), vertical_spacing=0.06, titles=True)
    fig = Spec(height=height, grid=g,
               subplot_titles=(f"{esc(analyte)}: observed and simulated percentiles", "fraction BLQ"),
               title={"text": title or f"VPC: {esc(result.model)} ({esc(result.method.upper())}, "
                                       f"{result.n_replicates} replicates)", "x": 0.01},
               legend={"font": {"size": 10}, "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top"},
               margin={"t": 80, "r": 250})
    q = obs[~obs["blq"]]
    fig.add({"x": q["time"].to_numpy(float), "y": q["value"].to_numpy(float), "mode": "markers",
             "name": "observed", "marker": {"size": 5, "color": "rgba(60,60,60,0.6)"}}, 1, 1)
    b = obs[obs["blq"]]
    if len(b):
        fig.add({"x": b["time"].to_numpy(float), "y": b["lloq"].to_numpy(float), "mode": "markers",
                 "name": "BLQ (at LLOQ)", "marker": {"size": 6, "symbol": "circle-open",
                                                      "color": "rgba(200,30,30,0.7)"}}, 1, 1)
    colours = {"p50": "rgba(220,60,60,{a})"}
    for stat in [s for s in dict.fromkeys(t["statistic"]) if s != "blq_fraction"]:
        d = t[t["statistic"] == stat].sort_values("time_mid")
        col = colours.get(stat, "rgba(40,90,200,{a})")
        _band(fig, d, col.format(a=0.18), f"simulated {stat} {result.ci:g}% interval", 1)
        fig.add({"x": d["time_mid"].to_numpy(float), "y": d["sim_median"].to_numpy(float),
                 "mode": "lines", "line": {"dash": "dash", "color": col.format(a=0.9)},
                 "name": f"simulated {stat} (median)"}, 1, 1)
        fig.add({"x": d["time_mid"].to_numpy(float), "y": d["observed"].to_numpy(float),
                 "mode": "lines+markers", "line": {"color": col.format(a=1.0)},
                 "name": f"observed {stat}"}, 1, 1)
    d = t[t["statistic"] == "blq_fraction"].sort_values("time_mid")
    _band(fig, d, "rgba(120,120,120,0.25)", f"simulated BLQ fraction {result.ci:g}% interval", 2)
    fig.add({"x": d["time_mid"].to_numpy(float), "y": d["observed"].to_numpy(float),
             "mode": "lines+markers", "line": {"color": "black"}, "name": "observed BLQ fraction"},
            2, 1)
    fig.axes("y", {"type": "log" if log_y else "linear"}, row=1, col=1)
    fig.axes("y", {"range": [0, 1], "title": {"text": "fraction"}}, row=2, col=1)
    fig.axes("y", {"title": {"text": f"{esc(analyte)} ({esc(unit)})" if unit else esc(analyte)}},
             row=1, col=1)
    fig.axes("x", {"title": {"text": f"time{time_unit}"}}, row=2, col=1)
    return fig


def _band(fig: Spec, d, color: str, name: str, row: int) -> None:
    """A simulated interval over the bins: high forwards, low backwards, filled."""
    x = list(d["time_mid"])
    fig.add({"x": x + x[::-1], "y": list(d["sim_high"]) + list(d["sim_low"])[::-1],
             "fill": "toself", "fillcolor": color, "line": {"width": 0}, "hoverinfo": "skip",
             "name": name}, row, 1)


__all__ = ["vpc_figure"]
