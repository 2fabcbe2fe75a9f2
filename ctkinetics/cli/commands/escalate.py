"""ctk escalate STUDY: the BOIN / TITE-BOIN decision for the next participant, as of a day."""
from __future__ import annotations

from ctkinetics.cli.commands._study import add_study_argument, load_from_args

NAME = "escalate"
HELP = ("Dose-escalation decision from study.toml and safety.csv: per dose level n, DLTs and pending; "
        "escalate / stay / de-escalate / eliminate / stop with the rule; the stagger date.")


def add_arguments(parser) -> None:
    add_study_argument(parser)
    parser.add_argument("--as-of", type=float, default=None, metavar="DAY",
                        help="study day of the decision (default: the latest day in the safety data)")
    parser.add_argument("--min-completers", type=int, default=0, metavar="N",
                        help="guard: escalate only when at least N participants at the current dose have "
                             "complete DLT data (default 0: off)")
    parser.add_argument("--min-pending-followup", type=float, default=0.0, metavar="DAYS",
                        help="guard: escalate only when every pending participant at the current dose has "
                             "at least DAYS of follow-up (default 0: off)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _fmt(v, spec=".3f"):
    import math

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def run(args) -> int:
    import json

    from ctkinetics.escalation import select_mtd
    from ctkinetics.escalation.adapter import decide_study

    ds = load_from_args(args)
    guards = {}
    if args.min_completers:
        guards["min_completers"] = args.min_completers
    if args.min_pending_followup:
        guards["min_pending_followup"] = args.min_pending_followup
    dec, state, design = decide_study(ds, args.as_of, **guards)
    lv = dec.levels
    mtd = None
    if dec.decision == "stop":
        mtd = select_mtd(design, lv["n"].to_numpy(), lv["dlt"].to_numpy(), levels=list(lv["level"]),
                         eliminated_from=dec.eliminated_from)
    if args.json:
        out = dec.to_dict()
        out["design"] = {"target": design.target, "phi1": design.phi1, "phi2": design.phi2,
                         "lambda_e": design.lambda_e, "lambda_d": design.lambda_d,
                         "cohort_size": design.cohort_size, "max_subjects": design.max_subjects,
                         "dlt_window_days": design.dlt_window_days, "stagger_days": design.stagger_days,
                         "min_completers": design.min_completers,
                         "min_pending_followup": design.min_pending_followup}
        if mtd is not None:
            out["mtd"] = {"level": mtd.mtd_level, "reason": mtd.reason,
                          "provisional": bool(lv["pending"].sum() > 0),
                          "table": json.loads(mtd.table.to_json(orient="records"))}
        print(json.dumps(out))
        return 0

    print(f"Study {ds.study.name}: decision as of study day {dec.as_of_day:g}")
    print(f"Design: target {design.target:g}, lambda_e {design.lambda_e:.4f}, lambda_d {design.lambda_d:.4f}, "
          f"cohort {design.cohort_size}, max {design.max_subjects}, DLT window {design.dlt_window_days:g} d, "
          f"stagger {design.stagger_days:g} d")
    if design.min_completers or design.min_pending_followup:
        print(f"Guards before escalating: at least {design.min_completers} completer(s); every pending "
              f"participant followed at least {design.min_pending_followup:g} d")
    print()
    print(f"{'level':>8} {'dose':>10} {'n':>3} {'DLT':>4} {'pend':>5} {'STFT':>6} {'p_hat':>6} "
          f"{'esc<=':>5} {'deesc>=':>7} {'elim>=':>6} {'exp':>4}  status")
    for r in lv.itertuples(index=False):
        status = []
        if r.current:
            status.append("current")
        if r.eliminated:
            status.append("ELIMINATED")
        print(f"{r.level:>8} {_fmt(r.dose, '.3g'):>10} {r.n:>3} {r.dlt:>4} {r.pending:>5} {r.stft:>6.2f} "
              f"{_fmt(r.p_hat):>6} {_fmt(None if r.escalate_if_le is None or str(r.escalate_if_le) == '<NA>' else int(r.escalate_if_le), 'd'):>5} "
              f"{_fmt(None if str(r.deescalate_if_ge) == '<NA>' else int(r.deescalate_if_ge), 'd'):>7} "
              f"{_fmt(None if str(r.eliminate_if_ge) == '<NA>' else int(r.eliminate_if_ge), 'd'):>6} "
              f"{r.n_expansion:>4}  {', '.join(status)}")
    print()
    print("Participants:")
    for p in dec.participants.itertuples(index=False):
        extra = f", DLT on day {p.dlt_day:g}" if p.status == "dlt" and p.dlt_day == p.dlt_day else ""
        print(f"  {p.subject:<10} {p.level:>8}  {p.phase:<10} infused day {p.infusion_day:g}, "
              f"{p.status}, {p.followup_days:g} of {design.dlt_window_days:g} d followed{extra}")
    print()
    t = dec.tite
    if t.pending:
        print(f"TITE-BOIN at {dec.current_level}: n={t.n}, DLT={t.y}, pending={t.pending}, complete={t.complete}, "
              f"STFT={t.stft:.3f}, p_tilde={t.p_tilde:.3f}, p_hat={t.p_hat:.3f}")
    print(f"DECISION: {dec.decision.upper()}" + (f" -> next participant at {dec.next_level}" if dec.next_level else ""))
    print(f"Rule: {dec.rule}")
    if dec.earliest_next_infusion_day is not None:
        print(f"Earliest next infusion: study day {dec.earliest_next_infusion_day:g} ({dec.stagger_note})")
    elif dec.suspended:
        lifts = (f"; if no further DLT, accrual resumes by study day {dec.suspension_lifts_by_day:g}"
                 if dec.suspension_lifts_by_day is not None else "")
        print(f"Accrual suspended{lifts}")
    if mtd is not None:
        print()
        pending = int(lv["pending"].sum())
        note = (f"PROVISIONAL: {pending} participant(s) still pending, counted as no DLT; "
                "final when all DLT windows are complete" if pending else "all DLT windows complete")
        print(f"MTD: {mtd.mtd_level or 'none'} ({mtd.reason}) [{note}]")
        for r in mtd.table.itertuples(index=False):
            if r.n:
                print(f"  {r.level:>8}  estimate {r.estimate:.3f}  95% CrI [{r.ci_low:.3f}, {r.ci_high:.3f}]"
                      f"{'  <- MTD' if r.selected else ''}")
    return 0
