"""The report's optional parts: a population fit (issue 8) and virtual trials (issue 9).

Numbers are checked against the result objects and files they come from (θ in the page and in
population_theta.csv against the PopulationResult; Ω's CV % recomputed by hand from ω²; the
virtual-trial table against the run's own summary.csv; SHA-256 recomputed with hashlib), and
the trial-sim loader against the in-memory result of the same seeded run.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from report_helpers import MINI, SAMPLE, run_cli, sample_report

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

EVIL_RULE = "<img src=x onerror=alert(1)>"
EVIL_NAME = "tiny </script><script>alert('spec')</script>"

TRIAL_SPEC = f'''
name = "{EVIL_NAME}"
[design]
dose_levels = ["1", "2"]
doses = [3.0e8, 4.5e8]
target = 0.30
cohort_size = 3
max_participants = 6
dlt_window_days = 28
stagger_days = 14
tite = true
start_level = 1
[design.accrual]
per_month = 1.5
[design.manufacturing]
distribution = "lognormal"
median_days = 7
sd_log = 0.3
[kinetics]
model = "stein2019"
observable = "qpcr"
omega2 = "model"
grid_step_days = 0.5
[kinetics.typical]
Cmax = [2000.0, 2700.0]
Tmax = [9.0, 9.0]
[toxicity]
link = "logistic"
metric = "cmax"
reference = 2700.0
p_at_reference = 0.20
slope = 1.0
onset = "peak"
onset_lag_days = -2.0
[[rules]]
name = "{EVIL_RULE}"
[[rules]]
name = "plain & simple"
'''
N_TRIALS, SEED = 6, 3


# --------------------------------------------------------------------------------------
class _Tables(HTMLParser):
    """Rows of the first <table> inside the element with a given id (cell text, unescaped)."""

    def __init__(self, wanted_id):
        super().__init__(convert_charrefs=True)
        self.wanted, self.depth, self.inside, self.rows, self.cell, self.done = wanted_id, 0, False, [], None, False

    def handle_starttag(self, tag, attrs):
        if dict(attrs).get("id") == self.wanted:
            self.inside = True
        if not self.inside or self.done:
            return
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if not self.inside or self.done:
            return
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell))
            self.cell = None
        elif tag == "table":
            self.done = True

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def table_by_id(html: str, element_id: str) -> pd.DataFrame:
    p = _Tables(element_id)
    p.feed(html)
    assert p.rows, f"no table inside #{element_id}"
    return pd.DataFrame(p.rows[1:], columns=p.rows[0])


_SUP = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")


def number(text: str) -> float:
    """A cell as the page writes it (3 significant digits, 3.0×10⁸, '' for missing, ∞)."""
    text = text.strip().replace("−", "-")
    if "×10" in text:
        mant, exp = text.split("×10")
        text = f"{mant}e{exp.translate(_SUP)}"
    if text == "":
        return math.nan
    if text in ("∞", "-∞"):
        return math.copysign(math.inf, -1 if text.startswith("-") else 1)
    return float(text)


def close_3sig(shown: float, value: float) -> bool:
    if math.isnan(value):
        return math.isnan(shown)
    return shown == pytest.approx(value, rel=5.01e-3, abs=1e-300)


# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trial_sim_dir(tmp_path_factory):
    """A tiny `ctk trial-sim` run (in this process, no Dask) with a malicious rule name."""
    from ctkinetics.cli.main import main

    base = tmp_path_factory.mktemp("trialsim")
    spec = base / "spec.toml"
    spec.write_text(TRIAL_SPEC, encoding="utf-8")
    out = base / "ts"
    code = main(["trial-sim", str(spec), "--trials", str(N_TRIALS), "--seed", str(SEED),
                 "--out", str(out), "--workers", "0", "--quiet"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory, trial_sim_dir):
    """Mini study, FOCE-I with a random effect on Cmax, and the trial-sim run, fixed by a
    config file (the [population] and [trial_sim] tables; a relative results path)."""
    from ctkinetics.data import load_study
    from ctkinetics.report import build_review, load_settings, write_report

    base = trial_sim_dir.parent
    cfg = base / "review.toml"
    cfg.write_text('[fit]\nanalytes = ["transgene"]\nstarts = 1\n[band]\ndraws = 20\n'
                   '[population]\nmethod = "focei"\nrandom_effects = ["Cmax"]\nvpc_replicates = 20\n'
                   f'[trial_sim]\nresults = "{trial_sim_dir.name}"\n', encoding="utf-8")
    settings = load_settings(cfg)
    rv = build_review(load_study(MINI), settings)
    out = base / "report"
    files = write_report(rv, out, root=MINI)
    return rv, out, files


# --------------------------------------------------------------------------------------
def test_population_section_theta_equals_the_population_result(report):
    rv, out, _ = report
    assert rv.population is not None, rv.population_error
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "id='population'" in html and "Population fit" in html
    shown = table_by_id(html, "population-theta")
    pars = rv.population.parameters
    theta = pars[pars["kind"] == "theta"].set_index("parameter")
    assert list(shown["parameter"]) == list(theta.index)
    for _, row in shown.iterrows():
        for col, name in (("estimate", "estimate"), ("se", "se"), ("RSE %", "rse_pct"),
                          ("95 % CI low", "ci_low"), ("95 % CI high", "ci_high")):
            assert close_3sig(number(row[col]), float(theta.at[row["parameter"], name])), (row, col)
    # −2LL, AIC = −2LL + 2k, BIC = −2LL + k ln n: recomputed from the result's counts
    p = rv.population
    assert p.aic == pytest.approx(p.ofv + 2 * p.n_params)
    assert p.bic == pytest.approx(p.ofv + p.n_params * math.log(p.n_obs))
    for label, v in (("−2LL (FOCE-I)", p.ofv), ("AIC", p.aic), ("BIC", p.bic)):
        assert re.search(rf"<td class='t'>{re.escape(label)}</td><td class='t'>([^<]*)</td>", html)
        got = re.search(rf"<td class='t'>{re.escape(label)}</td><td class='t'>([^<]*)</td>", html).group(1)
        assert close_3sig(number(got), v)


def test_population_csvs_equal_the_result_and_omega_cv_by_hand(report):
    rv, out, _ = report
    p = rv.population
    theta_csv = pd.read_csv(out / "population_theta.csv")
    expected = p.parameters[p.parameters["kind"] != "omega"]
    assert list(theta_csv["parameter"]) == list(expected["parameter"])
    assert set(theta_csv["kind"]) >= {"theta", "sigma"}
    np.testing.assert_allclose(theta_csv["estimate"], expected["estimate"], rtol=1e-12)
    omega_csv = pd.read_csv(out / "population_omega.csv")
    np.testing.assert_allclose(omega_csv["estimate"], p.omega["estimate"], rtol=1e-12)
    ind = pd.read_csv(out / "population_individual.csv", dtype={"subject": str})
    assert sorted(set(ind["subject"])) == sorted(map(str, rv.dataset.subject_ids))
    np.testing.assert_allclose(ind["individual"], p.individual["individual"], rtol=1e-12)
    # the page's Ω table: CV % = 100·sqrt(exp(ω²) − 1) of the variance it shows (log parameter)
    html = (out / "report.html").read_text(encoding="utf-8")
    om = table_by_id(html, "population-omega")
    assert list(om["parameter"]) == ["omega2_Cmax"]
    w2 = float(omega_csv.loc[(omega_csv["parameter"] == "Cmax") & (omega_csv["parameter2"] == "Cmax"),
                             "estimate"].iloc[0])
    assert close_3sig(number(om["ω² (variance)"].iloc[0]), w2)
    assert close_3sig(number(om["CV %"].iloc[0]), 100 * math.sqrt(math.expm1(w2)))
    assert "shrinkage %" in om.columns
    # the VPC figure with its BLQ panel
    assert "data-figure='vpc:transgene'" in html and "fraction BLQ" in html


def test_summary_json_population_and_trial_sim_entries(report, trial_sim_dir):
    rv, out, _ = report
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    pop = s["population"]
    assert pop["method"] == "focei" and pop["converged"] == rv.population.converged
    assert pop["ofv"] == pytest.approx(rv.population.ofv, rel=1e-12)
    assert pop["flags"] == list(rv.population.diagnostics["flags"])
    # what the non_identifiable flag names reaches the summary (test_uninformed: foldx unseen)
    assert pop["uninformed"] == list(rv.population.diagnostics["uninformed"])
    assert ("non_identifiable" in pop["flags"]) == bool(pop["uninformed"])
    assert pop["vpc"]["replicates"] == 20
    assert s["settings"]["population_method"] == "focei"
    assert s["settings"]["population_random_effects"] == ["Cmax"]
    ts_json = json.loads((trial_sim_dir / "summary.json").read_text())
    assert s["trial_sim"]["n_trials"] == N_TRIALS and s["trial_sim"]["rules"] == ts_json["rules"]


def test_non_converged_population_fit_is_flagged_at_the_top(report):
    from ctkinetics.report import render_html
    from ctkinetics.report.provenance import input_files

    rv, _, _ = report
    bad = replace(rv, population=replace(rv.population, converged=False,
                                         message="stopped <after> 3 iterations"))
    html, _ = render_html(bad, input_files(rv.dataset.sources, MINI), {"ctkinetics": "x"}, "now")
    top = html.split("</head>", 1)[1].split("<section>")[0]   # before the first section
    assert "did not converge" in top and "stopped &lt;after&gt; 3 iterations" in top
    assert "<after>" not in html
    assert "<div class='box bad'><b>The population fit (FOCEI) did not converge" in top


def test_trial_sim_section_table_equals_summary_csv(report, trial_sim_dir):
    _, out, files = report
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "id='trials'" in html and "Virtual trials" in html
    for name in ("selection", "duration", "expansion"):
        assert f"data-figure='trial_sim:{name}'" in html
    shown = table_by_id(html, "trial-sim-summary")
    csv = pd.read_csv(trial_sim_dir / "summary.csv", keep_default_na=False, dtype={"level": str})
    assert len(shown) == len(csv)
    assert list(shown["rule"]) == list(csv["rule"])  # unescaped back to the file's text
    assert list(shown["level"]) == list(csv["level"])
    for label, col in (("% selected as MTD", "pct_selected"), ("mean participants", "mean_participants"),
                       ("mean DLTs", "mean_dlts"), ("mean total (days)", "mean_duration_total_days"),
                       ("Cmax geo. mean", "cmax_gmean")):
        want = pd.to_numeric(csv[col].replace("", math.nan))
        label = next(c for c in shown.columns if c == label or c.startswith(label + " ("))  # + unit
        for got, w in zip(shown[label], want):
            assert close_3sig(number(got), float(w)), (label, got, w)
    assert 100 == pytest.approx(pd.to_numeric(csv["pct_selected"])[csv["rule"] == "plain & simple"].sum())


def test_trial_sim_files_hashed_in_provenance(report, trial_sim_dir):
    _, out, _ = report
    listed = pd.read_csv(out / "input_files.csv").set_index("file")
    for name in ("summary.json", "summary.csv", "trials.csv"):
        key = f"{trial_sim_dir.name}/{name}"
        assert listed.at[key, "sha256"] == hashlib.sha256((trial_sim_dir / name).read_bytes()).hexdigest()
        assert key in (out / "report.html").read_text(encoding="utf-8")


def test_malicious_rule_and_spec_names_are_escaped(report):
    _, out, _ = report
    html = (out / "report.html").read_text(encoding="utf-8")
    assert EVIL_RULE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>alert('spec')" not in html and "alert(&#x27;spec&#x27;)" in html
    # inside figure JSON the legend shows the text as typed: escaped for plotly's HTML
    # subset (&lt;, plots.style.esc), its & written as \u0026 in the JSON
    assert "\\u0026lt;img src=x onerror=alert(1)\\u0026gt;" in html
    # the body's only code is the one renderer; every other script element is inert JSON
    body = html.split("</head>", 1)[1]
    assert body.count("<script>") == 1 and body.count("Plotly.newPlot(") == 1
    assert body.count("<script") - 1 == body.count("<script type='application/json'")


def test_load_results_round_trips_the_runner(trial_sim_dir):
    """The folder the CLI wrote reads back as the result simulate_trials returns in memory."""
    from ctkinetics.trialsim import load_results, load_spec, simulate_trials
    from ctkinetics.trialsim.executors import SerialExecutor

    mem = simulate_trials(load_spec(trial_sim_dir.parent / "spec.toml"), N_TRIALS, SEED,
                          executor=SerialExecutor())
    got = load_results(trial_sim_dir, trials=True)
    assert (got.name, got.levels, got.rules, got.n_trials, got.seed, got.kinetics) == \
        (mem.name, mem.levels, mem.rules, mem.n_trials, mem.seed, mem.kinetics)
    assert got.doses == pytest.approx(mem.doses)
    pd.testing.assert_frame_equal(got.summary, mem.summary, check_dtype=False, rtol=1e-15)
    pd.testing.assert_frame_equal(got.exposure, mem.exposure, check_dtype=False, rtol=1e-15)
    assert list(got.durations["counts"]) == list(mem.durations["counts"])
    pd.testing.assert_frame_equal(got.durations.drop(columns="counts"), mem.durations.drop(columns="counts"),
                                  check_dtype=False, rtol=1e-15)
    pd.testing.assert_frame_equal(got.trials, mem.trials, check_dtype=False, rtol=1e-15)
    assert load_results(trial_sim_dir).trials is None


def test_cli_population_and_trial_sim_options(tmp_path, trial_sim_dir):
    out = tmp_path / "r"
    code = run_cli(MINI, "--out", out, "--quiet", "--model", "stein2019", "--population", "focei",
                   "--random-effects", "Cmax", "--trial-sim", trial_sim_dir)
    assert code == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["population"]["settings"]["random_effects"] == ["Cmax"]
    assert s["population"]["method"] == "focei" and "trial_sim" in s
    for name in ("population_theta.csv", "population_omega.csv", "population_individual.csv"):
        assert (out / name).stat().st_size > 0


@pytest.mark.parametrize("argv, needle", [
    (["--random-effects", "Cmax"], "--population"),
    (["--trial-sim", "no/such/folder"], "does not exist"),
])
def test_cli_bad_options_exit_2(tmp_path, capsys, argv, needle):
    assert run_cli(MINI, "--out", tmp_path / "r", "--quiet", *argv) == 2
    assert needle in capsys.readouterr().err


def test_bad_population_config_names_the_key(tmp_path):
    from ctkinetics.errors import SettingsError
    from ctkinetics.report import load_settings

    cfg = tmp_path / "c.toml"
    cfg.write_text('[population]\nmethod = "laplace"\n')
    with pytest.raises(SettingsError, match=r"line 2, key 'population.method': expected auto, none, focei or saem"):
        load_settings(cfg)


def test_default_report_has_no_population_or_trial_parts():
    out = sample_report()
    s = json.loads((out / "summary.json").read_text())
    assert "population" not in s and "trial_sim" not in s
    assert not any(k.startswith(("population_", "trial_sim")) for k in s["settings"])
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "id='population'" not in html and "id='trials'" not in html
    assert not list(out.glob("population_*.csv"))


def test_population_and_trial_figures_draw_in_chromium_without_alert(report, tmp_path):
    """VPC and virtual-trial figures draw; the malicious rule name runs no script (alert is
    recorded as an error by the probe)."""
    from test_report_browser import CATCH, CHROMIUM, _chromium

    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    _, out, _ = report
    html = (out / "report.html").read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("<head>", "<head>" + CATCH, 1), encoding="utf-8")
    dom = _chromium(["--dump-dom", probe.as_uri()], tmp_path / "ud").stdout
    assert "ctk-js-errors" in dom
    errors = re.search(r'<pre id="ctk-js-errors">(.*?)</pre>', dom, re.S).group(1).strip()
    assert errors == "", f"JavaScript errors: {errors}"
    for name in ("vpc:transgene", "trial_sim:selection", "trial_sim:duration", "trial_sim:expansion"):
        a = dom.index(f'data-figure="{name}"')
        nxt = dom.find('data-figure="', a + 20)
        part = dom[a:nxt if nxt > 0 else len(dom)]
        assert 'class="main-svg"' in part and re.search(r'class="(trace|point|js-line|box)', part), name
