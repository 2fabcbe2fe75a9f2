"""ctk boin table | simulate | paths | boin12-table: BOIN decision tables, operating
characteristics, dose-transition pathways and BOIN12's desirability table."""
from __future__ import annotations

import sys

NAME = "boin"
HELP = ("BOIN boundary tables (ctk boin table), simulated operating characteristics (ctk boin simulate), "
        "dose-transition pathways (ctk boin paths) and BOIN12's desirability table (ctk boin boin12-table).")


def _design_options(p) -> None:
    p.add_argument("--target", type=float, default=0.30, help="target DLT probability (default 0.30)")
    p.add_argument("--phi1", type=float, default=None, help="highest rate deemed too low (default 0.6 x target)")
    p.add_argument("--phi2", type=float, default=None, help="lowest rate deemed too toxic (default 1.4 x target)")
    p.add_argument("--cohort-size", type=int, default=3, help="participants per cohort (default 3)")
    p.add_argument("--cohorts", type=int, default=4, help="number of cohorts (default 4)")
    p.add_argument("--cutoff-eli", type=float, default=0.95,
                   help="eliminate a dose when Pr(p > target | data) exceeds this (default 0.95)")
    p.add_argument("--extrasafe", action="store_true",
                   help="R BOIN's extra-safe rule: stop when the lowest dose has Pr(p > target) > cutoff-eli - offset")
    p.add_argument("--offset", type=float, default=0.05, help="offset of --extrasafe (default 0.05, below 0.5)")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="boin_command", metavar="{table,simulate,paths,boin12-table}")
    t = sub.add_parser("table", help="escalation / de-escalation / elimination boundaries by number treated",
                       description="Print the BOIN decision table as CSV: n, escalate_if_le, "
                                   "deescalate_if_ge, eliminate_if_ge (empty where no elimination applies).")
    _design_options(t)
    t.add_argument("--every-n", action="store_true", help="one row for every n, not only cohort ends")
    t.add_argument("--out", default=None, metavar="FILE", help="write the CSV here instead of stdout")
    s = sub.add_parser("simulate", help="operating characteristics by simulation",
                       description="Simulate BOIN (or TITE-BOIN with --tite) trials; print selection %, "
                                   "participants and DLTs per dose, and with --tite the trial duration.")
    _design_options(s)
    s.add_argument("--true-tox", required=True, metavar="P1,P2,...",
                   help="true DLT probability of each dose level, lowest first")
    s.add_argument("--trials", type=int, default=10000, help="number of simulated trials (default 10000)")
    s.add_argument("--seed", type=int, default=None, help="random seed (for reproducible results)")
    s.add_argument("--start-level", type=int, default=1, help="starting dose level, 1-based (default 1)")
    s.add_argument("--tite", action="store_true",
                   help="TITE-BOIN on a calendar: Poisson accrual, pending DLTs, suspension and stagger")
    s.add_argument("--accrual-per-month", type=float, default=None, metavar="R",
                   help="mean arrivals per month for the calendar simulation (default 2 with --tite); "
                        "given without --tite, plain BOIN waits for complete DLT data on the calendar")
    s.add_argument("--dlt-window", type=float, default=28.0, help="DLT window in days (default 28)")
    s.add_argument("--stagger-days", type=float, default=14.0,
                   help="days the first participant of a dose group must be past infusion before the next "
                        "of that group (default 14; 0 disables)")
    s.add_argument("--min-completers", type=int, default=0, metavar="N",
                   help="guard: escalate only with at least N complete DLT windows at the current dose (default 0: off)")
    s.add_argument("--min-pending-followup", type=float, default=0.0, metavar="DAYS",
                   help="guard (calendar simulation): escalate only when every pending participant has at least "
                        "DAYS of follow-up (default 0: off)")
    s.add_argument("--n-earlystop", type=int, default=None, metavar="N",
                   help="R BOIN's n.earlystop: stop when N are treated at the current dose and the rules would "
                        "keep the next participant there (default: off)")
    s.add_argument("--bound-mtd", action="store_true",
                   help="R BOIN's boundMTD: the selected MTD's isotonic estimate must not exceed lambda_d")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    p = sub.add_parser("paths", help="dose-transition pathways: every outcome of the next cohorts and its decision",
                       description="Print every outcome (0..cohort size DLTs) of the next cohorts from the start "
                                   "of a trial and the decision it leads to, as the escalation R package's "
                                   "get_dose_paths. For a running study: ctk escalate STUDY --paths K.")
    _design_options(p)
    p.add_argument("--levels", type=int, required=True, help="number of dose levels")
    p.add_argument("--start-level", type=int, default=1, help="level of the first cohort, 1-based (default 1)")
    p.add_argument("--n-earlystop", type=int, default=None, metavar="N", help="R BOIN's n.earlystop (default off)")
    p.add_argument("--out", default=None, metavar="FILE", help="write the table as CSV here")
    b = sub.add_parser("boin12-table", help="BOIN12 rank-based desirability scores (Lin et al. 2020, Table 3)",
                       description="Print, for each number treated, DLTs and responders, the BOIN12 "
                                   "desirability Pr(utility > benchmark) and its rank (RDS); E = inadmissible.")
    b.add_argument("--phi-t", type=float, default=0.35, help="toxicity limit (default 0.35)")
    b.add_argument("--phi-e", type=float, default=0.25, help="lowest acceptable response rate (default 0.25)")
    b.add_argument("--utilities", default="100,40,60,0", metavar="U1,U2,U3,U4",
                   help="u(efficacy, no DLT), u(neither), u(both), u(DLT, no efficacy) (default 100,40,60,0)")
    b.add_argument("--sizes", default="0,3,6,9", metavar="N1,N2,...", help="numbers treated (default 0,3,6,9)")
    b.add_argument("--out", default=None, metavar="FILE", help="write the CSV here instead of stdout")
    parser.set_defaults(boin_command=None)


def _parse_tox(text: str):
    from ctkinetics.errors import SettingsError

    parts = [x.strip() for x in str(text).split(",") if x.strip()]
    if not parts:
        raise SettingsError("--true-tox needs a comma-separated list of probabilities, e.g. 0.15,0.30,0.45")
    out = []
    for x in parts:
        try:
            v = float(x)
        except ValueError:
            raise SettingsError(f"--true-tox: '{x}' is not a number") from None
        if not 0.0 < v < 1.0:
            raise SettingsError(f"--true-tox: {x} must lie strictly between 0 and 1")
        out.append(v)
    return out


def _run_table(args) -> int:
    from ctkinetics.escalation import boundaries
    from ctkinetics.outputs import check_file, csv_text, write_csv_file

    if args.out:
        check_file(args.out)  # before the computation: a folder, or not writable -> exit 2
    table = boundaries(args.target, args.phi1, args.phi2, args.cohort_size, args.cohorts,
                       cutoff_eli=args.cutoff_eli, every_n=args.every_n, extrasafe=args.extrasafe,
                       offset=args.offset).to_frame()
    if args.out:
        write_csv_file(args.out, table, checked=True)
    else:
        sys.stdout.write(csv_text(table))
    return 0


def _run_simulate(args) -> int:
    import json

    from ctkinetics.errors import SettingsError
    from ctkinetics.escalation import BoinDesign, simulate_boin, simulate_tite

    tox = _parse_tox(args.true_tox)
    if not 1 <= args.start_level <= len(tox):
        raise SettingsError(f"--start-level must be between 1 and {len(tox)}, got {args.start_level}")
    calendar = args.tite or args.accrual_per_month is not None
    design = BoinDesign(target=args.target, phi1=args.phi1, phi2=args.phi2, cohort_size=args.cohort_size,
                        cutoff_eli=args.cutoff_eli, start_level=args.start_level - 1,
                        dlt_window_days=args.dlt_window, stagger_days=args.stagger_days, tite=args.tite,
                        min_completers=args.min_completers, min_pending_followup=args.min_pending_followup,
                        extrasafe=args.extrasafe, offset=args.offset, n_earlystop=args.n_earlystop,
                        bound_mtd=args.bound_mtd)
    if calendar:
        rate = 2.0 if args.accrual_per_month is None else args.accrual_per_month
        oc = simulate_tite(design, tox, args.cohorts, args.trials, seed=args.seed, accrual_per_month=rate)
    else:
        oc = simulate_boin(design, tox, args.cohorts, args.trials, seed=args.seed)
    if args.json:
        print(json.dumps(oc.to_dict()))
        return 0
    kind = ("TITE-BOIN" if args.tite else "BOIN (waiting for complete data)") if calendar else "BOIN"
    print(f"{kind}: target {design.target:g}, cohort size {design.cohort_size}, {args.cohorts} cohorts, "
          f"{oc.n_trials} trials, seed {args.seed}")
    print(f"lambda_e = {design.lambda_e:.4f}, lambda_d = {design.lambda_d:.4f}")
    if calendar:
        print(f"accrual {rate:g}/month, DLT window {design.dlt_window_days:g} d, "
              f"stagger {design.stagger_days:g} d")
    print(f"{'level':>5} {'true tox':>9} {'selected %':>11} {'participants':>13} {'DLTs':>7}")
    for j, p in enumerate(oc.true_tox):
        print(f"{j + 1:>5} {p:>9.3f} {oc.selection_pct[j]:>11.1f} {oc.mean_participants[j]:>13.2f} "
              f"{oc.mean_dlts[j]:>7.2f}")
    print(f"no MTD selected: {oc.no_mtd_pct:.1f} %")
    print(f"mean participants {sum(oc.mean_participants):.2f}, mean DLTs {sum(oc.mean_dlts):.2f}")
    if oc.mean_duration_days is not None:
        print(f"mean duration {oc.mean_duration_days:.1f} days")
    return 0


def _numbers(text: str, what: str, kind=float) -> list:
    from ctkinetics.errors import SettingsError

    try:
        return [kind(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise SettingsError(f"{what} must be comma-separated numbers, got {text!r}") from None


def _run_paths(args) -> int:
    from ctkinetics.errors import SettingsError
    from ctkinetics.escalation import BoinDesign, dose_paths
    from ctkinetics.outputs import check_file, write_csv_file

    if args.levels < 1 or not 1 <= args.start_level <= args.levels:
        raise SettingsError(f"--levels must be >= 1 and --start-level between 1 and --levels, got "
                            f"{args.levels} and {args.start_level}")
    if args.out:
        check_file(args.out)
    design = BoinDesign(target=args.target, phi1=args.phi1, phi2=args.phi2, cohort_size=args.cohort_size,
                        cutoff_eli=args.cutoff_eli, extrasafe=args.extrasafe, offset=args.offset,
                        n_earlystop=args.n_earlystop, max_subjects=max(args.cohorts, 1) * args.cohort_size * 10)
    k = args.levels
    paths = dose_paths(design, [str(j + 1) for j in range(k)], [0] * k, [0] * k, args.start_level - 1,
                       args.cohorts)
    if args.out:
        write_csv_file(args.out, paths.to_frame(), checked=True)
        return 0
    print(f"Dose-transition pathways of {args.cohorts} cohort(s) of {design.cohort_size} from level "
          f"{args.start_level} (target {design.target:g}; {paths.assumptions}):")
    for line in paths.lines():
        print(f"  {line}")
    return 0


def _run_boin12_table(args) -> int:
    from ctkinetics.escalation import Boin12Design, rds_table
    from ctkinetics.outputs import check_file, csv_text, write_csv_file

    if args.out:
        check_file(args.out)
    design = Boin12Design(phi_t=args.phi_t, phi_e=args.phi_e, utilities=tuple(_numbers(args.utilities, "--utilities")))
    table = rds_table(design, _numbers(args.sizes, "--sizes", int))
    if args.out:
        write_csv_file(args.out, table, checked=True)
    else:
        sys.stdout.write(csv_text(table))
    return 0


_SUBCOMMANDS = {"table": _run_table, "simulate": _run_simulate, "paths": _run_paths,
                "boin12-table": _run_boin12_table}


def run(args) -> int:
    from ctkinetics.errors import SettingsError

    fn = _SUBCOMMANDS.get(args.boin_command)
    if fn is None:
        raise SettingsError("choose a subcommand: ctk boin table | simulate | paths | boin12-table ...")
    return fn(args)
