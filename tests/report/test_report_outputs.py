"""ctk report as an output: atomic folder and manifest under injected crashes and a full disk,
no stale files of another study, spreadsheet-safe CSVs everywhere, exit codes, read-back,
paging of per-participant figures and the compact figure JSON."""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ctkinetics.outputs import faults, verify
from report_helpers import MINI, ROOT, SAMPLE, run_cli

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

FORMULAS = {"SLE-101": '=HYPERLINK("http://evil.example","click")',
            "SLE-102": "+cmd|' /C calc'!A0", "SLE-201": "@SUM(A1:A9)", "SLE-301": "-2+3"}


@pytest.fixture(scope="module")
def mini_review():
    from ctkinetics.data import load_study
    from ctkinetics.report import ReportSettings, build_review

    return build_review(load_study(MINI), ReportSettings(fit_starts=1, band_draws=20))


@pytest.fixture(scope="module")
def other_review(tmp_path_factory):
    """Another study (the mini study without safety data: no escalation tables)."""
    from ctkinetics.data import load_study
    from ctkinetics.report import ReportSettings, build_review

    return build_review(load_study(_no_safety_copy(tmp_path_factory.mktemp("other"))),
                        ReportSettings(fit_starts=1, band_draws=20))


def _no_safety_copy(tmp_path):
    other = tmp_path / "no_safety"
    shutil.copytree(MINI, other)
    (other / "safety.csv").unlink()
    return other


def test_rerun_of_another_study_leaves_none_of_the_previous_files(tmp_path):
    out = tmp_path / "out"
    assert run_cli(MINI, "--out", out, "--quiet", "--config", _fast_config(tmp_path)) == 0
    assert (out / "mtd.csv").exists() and (out / "escalation_levels.csv").exists()
    assert run_cli(_no_safety_copy(tmp_path), "--out", out, "--quiet",
                   "--config", _fast_config(tmp_path)) == 0
    assert not (out / "mtd.csv").exists() and not (out / "escalation_levels.csv").exists()
    assert verify(out) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def _fast_config(tmp_path):
    cfg = tmp_path / "fast.toml"
    cfg.write_text("[fit]\nstarts = 1\n[band]\ndraws = 20\n")
    return cfg


@pytest.mark.parametrize("kind", ["crash", "enospc"])
def test_a_fault_at_every_write_of_a_report_never_leaves_a_complete_manifest_over_wrong_files(
        tmp_path, mini_review, other_review, kind, monkeypatch):
    """Study A's report is in the folder; study B's report is written over it with one fault
    at each checkpoint in turn (every chunk of every file, the manifest, the renames). After
    each: the folder verifies against its manifest and is wholly A or wholly B (or absent
    after a crash between two renames, A being put back by the next run)."""
    from ctkinetics.report import read_report, write
    from ctkinetics.report import write_report

    # 400 kB instead of plotly.js's 4.8 MB keeps each write fast; still many 64 kB chunks
    monkeypatch.setattr(write, "plotly_js", lambda: "/* plotly.js stand-in */" + "x" * 400_000)
    rv_b = other_review
    target, saved = tmp_path / "out", tmp_path / "saved_a"
    a = write_report(mini_review, target, generated_at="A").output
    shutil.copytree(target, saved)
    faults.arm(None)
    b = write_report(rv_b, target, generated_at="B").output
    n = faults.passed()
    assert n > 12            # report.html alone is written in ~8 chunks of 64 kB

    def reset():             # study A's complete report again, nothing else beside it
        for p in tmp_path.glob(".out.ctk-*"):
            shutil.rmtree(p)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(saved, target)

    reset()
    try:
        for k in sorted(random.Random(19).sample(range(1, n - 1), 5)) + [n - 1, n]:
            faults.arm(kind, k)
            try:
                write_report(rv_b, target, generated_at="B")
            except faults.InjectedCrash:
                pass
            except Exception as exc:  # noqa: BLE001 - the full disk, as the CLI sees it
                assert "No space left on device" in str(exc) and "nothing was replaced" in str(exc)
            faults.arm(None)
            if target.exists():
                assert verify(target) == [], f"fault {kind} at checkpoint {k}"
                assert read_report(target) in (a, b)
                html = (target / "report.html").read_text(encoding="utf-8")
                assert html.endswith("</body></html>\n")
            else:
                assert kind == "crash"
            reset()
    finally:
        faults.arm(None)


def test_ctk_report_killed_in_another_process_and_a_full_disk(tmp_path):
    """The hook in a real `ctk report` process (os._exit, as kill -9) and a full disk: exit 1
    with the message, the previous report intact."""
    out = tmp_path / "out"
    cfg = _fast_config(tmp_path)
    assert run_cli(MINI, "--out", out, "--quiet", "--config", cfg) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "ctkinetics.cli.main", "report", str(_no_safety_copy(tmp_path)),
           "--out", str(out), "--quiet", "--config", str(cfg)]
    env["CTKINETICS_FAULT"] = "crash@20"
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 137
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and verify(out) == []
    env["CTKINETICS_FAULT"] = "enospc@25"
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert "No space left on device" in r.stderr and "nothing was replaced" in r.stderr
    assert "internal error" not in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _formula_study(tmp_path):
    dst = tmp_path / "study"
    shutil.copytree(SAMPLE, dst)
    for p in dst.glob("*.csv"):
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
        if "subject" in df.columns:
            df["subject"] = df["subject"].replace(FORMULAS)
            df.to_csv(p, index=False)
    return dst


def _unsafe_cells(folder):
    """Cells of every CSV under ``folder`` that a spreadsheet would run as a formula."""
    bad = []
    for p in sorted(folder.rglob("*.csv")):
        raw = pd.read_csv(p, dtype=str, keep_default_na=False, header=None)
        for cell in raw.to_numpy().ravel():
            if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                try:
                    float(cell)
                except ValueError:
                    bad.append((p.name, cell))
    return bad


def test_formula_like_ids_are_neutralised_in_every_csv_of_every_command(tmp_path):
    study = _formula_study(tmp_path)
    out = tmp_path / "outputs"
    assert run_cli(study, "--out", out / "report", "--quiet", "--config", _fast_config(tmp_path)) == 0
    from ctkinetics.cli.main import main

    assert main(["fit", str(study), "--model", "stein2019", "--out", str(out / "fit"),
                 "--starts", "1"]) == 0
    assert main(["nca", str(study), "--out", str(out / "nca")]) == 0
    assert main(["simulate", "stein2019", "--n", "3", "--seed", "1",
                 "--out", str(out / "sim.csv"), "--params-out", str(out / "params.csv")]) == 0
    assert main(["boin", "table", "--out", str(out / "boin.csv")]) == 0
    csvs = list(out.rglob("*.csv"))
    assert len(csvs) > 35
    assert _unsafe_cells(out) == []
    # the IDs are all there, quoted once, and read back as typed
    from ctkinetics.outputs import read_csv

    for folder, name in (("report", "fits.csv"), ("report", "audit.csv"), ("fit", "fits.csv"),
                         ("nca", "nca.csv"), ("report", "escalation_participants.csv")):
        raw = pd.read_csv(out / folder / name, dtype=str, keep_default_na=False)
        back = read_csv(out / folder / name, dtype=str, keep_default_na=False)
        ids = set(back["subject"])
        for evil in FORMULAS.values():
            if evil in ids:
                assert "'" + evil in set(raw["subject"])
        assert set(FORMULAS.values()) & ids, (folder, name)
    # negative numbers stay numbers (IWRES below zero in the fits' predictions)
    pred = pd.read_csv(out / "fit" / "predictions.csv")
    assert (pred["iwres"] < 0).any()


def test_report_reads_back_into_an_equal_object(tmp_path, mini_review):
    from ctkinetics.report import read_report, write_report

    files = write_report(mini_review, tmp_path / "out", generated_at="2026-12-01T00:00:00Z")
    back = read_report(tmp_path / "out")
    assert back == files.output
    assert set(back.tables) >= {"nca.csv", "fits.csv", "fit_parameters.csv", "mtd.csv",
                                "input_files.csv"}
    assert back.summary["decision"]["decision"] == mini_review.decision.decision
    fits = back.tables["fits.csv"]
    assert fits["ofv"].dtype == np.float64 and list(fits["subject"]) == ["S01", "S02"]
    (tmp_path / "out" / "nca.csv").write_text("tampered\n")
    from ctkinetics.errors import OutputError

    with pytest.raises(OutputError, match="nca.csv: differs from the manifest"):
        read_report(tmp_path / "out")


def test_a_report_with_a_failed_fit_exits_3_and_names_it(tmp_path, monkeypatch, capsys):
    from ctkinetics.estimation import individual

    real = individual._fit_group

    def fail_s01(group, opts):
        if any(m.subject == "S01" for m in group.subjects):
            raise FloatingPointError("solver failed")
        return real(group, opts)

    monkeypatch.setattr(individual, "_fit_group", fail_s01)
    out = tmp_path / "out"
    assert run_cli(MINI, "--out", out, "--quiet", "--config", _fast_config(tmp_path)) == 3
    assert "fit S01: failed: FloatingPointError: solver failed" in capsys.readouterr().err
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete with failures" and verify(out) == []
    assert run_cli(MINI, "--out", out, "--quiet", "--config", _fast_config(tmp_path),
                   "--allow-failures") == 0


def test_per_participant_figures_are_paged_beyond_the_threshold(tmp_path, monkeypatch):
    """12 participants with 4 per page: 3 pages of individual profiles, of λz panels and of
    CAR-T/B-cell panels; one page of each shown (drawn), the others hidden until chosen. The
    figures built in worker processes are the same bytes as those built here."""
    import re

    from ctkinetics.data import load_study
    from ctkinetics.report import ReportSettings, build_review, render_html
    from ctkinetics.report import figures
    from ctkinetics.report.provenance import input_files

    rv = build_review(load_study(SAMPLE), ReportSettings(fit_starts=1, band_draws=20))
    files = input_files(rv.dataset.sources, SAMPLE)
    monkeypatch.setattr(figures, "PER_PAGE", 4)
    monkeypatch.setattr(figures, "PARALLEL_FROM", 1)
    html, names = render_html(rv, files, {"ctkinetics": "x"}, "now", jobs=2)
    serial, _ = render_html(rv, files, {"ctkinetics": "x"}, "now", jobs=1)
    assert html == serial
    n_profiles = sum(n.startswith("individual_profile:") for n in names)
    assert n_profiles == 12 * len(rv.fit.analytes)
    assert sum(n.startswith("lambda_z:transgene:page") for n in names) == 3
    assert sum(n.startswith("cart_vs_bcells:page") for n in names) == 3
    pagers = re.findall(r"<select class='ctk-pager' data-group='(g\d+)'>(.*?)</select>", html)
    assert len(pagers) == 1 + len(rv.car_analytes) + 1   # profiles, λz per analyte, B cells
    for group, options in pagers:
        pages = re.findall(rf"<div class='ctk-page grid' data-group='{group}'( hidden)?>", html)
        assert len(pages) == options.count("<option") and [p == "" for p in pages].count(True) == 1
    order = list(rv.dataset.subjects.sort_values("dose", kind="stable")["subject"])
    # a participant's analytes together, in study.toml's order: page 1 holds the first
    # participant's three panels and the second's first
    analytes = [x for x in rv.dataset.study.analytes if x in set(rv.fit.analytes)]
    panels = [(s, x) for s in order for x in analytes]
    (s0, a0), (s3, a3) = panels[0], panels[3]
    assert f"<option value='0'>{s0} · {a0} – {s3} · {a3}</option>" in html


def test_dense_curves_are_thinned_within_tolerance():
    from ctkinetics.report.figures import TOLERANCE, simplify

    x = np.linspace(0, 100, 2001)
    y = np.log10(5e4 * np.exp(-0.05 * x) + 10 * np.exp(-0.001 * x))   # a biexponential, log10
    xs, ys = x / np.ptp(x), y / np.ptp(y)
    keep = simplify(xs, ys, TOLERANCE)
    assert keep[0] == 0 and keep[-1] == 2000 and len(keep) < 200
    # every dropped point lies within the tolerance of the kept polyline (interpolated here)
    approx = np.interp(xs, xs[keep], ys[keep])
    assert np.max(np.abs(approx - ys)) <= TOLERANCE * 1.0001
    line = simplify(np.linspace(0, 1, 500), np.linspace(0, 1, 500), TOLERANCE)
    assert list(line) == [0, 499]


def test_paged_figures_draw_in_chromium_when_their_page_is_chosen(tmp_path, monkeypatch):
    """Headless Chromium: on load only the shown pages are drawn; choosing page 2 of the
    profiles draws its figures and frees page 1's."""
    import re
    from pathlib import Path

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    from ctkinetics.data import load_study
    from ctkinetics.report import ReportSettings, build_review, render_html
    from ctkinetics.report import figures
    from ctkinetics.report.provenance import input_files

    # stein2019 (qPCR only): one profile per participant, 2 pages of 1
    rv = build_review(load_study(MINI), ReportSettings(model="stein2019", fit_starts=1, band_draws=20))
    monkeypatch.setattr(figures, "PER_PAGE", 1)
    html, names = render_html(rv, input_files(rv.dataset.sources, MINI), {"ctkinetics": "x"}, "now")
    choose = ("<script>window.addEventListener('load',function(){setTimeout(function(){"
              "var all=document.querySelectorAll('select.ctk-pager');for(var i=0;i<all.length;i++){"
              "var s=all[i];if(s.options[0].text.indexOf('\u00b7')<0)continue;s.value='1';"
              "s.dispatchEvent(new Event('change'));}},0);});</script></body>")
    page = tmp_path / "paged.html"
    page.write_text(html.replace("</body>", choose), encoding="utf-8")
    out = subprocess.run([str(chromium), "--headless", "--no-sandbox", "--disable-gpu",
                          "--virtual-time-budget=5000", f"--user-data-dir={tmp_path / 'ud'}",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=240)
    divs = re.findall(r'<div class="ctk-figure[^"]*" id="ctk-fig-\d+" data-figure="([^"]*)"'
                      r'( data-drawn="1")?', out.stdout)
    drawn = {n for n, d in divs if d}
    assert len(divs) == len(names)
    profiles = [n for n in names if n.startswith("individual_profile:")]
    assert len(profiles) == 2
    assert profiles[1] in drawn and profiles[0] not in drawn     # page 2 chosen, page 1 freed
    assert "lambda_z:transgene:page1" in drawn and "lambda_z:transgene:page2" not in drawn
