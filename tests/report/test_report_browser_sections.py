"""The full report (every optional section on) measured in headless Chromium, section by section.

The sample cohort's report with a population fit (FOCE-I with its VPC) and a virtual-trial run
(the seed spec, 12 trials) — every section the report can have. In Chromium (Debian's
``/usr/bin/chromium``; skipped where it is missing):

* every figure's box is at least 300 px high, and its legend's bounding box lies inside the
  figure's (a legend cut by the figure's edge is a legend the committee cannot read);
* figure titles do not overlap the plot area's legend;
* each section is saved as a PNG under ``tests/_output/report_sections/`` (git-ignored) for
  people to look at.

Without Chromium, the same report's CSV files are still checked: every numeric column's unit
can be read from the CSV itself (name suffix or unit column) or is declared dimensionless in
``data_dictionary.csv``, and the dictionary covers every column and every code of the tables.

The DOM is measured by a script added to a copy of the page: after plotly has drawn, it writes
a JSON list of boxes into ``<pre id='ctk-measure'>`` and Chromium's ``--dump-dom`` returns it.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from report_helpers import OUTPUT, ROOT, SAMPLE
from test_figures_spec import Spy, plotly_changes
from test_report_browser import CATCH, CHROMIUM, FLAGS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning",
                                        "ignore::DeprecationWarning")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not "
                                    "installed at /usr/bin/chromium (apt-get install chromium)")

SHOTS = OUTPUT / "report_sections"
WIDTH = 1400
MIN_HEIGHT = 300

MEASURE = """<script>window.addEventListener('load',function(){setTimeout(function(){
function box(e){var r=e.getBoundingClientRect();return {x:r.left+window.scrollX,y:r.top+window.scrollY,w:r.width,h:r.height};}
var out={figures:[],sections:[]};
document.querySelectorAll('.ctk-figure').forEach(function(d){
  var f={name:d.getAttribute('data-figure'),box:box(d),legend:null,title:null,plot:null};
  var lg=d.querySelector('g.legend'); if(lg){f.legend=box(lg);}
  var t=d.querySelector('.infolayer .gtitle'); if(t){f.title=box(t);}
  var bg=d.querySelector('.bglayer rect.bg, .draglayer .nsewdrag'); if(bg){f.plot=box(bg);}
  out.figures.push(f);});
document.querySelectorAll('main > section').forEach(function(s,i){
  var h=s.querySelector('h2');out.sections.push({i:i,id:h?h.id:'',box:box(s)});});
var p=document.createElement('pre');p.id='ctk-measure';p.textContent=JSON.stringify(out);
document.body.appendChild(p);},0);});</script>"""


def _run(args, user_dir, timeout=300):
    return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={user_dir}", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    """ctk trial-sim on the seed spec, then ctk report with every optional section."""
    from ctkinetics.cli.main import main

    base = tmp_path_factory.mktemp("full")
    ts = base / "ts"
    assert main(["trial-sim", str(ROOT / "data" / "sample" / "trial_sim_seed.toml"), "--trials", "12",
                 "--seed", "1", "--out", str(ts), "--workers", "0", "--quiet"]) == 0
    cfg = base / "review.toml"
    cfg.write_text('[report]\nmodel = "stein2019"\n[fit]\nstarts = 1\n[band]\ndraws = 20\n'
                   '[population]\nmethod = "focei"\nrandom_effects = ["Cmax"]\n'
                   'vpc_replicates = 20\n'
                   f'[trial_sim]\nresults = "{ts.as_posix()}"\n'
                   # section 3c (issue 16) with small counts: its figures and CSVs checked too
                   '[uncertainty]\nexposure_ci = true\ndraws = 20\nbootstrap = 2\nsir = true\n'
                   'sir_samples = [40]\nsir_resamples = [10]\nnpde = 100\npcvpc = 100\n'
                   'workers = 0\n', encoding="utf-8")
    out = base / "report"
    # the figures the report serialises are recorded (built in this process for that), with
    # any plotly graph object built meanwhile (test_no_graph_object_in_the_full_report)
    from plotly.basedatatypes import BaseFigure

    with pytest.MonkeyPatch.context() as mp:
        spy = Spy(mp)
        built, init = [], BaseFigure.__init__
        mp.setattr(BaseFigure, "__init__",
                   lambda self, *a, **k: (built.append(type(self).__name__), init(self, *a, **k))[1])
        assert main(["report", str(SAMPLE), "--out", str(out), "--config", str(cfg),
                     "--quiet"]) == 0
    FIGURES.update(figures=spy.figures, graph_objects=built)
    return out


#: What the full report's fixture recorded: the figures serialised, graph objects built.
FIGURES: dict = {}


@pytest.fixture(scope="module")
def measured(full_report, tmp_path_factory):
    html = (full_report / "report.html").read_text(encoding="utf-8")
    probe = full_report / "probe.html"
    probe.write_text(html.replace("<head>", "<head>" + CATCH + MEASURE, 1), encoding="utf-8")
    res = _run([f"--window-size={WIDTH},1000", "--dump-dom", probe.as_uri()],
               tmp_path_factory.mktemp("ud"))
    m = re.search(r'<pre id="ctk-measure">(.*?)</pre>', res.stdout, re.S)
    assert m, f"page did not finish loading: {res.stderr[-2000:]}"
    errors = re.search(r'<pre id="ctk-js-errors">(.*?)</pre>', res.stdout, re.S)
    assert errors is None or errors.group(1).strip() == "", errors.group(1)
    return json.loads(m.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
                      .replace("&quot;", '"'))


@needs_chromium
def test_every_optional_section_is_in_the_report(measured):
    ids = [s["id"] for s in measured["sections"]]
    for wanted in ("data", "expansion", "fits", "population", "uncertainty", "bcells", "safety",
                   "trials", "provenance", "dictionary"):
        assert wanted in ids, ids
    names = {f["name"] for f in measured["figures"]}
    for wanted in ("vpc:transgene", "trial_sim:selection", "trial_sim:duration",
                   "trial_sim:expansion", "cart_vs_bcells", "swimmer", "boin_chart",
                   "exposure_ci:transgene:Cmax", "uncertainty:intervals", "uncertainty:sir_dofv",
                   "uncertainty:npde", "pcvpc:transgene"):
        assert wanted in names, sorted(names)


@needs_chromium
def test_every_figure_is_at_least_300_px_high(measured):
    low = [(f["name"], round(f["box"]["h"])) for f in measured["figures"] if f["box"]["h"] < MIN_HEIGHT]
    assert not low, f"figures lower than {MIN_HEIGHT} px: {low}"


@needs_chromium
def _overlap(a, b) -> tuple:
    """(x, y) extents by which boxes a and b overlap (negative: apart)."""
    return (min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"]),
            min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"]))


def test_no_legend_is_clipped(measured):
    """The legend's box lies inside the figure's box (1 px of rounding allowed)."""
    clipped = []
    for f in measured["figures"]:
        lg, b = f["legend"], f["box"]
        if lg is None or lg["w"] == 0:
            continue
        inside = (lg["x"] >= b["x"] - 1 and lg["y"] >= b["y"] - 1
                  and lg["x"] + lg["w"] <= b["x"] + b["w"] + 1 and lg["y"] + lg["h"] <= b["y"] + b["h"] + 1)
        if not inside:
            clipped.append((f["name"], lg, b))
    assert not clipped, f"legends outside their figure: {clipped}"


@needs_chromium
def test_titles_do_not_overlap_the_legend(measured):
    """A title and a legend drawn on top of each other read as neither (the 200 px VPC)."""
    hit = []
    for f in measured["figures"]:
        t, lg = f["title"], f["legend"]
        if t is None or lg is None or lg["w"] == 0:
            continue
        overlap_x, overlap_y = _overlap(t, lg)
        if overlap_x > 2 and overlap_y > 2:
            hit.append(f["name"])
    assert not hit, f"title over legend: {hit}"


def _only_section(html: str, k: int) -> str:
    """The page with only its k-th <section> (1-based) kept: the others and their figures'
    scripts are removed, so each screenshot renders one section's figures only."""
    head, rest = html.split("<main>", 1)
    main, tail = rest.rsplit("</main>", 1)
    parts = re.split(r"(?=<section[ >])", main)
    top, sections = parts[0], parts[1:]
    return head + "<main>" + top + sections[k - 1] + "</main>" + tail


@needs_chromium
def test_screenshots_of_every_section(full_report, measured, tmp_path):
    """One PNG per section (the top boxes and that section), for people to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    html = (full_report / "report.html").read_text(encoding="utf-8")
    top = measured["sections"][0]["box"]["y"]  # header, navigation and the summary boxes
    procs = []
    for s in measured["sections"]:
        k = s["i"] + 1
        page = tmp_path / f"section_{k}.html"
        page.write_text(_only_section(html, k), encoding="utf-8")
        height = int(min(top + s["box"]["h"] + 40, 16000))
        shot = SHOTS / f"{k:02d}_{s['id'] or 'summary'}.png"
        procs.append((shot, subprocess.Popen(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / f'ud{k}'}",
             f"--window-size={WIDTH},{height}", f"--screenshot={shot}", page.as_uri()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        if len(procs) % 2 == 0:  # two at a time: the machine has 2 cores
            for _, p in procs[-2:]:
                p.wait(timeout=300)
    for shot, p in procs:
        p.wait(timeout=300)
        assert shot.exists() and shot.stat().st_size > 10_000, shot
    assert len(procs) == len(measured["sections"]) >= 10


# --------------------------------------------------------------------------------------
def test_no_graph_object_in_the_full_report(full_report):
    """Every optional section's figures too are written from their plain spec."""
    assert FIGURES["graph_objects"] == []
    assert len(FIGURES["figures"]) >= 30
    assert all(isinstance(f, dict) for f in FIGURES["figures"])


def test_plotly_takes_every_figure_of_the_full_report_unchanged(full_report):
    """Second method for the optional sections' figures (population VPC, uncertainty, virtual
    trials; the default ones in test_figures_spec.py): plotly's validation accepts each spec
    and changes nothing in it."""
    html = (full_report / "report.html").read_text(encoding="utf-8")
    names = re.findall(r"data-figure='([^']*)'", html)      # page order = the order built
    assert len(names) == len(FIGURES["figures"])
    changed = {n: plotly_changes(f)[:5] for n, f in zip(names, FIGURES["figures"])}
    changed = {n: d for n, d in changed.items() if d}
    assert not changed, changed
    kinds = {n.split(":")[0] for n in names}
    assert {"vpc", "pcvpc", "exposure_ci", "uncertainty", "trial_sim"} <= kinds, kinds


def _csvs(folder: Path) -> dict:
    return {p.name: pd.read_csv(p, keep_default_na=True, low_memory=False)
            for p in sorted(folder.glob("*.csv"))}


def test_every_numeric_csv_column_states_its_unit(full_report):
    from ctkinetics.report.dictionary import unit_is_stated

    csvs = _csvs(full_report)
    assert {"nca_summary.csv", "bcell_aplasia.csv", "fit_derived.csv", "trial_sim_summary.csv",
            "population_theta.csv", "data_dictionary.csv"} <= set(csvs)
    missing = []
    for name, df in csvs.items():
        for col in df.columns:
            if not pd.api.types.is_numeric_dtype(df[col]) or df[col].isna().all():
                continue
            if pd.api.types.is_bool_dtype(df[col]):
                continue
            ok, why = unit_is_stated(name, str(col), df)
            if not ok:
                missing.append(f"{name}:{col} ({why})")
    assert not missing, "numeric columns without a unit: " + "; ".join(missing)


def test_unit_columns_are_filled_where_values_are(full_report):
    """A unit column exists and is non-empty on every row that has a value needing it (the
    B-cell aplasia table in the B-cell unit; NCA summary rows in their parameter's unit)."""
    csvs = _csvs(full_report)
    ap = csvs["bcell_aplasia.csv"]
    assert set(ap["unit"]) == {"cells/uL"} and set(ap["time_unit"]) == {"day"}
    s = csvs["nca_summary.csv"]
    got = dict(zip(zip(s["analyte"], s["parameter"]), s["unit"]))
    assert got[("transgene", "CMAX")] == "copies/ug" and got[("car_flow", "TMAX")] == "day"
    assert got[("transgene", "AUCLST")] == "copies/ug*day"          # concentration*time
    ts = csvs["trial_sim_summary.csv"]
    assert set(ts["dose_unit"]) == {"cells"} and set(ts["unit"]) == {"copies/ug"}
    d = csvs["fit_derived.csv"]
    assert (d["unit"].fillna("") != "").all(), d[d["unit"].fillna("") == ""]


def test_data_dictionary_covers_every_column_and_code(full_report):
    """Every column header of every CSV, and every code in the code columns (parameter,
    quantity, flags), has a dictionary row with a definition."""
    from ctkinetics.estimation.flags import flag_id, split

    csvs = _csvs(full_report)
    dd = csvs["data_dictionary.csv"]
    codes = set(dd["code"].astype(str))
    assert dd["definition"].fillna("").str.len().gt(0).all(), dd[dd["definition"].isna()]
    needed = set()
    for name, df in csvs.items():
        needed |= {str(c) for c in df.columns}
        for col in ("parameter", "quantity"):
            if col in df.columns and name != "data_dictionary.csv":
                needed |= {c.strip() for v in df[col].dropna().astype(str) for c in v.split(",")}
        if "flags" in df.columns:
            for cell in df["flags"]:
                needed |= {flag_id(f) for f in split(cell)}
    wide = {c for c in csvs["nca_wide.csv"].columns if "[" in c}  # AUCINT_LAST[0-28]: its code
    needed = {c.split("[")[0] if c in wide else c for c in needed}
    population = {p for p in needed if p.startswith(("omega2_", "sigma_"))}
    assert not (needed - codes - population), sorted(needed - codes - population)
    # the codes the issue names, with their CDISC labels and units
    row = dd.set_index("code")
    for code in ("CMAX", "TMAX", "TLST", "CLST", "AUCLST", "AUCALL", "AUCINT_LAST", "AUCINT_ALL",
                 "AUCINT_INF", "AUCIFO", "AUCPEO", "LAMZ", "LAMZHL", "R2ADJ"):
        assert code in row.index, code
    assert row.at["LAMZHL", "label"] == "Half-Life Lambda z" and row.at["LAMZHL", "unit"] == "day"
    assert row.at["AUCPEO", "unit"] == "%" and row.at["R2ADJ", "unit"] == "1"
    assert row.at["LAMZ", "unit"] == "1/day"
    assert "at_sample_time" in row.index and "escalate" in row.index and "foldx" in row.index


def test_the_sir_note_states_the_schedule_run_and_how_the_limits_are_made(full_report):
    """The configured schedule (40 proposals, 10 resamples), not PsN's default, is the one
    named; the SIR limits shown are the weighted proposals' quantiles, PsN's beside in the
    CSV (issue 16)."""
    html = (full_report / "report.html").read_text(encoding="utf-8")
    assert "SIR (Dosne 2016; proposals/resamples 40/10)" in html
    assert "PsN&#x27;s schedule" not in html and "PsN's schedule" not in html
    t = pd.read_csv(full_report / "population_sir_intervals.csv")
    assert {"sir_low", "sir_high", "resample_low", "resample_high"} <= set(t.columns)
    assert (t["sir_low"] <= t["sir_high"]).all() and (t["resample_low"] <= t["resample_high"]).all()
