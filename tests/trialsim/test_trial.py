"""Hand-calculated calendars, guards, kinetics against closed forms."""
import math

import numpy as np
import pytest

from ctkinetics.modeling import load_model
from ctkinetics.trialsim import SerialExecutor, parse_spec, simulate_trials
from ctkinetics.trialsim.kinetics import KineticsSpec, exposures
from ctkinetics.trialsim.trial import simulate_trials_local


def test_no_toxicity_calendar_by_hand(make_fixed_spec):
    # Everyone ready at once (very fast accrual, no manufacturing delay), no DLTs, TITE-BOIN,
    # 14-day stagger. By hand: level a: sentinel day 0, two more on day 14; from day 14 more
    # than half of a are pending (3/3, then 2/3 after day 28): suspended until day 42 when the
    # last windows end, then escalate. Same at b (42, 56, 56; suspended 56-84) and c (84, 98,
    # 98; suspended 98-126); at c on day 126 stay (top) and infuse 3 at once (the stagger gate
    # 84 + 14 has passed and does not chain); 12 reached: end = 126 + 28 = 154. Suspended
    # 3 x 28 days.
    spec = make_fixed_spec((0.0, 0.0, 0.0), tite=True, stagger=14.0, per_month=1e6)
    (out,) = simulate_trials_local(spec, 1, [0]).outcomes
    given = out.level[0] >= 0
    days = [round(float(d), 2) for d in out.infusion_day[0, given]]
    assert list(out.level[0, given]) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2]
    assert days == [0, 14, 14, 42, 56, 56, 84, 98, 98, 126, 126, 126]
    assert out.duration_escalation[0] == pytest.approx(154.0, abs=0.01)
    assert out.selected[0] == 2 and list(out.n[0]) == [3, 3, 6]
    assert out.days_suspended[0] == pytest.approx(3 * 28.0, abs=0.01)


def test_all_toxic_lowest_dose_stops_without_mtd(make_fixed_spec):
    spec = make_fixed_spec((1.0, 1.0, 1.0), tite=False)
    r = simulate_trials(spec, 30, seed=3, executor=SerialExecutor())
    s = r.summary.set_index("level")
    assert s.loc["none", "pct_selected"] == 100.0
    # 3 of 3 DLTs eliminate the lowest dose (BOIN table: n = 3 eliminates at 3); nobody is
    # ever given a higher dose. (A 4th participant can be infused at the lowest dose while the
    # 3rd is pending: the engine's STAY_LOWEST_OBS rule fires before SUSPEND.)
    assert s.loc["a", "mean_participants"] >= 3.0
    assert s.loc["b", "mean_participants"] == 0.0 and s.loc["c", "mean_participants"] == 0.0


def test_guard_that_never_allows_escalation_keeps_everyone_at_start():
    doc = {
        "design": {"dose_levels": ["a", "b"], "doses": [1.0, 2.0], "max_participants": 9},
        "kinetics": {"model": "stein2019", "omega2": "model"},
        "toxicity": {"link": "fixed", "rates": [0.0, 0.0]},
        "rules": [{"name": "plain"},
                  {"name": "guarded", "guards": [{"kind": "min_median_expansion", "min": 1e12}]}],
    }
    r = simulate_trials(parse_spec(doc), 10, seed=2, executor=SerialExecutor())
    s = r.summary.set_index(["rule", "level"])
    assert s.loc[("guarded", "a"), "mean_participants"] == 9.0
    assert s.loc[("plain", "b"), "mean_participants"] > 0  # without the guard it escalates


def test_exposure_metrics_against_stein_closed_form():
    # The project's exposure rule (modeling.exposure) on the typical stein2019 curve: the peak
    # is the parameter Cmax at Tmax (DOMAIN.md 3.1: 24,000 at 9.3 d) and AUC0-28 the closed-form
    # integral 1.718e5 (the model file's derived AUC0_28)
    m = load_model("stein2019")
    e = exposures(KineticsSpec("stein2019", "qpcr"), np.zeros((1, 0)), [1.0])
    assert e["cmax"][0, 0] == pytest.approx(24000, rel=1e-9)
    assert e["tmax"][0, 0] == pytest.approx(9.3, abs=1e-9)
    assert e["auc0_28"][0, 0] == pytest.approx(m.derived()["AUC0_28"], rel=1e-8)
    assert m.derived()["AUC0_28"] == pytest.approx(1.718e5, rel=1e-3)


def test_deprecated_grid_step_is_accepted_with_a_warning():
    from ctkinetics.errors import CtkWarning

    doc = {"design": {"dose_levels": ["a"], "doses": [1.0]}, "toxicity": {"link": "fixed", "rates": [0.1]},
           "kinetics": {"model": "stein2019", "grid_step_days": 0.25}}
    with pytest.warns(CtkWarning, match="grid_step_days is no longer used"):
        spec = parse_spec(doc)
    assert spec.kinetics.until_day == 28.0


def test_typical_values_by_level_and_bsv():
    spec = KineticsSpec("stein2019", "qpcr", typical=(("Cmax", (1000.0, 2000.0)),),
                        omega2=(("Cmax", 0.65),))
    eta = np.random.default_rng(0).standard_normal((4000, 1))
    e = exposures(spec, eta, [1.0, 2.0])
    # Cmax scales with its typical value; ln Cmax has SD sqrt(0.65) across participants
    assert np.allclose(e["cmax"][:, 1] / e["cmax"][:, 0], 2.0, rtol=1e-3)
    assert np.std(np.log(e["cmax"][:, 0])) == pytest.approx(math.sqrt(0.65), rel=0.05)
    assert np.exp(np.mean(np.log(e["cmax"][:, 0]))) == pytest.approx(1000, rel=0.05)


def test_logistic_link_rate_by_hand():
    # No variability: every participant has Cmax = the typical value, so P(DLT) is the
    # logistic at that value: logit p = logit(0.2) + 1.5 ln(4) -> p = 0.2*4^1.5/(0.8+0.2*4^1.5)
    doc = {
        "design": {"dose_levels": ["a", "b"], "doses": [1.0, 2.0], "max_participants": 12, "tite": False},
        "kinetics": {"model": "stein2019"},
        "toxicity": {"link": "logistic", "metric": "cmax", "reference": 24000.0, "p_at_reference": 0.2,
                     "slope": 1.5},
    }
    from ctkinetics.trialsim.draws import draw_trials

    doc["kinetics"]["typical"] = {"Cmax": [24000.0, 96000.0]}
    draws = draw_trials(parse_spec(doc), 0, range(400))
    rows, slots = np.indices(draws.tox_u.shape)
    dlt = np.stack([draws.outcome(rows, slots, j)[0].ravel() for j in (0, 1)], axis=1)
    p_hi = 0.2 * 4**1.5 / (0.8 + 0.2 * 4**1.5)
    assert dlt[:, 0].mean() == pytest.approx(0.2, abs=4 * math.sqrt(0.16 / dlt.shape[0]))
    assert dlt[:, 1].mean() == pytest.approx(p_hi, abs=4 * math.sqrt(p_hi * (1 - p_hi) / dlt.shape[0]))


def test_exposures_do_not_depend_on_the_batch():
    # A participant's exposure must be the same bits whichever other pairs share its model
    # call (the lazy exposure table computes pairs in calls of any size and order); numpy's
    # sum along a row differs between strided and contiguous rows, which once changed AUCs
    # in the 16th digit between batch sizes.
    from ctkinetics.trialsim.kinetics import pair_exposures

    spec = KineticsSpec("stein2019", "qpcr", typical=(("Cmax", (2000.0, 2700.0, 3300.0)),),
                        omega2=(("Cmax", 0.65), ("Tmax", 0.38), ("alpha", 0.91)))
    rng = np.random.default_rng(3)
    eta = rng.standard_normal((120, 3))
    levels = rng.integers(0, 3, 120)
    doses = (3e8, 4.5e8, 6e8)
    together = pair_exposures(spec, eta, doses, levels)
    order = rng.permutation(120)
    shuffled = pair_exposures(spec, eta[order], doses, levels[order])
    for name, v in together.items():
        single = np.array([pair_exposures(spec, eta[i:i + 1], doses, levels[i:i + 1])[name][0] for i in range(120)])
        assert np.array_equal(single, v), name
        assert np.array_equal(shuffled[name], v[order]), name


def test_peak_by_day_against_stein_closed_form():
    # The no-expansion criterion reads the peak from infusion to by_day (10 here). stein2019
    # expands as R0 exp(rho t), R0 = Cmax / foldx, rho = ln(foldx) / Tmax, up to Tmax: so the
    # peak by day 10 is Cmax where Tmax <= 10 (read from the full curve's peak) and
    # R0 exp(10 rho) = Cmax foldx^(10/Tmax - 1) where Tmax > 10 (the registry run to day 10)
    from ctkinetics.trialsim.kinetics import individual_parameters, pair_exposures

    spec = KineticsSpec("stein2019", "qpcr", omega2=(("Cmax", 0.65), ("Tmax", 0.38), ("foldx", 2.4)))
    eta = np.random.default_rng(5).standard_normal((200, 3))
    levels = np.zeros(200, dtype=int)
    out = pair_exposures(spec, eta, (1.0,), levels, peak_by_day=10.0)
    p, _ = individual_parameters(spec, load_model("stein2019"), eta, (1.0,), levels)
    late = p["Tmax"] > 10.0
    assert 20 < late.sum() < 180  # both branches are exercised
    want = np.where(late, p["Cmax"] * p["foldx"] ** (10.0 / p["Tmax"] - 1.0), p["Cmax"])
    assert np.allclose(out["peak_by_day"], want, rtol=1e-9)


def test_solver_tolerances_of_the_virtual_participants():
    # [kinetics] rtol: the ODE model solved at the spec's tolerance (default the model file's
    # [solver] rtol, read here from the file); exposures at rtol 1e-4 agree with the default
    # ones to the solver's accuracy
    from ctkinetics.errors import SettingsError
    import tomllib

    from ctkinetics.modeling.registry import model_path
    from ctkinetics.trialsim.kinetics import cached_model

    doc = {"design": {"dose_levels": ["a", "b"], "doses": [3.0e8, 6.0e8]}, "toxicity": {"link": "fixed", "rates": [0.1, 0.2]},
           "kinetics": {"model": "cart_bcell_sle", "omega2": "model", "rtol": 1e-4}}
    spec = parse_spec(doc).kinetics
    assert spec.rtol == 1e-4 and spec.atol is None
    file_rtol = tomllib.loads(model_path(spec.model).read_text())["solver"]["rtol"]
    assert file_rtol != 1e-4
    assert cached_model(spec.model, spec.rtol).rtol == 1e-4 and cached_model(spec.model).rtol == file_rtol
    eta = np.random.default_rng(2).standard_normal((20, len(spec.variable)))
    loose = exposures(spec, eta, [3.0e8, 6.0e8])
    tight = exposures(KineticsSpec(spec.model, spec.observable, (), spec.omega2), eta, [3.0e8, 6.0e8])
    for name in ("cmax", "auc0_28"):
        assert np.allclose(loose[name], tight[name], rtol=1e-3), name
    doc["kinetics"]["rtol"] = 0.5
    with pytest.raises(SettingsError, match=r"key 'kinetics.rtol': expected a relative tolerance in \[1e-12, 0.01\], got 0.5"):
        parse_spec(doc)


def test_mechanistic_kinetics_of_the_typical_participant():
    # cart_bcell_sle through the compiled ODE engine (issue 12.6): with every eta 0 the
    # participant is the model file's typical subject, documented there as peaking on day ~9
    # at ~2,700 copies/ug qPCR at 4.5e8 cells; more cells give a higher peak (E(0) = fE*dose/V)
    spec = KineticsSpec("cart_bcell_sle", "qpcr", omega2=(("fE", 0.6),))
    e = exposures(spec, np.zeros((1, 1)), [3.0e8, 4.5e8, 6.0e8])
    assert e["cmax"][0, 1] == pytest.approx(2700, rel=0.1)
    assert e["tmax"][0, 1] == pytest.approx(9.0, abs=1.0)
    assert e["cmax"][0, 0] < e["cmax"][0, 1] < e["cmax"][0, 2]
    doc = {"design": {"dose_levels": ["3.0e8", "4.5e8"], "doses": [3.0e8, 4.5e8], "max_participants": 6},
           "kinetics": {"model": "cart_bcell_sle", "omega2": "model"},
           "toxicity": {"link": "logistic", "metric": "cmax", "reference": 2700.0, "p_at_reference": 0.2}}
    r = simulate_trials(parse_spec(doc), 3, seed=5, executor=SerialExecutor())
    s = r.summary.set_index("level")
    per_trial = r.trials.groupby(["trial", "rule"])["n"].sum()
    assert per_trial.between(3, 6).all()  # at most max_participants; a stop leaves at least a cohort
    assert s.loc["3.0e8", "cmax_n"] > 0 and np.isfinite(s.loc["3.0e8", "cmax_gmean"])


def test_boin12_calendar_by_hand():
    # No toxicity, every participant responds (outcome known on day 28), everyone ready at
    # once, cohorts of 3, 14-day stagger, at most 9, start at the lowest of 3 levels, BOIN12
    # with the published utilities (phi_T = target 0.3, phi_E 0.25): u_bar = 43, benchmark
    # 71.5. After a complete cohort of 3/3 responders at level a, a is more desirable than the
    # untried b (Pr(U > 0.715 | Beta(4, 1)) = 1 - 0.715^4 = 0.74 > Pr(Beta(1, 1) > 0.715) =
    # 0.285), so BOIN12 stays at a (dose exploration needs 9 at a) until 9 are treated there.
    # Calendar: 0, 14, 14 (stagger), complete on 42 -> 42, 42, 42; complete on 70 -> 70 x 3;
    # 9 treated: stop; escalation ends when the last outcome is known, 70 + 28 = 98; OBD a.
    doc = {"design": {"dose_levels": ["a", "b", "c"], "doses": [1.0, 2.0, 3.0], "max_participants": 9,
                      "accrual": {"per_month": 1e6}, "stagger_days": 14.0},
           "protocol": {"efficacy": {"assessment_day": 28.0}},
           "toxicity": {"link": "fixed", "rates": [0.0, 0.0, 0.0]},
           "efficacy": {"link": "fixed", "rates": [1.0, 1.0, 1.0]},
           "rules": [{"name": "boin12", "method": "boin12"}]}
    (out,) = simulate_trials_local(parse_spec(doc), 1, [0]).outcomes
    given = out.level[0] >= 0
    assert list(out.level[0, given]) == [0] * 9
    assert [round(float(d), 3) for d in out.infusion_day[0, given]] == [0, 14, 14, 42, 42, 42, 70, 70, 70]
    assert out.selected[0] == 0 and out.stop_rule[0] == 2  # stop_max
    assert out.duration_escalation[0] == pytest.approx(98.0, abs=1e-3)
    assert list(out.n_efficacy[0]) == [9, 0, 0]


def test_sentinel_dlt_holds_the_gate_until_the_committee_review():
    # Everyone ready at once, every participant has a DLT (rate 1) with onset v*28 (uniform).
    # The sentinel's DLT on day d <= 14 holds the stagger gate of its dose group until the
    # committee's review 7 days after it (the protocol's default sentinel gate); the second
    # participant is infused on max(14, d + 7). Trials whose sentinel DLT comes after day 14
    # (outside the sentinel gate's window) wait for the time gate only (day 14).
    from ctkinetics.trialsim.draws import draw_trials, on_grid

    doc = {"design": {"dose_levels": ["a", "b"], "doses": [1.0, 2.0], "accrual": {"per_month": 1e6},
                      "committee": {"sentinel_review_days": 7.0}},
           "toxicity": {"link": "fixed", "rates": [1.0, 1.0]}}
    spec = parse_spec(doc)
    sim = simulate_trials_local(spec, 4, range(40))
    d = on_grid(np.maximum(draw_trials(spec, 4, range(40)).onset_u[:, 0], 1e-9) * 28)
    second = sim.outcomes[0].infusion_day[:, 1]
    want = np.where(d <= 14, np.maximum(14.0, d + 7.0), 14.0)
    assert ((d > 7) & (d <= 14)).any() and (d > 14).any()  # both cases occur
    assert np.allclose(second, want, atol=1e-9)
