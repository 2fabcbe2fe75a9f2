"""Writing a review: ``report.html`` (self-contained), the CSV tables, ``summary.json`` and
``manifest.json``; and reading a written report back (:func:`read_report`).

The folder is written atomically through :class:`ctkinetics.outputs.OutputFolder` (complete or
not there; the manifest last); every CSV is spreadsheet-safe; the HTML is streamed section by
section with progress. Same review → same bytes, apart from the timestamp (one
``<span class='ctk-generated'>`` in the HTML, ``generated_at`` in summary.json, ``created`` in
the manifest).
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ctkinetics.jsonable import jsonable
from ctkinetics.outputs import OutputFolder
from ctkinetics.report import sections
from ctkinetics.report.escalation import escalation_summary, escalation_tables
from ctkinetics.report.dictionary import build_dictionary, with_units
from ctkinetics.report.figures import Figures
from ctkinetics.report.html import CSS, esc, plotly_js
from ctkinetics.report.model_vs_observed import APLASIA_FILE, EXPOSURE_FILE
from ctkinetics.report.model_vs_observed import section as model_vs_observed_section
from ctkinetics.report.provenance import input_files, timestamp, versions
from ctkinetics.report.uncertainty import (uncertainty_section, uncertainty_summary,
                                           uncertainty_tables)

#: Added to the page's style sheet: paged figure groups (a hidden page stays hidden in a grid).
PAGE_CSS = "[hidden]{display:none!important}select.ctk-pager{font-size:13px}"


@dataclass(frozen=True)
class ReportOutput:
    """A written report as data: ``summary.json`` and every CSV table exactly as written
    (text columns as strings, '' for missing text; see :mod:`ctkinetics.outputs.tables`),
    with the manifest's status and failures. :func:`read_report` reads one back; two are
    equal when their summaries, status, failures and tables are."""

    summary: dict
    tables: dict = field(default_factory=dict)
    status: str = "complete"
    failures: tuple = ()

    def __eq__(self, other) -> bool:
        if not isinstance(other, ReportOutput):
            return NotImplemented
        if (self.summary, self.status, tuple(self.failures)) != \
                (other.summary, other.status, tuple(other.failures)):
            return False
        if self.tables.keys() != other.tables.keys():
            return False
        return all(self.tables[k].equals(other.tables[k])
                   and list(self.tables[k].dtypes) == list(other.tables[k].dtypes)
                   for k in self.tables)


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote."""

    html: Path
    summary: Path
    tables: tuple
    figures: tuple  # figure names, in page order
    output: ReportOutput | None = None

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
    if rv.exposure_comparison is not None and rv.fit is not None:  # report/model_vs_observed.py
        t[EXPOSURE_FILE] = rv.exposure_comparison
        if rv.aplasia_comparison is not None and len(rv.aplasia_comparison):
            t[APLASIA_FILE] = rv.aplasia_comparison
    t.update(escalation_tables(rv))  # decision, MTD now, pathways, committee, RD (report/escalation.py)
    if rv.population is not None:
        p = rv.population
        pars = p.to_frame()
        # as `ctk popfit` writes them: θ, covariate effects and σ; Ω entry by entry; EBEs
        t.update({"population_theta.csv": pars[pars["kind"] != "omega"],
                  "population_omega.csv": p.omega, "population_individual.csv": p.individual,
                  "population_predictions.csv": p.predictions})
        if rv.vpc is not None:
            t["population_vpc.csv"] = rv.vpc.to_frame()
    if rv.trial_sim is not None:
        t["trial_sim_summary.csv"] = rv.trial_sim.result.summary
    t.update(uncertainty_tables(rv))  # [uncertainty] parts (report/uncertainty.py)
    # every numeric column's unit readable from the CSV itself; the dictionary of them all
    t = {name: with_units(name, df, rv) for name, df in t.items()}
    t["data_dictionary.csv"] = build_dictionary(rv, t)
    return t


def _population_summary(rv):
    if not rv.population_requested:
        return None
    p = rv.population
    if p is None:
        return {"method": rv.settings.population_method, "error": rv.population_error}
    out = p.summary()
    out["flags"] = list(p.diagnostics.get("flags", ()))
    out["uninformed"] = list(p.diagnostics.get("uninformed", ()))   # what non_identifiable names
    out["vpc"] = ({"replicates": rv.vpc.n_replicates, "ci": rv.vpc.ci,
                   "percentiles": list(rv.vpc.percentiles), "seed": rv.vpc.settings.get("seed")}
                  if rv.vpc is not None else None)
    if rv.population_error:
        out["error"] = rv.population_error
    return out


def _all_files(rv, files: pd.DataFrame) -> pd.DataFrame:
    """Input files, plus the trial-sim results read (their SHA-256 too)."""
    if rv.trial_sim is None:
        return files
    return pd.concat([files, rv.trial_sim.files], ignore_index=True)


def _summary(rv, files, vers, generated_at, command) -> dict:
    nca_key = rv.nca.summary()
    nca_key = nca_key[nca_key["parameter"].isin(["CMAX", "TMAX"])
                      | nca_key["parameter"].str.startswith("AUCINT")]
    return jsonable({
        "study": rv.dataset.study.name,
        "participants": len(rv.dataset.subjects),
        "samples": len(rv.dataset.observations),
        "records_audited": len(rv.dataset.audit),
        **escalation_summary(rv),  # decision, MTD now with its basis, warnings, RD (report/escalation.py)
        "fits": ({"model": rv.fit.model, "model_choice": rv.model_choice,
                  "prior": rv.settings.fit_prior, "fits_are": rv.fit_note,
                  "blq_method": rv.fit.blq_method,
                  "error_model": rv.fit.error_model, "n": len(rv.fit.fits),
                  "failed": [f.subject for f in rv.fit.fits if not f.success],
                  "flagged": {f.subject: list(f.flags) for f in rv.fit.fits if f.success and f.flags}}
                 if rv.fit is not None else {"model": rv.settings.model,
                                             "model_choice": rv.model_choice,
                                             "error": rv.fit_error}),
        "nca_by_dose_level": nca_key.drop(columns=["display"]).to_dict(orient="records"),
        "nca_choices": rv.nca.options.describe(),
        **({"population": _population_summary(rv)} if rv.population_requested else {}),
        **({"trial_sim": {"folder": str(rv.trial_sim.folder), **rv.trial_sim.result.to_dict()}}
           if rv.trial_sim is not None else {}),
        **({"uncertainty": uncertainty_summary(rv)} if rv.uncertainty is not None else {}),
        "settings": rv.settings.to_dict(),
        "provenance": {"versions": vers, "input_files": files.to_dict(orient="records"),
                       "command": command, "generated_at": generated_at},
    })


def _parts(rv, files, vers, generated_at, command, tables, fig) -> list:
    """(anchor, navigation label, section builder) in page order."""
    parts = [("recommendation", "Recommendation", lambda: sections.summary_box(rv)),
             ("data", "Data", lambda: sections.data_section(rv, fig)),
             ("expansion", "Expansion / NCA", lambda: sections.expansion_section(rv, fig)),
             ("fits", "Model fits", lambda: sections.fits_section(rv, fig)),
             ("model-vs-observed", "Model vs observed", lambda: model_vs_observed_section(rv))]
    if rv.population_requested:
        parts.append(("population", "Population fit", lambda: sections.population_section(rv, fig)))
    if rv.uncertainty is not None:
        parts.append(("uncertainty", "Uncertainty", lambda: uncertainty_section(rv, fig)))
    parts += [("bcells", "B cells", lambda: sections.bcell_section(rv, fig)),
              ("safety", "Safety & escalation", lambda: sections.safety_section(rv, fig))]
    if rv.trial_sim is not None:
        parts.append(("trials", "Virtual trials", lambda: sections.trial_sim_section(rv, fig)))
    parts.append(("provenance", "Provenance",
                  lambda: sections.provenance_section(rv, files, vers, generated_at, command)))
    parts.append(("dictionary", "Data dictionary",
                  lambda: sections.dictionary_section(tables["data_dictionary.csv"])))
    return parts


def stream_html(fh, rv, files, vers, generated_at, command=None, tables=None,
                progress=None, jobs: int | None = None) -> tuple:
    """Write the self-contained page to the text file ``fh``: the sections are laid out with
    a placeholder per figure, the figures built together (``jobs`` processes, default the
    CPUs available; the bytes do not depend on it) and the page streamed with each figure's
    JSON in its place; ``progress(str)`` is told each step. The figure names, in order.
    """
    say = progress or (lambda msg: None)
    tables = tables if tables is not None else _tables(rv)
    # the figures are registered while the sections are laid out, then built together (in
    # worker processes on a multi-core machine) and streamed into their places
    fig = Figures(jobs=jobs, deferred=True)
    parts = _parts(rv, files, vers, generated_at, command, tables, fig)
    links = "".join(f"<a href='#{a}'>{esc(t)}</a>" for a, t, _ in parts)
    d = rv.decision
    sub = (f"Cohort review · {len(rv.dataset.subjects)} participants"
           + (f" · data as of study day {d.as_of_day:g}" if d is not None else "")
           + f" · ctkinetics {esc(vers['ctkinetics'])}")
    title = esc(rv.dataset.study.name)
    fh.write("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
             "<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>{title}</title><style>{CSS}{PAGE_CSS}</style>"
             f"<script>{plotly_js()}</script></head><body>"
             f"<header><h1>{title}</h1><div class='sub'>{sub}</div></header>"
             f"<nav>{links}</nav><main>")
    texts = []
    for k, (_, label, build) in enumerate(parts, start=1):
        say(f"  report.html {k}/{len(parts)}: {label} ({fig.count} figures so far)")
        texts.append(build())
    for chunk in fig.resolve(texts, progress=lambda m: say("  report.html: " + m)):
        fh.write(chunk)
    fh.write("</main>" + fig.renderer() + "</body></html>\n")
    return tuple(fig.names)


def render_html(rv, files, vers, generated_at, command=None, tables=None,
                jobs: int | None = None) -> tuple[str, tuple]:
    """The page as one string and the names of its figures (``tables``: :func:`_tables` of
    ``rv``, for the data dictionary; computed when not given)."""
    buf = io.StringIO()
    names = stream_html(buf, rv, files, vers, generated_at, command, tables, jobs=jobs)
    return buf.getvalue(), names


def report_inputs(rv) -> list:
    """What a report reads (its output may not be or hold any of it)."""
    out = list(rv.dataset.sources)
    if rv.trial_sim is not None:
        out.append(rv.trial_sim.folder)
    return out


def write_report(rv, out, *, root=None, command: str | None = None,
                 generated_at: str | None = None, progress=None) -> ReportFiles:
    """Write ``out/report.html``, the CSV tables, ``out/summary.json`` and ``manifest.json``.

    Parameters
    ----------
    rv : Review
    out : path or OutputFolder
        Output folder (created; a previous report there is replaced whole, atomically). The
        CLI passes an :class:`~ctkinetics.outputs.OutputFolder` it checked before computing.
    root : path, optional
        The study folder or file; input files are named relative to it in the provenance.
    command : str, optional
        The command line, recorded in the provenance and the manifest.
    generated_at : str, optional
        Timestamp; default now (or ``SOURCE_DATE_EPOCH``).
    progress : callable(str), optional
        Told each step of the writing.

    Returns
    -------
    ReportFiles
        Paths in the final folder, the figure names and the :class:`ReportOutput` written
        (what :func:`read_report` gives back).
    """
    folder = out if isinstance(out, OutputFolder) else OutputFolder(
        out, inputs=report_inputs(rv), command=command)
    command = command if command is not None else folder.command
    say = progress or (lambda msg: None)
    generated_at = generated_at or timestamp()
    files = _all_files(rv, input_files(rv.dataset.sources, root))
    vers = versions()
    tables = _tables(rv)
    tables["input_files.csv"] = files
    with folder:
        say(f"writing {len(tables)} CSV tables")
        for name, df in tables.items():
            folder.write_csv(name, df)
        with folder.open_text("report.html") as fh:
            names = stream_html(fh, rv, files, vers, generated_at, command, tables, say)
        summary = _summary(rv, files, vers, generated_at, command)
        folder.write_text("summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        manifest = folder.commit(failures=rv.failures, created=generated_at)
    from ctkinetics.outputs.tables import as_written

    target = Path(folder.shown)
    output = ReportOutput(summary=json.loads(json.dumps(summary)),
                          tables={n: as_written(df) for n, df in tables.items()},
                          status=manifest.status, failures=manifest.failures)
    return ReportFiles(target / "report.html", target / "summary.json",
                       tuple(target / n for n in tables), names, output)


def read_report(folder) -> ReportOutput:
    """A report folder read back (after checking it against its manifest).

    Raises :class:`~ctkinetics.errors.OutputError` when the folder is not a complete report
    (no manifest, or files that differ from it).
    """
    from ctkinetics.errors import OutputError
    from ctkinetics.outputs import read_manifest, read_table, verify

    folder = Path(folder)
    problems = verify(folder)
    if problems:
        raise OutputError(f"{folder} is not a complete report: " + "; ".join(problems[:5]))
    m = read_manifest(folder)
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    tables = {name: read_table(folder, name, m) for name in m.tables}
    return ReportOutput(summary=summary, tables=tables, status=m.status, failures=m.failures)
