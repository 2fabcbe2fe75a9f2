"""ctk escalate STUDY: the BOIN / TITE-BOIN decision for the next participant, as of a day.

Everything printed comes from :func:`ctkinetics.escalation.review_escalation`, the same review
the cohort report and its summary.json read (one MTD, one decision).
"""
from __future__ import annotations

from ctkinetics.cli.commands._study import add_study_argument, load_from_args

NAME = "escalate"
HELP = ("Dose-escalation decision from study.toml and safety.csv: per dose level n, DLTs and pending; "
        "escalate / stay / de-escalate / eliminate / stop with the rule; the stagger date; the MTD now.")


def add_arguments(parser) -> None:
    add_study_argument(parser)
    parser.add_argument("--as-of", type=str, default=None, metavar="DAY",
                        help="study day of the decision: the data are replayed as known that day "
                             "(default: the latest day in the safety data)")
    parser.add_argument("--min-completers", type=int, default=0, metavar="N",
                        help="guard: escalate only when at least N participants at the current dose have "
                             "complete DLT data (default: the study's [design] min_completers, else off)")
    parser.add_argument("--min-pending-followup", type=float, default=0.0, metavar="DAYS",
                        help="guard: escalate only when every pending participant at the current dose has "
                             "at least DAYS of follow-up (default: the study's [design], else off)")
    parser.add_argument("--paths", type=int, default=0, metavar="K",
                        help="print the dose-transition pathways of the next K cohorts (every outcome "
                             "0..cohort size DLTs and the decision it leads to)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _fmt(v, spec=".3f"):
    import math

    if v is None or (isinstance(v, float) and math.isnan(v)) or str(v) == "<NA>":
        return "-"
    return format(v, spec)


def _print_levels(review) -> None:
    print(f"{'level':>8} {'dose':>10} {'n':>3} {'DLT':>4} {'pend':>5} {'n.e.':>5} {'STFT':>6} {'p_hat':>6} "
          f"{'esc<=':>5} {'deesc>=':>7} {'elim>=':>6} {'exp':>4}  status")
    for r in review.decision.levels.itertuples(index=False):
        status = [w for w, on in (("current", r.current), ("ELIMINATED", r.eliminated), ("RETIRED", r.closed),
                                  ("GATE HELD", r.gate_held)) if on]
        print(f"{r.level:>8} {_fmt(r.dose, '.3g'):>10} {r.n:>3} {r.dlt:>4} {r.pending + r.partial:>5} "
              f"{r.not_evaluable:>5} {r.stft:>6.2f} {_fmt(r.p_hat):>6} {_fmt(r.escalate_if_le, 'd'):>5} "
              f"{_fmt(r.deescalate_if_ge, 'd'):>7} {_fmt(r.eliminate_if_ge, 'd'):>6} {r.n_expansion:>4}  "
              f"{', '.join(status)}")


def _print_participants(review) -> None:
    T = review.design.dlt_window_days
    print("Participants:")
    for p in review.participants.itertuples(index=False):
        extra = f", DLT on day {p.dlt_day:g}" if p.status == "dlt" and p.dlt_day == p.dlt_day else ""
        moved = f" (planned {p.planned_level})" if p.planned_level != p.level else ""
        why = f" — {p.reason}" if p.reason else ""
        print(f"  {p.subject:<10} {p.level:>8}{moved}  {p.phase:<10} infused day {p.infusion_day:g}, "
              f"{p.status}, {p.followup_days:g} of {T:g} d followed{extra}{why}")


def _print_decision(review) -> None:
    dec = review.decision
    t = dec.tite
    if t.pending:
        print(f"TITE-BOIN at {dec.current_level}: n={t.n}, DLT={t.y}, pending={t.pending}, complete={t.complete}, "
              f"STFT={t.stft:.3f}, p_tilde={t.p_tilde:.3f}, p_hat={t.p_hat:.3f}")
    print(f"DECISION: {dec.decision.upper()}" + (f" -> next participant at {dec.next_level}" if dec.next_level else ""))
    print(f"Rule: {dec.rule}")
    if dec.earliest_next_infusion_day is not None:
        print(f"Earliest next infusion: study day {dec.earliest_next_infusion_day:g} ({dec.stagger_note})")
    elif dec.gate_held:
        print(f"Next infusion at {dec.next_level}: HELD — {dec.gate_note}")
    elif dec.suspended:
        lifts = (f"; if no further DLT, accrual resumes by study day {dec.suspension_lifts_by_day:g}"
                 if dec.suspension_lifts_by_day is not None else "")
        print(f"Accrual suspended{lifts}")


def _print_mtd(review) -> None:
    m = review.mtd
    print(m.basis)
    for r in m.to_frame().itertuples(index=False):
        if r.n:
            print(f"  {r.level:>8}  n {r.n:>3}  DLT {r.dlt:>2}  estimate {r.estimate:.3f}  95% CrI "
                  f"[{r.ci_low:.3f}, {r.ci_high:.3f}]{'  <- MTD' if r.selected else ''}")


def _print_extras(review) -> None:
    if review.recommendation is not None:
        print()
        print(review.recommendation.basis)
    if len(review.expansion):
        print()
        print("Expansion groups (safety only, no DLT counting):")
        for r in review.expansion.itertuples(index=False):
            print(f"  {r.group:<10} level {r.dose_level:>4}  n {r.n}/{r.cap}  CRS any {r.crs_any} severe "
                  f"{r.crs_severe}  ICANS any {r.icans_any} severe {r.icans_severe}")
    c = review.committee
    if len(c):
        print()
        print("Committee record:")
        for r in c.itertuples(index=False):
            vs = ""
            if r.followed is not None:
                vs = (f" [design: {r.design_decision} -> {r.design_next_level or '-'}; "
                      f"{'followed' if r.followed else 'OVERRIDE'}]")
            print(f"  day {r.day:g}: {r.action} {r.level or r.subject} {r.decision}{vs} {r.rationale}".rstrip())
    if review.paths is not None and len(review.paths.table):
        print()
        print(f"Dose-transition pathways of the next {review.paths.n_cohorts} cohort(s) "
              f"({review.paths.assumptions}):")
        for line in review.paths.lines():
            print(f"  {line}")


def run(args) -> int:
    import json

    from ctkinetics.data.asof import check_as_of
    from ctkinetics.escalation import review_escalation

    as_of = None if args.as_of is None else check_as_of(args.as_of)
    ds = load_from_args(args)
    guards = {}
    if args.min_completers:
        guards["min_completers"] = args.min_completers
    if args.min_pending_followup:
        guards["min_pending_followup"] = args.min_pending_followup
    review = review_escalation(ds, as_of, paths=max(args.paths, 0), **guards)
    if args.json:
        print(json.dumps(review.to_dict()))
        return 0
    d = review.design
    print(f"Study {ds.study.name}: decision as of study day {review.as_of_day:g}")
    for w in review.warnings:
        print(f"WARNING: {w}")
    print(f"Design: target {d.target:g}, lambda_e {d.lambda_e:.4f}, lambda_d {d.lambda_d:.4f}, "
          f"cohort {d.cohort_size}, max {d.max_subjects}, DLT window {d.dlt_window_days:g} d, "
          f"stagger {d.stagger_days:g} d")
    if d.min_completers or d.min_pending_followup:
        print(f"Guards before escalating: at least {d.min_completers} completer(s); every pending "
              f"participant followed at least {d.min_pending_followup:g} d")
    print()
    _print_levels(review)
    print()
    _print_participants(review)
    print()
    _print_decision(review)
    print()
    _print_mtd(review)
    _print_extras(review)
    return 0
