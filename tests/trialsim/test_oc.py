"""Kinetics off, fixed DLT rates: the day-by-day simulator reproduces the escalation engine's
own operating-characteristics simulators (independent, vectorised implementations) within
Monte Carlo error."""
import numpy as np

from ctkinetics.escalation import BoinDesign, simulate_boin, simulate_tite
from ctkinetics.trialsim import SerialExecutor, simulate_trials

RATES = (0.1, 0.25, 0.45)
N = 1200  # our trials; the reference uses 100,000 so its own error is negligible


def _within_mc(ours_pct, ref_pct, n):
    p = np.asarray(ref_pct) / 100.0
    se = 100.0 * np.sqrt(np.maximum(p * (1 - p), 1e-4) / n)
    assert np.all(np.abs(np.asarray(ours_pct) - np.asarray(ref_pct)) < 4.5 * se), (ours_pct, ref_pct)


def _ours(spec):
    r = simulate_trials(spec, N, seed=11, executor=SerialExecutor())
    s = r.summary.set_index("level")
    return r, s.loc[["a", "b", "c", "none"], "pct_selected"].to_numpy()


def test_plain_boin_matches_boin_oc(make_fixed_spec):
    spec = make_fixed_spec(RATES, tite=False)
    r, ours = _ours(spec)
    ref = simulate_boin(BoinDesign(tite=False), RATES, n_cohorts=4, n_trials=100_000, seed=3)
    _within_mc(ours, list(ref.selection_pct) + [ref.no_mtd_pct], N)
    # participants per level: compare means with the per-trial spread of our table
    t = r.trials
    for j, lab in enumerate("abc"):
        x = t.loc[t["level"] == lab, "n"].to_numpy()
        assert abs(x.mean() - ref.mean_participants[j]) < 4.5 * x.std() / np.sqrt(N)


def test_tite_boin_with_stagger_matches_calendar_oc(make_fixed_spec):
    spec = make_fixed_spec(RATES, tite=True, stagger=14.0, per_month=2.0)
    r, ours = _ours(spec)
    ref = simulate_tite(BoinDesign(tite=True, stagger_days=14.0), RATES, 4, 100_000, seed=3,
                        accrual_per_month=2.0)
    _within_mc(ours, list(ref.selection_pct) + [ref.no_mtd_pct], N)
    dur = r.trials.drop_duplicates("trial")["duration_escalation_days"].to_numpy()
    assert abs(dur.mean() - ref.mean_duration_days) < 4.5 * dur.std() / np.sqrt(N)
    # no expansion in this spec: total duration is the escalation's
    assert np.allclose(r.trials["duration_total_days"], r.trials["duration_escalation_days"])
