"""HTML building blocks of the report: escaping, tables, the style sheet, plotly.js.

Safety: every string that comes from input files goes through :func:`esc` (text and
attributes); figures and their JSON are :mod:`ctkinetics.report.figures`' (which writes
``<``, ``>`` and ``&`` inside JSON as ``\\u003c`` ...), so that nothing from the data can
close a ``<script>`` or open a tag.

Determinism: numbers are formatted with fixed rules — the same review gives the same bytes
(apart from the timestamp).
"""
from __future__ import annotations

import html

import pandas as pd

from ctkinetics.formatting import cell
from ctkinetics.report.dictionary import column_format

CSS = """
:root{--fg:#1d1d1f;--muted:#666;--line:#ddd;--flag:#fff1e0;--fail:#fde2e2;--ok:#e8f5ee}
body{font-family:Helvetica,Arial,sans-serif;color:var(--fg);margin:0;background:#fafafa}
header{background:#12355b;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px}
header .sub{opacity:.85;font-size:13px;margin-top:4px}
nav{background:#fff;border-bottom:1px solid var(--line);padding:8px 32px;font-size:13px;
position:sticky;top:0;z-index:10}
nav a{margin-right:16px;color:#12355b;text-decoration:none}
main{padding:8px 32px 40px;max-width:1500px}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:6px 20px 16px;
margin:18px 0}
h2{font-size:19px;border-bottom:2px solid #12355b;padding-bottom:4px}
h3{font-size:15px;margin-top:22px}
p.note,.note{color:var(--muted);font-size:12.5px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0 12px}
th,td{border:1px solid var(--line);padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f0f3f7;text-align:center}
td.t,th.t{text-align:left}
tr.flag td{background:var(--flag)}
tr.fail td{background:var(--fail)}
.box{border-radius:6px;padding:12px 16px;margin:14px 0;font-size:14px}
.decision{background:#eef4fb;border:2px solid #12355b}
.decision .big{font-size:20px;font-weight:bold;text-transform:uppercase}
.warn{background:var(--flag);border:2px solid #D55E00}
.bad{background:var(--fail);border:2px solid #C00000}
.good{background:var(--ok);border:1px solid #009E73}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:8px}
.ctk-figure{width:100%;min-height:200px}
details{margin:6px 0 12px}
summary{cursor:pointer;color:#12355b;font-size:13px}
code{font-size:12px;background:#f3f3f3;padding:0 3px}
"""


def esc(value) -> str:
    """Text from anywhere, escaped for HTML text and attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value, kind: str = "number") -> str:
    """A cell as text (:func:`ctkinetics.formatting.cell`: 3 significant digits, doses as
    3.0×10⁸, '' for missing). ``kind``: ``number`` | ``dose`` | ``probability``."""
    return cell(value, kind=kind)


def table(df: pd.DataFrame, columns=None, *, labels=None, row_class=None, text_columns=(),
          max_rows: int | None = None, formats=None) -> str:
    """An escaped HTML table.

    ``columns``: which columns (default all); ``labels``: header text per column;
    ``row_class(row) -> str``: CSS class of a row ('flag', 'fail' or ''); ``text_columns``:
    left-aligned columns (default: the non-numeric ones); ``formats``: column -> kind of
    :func:`fmt` (default: the kind :func:`ctkinetics.report.dictionary.column_format` gives
    the column's name, e.g. ``dose`` for ``dose``).
    """
    if df is None or len(df) == 0:
        return "<p class='note'>(none)</p>"
    columns = list(columns or df.columns)
    labels = labels or {}
    left = set(text_columns) | {c for c in columns if not pd.api.types.is_numeric_dtype(df[c])}
    kinds = {c: column_format(c) for c in columns} | dict(formats or {})
    head = "".join(f"<th class='{'t' if c in left else ''}'>{esc(labels.get(c, c))}</th>"
                   for c in columns)
    rows = []
    shown = df if max_rows is None else df.head(max_rows)
    for r in _rows(shown):
        cls = row_class(r) if row_class else ""
        cells = "".join(f"<td class='{'t' if c in left else ''}'>{esc(fmt(r[c], kinds[c]))}</td>"
                        for c in columns)
        rows.append(f"<tr class='{cls}'>{cells}</tr>" if cls else f"<tr>{cells}</tr>")
    more = ""
    if max_rows is not None and len(df) > max_rows:
        more = f"<p class='note'>… {len(df) - max_rows} more rows in the CSV file.</p>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def _rows(df: pd.DataFrame):
    """The rows of ``df`` as ``iterrows`` gives them (the same values: one array of the frame's
    values, a common dtype or objects) but as dicts, without a Series per row (which cost
    ~0.1 ms a row: seconds for the tables of a study of thousands of participants)."""
    if not df.columns.is_unique:
        yield from (r for _, r in df.iterrows())
        return
    names = list(df.columns)
    for values in df.values:
        yield dict(zip(names, values))


def collapsible(summary: str, body: str, open_: bool = False) -> str:
    """``summary`` is trusted (built here) text."""
    return f"<details{' open' if open_ else ''}><summary>{summary}</summary>{body}</details>"


def plotly_js() -> str:
    """plotly.js from the installed plotly package (offline; no CDN)."""
    from plotly.offline import get_plotlyjs

    # a literal '</script>' inside the library would end the tag early
    return get_plotlyjs().replace("</script>", "<\\/script>")
