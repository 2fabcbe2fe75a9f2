"""ctk nca STUDY --out DIR: non-compartmental analysis, summaries and dose proportionality.

Writes DIR/nca.csv (long table; ``exclude`` holds why a value is missing or excluded),
nca_wide.csv (excluded values blank, an ``exclude`` column saying which and why),
nca_summary.csv, dose_proportionality.csv, nca_exclusions.csv (every sample left out and every
value a quality rule excluded, with its reason) and nca_settings.csv (every choice). Each table
also carries a ``method`` column stating the choices. The summary printed names how many
participants' λz-dependent values were excluded or not estimable, and why.
"""
from __future__ import annotations

from ctkinetics.cli.commands._study import add_study_argument, load_from_args

NAME = "nca"
HELP = "Non-compartmental analysis (PKNCA/WinNonlin semantics) with per-dose-level summaries."

# kept literal here so `ctk --help` does not import numpy; checked against the registries in tests
AUC_METHOD_CHOICES = ("lin-up/log-down", "linear", "lin-log")
AUC_TYPE_CHOICES = ("last", "all", "inf")
LAMZ_SELECTION_CHOICES = ("best-falling", "pknca")
#: quality-rule options: flag -> (NCAOptions field, PKNCA's default, help)
QUALITY_FLAGS = {
    "--min-adj-r2": ("min_hl_adj_r_squared", "0.9", "exclude λz-dependent values when the λz "
                     "regression's adjusted R² is below this"),
    "--min-r2": ("min_hl_r_squared", "off", "the same with R² (PKNCA's min.hl.r.squared)"),
    "--min-span-ratio": ("min_span_ratio", "2", "exclude λz-dependent values when the λz "
                         "window spans fewer half-lives than this"),
    "--max-aucinf-pext": ("max_aucinf_pext", "20", "exclude AUC∞ and its dependents when more "
                          "than this percentage of it is extrapolated"),
}


def _threshold(flag: str, text: str):
    """A quality-rule threshold: a number, or 'off' for no rule."""
    from ctkinetics.errors import SettingsError

    if text.strip().lower() in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise SettingsError(f"{flag} expects a number or 'off', got {text!r}") from None


def _interval(text: str):
    from ctkinetics.errors import SettingsError

    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise SettingsError(f"--interval expects START,END (e.g. 0,28), got {text!r}") from None
    return a, b


def add_arguments(parser) -> None:
    add_study_argument(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument("--auc-method", choices=AUC_METHOD_CHOICES, default="lin-up/log-down",
                        help="AUC rule (default lin-up/log-down)")
    parser.add_argument("--interval", action="append", default=None, metavar="START,END",
                        help="interval AUC to report, in days (repeatable; default 0,28 and 0,84)")
    parser.add_argument("--auc-type", choices=AUC_TYPE_CHOICES, default="last",
                        help="interval AUC type after Tlast: last (0), all (trailing BLQ as 0), "
                             "inf (Clast·exp(-λz·Δt)) (default last)")
    parser.add_argument("--blq", default=None, metavar="RULE",
                        help="BLQ rule, e.g. first=keep,middle=drop,last=keep (default) or "
                             "before_tmax=keep,after_tmax=drop; actions keep|drop|NUMBER|lloq|lloq/2")
    parser.add_argument("--lambda-z-window", default=None, metavar="LO,HI",
                        help="fit λz on the quantifiable samples in this window (days), e.g. 14,84; "
                             "default: automatic best fit")
    parser.add_argument("--lambda-z-rule", choices=LAMZ_SELECTION_CHOICES, default="best-falling",
                        help="automatic λz window: best-falling (best adjusted R² among falling "
                             "windows) or pknca (PKNCA's exact rule: none when a rising window "
                             "fits best) (default best-falling)")
    for flag, (_, default, text) in QUALITY_FLAGS.items():
        parser.add_argument(flag, default=default, metavar="X|off",
                            help=f"{text} (default {default}; 'off' switches the rule off)")
    parser.add_argument("--cmax-exclude-before", type=float, default=None, metavar="DAYS",
                        help="samples earlier than this (days after infusion) may not define Cmax")
    parser.add_argument("--analyte", action="append", default=None,
                        help="analyse only this analyte (repeatable; default all but B cells)")


def run(args) -> int:
    from pathlib import Path

    from ctkinetics.cli.startup import imports_without_gc

    with imports_without_gc():
        import numpy as np

        import ctkinetics.data.study_schema  # noqa: F401 - pydantic and the study.toml schema, used by load_from_args
        from ctkinetics.cli.commands._output import command_line
        from ctkinetics.nca import NCAOptions, nca
        from ctkinetics.nca.intervals import default_intervals, normalise_intervals
        from ctkinetics.outputs import OutputFolder

    options = NCAOptions(
        auc_method=args.auc_method,
        blq=args.blq,
        auc_type=args.auc_type,
        lamz_window=_interval(args.lambda_z_window) if args.lambda_z_window else None,
        cmax_exclude_before=args.cmax_exclude_before,
        lamz_selection=args.lambda_z_rule,
        **{field: _threshold(flag, getattr(args, flag[2:].replace("-", "_")))
           for flag, (field, _, _) in QUALITY_FLAGS.items()},
    )
    auc_intervals = [_interval(s) for s in args.interval] if args.interval else [(0.0, 28.0), (0.0, 84.0)]
    intervals = normalise_intervals(default_intervals(options.auc_type, auc_intervals), options.auc_type)

    out = OutputFolder(args.out, inputs=[args.study, args.study_toml], command=command_line(args))
    ds = load_from_args(args)
    if args.analyte:
        from ctkinetics.errors import SettingsError

        obs = ds.observations
        unknown = sorted(set(args.analyte) - set(obs["analyte"]))
        if unknown:
            raise SettingsError(f"unknown analyte(s) {', '.join(unknown)}; the study has "
                                f"{', '.join(sorted(set(obs['analyte'])))}")
    res = nca(ds, intervals=intervals, options=options, analytes=args.analyte)

    method = options.method_label()
    first_auc = res.results[res.results["parameter"].str.startswith("AUCINT")]
    which = [("CMAX", 0.0, np.inf)]
    if not first_auc.empty:
        which.append(tuple(first_auc.iloc[0][["parameter", "start", "end"]]))
    summ = res.summary()
    tables = {
        "nca.csv": res.results,
        "nca_wide.csv": res.wide(),
        "nca_summary.csv": summ,
        "dose_proportionality.csv": res.dose_proportionality(which),
        "nca_exclusions.csv": res.exclusions,
    }
    with out:
        for name, df in tables.items():
            out.write_csv(name, df.assign(method=method))
        out.write_csv("nca_settings.csv", res.settings())
        out.commit()

    n_subj = res.results["subject"].nunique()
    print(f"NCA of {n_subj} participant(s), analytes: {', '.join(sorted(res.results['analyte'].unique()))}")
    print(f"Choices: {method}")
    samples = res.exclusions[res.exclusions["record"] == "sample"]
    print(f"Samples left out: {len(samples)} (see nca_exclusions.csv)")
    _print_quality(res)
    show = summ[summ["parameter"].isin(["CMAX", "TMAX"]) | summ["parameter"].str.startswith("AUCINT")]
    if not show.empty:
        print("\nBy dose level:")
        for r in show.itertuples(index=False):
            span = "" if r.parameter in ("CMAX", "TMAX") else f" {r.start:g}-{r.end:g}"
            print(f"  {r.dose_level:>6} {r.analyte:<12} {r.parameter + span:<20} n={r.n:<3d} {r.display}")
    print(f"\nWrote {', '.join(list(tables) + ['nca_settings.csv'])} to {Path(args.out)}")
    return 0


def _print_quality(res) -> None:
    """Which participants' λz-dependent values were excluded or not estimable, and why."""
    q = res.quality_overview()
    if q.empty:
        print("λz quality: every λz-dependent value passed the quality rules")
        return
    print("λz quality (excluded values stay in nca.csv with the reason in 'exclude' and are "
          "left out of summaries):")
    for (analyte, status), g in q.groupby(["analyte", "status"], sort=False):
        print(f"  {analyte}: {status} for {g['n_status'].iloc[0]} of {g['of'].iloc[0]} participant(s)")
        for r in g.itertuples(index=False):
            print(f"      {r.n:>4}  {r.reason}")
