"""The cohort review report: what the dose-review committee opens after each cohort.

>>> from ctkinetics.report import build_review, write_report, ReportSettings   # doctest: +SKIP
>>> rv = build_review(load_study("data/sample/sle_cohort"), ReportSettings())  # doctest: +SKIP
>>> write_report(rv, "report/")                                                # doctest: +SKIP

Modules, one concept each: :mod:`.settings` (every option, TOML), :mod:`.review` (NCA → fits and their
bands from :func:`ctkinetics.estimation.fitted_curves` → escalation as one result), :mod:`.summaries` (data counts, geometric-mean profiles, B-cell
aplasia), :mod:`.html` (escaping, tables,
figures, the page), :mod:`.sections` (the page's sections), :mod:`.provenance` (hashes,
versions, timestamp), :mod:`.write` (report.html, CSV tables, summary.json), :mod:`.trialsim`
(a ``ctk trial-sim`` output folder read back for the "Virtual trials" section).

Optional parts, off by default (the default report is unchanged): a population fit with its VPC
(``ReportSettings(population_method="focei"|"saem")``, section 3b) and virtual trials
(``ReportSettings(trial_sim_results=DIR)``, section 5b).
"""
from ctkinetics.report.review import Review, build_review
from ctkinetics.report.settings import ReportSettings, load_settings, settings_from_mapping
from ctkinetics.report.summaries import bcell_aplasia, data_counts, geometric_mean_profile
from ctkinetics.report.write import ReportFiles, ReportOutput, read_report, render_html, write_report

__all__ = ["ReportSettings", "load_settings", "settings_from_mapping", "Review", "build_review",
           "write_report", "read_report", "render_html", "ReportFiles", "ReportOutput", "geometric_mean_profile",
           "bcell_aplasia", "data_counts"]
