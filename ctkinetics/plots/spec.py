"""Figures as plain plotly JSON specifications: dicts, lists and numpy arrays, no plotly objects.

Building a figure from :mod:`plotly.graph_objects` validates every property as it is set: ~30 ms
for one participant's profile, ~0.6 s for a page of 24 panels, most of a large report's time.
The figures of :mod:`ctkinetics.plots` are therefore built as the JSON plotly.js draws
(``{"data": [...], "layout": {...}}``) with :class:`Spec`, and turned into a
:class:`plotly.graph_objects.Figure` only when a user asks for one (:func:`figure_function`):

>>> from ctkinetics import plots                                          # doctest: +SKIP
>>> fig = plots.individual_profile(ds, "SLE-101", "transgene")            # a go.Figure
>>> spec = plots.individual_profile.spec(ds, "SLE-101", "transgene")      # the dict the report writes

:class:`Grid` lays out subplots as :func:`plotly.subplots.make_subplots` does (same axis names,
domains, anchors, shared axes and subplot titles; the tests compare the two), and the layout
refers to the one house template (:func:`house_template`: plotly's default template with the
house style merged in, as ``update_layout(template=...)`` merges it), so a page can write it
once. Nothing here imports plotly's graph objects.
"""
from __future__ import annotations

import copy
import functools

#: Layout keys of plotly's ``make_subplots`` subplot titles (their font size).
TITLE_FONT = {"size": 16}


def merge(dst: dict, src: dict) -> dict:
    """Update ``dst`` with ``src`` recursively (nested dicts merged, everything else replaced),
    as plotly's ``update_layout`` does with nested properties. Returns ``dst``."""
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = v
    return dst


@functools.lru_cache(maxsize=1)
def _house_template() -> dict:
    import importlib.resources
    import json

    from ctkinetics.plots.style import HOUSE_STYLE

    base = json.loads((importlib.resources.files("plotly") / "package_data" / "templates"
                       / "plotly.json").read_text(encoding="utf-8"))
    return merge(base, copy.deepcopy(HOUSE_STYLE))


def house_template() -> dict:
    """The house template as plotly.js reads it (plotly's default ``plotly`` template with
    :data:`ctkinetics.plots.style.HOUSE_STYLE` merged in). One object per process: a page
    recognises it by identity and writes it once; never modify it."""
    return _house_template()


def _label(letter: str, n: int) -> str:
    return letter if n == 1 else f"{letter}{n}"


class Grid:
    """Subplot geometry, as :func:`plotly.subplots.make_subplots` computes it (top-left first).

    Parameters
    ----------
    rows, cols : int
    secondary_y : bool
        Every cell gets a second y axis on its right (``specs=[[{"secondary_y": True}]*cols]*rows``).
    horizontal_spacing, vertical_spacing : float, optional
        Fractions of the plotting area; plotly's defaults when not given.
    row_heights : sequence of float, optional
        Relative heights, top row first.
    shared_xaxes, shared_yaxes : bool or 'all' or 'columns' or 'rows'
        As in ``make_subplots``.
    """

    def __init__(self, rows: int, cols: int, *, secondary_y: bool = False,
                 horizontal_spacing: float | None = None, vertical_spacing: float | None = None,
                 row_heights=None, shared_xaxes=False, shared_yaxes=False,
                 titles: bool = False):
        self.rows, self.cols, self.secondary_y = rows, cols, secondary_y
        hs = horizontal_spacing if horizontal_spacing is not None else \
            (0.4 if secondary_y else 0.2) / cols
        vs = vertical_spacing if vertical_spacing is not None else (0.5 if titles else 0.3) / rows
        max_width = 0.94 if secondary_y else 1.0
        width = (max_width - hs * (cols - 1)) / cols
        rel = list(row_heights) if row_heights is not None else [1.0] * rows
        heights = [(1.0 - vs * (rows - 1)) * h / float(sum(rel)) for h in rel]
        self.layout, self.cells, self.domains = {}, {}, []
        n_x = n_y = 0
        for r in range(rows):
            y0 = sum(heights[r + 1:]) + (rows - 1 - r) * vs   # rows below, and their gaps
            y_dom = [min(1.0, max(0.0, y0)), min(1.0, max(0.0, y0 + heights[r]))]
            for c in range(cols):
                x0 = c * (width + hs)
                x_dom = [max(0.0, x0), min(1.0, x0 + width)]
                n_x, n_y = n_x + 1, n_y + 1
                xl, yl = _label("x", n_x), _label("y", n_y)
                self.layout[_label("xaxis", n_x)] = {"domain": x_dom, "anchor": yl}
                self.layout[_label("yaxis", n_y)] = {"domain": y_dom, "anchor": xl}
                cell = [(xl, yl)]
                if secondary_y:
                    n_y += 1
                    self.layout[_label("yaxis", n_y)] = {"anchor": xl, "overlaying": yl,
                                                         "side": "right"}
                    cell.append((xl, _label("y", n_y)))
                self.cells[(r + 1, c + 1)] = cell
                self.domains.append((x_dom, y_dom))
        self._share("x", shared_xaxes)
        self._share("y", shared_yaxes)

    def ref(self, row: int, col: int, secondary_y: bool = False) -> tuple:
        """(x label, y label) of a cell, e.g. ('x3', 'y5')."""
        return self.cells[(row, col)][1 if secondary_y else 0]

    def _share(self, letter: str, shared) -> None:
        """``make_subplots``' shared axes: the axes of a group match the first one (bottom row
        first for columns), tick labels kept on the first only (on the bottom row / first
        column for 'all')."""
        if not shared:
            return
        k = 0 if letter == "x" else 1
        rows = range(self.rows, 0, -1)            # make_subplots walks rows bottom-up
        cols = range(1, self.cols + 1)
        if shared == "columns" or (letter == "x" and shared is True):
            groups = [[(r, c, letter == "x") for r in rows] for c in cols]
        elif shared == "rows" or (letter == "y" and shared is True):
            groups = [[(r, c, letter == "y") for c in cols] for r in rows]
        elif shared == "all":
            groups = [[(r, c, (c > 1) if letter == "y" else (i > 0))
                       for i, r in enumerate(rows) for c in cols]]
        else:
            raise ValueError(f"shared axes {shared!r}: True, 'all', 'columns' or 'rows'")
        for group in groups:
            first = None
            for r, c, hide in group:
                label = self.ref(r, c)[k]
                if first is None:
                    first = label
                    continue
                axis = self.layout[letter + "axis" + label[1:]]
                axis["matches"] = first
                if hide:
                    axis["showticklabels"] = False

    def titles(self, texts, font=None) -> list:
        """Subplot titles as ``make_subplots`` writes them: annotations centred over each cell
        (top-left first, row by row); empty titles skipped."""
        out = []
        for text, (x_dom, y_dom) in zip(texts, self.domains):
            if text:
                out.append({"y": y_dom[1], "xref": "paper", "x": sum(x_dom) / 2.0, "yref": "paper",
                            "text": text, "showarrow": False, "font": dict(font or TITLE_FONT),
                            "xanchor": "center", "yanchor": "bottom"})
        return out


@functools.lru_cache(maxsize=64)
def grid(rows: int, cols: int, **options) -> Grid:
    """A :class:`Grid`, computed once per shape (pages of the same size share it; never
    modify it: :class:`Spec` copies its layout)."""
    return Grid(rows, cols, **options)


class Spec:
    """A figure under construction, as plain data (see the module docstring).

    Parameters
    ----------
    title : str or dict, optional
        Trusted text (built by the caller; escape what comes from input files), placed at the
        left as the house style does; or the layout's whole ``title`` (a dict).
    height : int
        Pixels: every figure states its height.
    grid : Grid, optional
        Subplots; traces and axes are then addressed by ``row``/``col`` (1-based).
    subplot_titles : sequence of str, optional
    **layout
        Further layout properties, merged.
    """

    def __init__(self, title: str | dict | None = None, *, height: int, grid: Grid | None = None,
                 subplot_titles=None, **layout):
        self.grid = grid
        self.data: list = []
        self._used: set = set()
        self.layout: dict = copy.deepcopy(grid.layout) if grid is not None else {}
        if subplot_titles is not None and grid is not None:
            self.layout["annotations"] = grid.titles(subplot_titles)
        self.layout["template"] = house_template()
        if isinstance(title, dict):
            self.layout["title"] = dict(title)
        elif title is not None:
            self.layout["title"] = {"text": title, "x": 0.01, "xanchor": "left"}
        self.layout["height"] = int(height)
        merge(self.layout, copy.deepcopy(layout))

    # ----------------------------------------------------------------- traces
    def add(self, trace: dict, row: int | None = None, col: int | None = None,
            secondary_y: bool = False) -> dict:
        """Append a trace (a dict; ``type`` defaults to scatter) in a cell. Returns it."""
        trace.setdefault("type", "scatter")
        if self.grid is not None:
            x, y = self.grid.ref(row or 1, col or 1, secondary_y)
            trace["xaxis"], trace["yaxis"] = x, y
            self._used.add((x, y))
        self.data.append(trace)
        return trace

    # ------------------------------------------------------------------- axes
    def _axis_names(self, letter, row, col, secondary_y) -> list:
        if self.grid is None:
            return [letter + "axis"]
        if row is not None or col is not None:
            cells = [(r, c) for (r, c) in self.grid.cells
                     if (row is None or r == row) and (col is None or c == col)]
        else:
            cells = list(self.grid.cells)
        names = []
        for r, c in cells:
            refs = self.grid.cells[(r, c)]
            if letter == "x":
                names.append(refs[0][0])
            elif secondary_y is None:
                names += [ref[1] for ref in refs]
            else:
                names += [ref[1] for ref in refs[1:2]] if secondary_y else [refs[0][1]]
        return [letter + "axis" + n[1:] for n in dict.fromkeys(names)]

    def axes(self, letter: str, props: dict, *, row=None, col=None, secondary_y=None) -> None:
        """Merge ``props`` into the ``letter`` ('x' or 'y') axes: all of them, or those of a
        row / column / cell; ``secondary_y`` True/False picks the right/left y axes (None:
        both), as ``update_xaxes`` / ``update_yaxes`` do."""
        for name in self._axis_names(letter, row, col, secondary_y):
            merge(self.layout.setdefault(name, {}), copy.deepcopy(props))

    def update(self, **layout) -> None:
        """Merge layout properties."""
        merge(self.layout, copy.deepcopy(layout))

    # ------------------------------------------------------- shapes and notes
    def _cell_refs(self, row, col):
        if self.grid is None:
            return [("x", "y")]
        refs = [self.grid.ref(r, c) for (r, c) in self.grid.cells
                if (row is None or r == row) and (col is None or c == col)]
        # as plotly: lines across a subplot only where the subplot has data
        return [rc for rc in refs if rc in self._used]

    def hline(self, y: float, line: dict, *, row=None, col=None) -> None:
        """A horizontal line across the plot area (``add_hline``)."""
        for x, yr in self._cell_refs(row, col):
            self.shape({"type": "line", "x0": 0, "x1": 1, "xref": f"{x} domain", "y0": y, "y1": y,
                        "yref": yr, "line": dict(line)})

    def vline(self, x: float, line: dict, *, text: str | None = None, position: str = "top right",
              font: dict | None = None) -> None:
        """A vertical line over the plot area with an optional label (``add_vline`` with
        ``annotation_text``; ``position`` 'top', 'top right' or 'bottom right')."""
        self.shape({"type": "line", "x0": x, "x1": x, "xref": "x", "y0": 0, "y1": 1,
                    "yref": "y domain", "line": dict(line)})
        if text is not None:
            at = {"top": (1, "center", "bottom"), "top right": (1, "left", "top"),
                  "bottom right": (0, "left", "bottom")}[position]
            note = {"showarrow": False, "text": text, "x": x, "xanchor": at[1], "xref": "x",
                    "y": at[0], "yanchor": at[2], "yref": "y domain"}
            if font:
                note["font"] = dict(font)
            self.annotate(note)

    def shape(self, shape: dict) -> None:
        self.layout.setdefault("shapes", []).append(shape)

    def annotate(self, note: dict) -> None:
        self.layout.setdefault("annotations", []).append(note)

    def note(self, text: str, *, below: int = 48) -> None:
        """A small note ``below`` pixels under the plot area (under the x-axis title), with
        room made for it in the bottom margin (trusted text)."""
        from ctkinetics.plots.style import GREY

        self.annotate({"text": text, "xref": "paper", "yref": "paper", "x": 0, "y": 0,
                       "yshift": -below, "showarrow": False, "xanchor": "left", "yanchor": "top",
                       "font": {"size": 10, "color": GREY}, "align": "left"})
        merge(self.layout, {"margin": {"b": below + 30}})

    # ---------------------------------------------------------------- output
    def to_dict(self) -> dict:
        """``{"data": [...], "layout": {...}}``; the layout's ``template`` is
        :func:`house_template` itself (a page writes it once)."""
        return {"data": self.data, "layout": self.layout}

    def to_figure(self):
        """The same figure as a :class:`plotly.graph_objects.Figure` (validated by plotly)."""
        import plotly.graph_objects as go

        return go.Figure(self.to_dict())


def figure_function(build):
    """Make a figure function from ``build(*args, **kwargs) -> Spec``: calling it returns a
    :class:`plotly.graph_objects.Figure`; ``.spec(*args, **kwargs)`` returns the plain
    specification (the dict the report serialises without building plotly objects)."""

    @functools.wraps(build)
    def public(*args, **kwargs):
        return build(*args, **kwargs).to_figure()

    def spec(*args, **kwargs) -> dict:
        return build(*args, **kwargs).to_dict()

    spec.__doc__ = f"The JSON specification of :func:`{build.__name__}` (same arguments)."
    public.spec = spec
    public.build = build
    return public
