"""Figures in the page: each serialised once, compactly, and drawn by one shared renderer.

A figure becomes an empty ``<div class='ctk-figure'>`` and its specification as JSON in a
``<script type='application/json'>`` beside it; one script at the end of the page draws the
figures with the one embedded plotly.js. Compactness, without visible change:

- the layout template (the house style, the same for every figure) is written once per page
  and referred to by number;
- numeric arrays are plotly's typed arrays (base64 float64: exact values);
- a dense line (a fitted curve or its band on a fine grid, more than :data:`DENSE` points)
  keeps only the points needed to draw it within 1/2000 of the plotted range (log axes in
  log10 units; Ramer-Douglas-Peucker), about a quarter of a pixel in a 500-pixel figure.

Per-participant figures beyond a threshold are paged (:meth:`Figures.paged`): a page is
drawn when it is shown, so a report of 2,000 participants opens as fast as one of 20.

Safety: ``<``, ``>`` and ``&`` inside the JSON are written as ``\\u003c`` ... so nothing from
the data can close the script element. Determinism: ids are numbered in order and JSON keys
sorted: the same review gives the same bytes.
"""
from __future__ import annotations

import base64
import json

import numpy as np

from ctkinetics.report.html import esc

#: Lines with more points than this are thinned (see the module docstring).
DENSE = 150
#: Tolerance of the thinning, as a fraction of the plotted range.
TOLERANCE = 5e-4
#: Per-participant figures per page when a group is paged.
PER_PAGE = 24

CONFIG = '{"displayModeBar":false,"responsive":true}'

_RENDER = """(function(){var T=JSON.parse(document.getElementById('ctk-templates').textContent);
var C=%s;function draw(d){if(d.getAttribute('data-drawn'))return;
var s=document.getElementById(d.id+'-spec');if(!s)return;var f=JSON.parse(s.textContent);
if(f.t!==null)f.layout.template=T[f.t];Plotly.newPlot(d,f.data,f.layout,C);
d.setAttribute('data-drawn','1');}
function shown(d){return !d.closest('.ctk-page[hidden]');}
var all=document.querySelectorAll('.ctk-figure');
for(var i=0;i<all.length;i++){if(shown(all[i]))draw(all[i]);}
var sel=document.querySelectorAll('select.ctk-pager');
for(var j=0;j<sel.length;j++){sel[j].addEventListener('change',function(e){
var g=e.target.getAttribute('data-group');var ps=document.querySelectorAll('.ctk-page[data-group="'+g+'"]');
for(var k=0;k<ps.length;k++){var on=String(k)===e.target.value;
var fs=ps[k].querySelectorAll('.ctk-figure');
if(on){ps[k].removeAttribute('hidden');for(var m=0;m<fs.length;m++)draw(fs[m]);}
else if(!ps[k].hasAttribute('hidden')){ps[k].setAttribute('hidden','');
for(var m=0;m<fs.length;m++){Plotly.purge(fs[m]);fs[m].removeAttribute('data-drawn');}}}});}
})();"""


def safe_json(obj) -> str:
    """Compact JSON that cannot end a ``<script>`` element (numpy values accepted; a NaN or
    infinity written as null, which plotly draws as a gap, as plotly's own encoder does)."""
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_default,
                          allow_nan=False)
    except ValueError:   # a non-finite float in a plain list or value (rare): null it
        text = json.dumps(_nulled(obj), sort_keys=True, separators=(",", ":"),
                          default=_default, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _nulled(v):
    """``v`` with every non-finite float (Python or numpy scalar) replaced by None."""
    if isinstance(v, dict):
        return {k: _nulled(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_nulled(x) for x in v]
    if isinstance(v, (float, np.floating)) and not np.isfinite(v):
        return None
    return v


def _default(value):
    if isinstance(value, np.ndarray):
        return _typed(value)
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "to_plotly_json"):
        return value.to_plotly_json()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _typed(a: np.ndarray):
    if a.dtype.kind == "f":
        a = a.astype("<f8")
        if not np.isfinite(a).all():  # JSON has no NaN: plotly reads null as a gap
            return [None if not np.isfinite(v) else float(v) for v in a]
        return {"dtype": "f8", "bdata": base64.b64encode(a.tobytes()).decode("ascii")}
    if a.dtype.kind in "iu":
        return {"dtype": "i4", "bdata": base64.b64encode(a.astype("<i4").tobytes()).decode("ascii")} \
            if len(a) and np.abs(a).max() < 2 ** 31 else a.tolist()
    return a.tolist()


def _array(v):
    """A trace's x or y as float64 (None when it is not numeric)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]).newbyteorder("<")
                             ).astype(float)
    try:
        a = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        return None
    return a if a.ndim == 1 else None


def simplify(x: np.ndarray, y: np.ndarray, tol: float) -> np.ndarray:
    """Indices of the points to keep so that the polyline deviates from the full one by at
    most ``tol`` (Ramer-Douglas-Peucker on already scaled coordinates; first and last kept)."""
    n = len(x)
    keep = np.zeros(n, bool)
    keep[[0, n - 1]] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        dx, dy = x[b] - x[a], y[b] - y[a]
        px, py = x[a + 1:b] - x[a], y[a + 1:b] - y[a]
        norm = np.hypot(dx, dy)
        dist = np.abs(dx * py - dy * px) / norm if norm > 0 else np.hypot(px, py)
        k = int(np.argmax(dist))
        if dist[k] > tol:
            m = a + 1 + k
            keep[m] = True
            stack += [(a, m), (m, b)]
    return np.flatnonzero(keep)


def _thin(trace: dict, layout: dict) -> dict:
    mode = str(trace.get("mode", "lines"))
    if trace.get("type", "scatter") != "scatter" or "markers" in mode or "text" in mode \
            or "text" in trace or "customdata" in trace:
        return trace
    x, y = _array(trace.get("x")), _array(trace.get("y"))
    if x is None or y is None or len(x) != len(y) or len(x) <= DENSE:
        return trace
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return trace
    axis = layout.get("yaxis" + str(trace.get("yaxis", "y"))[1:], {}) or {}
    if axis.get("type") == "log":
        if (y <= 0).any():
            return trace
        y = np.log10(y)
    xs, ys = np.ptp(x), np.ptp(y)
    if xs == 0 or ys == 0:
        return trace
    keep = simplify(x / xs, y / ys, TOLERANCE)
    if len(keep) == len(x):
        return trace
    out = dict(trace)
    out["x"] = _array(trace["x"])[keep]
    out["y"] = _array(trace["y"])[keep]
    return out


def _serialised(fig) -> tuple:
    """(template JSON or None, figure JSON without the template and without its closing
    brace): the expensive part of writing a figure, done once per figure."""
    spec = fig.to_plotly_json() if hasattr(fig, "to_plotly_json") else dict(fig)
    layout = dict(spec.get("layout", {}))
    template = layout.pop("template", None)
    data = [_thin(dict(t), layout) for t in spec.get("data", [])]
    body = safe_json({"data": data, "layout": layout})
    return _template_json(template), body[:-1]


_HOUSE_JSON: list = []   # the house template's JSON, written once per process


def _template_json(template):
    """The JSON of a figure's template; the house template (the one object every figure of
    :mod:`ctkinetics.plots` refers to) serialised once, not once per figure."""
    if template is None:
        return None
    from ctkinetics.plots.spec import house_template

    if template is not house_template():
        return safe_json(template)
    if not _HOUSE_JSON:
        _HOUSE_JSON.append(safe_json(template))
    return _HOUSE_JSON[0]


_MAKERS: list = []  # the figures a forked worker builds (inherited, never pickled)


def _build(i: int) -> tuple:
    return _serialised(_MAKERS[i]())


def workers() -> int:
    """Processes for building figures: the CPUs this process may use (at most 4)."""
    import os

    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(4, n))


#: Fewer pending figures than this are built in this process (a pool costs ~0.1 s).
PARALLEL_FROM = 8


def build_all(makers: list, jobs: int) -> list:
    """``[_serialised(m()) for m in makers]``, in forked worker processes when worth it."""
    global _MAKERS
    if jobs <= 1 or len(makers) < PARALLEL_FROM:
        return [_serialised(m()) for m in makers]
    import multiprocessing

    _MAKERS = list(makers)
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            # small chunks first-come: figures differ in cost by 100x (a page of 24 panels vs
            # one profile); the result order is the submission order
            return pool.map(_build, range(len(makers)), chunksize=1 if len(makers) < 200 else 4)
    finally:
        _MAKERS = []


class Figures:
    """Numbers the figures of one page and writes each as a div and its JSON.

    ``fig(figure_or_maker, name)`` returns the figure's HTML. With ``deferred=True`` a maker
    (a function of no argument returning the figure) is only registered and a placeholder
    returned; :meth:`resolve` then builds every registered figure at once (in worker
    processes, see :func:`build_all`) and puts each in its place. Ids and the shared
    templates are numbered in page order, so the bytes do not depend on the mode.
    """

    def __init__(self, jobs: int | None = None, deferred: bool = False):
        import secrets

        self.count = 0
        self.names = []
        self._templates = {}
        self._groups = 0
        self.jobs = jobs if jobs is not None else workers()
        self.deferred = deferred
        self._pending = {}        # figure number -> (maker, name, css class)
        self._token = f"\x00ctk-figure-{secrets.token_hex(8)}-"   # not forgeable by data

    def _html(self, k: int, serialised: tuple, name: str, css_class: str = "") -> str:
        template, body = serialised
        fid = f"ctk-fig-{k}"
        tid = None if template is None else self._templates.setdefault(template, len(self._templates))
        body += f',"t":{"null" if tid is None else tid}}}'
        return (f"<div class='ctk-figure {css_class}' id='{fid}' data-figure='{esc(name)}'></div>"
                f"<script type='application/json' id='{fid}-spec'>{body}</script>")

    def __call__(self, fig, name: str, *, css_class: str = "") -> str:
        self.count += 1
        self.names.append(name)
        built = hasattr(fig, "to_plotly_json") or isinstance(fig, dict)
        if self.deferred:
            self._pending[self.count] = ((lambda f=fig: f) if built else fig, name, css_class)
            return f"{self._token}{self.count}\x00"
        return self._html(self.count, _serialised(fig if built else fig()), name, css_class)

    def many(self, makers: list, names: list) -> list:
        """The HTML of many figures (``makers``: functions of no argument returning a figure);
        built in worker processes when there are enough of them (same bytes either way)."""
        if self.deferred:
            return [self(m, n) for m, n in zip(makers, names)]
        first = self.count + 1
        self.count += len(makers)
        self.names += list(names)
        done = build_all(makers, self.jobs)
        return [self._html(first + i, d, n) for i, (d, n) in enumerate(zip(done, names))]

    def resolve(self, texts, progress=None):
        """Build the registered figures and yield ``texts`` with every placeholder replaced."""
        import re

        order = sorted(self._pending)
        if progress:
            progress(f"building {len(order)} figures"
                     + (f" in {self.jobs} processes" if self.jobs > 1 and len(order) >= PARALLEL_FROM else ""))
        done = dict(zip(order, build_all([self._pending[k][0] for k in order], self.jobs)))
        pattern = re.compile(re.escape(self._token) + r"(\d+)\x00")
        for text in texts:
            pos = 0
            for m in pattern.finditer(text):
                yield text[pos:m.start()]
                k = int(m.group(1))
                _, name, css = self._pending[k]
                yield self._html(k, done[k], name, css)
                pos = m.end()
            yield text[pos:]
        self._pending = {}

    def paged(self, cells: list, labels: list, what: str, per_page: int | None = None) -> str:
        """Figure cells (HTML from :meth:`__call__`) in a grid, paged beyond ``per_page``:
        a selector names each page by its first and last label; only the page shown is drawn."""
        per_page = per_page or PER_PAGE
        if len(cells) <= per_page:
            return "<div class='grid'>" + "".join(cells) + "</div>"
        self._groups += 1
        g = f"g{self._groups}"
        opts, pages = [], []
        for k, i in enumerate(range(0, len(cells), per_page)):
            part = labels[i:i + per_page]
            text = part[0] if len(part) == 1 else f"{part[0]} – {part[-1]}"
            opts.append(f"<option value='{k}'>{esc(text)}</option>")
            pages.append(f"<div class='ctk-page grid' data-group='{g}'{'' if k == 0 else ' hidden'}>"
                         + "".join(cells[i:i + per_page]) + "</div>")
        return (f"<p class='note'>{esc(what)} in {len(opts)} pages (one drawn at a time): "
                f"<select class='ctk-pager' data-group='{g}'>{''.join(opts)}</select></p>"
                + "".join(pages))

    def renderer(self) -> str:
        """The end of the page: the shared templates and the script that draws the figures."""
        templates = "[" + ",".join(sorted(self._templates, key=self._templates.get)) + "]"
        return (f"<script type='application/json' id='ctk-templates'>{templates}</script>"
                f"<script>{_RENDER % CONFIG}</script>")
