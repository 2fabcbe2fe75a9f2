"""The sample report rendered in headless Chromium: every figure drew, no JavaScript error.

A copy of report.html gets a first <script> that records errors (window.onerror, unhandled
rejections, console.error, alert) into a <pre id='ctk-js-errors'>; Chromium dumps the DOM after
a virtual-time budget; each figure's div must then hold plotly's SVG (``main-svg``) with at
least one trace. A PNG screenshot is saved under tests/_output/ for people to look at.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from report_helpers import OUTPUT, sample_report

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--hide-scrollbars", "--virtual-time-budget=5000"]
CATCH = """<script>(function(){var errs=[];function rec(m){errs.push(String(m));
document.addEventListener('DOMContentLoaded',function(){});}
window.addEventListener('error',function(e){rec('error: '+e.message)});
window.addEventListener('unhandledrejection',function(e){rec('rejection: '+e.reason)});
var ce=console.error;console.error=function(){rec('console: '+Array.from(arguments).join(' '));ce.apply(console,arguments)};
window.alert=function(m){rec('alert: '+m)};
window.addEventListener('load',function(){setTimeout(function(){var p=document.createElement('pre');
p.id='ctk-js-errors';p.textContent=errs.join('\\n');document.body.appendChild(p)},0)});})();</script>"""


def _chromium(args, user_dir, timeout=240):
    return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={user_dir}", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at "
                    "/usr/bin/chromium (CI installs it; apt-get install chromium)")
def test_every_figure_draws_without_javascript_errors(tmp_path):
    html = (sample_report() / "report.html").read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    # every page of a paged figure group shown in the probe (the report draws a page's figures
    # when it is shown): every figure must draw
    shown = re.sub(r"(<div class='ctk-page grid' data-group='g\d+') hidden>", r"\1>", html)
    probe.write_text(shown.replace("<head>", "<head>" + CATCH, 1), encoding="utf-8")
    n_figures = len(re.findall(r"class='ctk-figure[^']*' id='ctk-fig-\d+'", html))
    assert n_figures >= 9

    shot = OUTPUT / "report_screenshot.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    dump = subprocess.Popen  # both renderings run at once
    p_shot = dump([str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / 'ud2'}",
                   "--window-size=1400,2200", f"--screenshot={shot}", (sample_report() / "report.html").as_uri()],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    res = _chromium(["--dump-dom", probe.as_uri()], tmp_path / "ud1")
    p_shot.wait(timeout=240)
    dom = res.stdout
    assert "ctk-js-errors" in dom, f"page did not finish loading: {res.stderr[-2000:]}"
    errors = re.search(r'<pre id="ctk-js-errors">(.*?)</pre>', dom, re.S).group(1).strip()
    assert errors == "", f"JavaScript errors: {errors}"
    starts = [m.start() for m in re.finditer(r'id="ctk-fig-\d+"', dom)]
    assert len(starts) == n_figures
    for i, a in enumerate(starts):
        part = dom[a:starts[i + 1] if i + 1 < len(starts) else len(dom)]
        name = re.search(r'data-figure="([^"]*)"', dom[a - 200:a + 300])
        assert 'class="main-svg"' in part, f"figure {name and name.group(1)} did not draw"
        assert re.search(r'class="(trace|point|js-line|box)', part), \
            f"figure {name and name.group(1)} has no plot elements"
    assert shot.exists() and shot.stat().st_size > 10_000
    shutil.rmtree(tmp_path / "ud1", ignore_errors=True)
    shutil.rmtree(tmp_path / "ud2", ignore_errors=True)
