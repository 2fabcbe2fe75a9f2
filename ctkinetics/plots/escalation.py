"""Dose-escalation figures: the swimmer plot of enrolment and the BOIN boundary chart."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.plots.spec import Spec, figure_function
from ctkinetics.plots.style import (
    DLT_COLOR, GREY, OK_COLOR, PENDING_COLOR, dose_colors, empty, esc, figure, finite,
)

STATUS_COLORS = {"no dlt": OK_COLOR, "dlt": DLT_COLOR, "pending": PENDING_COLOR,
                 "expansion": GREY, "not evaluable": "#999999", "partial": "#56B4E9",
                 "awaiting committee": "#CC79A7"}
STATUS_TEXT = {"no dlt": "window complete, no DLT", "dlt": "window with a DLT",
               "pending": "still in DLT window",
               "expansion": "expansion (no DLT assessment)",
               "not evaluable": "window ended early: not evaluable",
               "partial": "window ended early: counted with its follow-up",
               "awaiting committee": "window ended early: awaiting the committee"}
COMMITTEE_MARK = {"committee_decision": "C", "insert_level": "+DL", "retire_level": "−DL",
                  "release_sentinel_hold": "gate", "confirm_no_expansion": "no exp."}


def _committee_marks(fig, committee) -> None:
    """Committee entries as dotted vertical lines on the timeline (overrides in red)."""
    for i, r in enumerate(committee.sort_values("day", kind="stable").to_dict("records")):
        what = COMMITTEE_MARK.get(r["action"], r["action"])
        target = r.get("level") or r.get("subject") or ""
        label = f"{what} {target}".strip()
        if r["action"] == "committee_decision":
            label = f"C: {r.get('decision', '')} {target}".strip()
        override = r.get("followed") is False
        fig.vline(float(r["day"]), {"color": DLT_COLOR if override else "#555", "width": 1,
                                    "dash": "dot"},
                  text=esc(label + (" (override)" if override else "")),
                  # alternate top and bottom so entries of neighbouring days stay readable
                  position="bottom right" if i % 2 == 0 else "top right", font={"size": 9})


class _Layers:
    """The swimmer's traces, one per kind (a status's windows, their pale parts, the
    infusions, the DLTs, the stagger waits) however many participants: segments of a kind are
    one line trace with gaps, markers one marker trace; hover text per point. Drawn windows
    first, markers on top; the legend lists the kinds in the order they first occur (top
    participant first), as one trace per participant would."""

    DRAW = ("window", "pale", "wait", "infusion", "dlt")

    def __init__(self):
        self.traces = {}    # (draw layer, key) -> trace
        self.legend = []    # keys with a legend entry, in order of appearance

    def _trace(self, layer, key, base, legend: bool) -> dict:
        t = self.traces.get((layer, key))
        if t is None:
            t = self.traces[(layer, key)] = dict(base, x=[], y=[], text=[])
            if legend:
                t["legendrank"] = 1000 + len(self.legend)
                self.legend.append(key)
        return t

    def segment(self, layer, key, base, x0, x1, y, text, legend=True) -> None:
        t = self._trace(layer, key, base, legend)
        t["x"] += [x0, x1, None]
        t["y"] += [y, y, None]
        t["text"] += [text, text, None]

    def marker(self, layer, key, base, x, y, text, color=None) -> None:
        t = self._trace(layer, key, base, True)
        t["x"].append(x)
        t["y"].append(y)
        t["text"].append(text)
        if color is not None:
            t["marker"]["color"].append(color)

    def draw(self, fig: Spec) -> None:
        for layer in self.DRAW:
            for (lay, _), t in self.traces.items():
                if lay == layer:
                    fig.add(t)


@figure_function
def swimmer(decision, *, dlt_window_days: float | None = None, height: int | None = None,
            committee=None) -> Spec:
    """Enrolment as of the decision day: infusions, DLT windows, DLTs and stagger waits.

    Parameters
    ----------
    decision : Decision
        From :func:`ctkinetics.escalation.decide_study`: ``participants`` (subject, level,
        phase, infusion_day, status, followup_days, window_end_day, dlt_day — study days),
        ``levels`` (sentinel_day, stagger_ok_from_day), ``as_of_day`` and the next infusion.
    dlt_window_days : float, optional
        Only used in the note.
    committee : DataFrame, optional
        The committee's record (``EscalationReview.committee``: day, action, level, decision,
        followed): a dotted line per entry, red when the committee departed from the design.

    Returns
    -------
    plotly.graph_objects.Figure
        (``swimmer.spec(...)``: the plain JSON specification.)

    Notes
    -----
    One row per participant (first infused at the top). The bar is the DLT window from
    infusion to infusion + window, solid up to the decision day and pale after it; × marks a
    DLT; the dotted line under a dose group's first participant (the sentinel) is the stagger
    wait before the others of that group may be infused.
    """
    parts = decision.participants.sort_values(["infusion_day", "subject"], kind="stable")
    title = f"Enrolment and DLT windows as of study day {decision.as_of_day:g}"
    if parts.empty:
        return empty(title, "no participant infused yet")
    colors = dose_colors(list(decision.levels["level"]))
    n = len(parts)
    fig = figure(title, height=height or max(300, 130 + 34 * (n + 1)))
    as_of = float(decision.as_of_day)
    layers = _Layers()
    ticks, labels = [], []
    gates = _stagger_gates(decision.levels)
    for i, r in enumerate(parts.itertuples(index=False)):
        y = n - i
        ticks.append(y)
        labels.append(f"{esc(r.subject)} · DL {esc(r.level)}")
        _participant(layers, r, y, as_of, colors)
        sentinel, stagger_to, held = gates.get(r.level, (None, None, False))
        if r.phase == "escalation" and finite(sentinel) and float(sentinel) == float(r.infusion_day) \
                and finite(stagger_to) and stagger_to > float(r.infusion_day):
            _stagger_wait(layers, r, y, as_of, stagger_to, held)
    layers.draw(fig)
    nxt = decision.earliest_next_infusion_day
    if nxt is not None and finite(nxt) and decision.next_level is not None:
        fig.add({"x": [nxt], "y": [0], "mode": "markers", "name": "earliest next infusion",
                 "marker": {"symbol": "star", "size": 15,
                            "color": colors.get(decision.next_level, "#222")},
                 "legendrank": 1000 + len(layers.legend),
                 "hovertemplate": f"next participant (DL {esc(decision.next_level)}) "
                                  f"from day {nxt:g}<extra></extra>"})
        ticks.append(0)
        labels.append(f"next · DL {esc(decision.next_level)}")
    fig.vline(as_of, {"color": "#111", "width": 1.5, "dash": "dash"}, text=f"as of day {as_of:g}",
              position="top")
    if committee is not None and len(committee):
        _committee_marks(fig, committee)
    fig.axes("y", {"tickmode": "array", "tickvals": ticks, "ticktext": labels,
                   "range": [-0.8, n + 0.8], "showgrid": False})
    fig.axes("x", {"title": {"text": "Study day"}})
    window = f" ({dlt_window_days:g} days)" if dlt_window_days else ""
    fig.note(f"Bar: DLT window{window} from infusion (to its early end), pale after the decision day. "
             "Triangle colour: dose level. Dotted: stagger wait after a group's first "
             "participant" + ("; vertical dotted lines: the committee's record." if committee is not None
                              and len(committee) else "."))
    # room above the plot for a legend of two rows under the title
    fig.update(legend={"orientation": "h", "y": 1.01, "yanchor": "bottom", "x": 0},
               margin={"l": 140, "t": 130, "b": 80}, title={"y": 0.985, "yanchor": "top"})
    return fig


def _stagger_gates(levels: pd.DataFrame) -> dict:
    """level -> (sentinel's infusion day, day the others may be infused, gate held)."""
    held = levels["gate_held"] if "gate_held" in levels.columns else [False] * len(levels)
    return {r.level: (r.sentinel_day, r.stagger_ok_from_day, bool(h))
            for r, h in zip(levels.itertuples(index=False), held)}


_HOVER = "%{text}<extra></extra>"


def _participant(layers: _Layers, r, y, as_of: float, colors: dict) -> None:
    """A participant's DLT window (solid to the decision day, pale after), infusion and DLT."""
    color = STATUS_COLORS.get(r.status, GREY)
    t0, t1 = float(r.infusion_day), float(r.window_end_day)
    seen = min(t1, as_of)
    bar = {"mode": "lines", "line": {"color": color, "width": 12}}
    layers.segment("window", r.status, dict(bar, name=STATUS_TEXT.get(r.status, esc(r.status)),
                                            legendgroup=r.status, hovertemplate=_HOVER),
                   t0, seen, y, f"{esc(r.subject)} (DL {esc(r.level)}, {esc(r.phase)})<br>infused day "
                   f"{t0:g}; window to day {t1:g}; {STATUS_TEXT.get(r.status, '')}")
    if t1 > seen:
        layers.segment("pale", r.status, dict(bar, showlegend=False, opacity=0.3, hoverinfo="skip"),
                       seen, t1, y, None, legend=False)
    layers.marker("infusion", "infusion",
                  {"mode": "markers", "name": "infusion", "legendgroup": "infusion",
                   "marker": {"symbol": "triangle-right", "size": 11, "color": [],
                              "line": {"color": "#222", "width": 1}}, "hovertemplate": _HOVER},
                  t0, y, f"{esc(r.subject)} infused day {t0:g}", colors.get(r.level, "#222"))
    if r.status == "dlt" and finite(r.dlt_day):
        layers.marker("dlt", "dltx", {"mode": "markers", "name": "DLT onset", "legendgroup": "dltx",
                                      "marker": {"symbol": "x", "size": 14, "color": "#111",
                                                 "line": {"width": 1}}, "hovertemplate": _HOVER},
                      float(r.dlt_day), y, f"{esc(r.subject)}: DLT on day {r.dlt_day:g}")


def _stagger_wait(layers: _Layers, r, y, as_of: float, stagger_to: float, held: bool) -> None:
    """The dotted stagger wait under a dose group's sentinel (red to the decision day when the
    gate is held for the committee)."""
    t0 = float(r.infusion_day)
    key = "held" if held else "stagger"
    layers.segment("wait", key, {
        "mode": "lines", "line": {"color": DLT_COLOR if held else "#444", "width": 2, "dash": "dot"},
        "name": "stagger gate held for the committee" if held else "stagger wait (sentinel)",
        "legendgroup": key, "hovertemplate": _HOVER},
        t0, float(max(stagger_to, as_of) if held else stagger_to), y - 0.32,
        f"DL {esc(r.level)}: " + ("gate held for committee review" if held else
                                  f"others from day {stagger_to:g}"))


@figure_function
def boin_chart(boundary_table, decision=None, *, height: int = 420) -> Spec:
    """BOIN decision regions by number treated, with each dose level's observed counts.

    Parameters
    ----------
    boundary_table : BoundaryTable or DataFrame
        ``n, escalate_if_le, deescalate_if_ge, eliminate_if_ge`` for every n (e.g.
        ``boundaries(..., every_n=True)``).
    decision : Decision, optional
        Its ``levels`` (level, n, dlt, pending, current) are drawn as labelled points.

    Returns
    -------
    plotly.graph_objects.Figure
        (``boin_chart.spec(...)``: the plain JSON specification.)
    """
    t = boundary_table.to_frame() if hasattr(boundary_table, "to_frame") else pd.DataFrame(boundary_table)
    fig = figure("BOIN boundaries and observed DLT counts", height=height)
    n = t["n"].to_numpy(int)
    esc_max = t["escalate_if_le"].to_numpy(float)
    de_min = t["deescalate_if_ge"].to_numpy(float)
    elim = pd.to_numeric(t["eliminate_if_ge"], errors="coerce").to_numpy(float)
    elim = np.where(np.isfinite(elim), elim, n + 1)
    top = n + 0.5
    regions = (
        ("escalate", "rgba(0,158,115,0.25)", np.full(n.size, -0.5), esc_max + 0.5),
        ("stay", "rgba(160,160,160,0.18)", esc_max + 0.5, de_min - 0.5),
        ("de-escalate", "rgba(230,159,0,0.30)", de_min - 0.5, np.minimum(elim, n + 1) - 0.5),
        ("eliminate dose", "rgba(192,0,0,0.30)", np.minimum(elim, n + 1) - 0.5, top),
    )
    for name, color, lo, hi in regions:
        h = np.maximum(hi - lo, 0)
        fig.add({"type": "bar", "x": n, "y": h, "base": lo, "width": 1.0, "name": name,
                 "marker": {"color": color, "line": {"width": 0}},
                 "customdata": np.stack([lo + 0.5, hi - 0.5], axis=1),
                 "hovertemplate": (f"n=%{{x}}: {name} if DLTs in "
                                   "[%{customdata[0]:.0f}, %{customdata[1]:.0f}]<extra></extra>")})
    if decision is not None:
        lv = decision.levels
        lv = lv[lv["n"] > 0]
        colors = dose_colors(list(decision.levels["level"]))
        for r in lv.itertuples(index=False):
            label = f"DL {esc(r.level)}" + (" (current)" if r.current else "")
            pend = f", {int(r.pending)} pending" if r.pending else ""
            fig.add({"x": [r.n], "y": [r.dlt], "mode": "markers+text", "text": [label],
                     "textposition": "middle right",
                     "name": f"DL {esc(r.level)}: {int(r.dlt)}/{int(r.n)} DLT{pend}",
                     "marker": {"size": 15 if r.current else 12, "color": colors.get(r.level, "#222"),
                                "symbol": "circle",
                                "line": {"color": "#111", "width": 2 if r.current else 1}},
                     "hovertemplate": f"DL {esc(r.level)}: {int(r.dlt)} DLT in {int(r.n)} "
                                      f"treated{pend}<extra></extra>"})
    fig.update(barmode="overlay", bargap=0)
    fig.axes("x", {"title": {"text": "Participants treated at the dose level (n)"}, "dtick": 1,
                   "range": [0.5, n.max() + 0.5]})
    fig.axes("y", {"title": {"text": "Participants with a DLT"}, "dtick": 1,
                   "range": [-0.5, n.max() / 2 + 1]})
    fig.note("Regions: the BOIN decision for each (n, DLT count); pending participants "
             "count as treated (TITE-BOIN weighs them by follow-up, see the decision table).")
    return fig
