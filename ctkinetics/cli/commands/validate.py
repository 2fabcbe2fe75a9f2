"""ctk validate STUDY: what was read, what was excluded and why, and the warnings."""
from __future__ import annotations

from ctkinetics.cli.commands._study import add_study_argument, load_from_args

NAME = "validate"
HELP = "Read and validate a study; print participants, samples, BLQ counts, exclusions and warnings."


def add_arguments(parser) -> None:
    add_study_argument(parser)


def run(args) -> int:
    ds = load_from_args(args)
    st = ds.study
    print(f"Study: {st.name}  (format: {ds.format})")
    print("Files read:")
    for s in ds.sources:
        print(f"  {s}")
    subj = ds.subjects
    print("\nParticipants per dose level:")
    for level, dose in st.dose_levels.items():
        n = int((subj["dose_level"] == level).sum())
        print(f"  level {level:>4}  {dose:10.3g} cells  {n:3d} participant(s)")
    print(f"  total {len(subj)}")
    print("\nSamples per analyte (the report's data-description table; pre-infusion samples below "
          "the LLOQ are structural zeros, not counted as BLQ):")
    counts = ds.counts()
    print(f"  {'analyte':<16} {'unit':<14} {'particip.':>9} {'samples':>8} {'pre-inf':>8} {'post-inf':>8} "
          f"{'BLQ post':>8} {'BLQ %':>6} {'missing':>8}")
    for r in counts.itertuples(index=False):
        pct = "" if r.blq_pct != r.blq_pct else f"{r.blq_pct:.1f}"
        print(f"  {r.analyte:<16} {r.unit:<14} {r.participants:>9} {r.samples:>8} {r.pre_infusion:>8} "
              f"{r.post_infusion:>8} {r.blq_post_infusion:>8} {pct:>6} {r.missing:>8}")
    if ds.safety is not None:
        s = ds.safety
        print(f"\nSafety: {len(s)} participant(s), {int((s['dlt'] == 1).sum())} DLT(s), "
              f"{int(s['dlt'].isna().sum())} pending")
    _print_events(ds)  # issue 17: re-infusions and time-varying covariates
    audit = ds.audit
    print(f"\nAudit: {len(audit)} record(s) excluded, changed or labelled")
    if len(audit):
        for (action, reason), g in audit.groupby(["action", "reason"], sort=False):
            print(f"  {len(g):4d} {action}: {reason}")
            for r in g.head(5).itertuples(index=False):
                print(f"        {r.file} row {r.row}: subject {r.subject}, {r.analyte}, t={r.time}")
            if len(g) > 5:
                print(f"        ... {len(g) - 5} more")
    print(f"\nWarnings: {len(ds.warnings)}")
    for w in ds.warnings:
        print(f"  - {w}")
    return 0


def _print_events(ds) -> None:
    """Re-infusions and time-varying covariates, when the study has any (issue 17)."""
    later = ds.doses[ds.doses["time"] > 0]
    if len(later):
        who = ", ".join(f"{r.subject} day {r.time:g} ({r.amount:.3g} cells)" for r in later.itertuples(index=False))
        print(f"\nRe-infusions: {len(later)} ({who})")
    tv = ds.time_varying
    if len(tv):
        print("\nTime-varying covariates (value from each record's time on):")
        for name, g in tv.groupby("covariate", sort=False):
            print(f"  {name:16s} {g['subject'].nunique():4d} participant(s) {len(g):6d} record(s)  "
                  f"range {g['value'].min():g} - {g['value'].max():g}")
