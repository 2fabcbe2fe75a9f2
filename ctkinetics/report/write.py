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
from ctkinetics.report.dictionary import build_dictionary, with_units
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
        **({"population": _population_summary(rv)} if rv.population_requested else {}),
        **({"trial_sim": {"folder": str(rv.trial_sim.folder), **rv.trial_sim.result.to_dict()}}
           if rv.trial_sim is not None else {}),
        "settings": rv.settings.to_dict(),
        "provenance": {"versions": vers, "input_files": files.to_dict(orient="records"),
                       "command": command, "generated_at": generated_at},
    })


def render_html(rv, files, vers, generated_at, command=None, tables=None) -> tuple[str, tuple]:
    """The page and the names of its figures (``tables``: :func:`_tables` of ``rv``, for the
    data dictionary; computed when not given)."""
    tables = tables if tables is not None else _tables(rv)
    fig = Figures()
    body = [sections.summary_box(rv),
            sections.data_section(rv, fig), sections.expansion_section(rv, fig),
            sections.fits_section(rv, fig)]
    nav = [("recommendation", "Recommendation"), ("data", "Data"), ("expansion", "Expansion / NCA"),
           ("fits", "Model fits")]
    if rv.population_requested:
        body.append(sections.population_section(rv, fig))
        nav.append(("population", "Population fit"))
    body += [sections.bcell_section(rv, fig), sections.safety_section(rv, fig)]
    nav += [("bcells", "B cells"), ("safety", "Safety & escalation")]
    if rv.trial_sim is not None:
        body.append(sections.trial_sim_section(rv, fig))
        nav.append(("trials", "Virtual trials"))
    body.append(sections.provenance_section(rv, files, vers, generated_at, command))
    nav.append(("provenance", "Provenance"))
    body.append(sections.dictionary_section(tables["data_dictionary.csv"]))
    nav.append(("dictionary", "Data dictionary"))
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
    files = _all_files(rv, input_files(rv.dataset.sources, root))
    vers = versions()
    written = []
    tables = _tables(rv)
    for name, df in tables.items():
        p = out / name
        pd.DataFrame(df).to_csv(p, index=False, lineterminator="\n")
        written.append(p)
    files.to_csv(out / "input_files.csv", index=False, lineterminator="\n")
    written.append(out / "input_files.csv")
    text, names = render_html(rv, files, vers, generated_at, command, tables)
    html_path = out / "report.html"
    html_path.write_text(text, encoding="utf-8")
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(_summary(rv, files, vers, generated_at, command), indent=2,
                                       ensure_ascii=False) + "\n", encoding="utf-8")
    return ReportFiles(html_path, summary_path, tuple(written), names)
