"""What happens to a virtual participant (trialsim.conduct.course), by hand, and the spec's
protocol and conduct settings named when wrong."""
import math

import numpy as np
import pytest

from ctkinetics.errors import SettingsError
from ctkinetics.escalation.state import REASON_CODE
from ctkinetics.trialsim import parse_spec
from ctkinetics.trialsim.conduct import course
from ctkinetics.trialsim.draws import draw_trials, on_grid

BASE = {"design": {"dose_levels": ["a", "b", "c"], "doses": [1.0, 2.0, 3.0]},
        "toxicity": {"link": "fixed", "rates": [1.0, 1.0, 1.0]}}


def _doc(**design):
    import copy

    doc = copy.deepcopy(BASE)
    doc["design"].update(design)
    return doc


def _course(spec, levels):
    draws = draw_trials(spec, 7, range(30))
    rows, slots = np.indices((30, 12))
    rows, slots = rows.ravel(), slots.ravel()
    lv = np.broadcast_to(np.asarray(levels), rows.shape)
    return draws, rows, slots, course(draws, rows, slots, lv, np.zeros(rows.size), spec.rules[0].design,
                                      spec.design.conduct)


def test_dropout_hides_a_later_dlt():
    # every participant would have a DLT (rate 1) with onset v*28 and leaves the window at
    # w*28 (probability 1): the DLT is seen iff onset <= w*28; otherwise the window ends
    # early on w*28 with the reason, and the outcome is final then (withdrawn: not evaluable)
    spec = parse_spec(_doc(dropout={"probability": 1.0, "reason": "withdrawn"}))
    draws, rows, slots, c = _course(spec, 1)
    onset = on_grid(np.maximum(draws.onset_u[rows, slots], 1e-9) * 28)
    leave = on_grid(np.maximum(draws.conduct_u[1][rows, slots], 1e-9) * 28)
    seen = onset <= leave
    assert 0.3 < seen.mean() < 0.7  # both cases occur
    assert np.array_equal(c.dlt, seen)
    assert np.array_equal(c.onset[seen], onset[seen]) and np.isnan(c.onset[~seen]).all()
    assert np.array_equal(c.window_end[~seen], leave[~seen]) and np.isnan(c.window_end[seen]).all()
    assert (c.reason[~seen] == REASON_CODE["withdrawn"]).all() and (c.reason[seen] == 0).all()
    assert np.array_equal(c.final, np.where(seen, onset, leave))
    assert np.isnan(c.evaluable).all() and (c.level == 1).all()


@pytest.mark.parametrize("rule, want_level, want_evaluable", [
    # 70 % of dose 3 = 2.1 reaches level b (2); of 2 = 1.4 reaches a (1); of 1 = 0.7 reaches none
    ("level_received", {2: 1, 1: 0, 0: 0}, {2: math.nan, 1: math.nan, 0: 0.0}),
    ("not_evaluable", {2: 2, 1: 1, 0: 0}, {2: 0.0, 1: 0.0, 0: 0.0}),
    ("planned_level", {2: 2, 1: 1, 0: 0}, {2: math.nan, 1: math.nan, 0: math.nan}),
])
def test_shortfall_counts_the_participant_by_the_protocol_rule(rule, want_level, want_evaluable):
    doc = _doc(shortfall={"probability": 1.0, "low": 0.7, "high": 0.7})
    doc["protocol"] = {"dose_shortfall": {"rule": rule, "min_fraction": 0.8}}
    spec = parse_spec(doc)
    for planned in (0, 1, 2):
        draws, rows, slots, c = _course(spec, planned)
        assert np.allclose(draws.fraction, 0.7)
        assert (c.level == want_level[planned]).all(), (rule, planned)
        assert np.array_equal(c.evaluable, np.full(c.level.shape, want_evaluable[planned]), equal_nan=True)


@pytest.mark.parametrize("lloq, flagged", [(1e12, True), (1e-9, False)])
def test_no_obvious_expansion_from_the_simulated_peak(lloq, flagged):
    # the peak of the kinetics' observable by day 14 not above 1 x LLOQ: the window ends on day
    # 14 (reason no_expansion) unless a DLT came first, and the committee confirms 5 days later
    doc = {"design": {"dose_levels": ["a"], "doses": [4.5e8], "no_expansion": {"lloq": lloq},
                      "committee": {"confirm_days": 5.0}},
           "kinetics": {"model": "cart_bcell_sle", "omega2": "model"},
           "toxicity": {"link": "fixed", "rates": [0.3]}}
    spec = parse_spec(doc)
    draws = draw_trials(spec, 3, range(4))
    rows, slots = (a.ravel() for a in np.indices((4, 12)))
    t0 = np.full(rows.size, 10.0)
    c = course(draws, rows, slots, np.zeros(rows.size, dtype=int), t0, spec.rules[0].design, spec.design.conduct)
    early_dlt = c.dlt & (c.onset <= 14)
    if flagged:
        ended = ~early_dlt
        assert ended.any() and np.all(c.window_end[ended] == 14.0)
        assert np.all(c.reason[ended] == REASON_CODE["no_expansion"])
        assert np.all(c.confirm[ended] == 10.0 + 14.0 + 5.0) and np.all(c.final[ended] == 29.0)
        assert not (c.dlt & (c.onset > 14)).any()  # a later DLT is not seen
    else:
        assert np.isnan(c.window_end).all() and (c.reason == 0).all() and np.isnan(c.confirm).all()


@pytest.mark.parametrize("patch, needle", [
    ({"protocol": {"sentinel": {"crs_grade": 9}}}, "key 'protocol.sentinel.crs_grade': expected a grade 1-5, got 9"),
    ({"protocol": {"sentinal": {}}}, "key 'protocol.sentinal': unknown table [protocol.sentinal] (did you mean 'sentinel'?)"),
    ({"protocol": {"expansion": {"max_per_group": 6}}, "design.expansion": {"levels": ["mtd"], "size": 9}},
     "key 'design.expansion.size': size is 9, above the protocol's cap of 6"),
    ({"design.dropout": {"probability": 0.1, "reason": "abducted"}}, "key 'design.dropout.reason': expected one of withdrawn, lost_to_followup"),
    ({"design.shortfall": {"probability": 0.1, "low": 0.9, "high": 0.5}}, "key 'design.shortfall.low': low (0.9) must not exceed high (0.5)"),
    ({"design.no_expansion": {"lloq": 20.0}}, "key 'design.no_expansion': no_expansion needs kinetics"),
    ({"rules": [{"name": "r", "method": "boin12"}]}, "key 'rules[1].method': boin12 needs an efficacy outcome model"),
    ({"efficacy": {"link": "fixed", "rates": [0.2, 0.3, 0.4]}}, "key 'efficacy': an efficacy outcome model needs the day the response is known"),
    ({"rules": [{"name": "r", "method": "crm"}]}, "key 'rules[1].method': expected one of boin, boin12, got 'crm'"),
])
def test_invalid_protocol_and_conduct_name_the_key(patch, needle):
    import copy

    doc = copy.deepcopy(BASE)
    for key, value in patch.items():
        if key.startswith("design."):
            doc["design"][key.split(".", 1)[1]] = value
        else:
            doc[key] = value
    with pytest.raises(SettingsError) as err:
        parse_spec(doc)
    assert needle in str(err.value)


@pytest.mark.parametrize("replacements", [60, 3])
def test_withdrawals_are_replaced_until_the_maximum_is_evaluable(replacements):
    # No DLTs; each participant withdraws during the window with p = 0.25 (not evaluable, by the
    # protocol's default), independently: the trial enrols until 12 are evaluable (pending ones
    # counted, a later withdrawal replaced) or its N = 12 + R slots are used. By hand, with F
    # the withdrawals before the 12th evaluable (negative binomial(12, 0.75)) and S the
    # evaluable among N (binomial(N, 0.75)): evaluable = min(12, S); withdrawals = F when
    # F <= R, else N - S. With R = 60: 12 evaluable in every trial, E[withdrawals] = 12 x
    # 0.25 / 0.75 = 4.
    from scipy.stats import binom, nbinom

    from ctkinetics.trialsim import SerialExecutor, simulate_trials

    doc = _doc(tite=False, stagger_days=0.0, accrual={"per_month": 3.0}, max_replacements=replacements,
               dropout={"probability": 0.25, "reason": "withdrawn"})
    doc["toxicity"]["rates"] = [0.0, 0.0, 0.0]
    n, slots = 400, 12 + replacements
    trials = simulate_trials(parse_spec(doc), n, 4, SerialExecutor()).trials
    per = trials.groupby("trial")[["n", "n_not_evaluable"]].sum()
    s, f = np.arange(12), np.arange(replacements + 1)
    evaluable = 12.0 - float(np.sum((12 - s) * binom.pmf(s, slots, 0.75)))
    withdrawn = float(np.sum(f * nbinom.pmf(f, 12, 0.75)) + np.sum((slots - s) * binom.pmf(s, slots, 0.75)))
    if replacements == 60:
        assert (per["n"] == 12).all()
        assert withdrawn == pytest.approx(4.0, abs=1e-9)
    sd = np.sqrt(per.var(ddof=1) / n)
    assert abs(per["n"].mean() - evaluable) < 4.5 * max(sd["n"], 1e-3)
    assert abs(per["n_not_evaluable"].mean() - withdrawn) < 4.5 * sd["n_not_evaluable"]
