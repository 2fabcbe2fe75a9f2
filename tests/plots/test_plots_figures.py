"""The figures draw what the results hold, where a reader expects it.

Each check compares a figure's data with the input (BLQ at the LLOQ, a curve as given) or with
a number worked out by hand here (geometric means, BOIN boundaries from Liu & Yuan 2015, a
λz line through a mono-exponential profile).
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ctkinetics import plots
from ctkinetics.data import load_study
from ctkinetics.escalation import boundaries
from ctkinetics.nca import nca

MINI = Path(__file__).resolve().parents[1] / "data" / "mini_study"


@pytest.fixture(scope="module")
def mini():
    with pytest.warns(Warning):  # the mini study lacks a pre-infusion flow sample
        return load_study(MINI)


def _traces(fig, name=None):
    return [t for t in fig.data if name is None or t.name == name]


def test_individual_profile_blq_open_at_lloq_and_curve_as_given(mini):
    curve = pd.DataFrame({"time": [0.0, 10.0, 30.0], "pred": [100.0, 10000.0, 500.0],
                          "lower": [50.0, 5000.0, 250.0], "upper": [200.0, 20000.0, 1000.0]})
    fig = plots.individual_profile(mini, "S01", "transgene", curve, curve_label="fit")
    blq = _traces(fig, "BLQ (at LLOQ)")[0]
    # S01: '<20' on day 28 -> drawn at 20 (its own LLOQ); the empty day-56 value is a missing
    # sample, not BLQ, and the day -1 sample is pre-infusion: neither is drawn
    assert list(blq.x) == [28.0] and list(blq.y) == [20.0]
    assert blq.marker.symbol == "circle-open"
    obs = _traces(fig, "observed")[0]
    assert list(obs.x) == [1.0, 7.0, 14.0] and list(obs.y) == [150.0, 12000.0, 3000.0]
    fitted = _traces(fig, "fit")[0]
    assert list(fitted.y) == [100.0, 10000.0, 500.0]
    band = _traces(fig, "95 % band (parameter uncertainty)")[0]
    assert max(band.y) == 20000.0 and min(band.y) == 50.0
    assert fig.layout.yaxis.type == "log"
    lloq_lines = [s for s in fig.layout.shapes if s.y0 == s.y1 == 20.0]
    assert lloq_lines, "an LLOQ line at 20 copies/ug"


def test_flagged_and_failed_fits_are_named_in_the_title(mini):
    flagged = plots.individual_profile(mini, "S01", "transgene", None, fit_flags=("rse>50%",))
    assert "fit flagged: rse&gt;50%" in flagged.layout.title.text
    failed = plots.individual_profile(mini, "S01", "transgene", pd.DataFrame(
        {"time": [1.0], "pred": [1.0]}), fit_failed=True)
    assert "fit failed" in failed.layout.title.text
    assert not _traces(failed, "fit"), "a failed fit draws no curve"


def test_labels_from_input_files_are_escaped(mini):
    ds = SimpleNamespace(observations=mini.observations.assign(
        subject=mini.observations["subject"].replace("S01", "<b>x</b>")),
        subjects=mini.subjects.assign(subject=mini.subjects["subject"].replace("S01", "<b>x</b>")),
        study=mini.study)
    fig = plots.individual_profile(ds, "<b>x</b>", "transgene")
    assert fig.layout.title.text.startswith("&lt;b&gt;x&lt;/b&gt;")


def test_spaghetti_panels_by_dose_level_and_mean_curve_as_given(mini):
    mean = pd.DataFrame({"dose_level": ["1", "1"], "time": [1.0, 7.0], "geo_mean": [150.0, 12000.0]})
    fig = plots.spaghetti(mini, "transgene", mean)
    titles = [a.text for a in fig.layout.annotations if a.text.startswith("Dose level")]
    assert len(titles) == 2 and "n = 1" in titles[0]
    # doses of the mini study (3.0e8, 4.5e8) as a committee writes them, never 3e+08
    assert "(3.0×10⁸ cells)" in titles[0] and "(4.5×10⁸ cells)" in titles[1]
    gm = _traces(fig, "geometric mean")
    assert len(gm) == 1 and list(gm[0].y) == [150.0, 12000.0]


def _obs(profiles):
    rows = []
    for subj, level, dose, times, values in profiles:
        rows += [{"subject": subj, "dose_level": level, "dose": dose, "time": t, "value": v,
                  "analyte": "transgene", "unit": "copies/ug"} for t, v in zip(times, values)]
    return pd.DataFrame(rows)


def test_exposure_by_dose_points_and_geometric_mean_by_hand():
    t = [0.0, 7.0, 14.0, 28.0]
    obs = _obs([("A", "1", 1e8, t, [0, 100, 50, 10]), ("B", "1", 1e8, t, [0, 400, 50, 10]),
                ("C", "2", 2e8, t, [0, 900, 50, 10])])
    res = nca(obs)
    fig = plots.exposure_by_dose(res, "transgene", metrics=(("CMAX", 0.0, math.inf),))
    boxes = [d for d in fig.data if d.type == "box"]
    assert sorted(boxes[0].y) == [100.0, 400.0] and list(boxes[1].y) == [900.0]
    diamonds = [d for d in fig.data if d.type == "scatter"]
    # geometric mean of 100 and 400 is 200; of 900 alone, 900
    assert diamonds[0].y[0] == pytest.approx(200.0) and diamonds[1].y[0] == pytest.approx(900.0)


def _one_profile_nca(t, c):
    """NCA of one participant's profile (with CLSTP, for the λz line) and a dataset stand-in."""
    obs = _obs([("A", "1", 1e8, t, c)])
    ds = SimpleNamespace(observations=obs.assign(blq=False, pre_infusion=False, lloq=1.0),
                         subjects=obs[["subject", "dose_level", "dose"]].drop_duplicates(),
                         study=SimpleNamespace(analytes={}, dose_levels={"1": 1e8}))
    res = nca(obs, intervals=[{"start": 0, "end": np.inf,
                               "parameters": "CMAX,TMAX,TLST,LAMZ,LAMZLL,LAMZUL,LAMZNPT,R2ADJ,LAMZHL,CLSTP"}])
    return res, ds


def test_lambda_z_line_passes_through_a_monoexponential_tail():
    # C = 1000·exp(-0.1·t) after the peak at day 7: every λz point lies on the line
    t = np.array([0.0, 7.0, 14.0, 21.0, 28.0, 42.0])
    c = np.where(t >= 7, 1000.0 * np.exp(-0.1 * t), 0.0)
    c[0] = 0.0
    res, ds = _one_profile_nca(t, c)
    fig = plots.lambda_z(res, ds, "transgene")
    line = [d for d in fig.data if d.mode == "lines"][0]
    for x, y in zip(line.x, line.y):
        assert y == pytest.approx(1000.0 * math.exp(-0.1 * x), rel=1e-9)
    assert "t½ 6.93 d" in fig.layout.annotations[0].text  # ln 2 / 0.1


def test_boin_chart_regions_match_the_published_table():
    # Liu & Yuan 2015, target 0.3, cohort 3: (n, escalate if <=, de-escalate if >=, eliminate if >=)
    published = {3: (0, 2, 3), 6: (1, 3, 4), 9: (2, 4, 5), 12: (2, 5, 7)}
    fig = plots.boin_chart(boundaries(0.3, cohort_size=3, n_cohorts=4, every_n=True))
    bars = {d.name: d for d in fig.data if d.type == "bar"}
    for n, (e, d, el) in published.items():
        i = list(bars["escalate"].x).index(n)
        assert bars["escalate"].base[i] + bars["escalate"].y[i] == pytest.approx(e + 0.5)
        assert bars["de-escalate"].base[i] == pytest.approx(d - 0.5)
        assert bars["eliminate dose"].base[i] == pytest.approx(el - 0.5)


def test_swimmer_draws_windows_dlts_and_stagger():
    parts = pd.DataFrame({
        "subject": ["P1", "P2"], "level": ["1", "1"], "phase": ["escalation", "escalation"],
        "infusion_day": [0.0, 20.0], "status": ["dlt", "pending"], "followup_days": [5.0, 10.0],
        "window_end_day": [28.0, 48.0], "dlt_day": [5.0, np.nan]})
    levels = pd.DataFrame({"level": ["1", "2"], "sentinel_day": [0.0, np.nan],
                           "stagger_ok_from_day": [14.0, np.nan]})
    dec = SimpleNamespace(participants=parts, levels=levels, as_of_day=30.0,
                          earliest_next_infusion_day=30.0, next_level="1")
    fig = plots.swimmer(dec)
    windows = [d for d in fig.data if d.mode == "lines" and d.line.width == 12]
    spans = sorted(s for d in windows for s in _segments(d.x))
    # P1's window 0-28 (complete); P2's 20-30 solid then 30-48 pale (after the decision day)
    assert spans == [(0.0, 28.0), (20.0, 30.0), (30.0, 48.0)]
    dlt = [d for d in fig.data if d.name == "DLT onset"][0]
    assert list(dlt.x) == [5.0]
    stagger = [d for d in fig.data if d.name == "stagger wait (sentinel)"][0]
    assert _segments(stagger.x) == [(0.0, 14.0)]


def _segments(x):
    """The (start, end) pairs of a line trace whose segments are separated by None gaps."""
    out, run = [], []
    for v in list(x) + [None]:
        if v is None:
            if run:
                out.append((run[0], run[-1]))
            run = []
        else:
            run.append(v)
    return out


def test_gof_shows_blq_at_lloq_and_colours_flagged_fits():
    pred = pd.DataFrame({
        "subject": ["A", "A", "B"], "analyte": "transgene", "time": [1.0, 2.0, 1.0],
        "observed": [10.0, np.nan, 30.0], "blq": [False, True, False], "lloq": [5.0, 5.0, 5.0],
        "ipred": [12.0, 3.0, 25.0], "iwres": [-0.2, np.nan, 0.3], "p_blq": np.nan,
        "status": ["quantified", "censored", "quantified"], "reason": ""})
    fits = (SimpleNamespace(subject="A", success=True, flags=()),
            SimpleNamespace(subject="B", success=True, flags=("rse>50%",)))
    fr = SimpleNamespace(model="m", analytes=("transgene",), fits=fits, blq_method="M3",
                         error_model="proportional", predictions_frame=lambda: pred)
    fig = plots.goodness_of_fit(fr)
    good = [d for d in fig.data if d.name == "fit without flags"][0]
    bad = [d for d in fig.data if d.name == "fit flagged or failed"][0]
    assert list(good.x) == [12.0] and list(bad.x) == [25.0]
    blq = [d for d in fig.data if (d.name or "").startswith("BLQ at LLOQ")][0]
    assert list(blq.x) == [3.0] and list(blq.y) == [5.0]


def test_lambda_z_panel_without_lambda_z_gives_short_reasons_on_their_own_line():
    """A long exclusion reason ran into the next panel's title: the title keeps the rule
    codes only ('R2ADJ < 0.9; ...') on a second line."""
    t = np.array([0.0, 7.0, 14.0, 21.0, 28.0, 42.0])
    c = np.array([0.0, 1000.0, 900.0, 950.0, 880.0, 870.0])  # a flat tail: poor regression
    res, ds = _one_profile_nca(t, c)
    reason = res.results.query("parameter == 'LAMZ'")["exclude"].iloc[0]
    title = plots.lambda_z(res, ds, "transgene").layout.annotations[0].text
    assert "R2ADJ < 0.9" in reason  # the flat tail fails PKNCA's adjusted-R² rule
    assert title.startswith("A: no λz<br>") and "(" not in title.split("<br>")[1]
    codes = "; ".join(x.split(" (")[0].strip() for x in reason.split(";"))
    assert title.split("<br>")[1] == html.escape(codes)
