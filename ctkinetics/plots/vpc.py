"""Visual predictive check figure: percentiles over time and the BLQ fraction panel.

Draws a :class:`ctkinetics.estimation.population.VPCResult`; it computes nothing.
"""
from __future__ import annotations


def vpc_figure(result, analyte=None, log_y=True, title=None, *, unit: str = "", height: int = 620):
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
    """
    from ctkinetics.plots.style import TEMPLATE, esc

    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    table = result.table
    analytes = list(dict.fromkeys(table["analyte"]))
    analyte = analyte or (analytes[0] if analytes else "")
    t = table[table["analyte"] == analyte]
    obs = result.observed[result.observed["analyte"] == analyte]
    time_unit = f" ({result.time_unit})" if result.time_unit else ""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28],
                        vertical_spacing=0.06,
                        subplot_titles=(f"{esc(analyte)}: observed and simulated percentiles",
                                        "fraction BLQ"))
    q = obs[~obs["blq"]]
    fig.add_trace(go.Scatter(x=q["time"], y=q["value"], mode="markers", name="observed",
                             marker=dict(size=5, color="rgba(60,60,60,0.6)")), row=1, col=1)
    b = obs[obs["blq"]]
    if len(b):
        fig.add_trace(go.Scatter(x=b["time"], y=b["lloq"], mode="markers", name="BLQ (at LLOQ)",
                                 marker=dict(size=6, symbol="circle-open",
                                             color="rgba(200,30,30,0.7)")), row=1, col=1)
    colours = {"p50": "rgba(220,60,60,{a})"}
    for stat in [s for s in dict.fromkeys(t["statistic"]) if s != "blq_fraction"]:
        d = t[t["statistic"] == stat].sort_values("time_mid")
        col = colours.get(stat, "rgba(40,90,200,{a})")
        fig.add_trace(go.Scatter(
            x=list(d["time_mid"]) + list(d["time_mid"])[::-1],
            y=list(d["sim_high"]) + list(d["sim_low"])[::-1], fill="toself",
            fillcolor=col.format(a=0.18), line=dict(width=0), hoverinfo="skip",
            name=f"simulated {stat} {result.ci:g}% interval"), row=1, col=1)
        fig.add_trace(go.Scatter(x=d["time_mid"], y=d["sim_median"], mode="lines",
                                 line=dict(dash="dash", color=col.format(a=0.9)),
                                 name=f"simulated {stat} (median)"), row=1, col=1)
        fig.add_trace(go.Scatter(x=d["time_mid"], y=d["observed"], mode="lines+markers",
                                 line=dict(color=col.format(a=1.0)), name=f"observed {stat}"),
                      row=1, col=1)
    d = t[t["statistic"] == "blq_fraction"].sort_values("time_mid")
    fig.add_trace(go.Scatter(
        x=list(d["time_mid"]) + list(d["time_mid"])[::-1],
        y=list(d["sim_high"]) + list(d["sim_low"])[::-1], fill="toself",
        fillcolor="rgba(120,120,120,0.25)", line=dict(width=0), hoverinfo="skip",
        name=f"simulated BLQ fraction {result.ci:g}% interval"), row=2, col=1)
    fig.add_trace(go.Scatter(x=d["time_mid"], y=d["observed"], mode="lines+markers",
                             line=dict(color="black"), name="observed BLQ fraction"),
                  row=2, col=1)
    fig.update_yaxes(type="log" if log_y else "linear", row=1, col=1)
    fig.update_yaxes(range=[0, 1], title_text="fraction", row=2, col=1)
    fig.update_yaxes(title_text=f"{esc(analyte)} ({esc(unit)})" if unit else esc(analyte), row=1, col=1)
    fig.update_xaxes(title_text=f"time{time_unit}", row=2, col=1)
    fig.update_layout(title={"text": title or f"VPC: {esc(result.model)} ({esc(result.method.upper())}, "
                                              f"{result.n_replicates} replicates)", "x": 0.01},
                      template=TEMPLATE, height=height,
                      legend=dict(font=dict(size=10), x=1.02, xanchor="left", y=1, yanchor="top"),
                      margin={"t": 80, "r": 250})
    return fig


__all__ = ["vpc_figure"]
