"""Hand-built study folders for the protocol tests (a helper module, not a test)."""
from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

LEVELS = {"1": 3.0e8, "2": 4.5e8, "3": 6.0e8}
DESIGN = """[design]
target_dlt_rate = 0.3
dlt_window_days = 28
stagger_days = 14
cohort_size = 3
max_subjects = 12
"""
ANALYTES = """
[analytes.transgene]
unit = "copies/ug"
lloq = 20
kind = "qpcr"

[analytes.car_flow]
unit = "cells/uL"
lloq = 0.5
kind = "flow"
"""
SAFETY_COLUMNS = ["subject", "infusion_day", "dlt", "dlt_day", "last_followup_day", "crs_grade", "crs_day",
                  "icans_grade", "icans_day", "phase", "group", "window_end_day", "window_end_reason", "evaluable"]
SCHEDULE = (1, 4, 7, 10, 14, 21, 28)


def P(subject, level, day, **kw) -> dict:
    """A participant: safety fields as keyword arguments; ``expands`` False gives BLQ kinetics;
    ``dose`` the cells received (default: the level's dose)."""
    return dict(subject=subject, level=str(level), infusion_day=day, **kw)


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def make_study(folder: Path, participants, *, levels=None, design: str = DESIGN, extra_toml: str = "",
               decisions=None, efficacy=None, with_design: bool = True) -> Path:
    """Write study.toml, subjects.csv, observations.csv, safety.csv (and decisions.csv /
    efficacy.csv when given) for ``participants`` (see :func:`P`)."""
    folder.mkdir(parents=True, exist_ok=True)
    levels = levels or LEVELS
    toml = ['[study]', 'name = "hand-built study"', '', '[dose_levels]']
    toml += [f'"{k}" = {v!r}' for k, v in levels.items()]
    toml += ["", design if with_design else "", ANALYTES, extra_toml]
    (folder / "study.toml").write_text("\n".join(toml))
    subj, obs, saf = [], [], []
    for p in participants:
        dose = p.get("dose", levels[p["level"]])
        subj.append((p["subject"], p["level"], f"{dose:.6g}"))
        last = p.get("last_followup_day", 28)
        expands = p.get("expands", True)
        obs.append((p["subject"], -1, "transgene", "<20", "copies/ug"))
        obs.append((p["subject"], -1, "car_flow", "BLQ", "cells/uL"))
        for t in SCHEDULE:
            if last is not None and t > last:
                break
            peak = 5000.0 * min(t, 9) / 9 if expands else 0.0
            obs.append((p["subject"], t, "transgene", f"{peak:g}" if peak >= 20 else "<20", "copies/ug"))
            obs.append((p["subject"], t, "car_flow", f"{peak / 200:g}" if peak / 200 >= 0.5 else "BLQ", "cells/uL"))
        if p.get("no_safety_row"):
            continue
        row = {c: p.get(c) for c in SAFETY_COLUMNS}
        row["phase"] = p.get("phase", "escalation")
        row["last_followup_day"] = last
        saf.append([_cell(row[c]) for c in SAFETY_COLUMNS])
    pd.DataFrame(subj, columns=["subject", "dose_level", "dose"]).to_csv(folder / "subjects.csv", index=False)
    pd.DataFrame(obs, columns=["subject", "time", "analyte", "value", "unit"]).to_csv(folder / "observations.csv",
                                                                                      index=False)
    pd.DataFrame(saf, columns=SAFETY_COLUMNS).to_csv(folder / "safety.csv", index=False)
    if decisions is not None:
        pd.DataFrame(decisions, columns=["day", "action", "level", "subject", "decision", "rationale"]).to_csv(
            folder / "decisions.csv", index=False)
    if efficacy is not None:
        pd.DataFrame(efficacy, columns=["subject", "day", "endpoint", "value", "response"]).to_csv(
            folder / "efficacy.csv", index=False)
    return folder


def ctk(*argv):
    """Run the real CLI entry point; returns (exit code, stdout, stderr)."""
    from ctkinetics.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def safety_html(dataset, as_of=None, **overrides) -> str:
    """The report's top box and safety section for a study (no NCA or fits needed)."""
    from ctkinetics.report import ReportSettings
    from ctkinetics.report.escalation import decision_box, escalation_part, safety_section

    settings = ReportSettings(as_of=as_of, **overrides)
    ds = dataset.as_of(as_of) if as_of is not None else dataset
    rv = SimpleNamespace(dataset=ds, settings=settings, car_analytes=(), nca=None, **escalation_part(ds, settings))
    return decision_box(rv, anchor=True) + safety_section(rv, lambda figure, name: f"<div data-fig='{name}'></div>")
