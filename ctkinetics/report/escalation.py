"""The escalation part of the cohort report: the recommendation box at the top, the safety and
escalation section, the recommended-dose table, and their CSV tables and summary.json entries.

Everything is read from one :class:`ctkinetics.escalation.EscalationReview`
(:func:`ctkinetics.escalation.review_escalation`), the same object ``ctk escalate`` prints, so
the report, ``summary.json``, ``mtd.csv`` and the CLI name the same decision and the same MTD.
"""
from __future__ import annotations

import pandas as pd

from ctkinetics import plots
from ctkinetics.report.html import collapsible, esc, fmt, table

#: Cohorts in the report's dose-transition pathways.
PATH_COHORTS = 2
_PROB = dict.fromkeys(("estimate_raw", "estimate", "ci_low", "ci_high", "p_overdose", "p_dlt", "p_efficacy",
                       "desirability"), "probability")


def escalation_part(dataset, settings) -> dict:
    """The Review's escalation fields: review, decision, design, boundaries, mtd and the error
    text (no safety data). ``dataset`` is already cut to ``settings.as_of`` when one is given."""
    from ctkinetics.escalation import boundaries, review_escalation

    if dataset.safety is None:
        return dict(escalation=None, decision=None, design=None, boundaries=None, mtd=None,
                    escalation_error="no safety data (safety.csv): no escalation decision")
    rev = review_escalation(dataset, settings.as_of, paths=PATH_COHORTS, cut=False, tite=settings.tite)
    d = rev.design
    n_cohorts = max(1, -(-d.max_subjects // d.cohort_size))
    table_ = boundaries(d.target, d.phi1, d.phi2, d.cohort_size, n_cohorts, d.cutoff_eli, every_n=True,
                        extrasafe=d.extrasafe, offset=d.offset)
    return dict(escalation=rev, decision=rev.decision, design=d, boundaries=table_, mtd=rev.mtd,
                escalation_error="")


def _review(rv):
    return getattr(rv, "escalation", None)


# --------------------------------------------------------------------------------------------
def decision_box(rv, anchor: bool = False) -> str:
    """The recommendation: the design's decision, the MTD now with its basis, the RD, and the
    warnings a committee must read first."""
    rid = " id=recommendation" if anchor else ""
    d = rv.decision
    if d is None:
        return f"<div class='box warn'{rid}>{esc(rv.escalation_error)}</div>"
    rev = _review(rv)
    nxt = ""
    if d.next_level is not None:
        nxt = f"<br>Next participant: dose level <b>{esc(d.next_level)}</b>"
        if d.earliest_next_infusion_day is not None:
            nxt += f", not before study day <b>{fmt(d.earliest_next_infusion_day)}</b>"
    if d.gate_held:
        nxt += f"<br><b>Stagger gate held for committee review</b>: {esc(d.gate_note)}"
    if d.suspended:
        nxt += "<br><b>Accrual suspended</b>"
        if d.suspension_lifts_by_day is not None:
            nxt += f" until about study day {fmt(d.suspension_lifts_by_day)} if no further DLT"
    mtd = f"<br><b>MTD now</b>: {esc(rv.mtd.basis)}" if rv.mtd is not None and hasattr(rv.mtd, "basis") else ""
    rd = (f"<br><b>Recommended dose</b>: {esc(rev.recommendation.basis)}"
          if rev is not None and rev.recommendation is not None else "")
    warn = ""
    if rev is not None and rev.warnings:
        items = "".join(f"<li>{esc(w)}</li>" for w in rev.warnings)
        warn = f"<div class='box warn'><b>Before reading the decision</b>:<ul>{items}</ul></div>"
    return (f"{warn}<div class='box decision'{rid}>Design recommendation as of study day {fmt(d.as_of_day)} "
            f"(current dose level {esc(d.current_level)}):<div class='big'>{esc(d.decision)}</div>"
            f"Rule: {esc(d.rule)}{nxt}{mtd}{rd}<br><span class='note'>{esc(d.stagger_note)}</span></div>")


def _design_note(des) -> str:
    opts = []
    if des.n_earlystop is not None:
        opts.append(f"stop early with {des.n_earlystop} at a dose (n.earlystop)")
    if des.extrasafe:
        opts.append(f"extra-safe stop at the lowest dose (cutoff {des.cutoff_eli:g} − {des.offset:g})")
    if des.bound_mtd:
        opts.append("MTD estimate ≤ λd (boundMTD)")
    if des.min_completers or des.min_pending_followup:
        opts.append(f"guards: {des.min_completers} completer(s), {des.min_pending_followup:g} d follow-up")
    p = des.protocol
    return (f"<p class='note'>{'TITE-BOIN' if des.tite else 'BOIN'}: target {des.target:g}, "
            f"λe = {des.lambda_e:.4f}, λd = {des.lambda_d:.4f}, elimination if Pr(p &gt; {des.target:g} | data) "
            f"&gt; {des.cutoff_eli:g}; DLT window {des.dlt_window_days:g} days, stagger {des.stagger_days:g} "
            f"days{'; ' + esc('; '.join(opts)) if opts else ''}.<br>Protocol rules: early end of the window — "
            f"{esc(p.evaluability.describe())}; sentinel gate held on {esc(p.sentinel.describe())}; "
            f"{esc(p.shortfall.describe())}; MTD now: {esc(des.mtd_pending)} policy for pending participants.</p>")


def _status_class(r) -> str:
    return {"dlt": "fail", "not evaluable": "flag", "awaiting committee": "flag"}.get(r["status"], "")


def safety_section(rv, fig) -> str:
    """Section 5: safety and the escalation recommendation (see the module doc)."""
    out = ["<h2 id='safety'>5. Safety and the escalation recommendation</h2>"]
    d = rv.decision
    if d is None:
        out.append(f"<div class='box warn'>{esc(rv.escalation_error)}</div>")
        return "<section>" + "".join(out) + "</section>"
    rev, des = _review(rv), rv.design
    out += [decision_box(rv), _design_note(des)]
    committee = rev.committee if rev is not None else None
    out.append(fig(plots.swimmer.spec(d, dlt_window_days=des.dlt_window_days, committee=committee), "swimmer"))
    out.append(fig(plots.boin_chart.spec(rv.boundaries, d), "boin_chart"))
    out.append("<h3>By dose level</h3>")
    out.append(table(d.levels, ["level", "dose", "n", "dlt", "pending", "partial", "complete", "not_evaluable",
                                "n_expansion", "stft", "p_hat", "escalate_if_le", "deescalate_if_ge",
                                "eliminate_if_ge", "eliminated", "closed", "current", "stagger_ok_from_day",
                                "gate_held"],
                     labels={"p_hat": "p̂ (TITE)", "stft": "STFT", "n": "evaluable", "partial": "partial follow-up",
                             "not_evaluable": "not evaluable", "escalate_if_le": "escalate if DLT ≤",
                             "deescalate_if_ge": "de-escalate if DLT ≥", "eliminate_if_ge": "eliminate if DLT ≥",
                             "closed": "retired", "stagger_ok_from_day": "others from day",
                             "gate_held": "sentinel gate held"},
                     text_columns=("level",)))
    parts = rev.participants if rev is not None else d.participants
    out.append("<h3>Participants</h3><p class='note'>Red: DLT; orange: not evaluable or awaiting the "
               "committee. <i>reason</i> says why a window ended early or a participant left the DLT count.</p>")
    out.append(table(parts, row_class=_status_class,
                     labels={"followup_days": "days in window", "window_end_day": "window ends day",
                             "dlt_day": "DLT day", "planned_level": "planned level", "dose_received": "dose received"},
                     text_columns=("subject", "level", "planned_level", "phase", "status", "reason", "group",
                                   "window_end_reason")))
    out += _mtd_part(rv)
    if rev is not None:
        out += _review_parts(rv, rev)
    saf = rv.dataset.safety
    for a in rv.car_analytes[:1]:
        out.append(fig(plots.exposure_vs_toxicity.spec(rv.nca, saf, a), f"exposure_vs_toxicity:{a}"))
    return "<section>" + "".join(out) + "</section>"


def _mtd_part(rv) -> list:
    if rv.mtd is None:
        return []
    basis = rv.mtd.basis if hasattr(rv.mtd, "basis") else rv.mtd.reason
    return ["<h3 id='mtd'>MTD now</h3>", f"<p>{esc(basis)}</p>",
            table(rv.mtd.to_frame(), text_columns=("level",), formats=_PROB)]


def _review_parts(rv, rev) -> list:
    out = []
    if rev.paths is not None and len(rev.paths.table):
        out.append(f"<h3>Dose-transition pathways of the next {rev.paths.n_cohorts} cohorts</h3>"
                   f"<p class='note'>Every outcome of the next cohorts and the decision it leads to "
                   f"({esc(rev.paths.assumptions)}).</p>")
        out.append(collapsible(f"{len(rev.paths.table)} pathways",
                               "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in rev.paths.lines()) + "</ul>"
                               + table(rev.paths.to_frame()), open_=True))
    if len(rev.expansion):
        out.append("<h3>Expansion groups (safety only; DLTs do not drive dose decisions)</h3>")
        out.append(table(rev.expansion, text_columns=("group", "dose_level"),
                         labels={"crs_severe": f"CRS ≥ {rv.design.protocol.sentinel.crs_grade:g}",
                                 "icans_severe": f"ICANS ≥ {rv.design.protocol.sentinel.icans_grade:g}",
                                 "dlt_criteria_met_monitoring": "events meeting DLT criteria (monitoring)",
                                 "places_left": "places left"}))
    if len(rev.no_expansion):
        crit = rv.dataset.study.protocol.no_expansion
        out.append(f"<h3>No obvious CAR-T expansion? (for the committee to confirm)</h3><p class='note'>"
                   f"Criterion: {esc(crit.describe())}. It changes no decision by itself: a participant "
                   "counts as <code>no_expansion</code> only when safety.csv records it (and the committee "
                   "confirmed it).</p>")
        out.append(table(rev.no_expansion, row_class=lambda r: "" if r["agrees"] else "flag",
                         text_columns=("subject", "dose_level", "analyte", "verdict")))
    if len(rev.committee):
        out.append("<h3 id='committee'>Committee record</h3><p class='note'>From decisions.csv; for each "
                   "decision the design's recommendation on that day (data cut to that day). Orange: the "
                   "committee departed from the design.</p>")
        out.append(table(rev.committee, row_class=lambda r: "flag" if r["followed"] is False else "",
                         text_columns=tuple(c for c in rev.committee.columns if c != "day")))
    out += _rd_part(rv, rev)
    if len(rev.audit):
        out.append("<h3>Participants the protocol's rules left out or moved</h3>")
        out.append(table(rev.audit, text_columns=tuple(rev.audit.columns)))
    return out


def _kinetics_by_level(rv) -> pd.DataFrame:
    """Geometric-mean Cmax and AUC0-28 by dose level of the first CAR-T analyte (from the NCA
    the report already computed)."""
    if not rv.car_analytes or rv.nca is None:
        return pd.DataFrame(columns=["level"])
    s = rv.nca.summary()
    s = s[s["analyte"] == rv.car_analytes[0]]
    value = "geo_mean" if "geo_mean" in s.columns else ("gmean" if "gmean" in s.columns else None)
    if value is None or s.empty:
        return pd.DataFrame(columns=["level"])
    out = {}
    for name, mask in (("cmax_geo_mean", s["parameter"] == "CMAX"),
                       ("auc0_28_geo_mean", s["parameter"].str.startswith("AUCINT") & (s["end"] == 28))):
        sub = s[mask]
        out[name] = dict(zip(sub["dose_level"].astype(str), sub[value]))
    levels = sorted(set().union(*[set(v) for v in out.values()])) if out else []
    return pd.DataFrame({"level": levels, **{k: [v.get(lv) for lv in levels] for k, v in out.items()}})


def _rd_part(rv, rev) -> list:
    r = rev.recommendation
    if r is None:
        return []
    t = r.obd.to_frame()
    kin = _kinetics_by_level(rv)
    if len(kin):
        t = t.merge(kin, on="level", how="left")
    out = ["<h3 id='rd'>Recommended dose: efficacy, kinetics and toxicity by level</h3>",
           f"<div class='box decision'><b>RD</b>: {esc(r.basis)}<br><span class='note'>BOIN12's next cohort "
           f"from the current level: {esc(r.next_level or 'stop')} ({esc(r.next_rule)}).</span></div>",
           "<p class='note'>Toxicity: isotonic DLT estimate (BOIN); efficacy: responders of the "
           f"<code>{esc(rv.dataset.study.protocol.efficacy.endpoint)}</code> endpoint; utility by BOIN12's "
           "utilities; desirability = Pr(utility &gt; benchmark); kinetics: NCA geometric means of the "
           "participants at each level. The committee weighs them together (DOMAIN §7).</p>",
           table(t, row_class=lambda x: "flag" if not x["admissible"] else "", text_columns=("level",),
                 formats=_PROB),
           collapsible("Participants' outcomes used", table(r.outcomes, text_columns=("subject", "level")))]
    return out


# --------------------------------------------------------------------------------------------
def escalation_tables(rv) -> dict:
    """The CSV tables of the escalation part (file name -> frame)."""
    if rv.decision is None:
        return {}
    t = {"escalation_levels.csv": rv.decision.levels, "boin_boundaries.csv": rv.boundaries.to_frame()}
    rev = _review(rv)
    t["escalation_participants.csv"] = rev.participants if rev is not None else rv.decision.participants
    if rv.mtd is not None:
        t["mtd.csv"] = rv.mtd.to_frame()
    if rev is None:
        return t
    if rev.paths is not None:
        t["dose_paths.csv"] = rev.paths.to_frame()
    for name, frame in (("expansion_groups.csv", rev.expansion), ("committee_log.csv", rev.committee),
                        ("no_expansion_check.csv", rev.no_expansion)):
        if len(frame):
            t[name] = frame
    if rev.recommendation is not None:
        t["recommended_dose.csv"] = rev.recommendation.obd.to_frame()
    if len(rev.audit):
        t["escalation_audit.csv"] = rev.audit
        t["audit.csv"] = pd.concat([rv.dataset.audit, rev.audit], ignore_index=True)
    return t


def escalation_summary(rv) -> dict:
    """summary.json's escalation entries: the decision, the MTD now (level, reason, policy,
    basis) and what the committee must read first."""
    rev = _review(rv)
    if rv.decision is None:
        return {"decision": None, "escalation_error": rv.escalation_error or None, "mtd": None}
    if rev is None:
        return {"decision": rv.decision.to_dict(), "escalation_error": None,
                "mtd": {"level": rv.mtd.mtd_level, "reason": rv.mtd.reason} if rv.mtd is not None else None}
    d = rev.protocol_dict()
    return {"decision": rv.decision.to_dict(), "escalation_error": None, "mtd": d["mtd"],
            "escalation_warnings": d["warnings"], "recommended_dose": d["recommended_dose"],
            "committee": d["committee"], "expansion_groups": d["expansion_groups"]}
