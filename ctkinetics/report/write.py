"""Writing a review: ``report.html`` (self-contained), the CSV tables and ``summary.json``.

Same review → same bytes, apart from the timestamp (one ``<span class='ctk-generated'>`` in the
HTML and ``generated_at`` in summary.json).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ctkinetics.jsonable import jsonable
from ctkinetics.report import sections
from ctkinetics.report.html import Figures, esc, page, plotly_js
from ctkinetics.report.provenance import input_files, timestamp, versions


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote."""

    html: Path
    summary: Path
    tables: tuple
    figures: tuple  # figure names, in page order

    def __iter__(self):
        return iter((self.html, self.summary, *self.tables))


def _tables(rv) -> dict:
    t = {"data_counts.csv": rv.counts, "audit.csv": rv.dataset.audit,
         "nca.csv": rv.nca.to_frame(), "nca_wide.csv": rv.nca.wide(),
         "nca_summary.csv": rv.nca.summary(), "nca_exclusions.csv": rv.nca.exclusions,
         "nca_settings.csv": rv.nca.settings(),
         "dose_proportionality.csv": rv.nca.dose_proportionality()}
    for a, prof in rv.mean_profiles.items():
        t[f"mean_profile_{a}.csv"] = prof
    if rv.fit is not None:
        f = rv.fit
        t.update({"fits.csv": f.fits_frame(), "fit_parameters.csv": f.to_frame(),
                  "fit_predictions.csv": f.predictions_frame(), "fit_excluded.csv": f.excluded_frame(),
                  "fit_derived.csv": f.derived_frame(), "fit_summary.csv": f.summary(),
                  "fitted_curves.csv": rv.curves})
    if rv.aplasia is not None:
        t["bcell_aplasia.csv"] = rv.aplasia
    if rv.decision is not None:
        t.update({"escalation_levels.csv": rv.decision.levels,
                  "escalation_participants.csv": rv.decision.participants,
                  "boin_boundaries.csv": rv.boundaries.to_frame()})
        if rv.mtd is not None:
            t["mtd.csv"] = rv.mtd.to_frame()
    return t


def _summary(rv, files, vers, generated_at, command) -> dict:
    nca_key = rv.nca.summary()
    nca_key = nca_key[nca_key["parameter"].isin(["CMAX", "TMAX"])
                      | nca_key["parameter"].str.startswith("AUCINT")]
    return jsonable({
        "study": rv.dataset.study.name,
        "participants": len(rv.dataset.subjects),
        "samples": len(rv.dataset.observations),
        "records_audited": len(rv.dataset.audit),
        "decision": rv.decision.to_dict() if rv.decision is not None else None,
        "escalation_error": rv.escalation_error or None,
        "mtd": ({"level": rv.mtd.mtd_level, "reason": rv.mtd.reason} if rv.mtd is not None else None),
        "fits": ({"model": rv.fit.model, "blq_method": rv.fit.blq_method,
                  "error_model": rv.fit.error_model, "n": len(rv.fit.fits),
                  "failed": [f.subject for f in rv.fit.fits if not f.success],
                  "flagged": {f.subject: list(f.flags) for f in rv.fit.fits if f.success and f.flags}}
                 if rv.fit is not None else {"error": rv.fit_error}),
        "nca_by_dose_level": nca_key.drop(columns=["display"]).to_dict(orient="records"),
        "nca_choices": rv.nca.options.describe(),
        "settings": rv.settings.to_dict(),
        "provenance": {"versions": vers, "input_files": files.to_dict(orient="records"),
                       "command": command, "generated_at": generated_at},
    })


def render_html(rv, files, vers, generated_at, command=None) -> tuple[str, tuple]:
    """The page and the names of its figures."""
    fig = Figures()
    body = [sections.summary_box(rv),
            sections.data_section(rv, fig), sections.expansion_section(rv, fig),
            sections.fits_section(rv, fig), sections.bcell_section(rv, fig),
            sections.safety_section(rv, fig),
            sections.provenance_section(rv, files, vers, generated_at, command)]
    nav = [("recommendation", "Recommendation"), ("data", "Data"), ("expansion", "Expansion / NCA"),
           ("fits", "Model fits"), ("bcells", "B cells"), ("safety", "Safety & escalation"),
           ("provenance", "Provenance")]
    d = rv.decision
    sub = (f"Cohort review · {len(rv.dataset.subjects)} participants"
           + (f" · data as of study day {d.as_of_day:g}" if d is not None else "")
           + f" · ctkinetics {esc(vers['ctkinetics'])}")
    title = f"{esc(rv.dataset.study.name)}"
    return page(title, sub, nav, "".join(body), plotly_js()), tuple(fig.names)


def write_report(rv, out, *, root=None, command: str | None = None,
                 generated_at: str | None = None) -> ReportFiles:
    """Write ``out/report.html``, the CSV tables and ``out/summary.json``.

    Parameters
    ----------
    rv : Review
    out : path
        Output folder (created).
    root : path, optional
        The study folder or file; input files are named relative to it in the provenance.
    command : str, optional
        The command line, recorded in the provenance.
    generated_at : str, optional
        Timestamp; default now (or ``SOURCE_DATE_EPOCH``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    generated_at = generated_at or timestamp()
    files = input_files(rv.dataset.sources, root)
    vers = versions()
    written = []
    for name, df in _tables(rv).items():
        p = out / name
        pd.DataFrame(df).to_csv(p, index=False, lineterminator="\n")
        written.append(p)
    files.to_csv(out / "input_files.csv", index=False, lineterminator="\n")
    written.append(out / "input_files.csv")
    text, names = render_html(rv, files, vers, generated_at, command)
    html_path = out / "report.html"
    html_path.write_text(text, encoding="utf-8")
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(_summary(rv, files, vers, generated_at, command), indent=2,
                                       ensure_ascii=False) + "\n", encoding="utf-8")
    return ReportFiles(html_path, summary_path, tuple(written), names)
