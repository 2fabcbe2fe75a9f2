"""ctk report end to end: files, one embedded plotly.js, escaping, determinism, exit codes, and
that flagged fits and excluded records are visible."""
from __future__ import annotations

import json
import re
from html import escape

import pandas as pd
import pytest

from report_helpers import MINI, SAMPLE, run_cli, sample_report, study_with_subject_id

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STAMP = re.compile(r"<span class='ctk-generated'>[^<]*</span>")


def test_sample_report_files_and_offline_html():
    out = sample_report()
    for name in ("report.html", "summary.json", "nca.csv", "nca_summary.csv", "fits.csv",
                 "fit_parameters.csv", "escalation_levels.csv", "audit.csv", "input_files.csv"):
        assert (out / name).stat().st_size > 0, name
    html = (out / "report.html").read_text(encoding="utf-8")
    # plotly.js embedded exactly once, nothing fetched from the network; each figure's JSON
    # beside its div, the house template written once and one renderer drawing them all
    n = len(re.findall(r"<div class='ctk-figure[^']*' id='ctk-fig-(\d+)'", html))
    assert n >= 9 and html.count("<script type='application/json' id='ctk-fig-") == n
    assert html.count("id='ctk-templates'") == 1 and html.count("Plotly.newPlot(") == 1
    assert len(re.findall(r"\*\s*plotly\.js v\d", html)) == 1
    assert not re.search(r"<script[^>]+src=", html)
    assert "cdn.plot.ly" not in html.replace("\\/", "/").split("</head>")[-1]


def test_sample_report_shows_decision_flags_exclusions_and_provenance():
    out = sample_report()
    html = (out / "report.html").read_text(encoding="utf-8")
    summary = json.loads((out / "summary.json").read_text())
    fits = pd.read_csv(out / "fits.csv", keep_default_na=False)
    # the recommendation and the rule that fired, as the escalation layer states them
    levels = pd.read_csv(out / "escalation_levels.csv")
    assert summary["decision"]["decision"] in html and len(levels) == 3
    assert summary["decision"]["rule"].split(":")[0] in html
    # every flagged or failed fit is named in the warning box at the top of the page
    top = html.split("1. Study and data audit")[0]
    flagged = fits[(fits["flags"] != "") | (fits["success"].astype(str) != "True")]
    if len(flagged):
        assert "flagged" in top
    else:   # since the fits hold sigma at the model's assay precision (issue 12): none flagged
        assert f"All {len(fits)} individual fits (cart_bcell_sle) converged without flags." in top
    for s in flagged["subject"]:
        assert f"<b>{s}</b>" in top
    # each reason a record was left out, on reading or in the NCA, is listed
    for reason in pd.read_csv(out / "audit.csv")["reason"].unique():
        assert reason in html
    for reason in pd.read_csv(out / "nca_exclusions.csv")["reason"].unique():
        assert escape(reason, quote=True) in html  # NCA quality reasons hold "<" and ">"
    # provenance: the SHA-256 of every input file, computed independently here
    import hashlib
    for p in sorted(SAMPLE.iterdir()):
        if p.suffix in (".csv", ".toml"):
            assert hashlib.sha256(p.read_bytes()).hexdigest() in html, p.name


def test_ids_from_input_files_are_escaped_and_reruns_are_identical(tmp_path):
    evil = "<script>alert(1)</script>"
    study = study_with_subject_id(tmp_path, evil)
    out = tmp_path / "out"
    assert run_cli(study, "--out", out, "--quiet") == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    html = first["report.html"].decode("utf-8")
    assert evil not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # the same inputs and settings again (a batch rebuild): identical apart from the timestamp
    assert run_cli(study, "--out", out, "--quiet") == 0
    second = {p.name: p.read_bytes() for p in out.iterdir()}
    assert first.keys() == second.keys()
    for name in first:
        a, b = first[name].decode("utf-8"), second[name].decode("utf-8")
        if name == "report.html":
            assert len(STAMP.findall(a)) == 1
            a, b = STAMP.sub("", a), STAMP.sub("", b)
        if name in ("summary.json", "manifest.json"):
            ja, jb = json.loads(a), json.loads(b)
            for j in (ja, jb):
                j.pop("created", None)
                if "provenance" in j:
                    j["provenance"].pop("generated_at")
                for f in j.get("files", ()):
                    if f["name"] in ("report.html", "summary.json"):
                        f.pop("sha256"), f.pop("bytes")   # they hold the timestamp
            a, b = json.dumps(ja), json.dumps(jb)
        assert a == b, f"{name} differs between two runs"


def test_config_file_and_exit_codes(tmp_path, capsys):
    cfg = tmp_path / "review.toml"
    cfg.write_text('[report]\nas_of = 25\n[fit]\nstarts = 2\n[band]\ndraws = 50\n')
    out = tmp_path / "out"
    assert run_cli(MINI, "--out", out, "--config", cfg) == 0
    err = capsys.readouterr().err
    assert "NCA" in err and "escalation" in err            # progress on stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["settings"]["fit_starts"] == 2 and s["decision"]["as_of_day"] == 25.0
    bad = tmp_path / "bad.toml"
    bad.write_text("[fit]\nstart = 2\n")
    assert run_cli(MINI, "--out", out, "--config", bad, "--quiet") == 2
    assert "unknown key 'start'" in capsys.readouterr().err
    assert run_cli(tmp_path / "no_such_study", "--out", out, "--quiet") == 2
    assert run_cli(MINI, "--out", out, "--model", "no_such_model", "--quiet") == 2
