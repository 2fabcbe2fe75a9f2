"""House style of the figures: colours by dose level, a small template, safe labels.

Everything here is about drawing. Labels that come from input files (participant IDs, analyte
names, dose-level labels) go through :func:`esc`, because plotly reads a subset of HTML in
text (``<b>``, ``<br>``, ``<a href>``): an ID such as ``<b>7`` must show as typed, and never
become markup.
"""
from __future__ import annotations

import html
import math

import numpy as np

from ctkinetics.plots.spec import Spec

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000")
GREY = "#7f7f7f"
LIGHT = "#d9d9d9"
DLT_COLOR = "#C00000"
OK_COLOR = "#009E73"
PENDING_COLOR = "#E69F00"

#: The house style, applied on top of plotly's default template as a dict given to
#: ``update_layout(template=...)`` would be. The figures of this package refer to that result
#: built once as plain data (:func:`ctkinetics.plots.spec.house_template`; a page writes it
#: once); :data:`TEMPLATE` is the same as a plotly object, for figures built with
#: :mod:`plotly.graph_objects`.
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


def __getattr__(name):
    # TEMPLATE as a plotly object, built on first use (importing plotly's graph objects and
    # validating the template cost ~0.5 s, which the report's figures do not need)
    if name == "TEMPLATE":
        global TEMPLATE
        import plotly.graph_objects as go

        TEMPLATE = go.Figure().update_layout(template=HOUSE_STYLE).layout.template
        return TEMPLATE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def esc(text) -> str:
    """``text`` (from an input file) as a plotly label that shows exactly what was typed."""
    return html.escape("" if text is None else str(text), quote=True)


def dose_colors(levels) -> dict:
    """Dose-level label -> colour, in the order given (lowest dose first)."""
    return {lvl: PALETTE[i % len(PALETTE)] for i, lvl in enumerate(levels)}


def figure(title: str, *, height: int = 420, **layout) -> Spec:
    """An empty figure in the house style (``title`` is trusted text built by the caller)."""
    return Spec(title, height=height, **layout)


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


def log_range(values, pad: float = 2.0):
    """[log10 low, log10 high] covering the positive ``values`` (LLOQ included by callers)."""
    try:
        v = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):  # None or text among them
        v = np.array([float(x) for x in values if finite(x)], dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return None
    return [math.log10(float(v.min()) / pad), math.log10(float(v.max()) * pad)]


def empty(title: str, reason: str, height: int = 220) -> Spec:
    """A figure that says why there is nothing to draw (instead of a blank box)."""
    fig = figure(title, height=height)
    fig.axes("x", {"visible": False})
    fig.axes("y", {"visible": False})
    fig.annotate({"text": esc(reason), "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
                  "showarrow": False, "font": {"size": 13, "color": GREY}})
    return fig
