"""ctk nca STUDY --out DIR: non-compartmental analysis, summaries and dose proportionality.

Writes DIR/nca.csv (long table), nca_wide.csv, nca_summary.csv, dose_proportionality.csv,
nca_exclusions.csv (every sample left out, with its reason) and nca_settings.csv (every
choice). Each table also carries a ``method`` column stating the choices.
"""
from __future__ import annotations

from ctkinetics.cli.commands._study import add_study_argument, load_from_args

NAME = "nca"
HELP = "Non-compartmental analysis (PKNCA/WinNonlin semantics) with per-dose-level summaries."

# kept literal here so `ctk --help` does not import numpy; checked against the registries in tests
AUC_METHOD_CHOICES = ("lin-up/log-down", "linear", "lin-log")
AUC_TYPE_CHOICES = ("last", "all", "inf")


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
    parser.add_argument("--cmax-exclude-before", type=float, default=None, metavar="DAYS",
                        help="samples earlier than this (days after infusion) may not define Cmax")
    parser.add_argument("--analyte", action="append", default=None,
                        help="analyse only this analyte (repeatable; default all but B cells)")


def run(args) -> int:
    from pathlib import Path

    import numpy as np

    from ctkinetics.nca import NCAOptions, nca
    from ctkinetics.nca.intervals import default_intervals, normalise_intervals

    options = NCAOptions(
        auc_method=args.auc_method,
        blq=args.blq,
        auc_type=args.auc_type,
        lamz_window=_interval(args.lambda_z_window) if args.lambda_z_window else None,
        cmax_exclude_before=args.cmax_exclude_before,
    )
    auc_intervals = [_interval(s) for s in args.interval] if args.interval else [(0.0, 28.0), (0.0, 84.0)]
    intervals = normalise_intervals(default_intervals(options.auc_type, auc_intervals), options.auc_type)

    from ctkinetics.cli.commands._output import command_line
    from ctkinetics.outputs import OutputFolder

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
    tables = {
        "nca.csv": res.to_frame(),
        "nca_wide.csv": res.wide(),
        "nca_summary.csv": res.summary(),
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
    print(f"Samples left out: {len(res.exclusions)} (see nca_exclusions.csv)")
    summ = res.summary()
    show = summ[summ["parameter"].isin(["CMAX", "TMAX"]) | summ["parameter"].str.startswith("AUCINT")]
    if not show.empty:
        print("\nBy dose level:")
        for r in show.itertuples(index=False):
            span = "" if r.parameter in ("CMAX", "TMAX") else f" {r.start:g}-{r.end:g}"
            print(f"  {r.dose_level:>6} {r.analyte:<12} {r.parameter + span:<20} n={r.n:<3d} {r.display}")
    print(f"\nWrote {', '.join(list(tables) + ['nca_settings.csv'])} to {Path(args.out)}")
    return 0
