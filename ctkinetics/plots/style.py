"""House style of the figures: colours by dose level, a small template, safe labels.

Everything here is about drawing. Labels that come from input files (participant IDs, analyte
names, dose-level labels) go through :func:`esc`, because plotly reads a subset of HTML in
text (``<b>``, ``<br>``, ``<a href>``): an ID such as ``<b>7`` must show as typed, and never
become markup.
"""
from __future__ import annotations

import copy
import html
import math

import plotly.graph_objects as go

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000")
GREY = "#7f7f7f"
LIGHT = "#d9d9d9"
DLT_COLOR = "#C00000"
OK_COLOR = "#009E73"
PENDING_COLOR = "#E69F00"

#: The house style. Applied on top of plotly's default template, as a dict given to
#: ``update_layout(template=...)`` would be; :data:`TEMPLATE` is that result built once, because
#: merging the dict into every figure cost ~30 ms a figure (the report writes the template
#: once per page, whatever the number of figures).
HOUSE_STYLE = {
    "layout": {
        "font": {"family": "Helvetica, Arial, sans-serif", "size": 12, "color": "#222"},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "xaxis": {"showline": True, "linecolor": "#444", "ticks": "outside", "gridcolor": "#eee",
                  "zeroline": False},
        "yaxis": {"showline": True, "linecolor": "#444", "ticks": "outside", "gridcolor": "#eee",
                  "zeroline": False},
        "legend": {"bgcolor": "rgba(255,255,255,0.8)"},
        "colorway": list(PALETTE),
        "margin": {"l": 70, "r": 20, "t": 60, "b": 55},
        "hovermode": "closest",
    }
}
TEMPLATE = go.Figure().update_layout(template=HOUSE_STYLE).layout.template
_TEMPLATE_JSON = TEMPLATE.to_plotly_json()


def esc(text) -> str:
    """``text`` (from an input file) as a plotly label that shows exactly what was typed."""
    return html.escape("" if text is None else str(text), quote=True)


def dose_colors(levels) -> dict:
    """Dose-level label -> colour, in the order given (lowest dose first)."""
    return {lvl: PALETTE[i % len(PALETTE)] for i, lvl in enumerate(levels)}


def figure(title: str, *, height: int = 420, **layout) -> go.Figure:
    """An empty figure in the house style (``title`` is trusted text built by the caller)."""
    fig = go.Figure()
    # the template is valid (built above): set a copy of it without validating it again
    # (17 ms -> 1 ms a figure; the same JSON)
    fig.layout._validate = False
    fig.layout.template = copy.deepcopy(_TEMPLATE_JSON)
    fig.layout._validate = True
    fig.update_layout(title={"text": title, "x": 0.01, "xanchor": "left"}, height=height, **layout)
    return fig


def log_axis(title: str) -> dict:
    """A log10 axis with powers of ten as ticks (1e3 shown as 10³)."""
    return {"type": "log", "title": {"text": title}, "exponentformat": "power", "dtick": 1}


def finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def unit_label(name: str, unit: str) -> str:
    return f"{esc(name)} ({esc(unit)})" if unit else esc(name)


def add_note(fig: go.Figure, text: str, *, below: int = 48) -> None:
    """A small note ``below`` pixels under the plot area (under the x-axis title), with room
    made for it in the bottom margin."""
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0, y=0, yshift=-below,
                       showarrow=False, xanchor="left", yanchor="top",
                       font={"size": 10, "color": GREY}, align="left")
    fig.update_layout(margin={"b": below + 30})


def log_range(values, pad: float = 2.0):
    """[log10 low, log10 high] covering the positive ``values`` (LLOQ included by callers)."""
    v = [float(x) for x in values if finite(x) and float(x) > 0]
    if not v:
        return None
    return [math.log10(min(v) / pad), math.log10(max(v) * pad)]


def empty(title: str, reason: str, height: int = 220) -> go.Figure:
    """A figure that says why there is nothing to draw (instead of a blank box)."""
    fig = figure(title, height=height)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(text=esc(reason), xref="paper", yref="paper", x=0.5, y=0.5,
                       showarrow=False, font={"size": 13, "color": GREY})
    return fig
