"""The plain-JSON figure specifications (plots/spec.py) against plotly itself: the subplot
geometry of Grid is what plotly.subplots.make_subplots computes, and a Spec turns into a
figure plotly validates."""
import pytest
from plotly.subplots import make_subplots

from ctkinetics.plots.spec import Grid, Spec, house_template

CASES = [
    dict(rows=1, cols=1),
    dict(rows=2, cols=3),
    dict(rows=3, cols=2, secondary_y=True),
    dict(rows=2, cols=2, shared_xaxes=True),
    dict(rows=2, cols=2, shared_yaxes=True),
    dict(rows=3, cols=2, shared_xaxes="all", shared_yaxes="all"),
    dict(rows=3, cols=1, row_heights=[3, 1, 1], vertical_spacing=0.05),
    dict(rows=2, cols=4, horizontal_spacing=0.03, titles=True),
]


def _axes(layout: dict) -> dict:
    keep = ("domain", "anchor", "matches", "overlaying", "side", "showticklabels")
    return {k: {p: v[p] for p in keep if p in v} for k, v in layout.items()
            if k.startswith(("xaxis", "yaxis"))}


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_grid_geometry_is_make_subplots(case):
    opts = dict(case)
    rows, cols, titles = opts.pop("rows"), opts.pop("cols"), opts.pop("titles", False)
    g = Grid(rows, cols, titles=titles, **opts)
    kw = {k: v for k, v in opts.items() if k != "secondary_y"}
    if opts.get("secondary_y"):
        kw["specs"] = [[{"secondary_y": True}] * cols] * rows
    names = [f"t{i}" for i in range(rows * cols)] if titles else None
    ref = make_subplots(rows=rows, cols=cols, subplot_titles=names, **kw)
    want = _axes(ref.layout.to_plotly_json())
    got = _axes(g.layout)
    assert set(got) == set(want)
    for name in want:
        for prop, value in want[name].items():
            if prop == "domain":
                assert got[name][prop] == pytest.approx(list(value), abs=1e-12), (name, prop)
            else:
                assert got[name].get(prop) == value, (name, prop)
    if titles:
        mine = g.titles(names)
        theirs = ref.layout.to_plotly_json()["annotations"]
        assert [(a["text"], a["x"], a["y"]) for a in mine] == \
            [(a["text"], pytest.approx(a["x"]), pytest.approx(a["y"])) for a in theirs]


def test_spec_is_a_valid_plotly_figure_with_the_house_template():
    s = Spec("a title", height=300, grid=Grid(1, 2))
    s.add({"x": [1, 2], "y": [3, 4], "mode": "lines"}, row=1, col=2)
    s.axes("y", {"type": "log"}, col=2)
    s.hline(2.0, {"dash": "dot"})
    fig = s.to_figure()  # plotly validates every property here
    assert fig.data[0].xaxis == "x2" and fig.layout.yaxis2.type == "log"
    assert fig.layout.height == 300 and fig.layout.title.text == "a title"
    assert s.to_dict()["layout"]["template"] is house_template()
    # the hline is drawn only across the subplot that has data, as plotly's add_hline does
    assert [sh["xref"] for sh in s.layout["shapes"]] == ["x2 domain"]
