"""The calendar's calls of the engine give exactly the escalation engine's decide().

Random escalation states (participants with infusion days, levels, DLTs and onsets, an earlier
elimination, a day to decide on) are given both ways: as an EscalationState of Participant
objects to ctkinetics.escalation.decide() (the committee's decision), and as arrays to
trialsim.engine.counts + decide + time_gate (what the vectorised calendar calls for many
trials at once). This guards the plumbing (which arrays go where: onsets as days after
infusion, the current level, the persisted elimination, the stagger) — the rules themselves
are tested in tests/escalation.
"""
import math

import numpy as np
import pytest

from ctkinetics.escalation import BoinDesign, EscalationState, Participant, decide
from ctkinetics.trialsim import engine

K = 3


def random_states(rng, q, k):
    day = np.cumsum(rng.choice([0.0, 3.0, 7.5, 14.0, 20.0], size=(q, k)), axis=1)
    step = rng.integers(-1, 2, size=(q, k))
    level = np.clip(np.cumsum(step, axis=1), 0, K - 1)
    dlt = rng.random((q, k)) < 0.3
    onset = np.where(dlt, rng.uniform(1, 28, (q, k)), np.nan)
    as_of = day[:, -1] + rng.choice([0.0, 5.0, 13.0, 20.0, 40.0], size=q)
    prev = np.where(rng.random(q) < 0.8, K, rng.integers(1, K, q))
    return day, level, dlt, onset, as_of, prev


@pytest.mark.parametrize("design", [
    BoinDesign(tite=True, stagger_days=14.0),
    BoinDesign(tite=False),
    BoinDesign(target=0.25, cohort_size=2, min_completers=3, min_pending_followup=10.0),
], ids=["tite", "boin", "guards"])
def test_array_decisions_equal_decide(design):
    rng = np.random.default_rng(5)
    seen = set()
    for k in (1, 2, 4, 6, 9):
        day, level, dlt, onset, as_of, prev = random_states(rng, 80, k)
        dec = engine.decide(design, K, level[:, -1], engine.counts(design, K, as_of, day, level, dlt, onset), prev)
        sentinel = np.array([[day[i][level[i] == j].min(initial=np.inf) for j in range(K)] for i in range(len(day))])
        gate = engine.time_gate(design, np.where(np.isinf(sentinel), np.nan, sentinel), np.clip(dec.next_level, 0, K - 1))
        for i in range(day.shape[0]):
            parts = [Participant(f"P{j}", int(level[i, j]), float(day[i, j]), float(dlt[i, j]),
                                 float(onset[i, j])) for j in range(k)]
            elim = None if prev[i] == K else int(prev[i])
            ref = decide(EscalationState(("L1", "L2", "L3"), parts, eliminated_from=elim), design, float(as_of[i]))
            seen.add((ref.decision, ref.suspended))
            assert dec.rule[i] == ref.rule_id, (k, i)
            assert bool(dec.stopped[i]) == (ref.decision == "stop")
            assert bool(dec.suspended[i]) == ref.suspended
            assert bool(dec.escalate[i]) == (ref.decision == "escalate")
            if not dec.stopped[i]:
                assert ("L1", "L2", "L3")[dec.next_level[i]] == ref.next_level
            if ref.earliest_next_infusion_day is not None:
                want = ref.earliest_next_infusion_day
                assert (max(as_of[i], gate[i]) if not np.isnan(gate[i]) else as_of[i]) == want
            assert (dec.eliminated_from[i] if dec.eliminated_from[i] < K else None) == ref.eliminated_from
    # the random states reach the interesting branches, not only "stay"
    assert {d for d, _ in seen} >= {"escalate", "stay", "de-escalate"} and any(s for _, s in seen)


def test_counts_by_hand():
    # window 28, as of day 30: P0 (day 0, no DLT) complete; P1 (day 10, DLT on day 5 after
    # infusion, so known on day 15) DLT; P2 (day 20, DLT onset 12 -> day 32, not yet known)
    # pending with u = 10; P3 (day 26, level 1) pending with u = 4.
    day = np.array([[0.0, 10.0, 20.0, 26.0]])
    level = np.array([[0, 0, 0, 1]])
    dlt = np.array([[False, True, True, False]])
    onset = np.array([[math.nan, 5.0, 12.0, math.nan]])
    c = engine.counts(BoinDesign(), 2, np.array([30.0]), day, level, dlt, onset)
    assert list(c.n[0]) == [3, 1] and list(c.y[0]) == [1, 0] and list(c.c[0]) == [1, 1]
    assert c.stft[0] == pytest.approx([10 / 28, 4 / 28]) and list(c.min_followup[0]) == [10.0, 4.0]
