"""The vectorised calendar equals a per-trial reference built on the committee's decide().

tests/trialsim/reference.py simulates one trial at a time with an EscalationState and
ctkinetics.escalation.decide() at every event (the previous, non-vectorised simulator); here
every trial of a batch must come out the same under every rule: selected MTD, stop rule,
counts per level, durations, suspended days and each participant's level, day and DLT.
"""
import numpy as np
import pytest

from ctkinetics.trialsim import load_spec, parse_spec
from ctkinetics.trialsim.draws import draw_trials
from ctkinetics.trialsim.calendar import run_rule

from .reference import reference_trial

SEED_SPEC = "data/sample/trial_sim_seed.toml"


def _fixed(**design):
    d = {"dose_levels": ["a", "b", "c"], "doses": [1.0, 2.0, 3.0], "accrual": {"per_month": 2.0}}
    d.update(design)
    return d


SPECS = {
    "seed design (kinetics, logistic link, peak onset, median-Cmax guard, expansion at the MTD)":
        None,
    "fixed rates; rules: TITE, plain BOIN, cohorts of 1 without stagger, guards handed to the "
    "engine (4 completers > cohort size, 10 days of follow-up); two expansion groups": {
        "design": _fixed(expansion={"levels": ["mtd", "a"], "size": 3},
                         manufacturing={"distribution": "gamma", "mean_days": 10.0, "cv": 0.5}),
        "toxicity": {"link": "fixed", "rates": [0.1, 0.3, 0.5]},
        "rules": [{"name": "tite"}, {"name": "boin", "tite": False},
                  {"name": "single", "cohort_size": 1, "stagger_days": 0.0},
                  {"name": "completers", "guards": [{"kind": "min_completers", "n": 4}]},
                  {"name": "followup", "guards": [{"kind": "min_followup", "days": 10}]}],
    },
    "toxic doses (the lowest is eliminated / inadmissible: stop without MTD or OBD), everyone ready "
    "at once": {
        "design": _fixed(accrual={"per_month": 1e6}, tite=False, start_level=2),
        "protocol": {"efficacy": {"assessment_day": 28.0}},
        "toxicity": {"link": "fixed", "rates": [0.6, 0.7, 0.8], "onset": "uniform"},
        "efficacy": {"link": "fixed", "rates": [0.3, 0.3, 0.3]},
        "rules": [{"name": "boin"}, {"name": "boin12", "method": "boin12"}],
    },
    "protocol: dropouts replaced, shortfalls counted at the level reached, sentinel holds with "
    "committee review, BOIN12 beside TITE-BOIN": {
        "design": _fixed(dropout={"probability": 0.25, "reason": "withdrawn"}, max_replacements=4,
                         shortfall={"probability": 0.2, "low": 0.4, "high": 0.9},
                         committee={"sentinel_review_days": 5.0}, expansion={"levels": ["mtd"], "size": 3}),
        "protocol": {"efficacy": {"assessment_day": 56.0, "phi_e": 0.2}},
        "toxicity": {"link": "fixed", "rates": [0.15, 0.3, 0.5]},
        "efficacy": {"link": "fixed", "rates": [0.2, 0.4, 0.6]},
        "rules": [{"name": "tite"}, {"name": "boin12", "method": "boin12"},
                  {"name": "plain boin", "tite": False}],
    },
    "protocol: no obvious expansion from the kinetics (committee confirms), shortfall not "
    "evaluable, losses to follow-up counted with partial follow-up, a dose covariate": {
        "design": _fixed(dropout={"probability": 0.2, "reason": "lost_to_followup"},
                         shortfall={"probability": 0.25}, no_expansion={"lloq": 600.0},
                         committee={"confirm_days": 3.0}, doses=[3.0e8, 4.5e8, 6.0e8]),
        "protocol": {"dose_shortfall": {"rule": "not_evaluable"}, "no_expansion": {"by_day": 10.0},
                     "evaluability": {"lost_to_followup": "partial"}},
        "kinetics": {"model": "cart_bcell_sle", "omega2": "model"},
        "toxicity": {"link": "logistic", "metric": "cmax", "reference": 2700.0, "p_at_reference": 0.25},
    },
    "kinetics with uniform onsets, AUC guard and a dose covariate": {
        "design": _fixed(max_participants=15, expansion={"levels": ["b"], "size": 4},
                         manufacturing={"distribution": "uniform", "low_days": 3.0, "high_days": 20.0}),
        "kinetics": {"model": "stein2019", "omega2": "model", "typical": {"Cmax": [5000.0, 20000.0, 60000.0]}},
        "toxicity": {"link": "logistic", "metric": "auc0_28", "reference": 2e5, "p_at_reference": 0.25},
        "rules": [{"name": "plain"},
                  {"name": "auc guard", "guards": [{"kind": "min_median_expansion", "metric": "auc0_28",
                                                    "min": 1.5e5, "known_after_days": 10}]}],
    },
}


@pytest.mark.parametrize("name", list(SPECS))
def test_vectorised_calendar_equals_per_trial_reference(name):
    doc = SPECS[name]
    spec = load_spec(SEED_SPEC) if doc is None else parse_spec(doc)
    draws = draw_trials(spec, 2024, range(3, 43))
    seen_stops = set()
    for rule in spec.rules:
        out = run_rule(spec, rule, draws)
        for i in range(draws.m):
            ref = reference_trial(spec, rule, draws, i)
            where = f"{name} / {rule.name} / trial {draws.trials[i]}"
            assert out.selected[i] == ref["selected"], where
            assert out.stop_rule[i] == ref["stop_rule"], where
            for key in ("n", "dlt", "n_expansion", "dlt_expansion", "n_not_evaluable"):
                assert list(getattr(out, key)[i]) == list(ref[key]), (where, key)
            for key in ("duration_escalation", "duration_total", "days_suspended"):
                assert getattr(out, key)[i] == pytest.approx(ref[key], abs=1e-9), (where, key)
            given = [(p, out.level[i, p], out.infusion_day[i, p], int(out.dlt_given[i, p]))
                     for p in np.flatnonzero(out.level[i] >= 0)]
            assert len(given) == len(ref["participants"]), where
            for got, want in zip(given, sorted(ref["participants"])):
                assert got[:2] == want[:2] and got[3] == want[3], (where, got, want)
                assert got[2] == pytest.approx(want[2], abs=1e-9), (where, got, want)
            seen_stops.add(int(out.stop_rule[i]))
    if "toxic" in name:  # STOP_LOWEST and a BOIN12 stop (codes from 100) were exercised
        assert 1 in seen_stops and max(seen_stops) >= 100, seen_stops
    assert 2 in seen_stops or "toxic" in name  # STOP_MAX
    if "replaced" in name:  # every slot used (the maximum plus the replacements allowed)
        assert -2 in seen_stops
