"""Column definitions of the escalation tables the report writes (``escalation_*.csv``,
``dose_paths.csv``, ``expansion_groups.csv``, ``committee_log.csv``, ``no_expansion_check.csv``,
``recommended_dose.csv``), merged into the data dictionary (:mod:`ctkinetics.report.dictionary`).
Units as the dictionary's convention: a literal unit, "1" (dimensionless) or "@col" (in a unit
column of the same CSV). No imports: the dictionary reads it at import time."""

_1 = "1"
#: column -> (label, unit, definition); columns the dictionary already defines are not repeated.
ESCALATION_COLUMNS = {
    "dose_received": ("dose received", "@dose_unit", "CAR+ cells the participant actually received"),
    "planned_level": ("planned level", "", "dose level planned (differs from level when a dose shortfall moved the participant)"),
    "group": ("expansion group", "", "expansion group (default DL<level>)"),
    "crs_grade": ("CRS grade", _1, "highest cytokine release syndrome grade (0-5)"),
    "icans_grade": ("ICANS grade", _1, "highest ICANS grade (0-5)"),
    "window_end_reason": ("window end reason", "", "why the DLT window ended (completed, dlt, withdrawn, lost_to_followup, no_expansion, unrelated_ae, death)"),
    "stop_trial_if_ge": ("stop trial if DLT ≥", _1, "extra-safe rule: DLTs at the lowest level that stop the trial"),
    "path": ("path", _1, "number of the dose-transition pathway"),
    "cap": ("cap", _1, "maximum participants per expansion group ([expansion] max_per_group)"),
    "places_left": ("places left", _1, "participants the group may still take"),
    "first_infusion_day": ("first infusion day", "day", "study day of the group's first infusion"),
    "last_infusion_day": ("last infusion day", "day", "study day of the group's last infusion"),
    "crs_any": ("CRS (any grade)", _1, "participants with CRS of any grade"),
    "crs_severe": ("severe CRS", _1, "participants with CRS at or above the sentinel gate's grade"),
    "icans_any": ("ICANS (any grade)", _1, "participants with ICANS of any grade"),
    "icans_severe": ("severe ICANS", _1, "participants with ICANS at or above the sentinel gate's grade"),
    "dlt_criteria_met_monitoring": ("events meeting DLT criteria", _1, "expansion participants with an event meeting DLT criteria (monitoring only, not used for dose decisions)"),
    "deaths": ("deaths", _1, "windows that ended by death"),
    "ended_early": ("ended early", _1, "DLT windows that ended early (withdrawal, no expansion, unrelated AE, death)"),
    "day": ("study day", "day", "study day of the committee's entry"),
    "decision": ("committee decision", "", "escalate, stay, de-escalate, stop or suspend, as the committee decided"),
    "rationale": ("rationale", "", "the committee's reason"),
    "design_decision": ("design's decision", "", "the design's recommendation on that day (data cut to the day)"),
    "design_next_level": ("design's next level", "", "level the design recommended for the next participant"),
    "design_rule": ("design's rule", "", "the rule behind the design's recommendation"),
    "followed": ("followed", _1, "the committee followed the design (no: an override)"),
    "peak": ("peak by day", "@conc_unit", "highest quantified value from infusion to the criterion's day"),
    "fold_of_lloq": ("fold of LLOQ", _1, "peak / LLOQ"),
    "last_sample_day": ("last sample day", "day", "day after infusion of the last sample of the analyte"),
    "verdict": ("verdict", "", "expansion, no obvious expansion, or not yet assessable"),
    "recorded": ("recorded", _1, "safety.csv records no_expansion as the reason the window ended"),
    "agrees": ("agrees", _1, "the record and the kinetic criterion agree"),
    "efficacy": ("responders", _1, "participants with an efficacy response"),
    "p_dlt": ("DLT probability", _1, "isotonic estimate of the DLT probability"),
    "p_efficacy": ("response probability", _1, "(responders + 0.05) / (n + 0.1)"),
    "utility": ("utility", _1, "BOIN12 estimated utility (0-100)"),
    "desirability": ("desirability", _1, "Pr(utility > benchmark | data) (BOIN12)"),
    "toxic": ("too toxic", _1, "Pr(p_T > phi_T) > c_T"),
    "futile": ("futile", _1, "Pr(p_E < phi_E) > c_E"),
    "candidate": ("candidate", _1, "admissible, treated and at or below the MTD"),
    "as_of_day": ("as of day", "day", "study day of the data the estimate uses"),
    "mtd_pending_policy": ("pending policy", "", "how participants still in their DLT window enter the MTD "
                                                 "estimate: exclude (complete windows only) or no_dlt"),
}
for _i in range(1, 5):
    ESCALATION_COLUMNS.update({
        f"cohort{_i}_level": (f"cohort {_i} level", "", f"dose level of cohort {_i} of the pathway"),
        f"cohort{_i}_n": (f"cohort {_i} n", _1, f"participants in cohort {_i}"),
        f"cohort{_i}_dlt": (f"cohort {_i} DLTs", _1, f"DLTs in cohort {_i} (the outcome of this pathway)"),
        f"decision{_i}": (f"decision {_i}", "", f"the design's decision after cohort {_i}"),
        f"rule{_i}": (f"rule {_i}", "", f"name of the rule that fired after cohort {_i}"),
        f"next{_i}": (f"next level {_i}", "", f"level of the next cohort after cohort {_i}"),
    })
