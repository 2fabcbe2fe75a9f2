"""The report's figures are plain JSON that plotly itself would write (no graph objects built).

The report writes each figure from ``plots.X.spec(...)`` (:mod:`ctkinetics.plots.spec`), never
building a :class:`plotly.graph_objects.Figure`, whose validation of every property was most of
a large report's time. Two checks on the sample cohort's default report:

* writing it builds no plotly graph object: ``BaseFigure.__init__`` and
  ``BasePlotlyType.__init__`` (every figure, trace and layout object of plotly) raise while the
  report is written;
* second method: each figure the report writes, given to ``go.Figure`` (plotly's own
  validation, which rejects unknown or ill-typed properties), comes back from
  ``to_plotly_json()`` unchanged: plotly accepts the spec as it is and adds, drops or coerces
  nothing. (The figures of the optional sections are checked the same way on the full report
  in ``test_report_browser_sections.py``.)
"""
from __future__ import annotations

import base64
import math

import numpy as np
import pytest

from report_helpers import SAMPLE

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


def plain(value):
    """A figure's JSON as plain Python for comparison: numpy arrays and plotly's typed arrays
    ({'dtype', 'bdata'[, 'shape']}) as lists, numpy scalars as Python numbers, tuples as lists,
    NaN as a marker (NaN != NaN)."""
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            a = np.frombuffer(base64.b64decode(value["bdata"]),
                              dtype=np.dtype(value["dtype"]).newbyteorder("<"))
            if "shape" in value:
                a = a.reshape([int(x) for x in str(value["shape"]).split(",")])
            return plain(a)
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def differences(a, b, path="") -> list:
    """Where two plain JSON values differ (path: what)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in b or k not in a:
                out.append(f"{path}/{k}: only in {'the spec' if k in a else 'plotly'}")
            else:
                out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {str(a)[:60]} != {str(b)[:60]}"]


def plotly_changes(spec: dict) -> list:
    """What plotly's validation changes in ``spec`` ([] when it takes it as it is)."""
    import plotly.graph_objects as go

    return differences(plain(spec), plain(go.Figure(spec).to_plotly_json()))


class Spy:
    """Records every figure the report serialises (``figures._serialised``'s argument)."""

    def __init__(self, monkeypatch):
        from ctkinetics.report import figures

        self.figures = []
        original = figures._serialised

        def spy(fig):
            self.figures.append(fig)
            return original(fig)

        monkeypatch.setattr(figures, "_serialised", spy)
        monkeypatch.setattr(figures, "workers", lambda: 1)   # in this process: seen by the spy


def forbid_graph_objects(monkeypatch) -> None:
    """Any plotly figure, trace or layout object built from now on raises."""
    from plotly.basedatatypes import BaseFigure, BasePlotlyType

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"a plotly graph object ({type(self).__name__}) was built")

    monkeypatch.setattr(BaseFigure, "__init__", refuse)
    monkeypatch.setattr(BasePlotlyType, "__init__", refuse)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The sample cohort's default report written with graph objects forbidden; the figures
    it serialised, by name."""
    from ctkinetics.data import load_study
    from ctkinetics.report import ReportSettings, build_review, write_report

    # the default report's sections and figures (fewer fit starts and band draws: faster)
    rv = build_review(load_study(SAMPLE), ReportSettings(fit_starts=1, band_draws=20))
    with pytest.MonkeyPatch.context() as mp:
        spy = Spy(mp)
        forbid_graph_objects(mp)
        files = write_report(rv, tmp_path_factory.mktemp("spec") / "report", root=SAMPLE)
    return dict(zip(files.figures, spy.figures))


def test_the_default_report_builds_no_plotly_graph_object(written):
    # the report was written (the fixture) while building any graph object raised
    assert len(written) >= 20, sorted(written)
    assert all(isinstance(f, dict) for f in written.values()), \
        [n for n, f in written.items() if not isinstance(f, dict)]


def test_the_forbidding_works():
    # the check above can fail: a figure built the plotly way raises under it
    from ctkinetics import plots
    from ctkinetics.data import load_study

    ds = load_study(SAMPLE)
    with pytest.MonkeyPatch.context() as mp:
        forbid_graph_objects(mp)
        plots.spaghetti.spec(ds, "transgene")
        with pytest.raises(AssertionError, match="graph object"):
            plots.spaghetti(ds, "transgene")


def test_plotly_takes_every_figure_of_the_report_unchanged(written):
    kinds = {name.split(":")[0] for name in written}
    for wanted in ("spaghetti", "exposure_by_dose", "lambda_z", "goodness_of_fit",
                   "individual_profile", "cart_vs_bcells", "swimmer", "boin_chart",
                   "exposure_vs_toxicity"):
        assert wanted in kinds, sorted(kinds)
    changed = {name: plotly_changes(f) for name, f in written.items()}
    changed = {k: v[:5] for k, v in changed.items() if v}
    assert not changed, changed


def test_the_comparison_sees_what_plotly_changes():
    # plotly's validation writes a number given as a trace name as text: the check reports it
    from ctkinetics.plots.spec import house_template

    spec = {"data": [{"type": "scatter", "x": [1, 2], "y": np.array([1.0, np.nan]), "name": 5}],
            "layout": {"height": 300, "template": house_template()}}
    assert plotly_changes(spec) == ["/data[0]/name: 5 != 5"]
    spec["data"][0]["name"] = "5"
    assert plotly_changes(spec) == []
    # a property plotly does not know is refused outright
    with pytest.raises(ValueError):
        plotly_changes({"data": [{"type": "scatter", "colour": "red"}], "layout": {}})


def test_non_finite_values_in_plain_lists_are_written_as_gaps():
    # a NaN or infinity in a plain list (not an array) is null, as plotly's own encoder writes
    # it (plotly draws null as a gap); the figure still serialises
    import json

    from plotly.utils import PlotlyJSONEncoder

    from ctkinetics.report.figures import safe_json

    spec = {"data": [{"type": "scatter", "x": [0.0, 1.0, 2.0], "y": [1.0, float("nan"), 3.0],
                      "error_y": {"array": [np.float64(np.inf), 0.5, 0.5]}}],
            "layout": {"height": 300}}
    ours = json.loads(safe_json(spec))
    assert ours == json.loads(json.dumps(spec, cls=PlotlyJSONEncoder))
    assert ours["data"][0]["y"] == [1.0, None, 3.0]
