"""The calendar's calls of the engine give exactly the escalation engine's decide().

Random escalation states (participants with infusion days, levels, DLTs and onsets, early window
ends with their reasons, the committee's confirmations, shortfall exclusions, an earlier
elimination, a day to decide on) are given both ways: as an EscalationState of Participant
objects to ctkinetics.escalation.decide() (the committee's decision), and as arrays to
trialsim.engine.counts + decide + time_gate + gate_held (what the vectorised calendar calls for
many trials at once). This guards the plumbing (which arrays go where: onsets as days after
infusion, reasons as codes, the current level, the persisted elimination, the stagger and the
sentinel's safety hold) — the rules themselves are tested in tests/escalation.
"""
import math

import numpy as np
import pytest

from ctkinetics.data.protocol import WINDOW_END_REASONS
from ctkinetics.escalation import BoinDesign, EscalationState, Participant, decide
from ctkinetics.escalation.sentinel import gate_holds
from ctkinetics.escalation.state import REASON_CODE, CommitteeEvent
from ctkinetics.trialsim import engine

K = 3
LEVELS = ("L1", "L2", "L3")
REVIEW = 6.0


def random_states(rng, q, k):
    day = np.cumsum(rng.choice([0.0, 3.0, 7.5, 14.0, 20.0], size=(q, k)), axis=1)
    level = np.clip(np.cumsum(rng.integers(-1, 2, size=(q, k)), axis=1), 0, K - 1)
    dlt = rng.random((q, k)) < 0.3
    onset = np.where(dlt, rng.choice([1.0, 5.0, 12.0, 20.0, 27.0], size=(q, k)), np.nan)
    early = rng.random((q, k)) < 0.3
    reason = np.where(early, rng.choice([REASON_CODE[r] for r in ("withdrawn", "no_expansion", "unrelated_ae",
                                                                   "lost_to_followup")], size=(q, k)), 0)
    wend = np.where(early, rng.choice([2.0, 9.0, 14.0, 21.0], size=(q, k)), np.nan)
    seen = dlt & ~(onset > np.where(early, wend, np.inf))  # a DLT after an early end is not seen
    wend, reason = np.where(seen, np.nan, wend), np.where(seen, 0, reason)
    confirm = np.where(reason == REASON_CODE["no_expansion"], day + wend + rng.choice([0.0, 7.0], size=(q, k)), np.nan)
    evaluable = np.where(rng.random((q, k)) < 0.1, 0.0, np.nan)
    as_of = day[:, -1] + rng.choice([0.0, 5.0, 13.0, 20.0, 40.0], size=q)
    prev = np.where(rng.random(q) < 0.8, K, rng.integers(1, K, q))
    return engine.Record(day, level, seen, np.where(seen, onset, np.nan), wend, reason, confirm, evaluable), as_of, prev


def _state(rec, i, prev, with_release):
    k = rec.level.shape[1]
    parts = [Participant(f"P{j}", int(rec.level[i, j]), float(rec.infusion_day[i, j]), float(rec.dlt[i, j]),
                         float(rec.onset[i, j]), window_end_day=float(rec.window_end[i, j]),
                         window_end_reason=WINDOW_END_REASONS[rec.reason[i, j]] if rec.reason[i, j] else "",
                         evaluable=float(rec.evaluable[i, j]), confirmed_day=float(rec.confirm[i, j]))
             for j in range(k)]
    events = []
    for lv in range(K):  # the committee releases a sentinel hold REVIEW days after the DLT is known
        first = [j for j in range(k) if rec.level[i, j] == lv]
        if first and rec.dlt[i, first[0]] and with_release:
            j = first[0]
            events.append(CommitteeEvent(rec.infusion_day[i, j] + rec.onset[i, j] + REVIEW, "release_sentinel_hold", lv))
    return EscalationState(LEVELS, parts, eliminated_from=None if prev == K else int(prev), committee=tuple(events))


@pytest.mark.parametrize("design", [
    BoinDesign(tite=True, stagger_days=14.0),
    BoinDesign(tite=False),
    BoinDesign(target=0.25, cohort_size=2, min_completers=3, min_pending_followup=10.0),
], ids=["tite", "boin", "guards"])
def test_array_decisions_equal_decide(design):
    rng = np.random.default_rng(5)
    seen = set()
    for k in (1, 2, 4, 6, 9):
        rec, as_of, prev = random_states(rng, 80, k)
        dec = engine.decide(design, K, rec.level[:, -1], engine.counts(design, K, as_of, rec), prev)
        sentinel = np.array([[rec.infusion_day[i][rec.level[i] == j].min(initial=np.inf) for j in range(K)]
                             for i in range(len(as_of))])
        sentinel = np.where(np.isinf(sentinel), np.nan, sentinel)
        first = np.array([[np.flatnonzero(rec.level[i] == j)[0] if (rec.level[i] == j).any() else 0
                           for j in range(K)] for i in range(len(as_of))])
        s_dlt = np.take_along_axis(rec.dlt, first, 1) & ~np.isnan(sentinel)
        s_onset = np.where(s_dlt, np.take_along_axis(rec.onset, first, 1), np.nan)
        held = engine.gate_held(design, as_of, sentinel, s_dlt, s_onset, REVIEW)
        nxt = np.clip(dec.next_level, 0, K - 1)
        gate = engine.time_gate(design, sentinel, nxt)
        for i in range(len(as_of)):
            st = _state(rec, i, prev[i], with_release=True)
            ref = decide(st, design, float(as_of[i]))
            seen.add((ref.decision, ref.suspended, ref.gate_held))
            assert dec.rule[i] == ref.rule_id, (k, i)
            assert bool(dec.stopped[i]) == (ref.decision == "stop")
            assert bool(dec.suspended[i]) == ref.suspended
            assert bool(dec.escalate[i]) == (ref.decision == "escalate")
            if not dec.stopped[i]:
                assert LEVELS[dec.next_level[i]] == ref.next_level
            assert (dec.eliminated_from[i] if dec.eliminated_from[i] < K else None) == ref.eliminated_from
            assert list(held[i]) == list(gate_holds(st, design, float(as_of[i]))[0]), (k, i)
            if ref.earliest_next_infusion_day is not None:
                want = ref.earliest_next_infusion_day
                assert (max(as_of[i], gate[i]) if not np.isnan(gate[i]) else as_of[i]) == want
    # the random states reach the interesting branches, not only "stay"
    decisions = {d for d, _, _ in seen}
    assert decisions >= {"stay", "de-escalate"} and any(s for _, s, _ in seen)
    assert "escalate" in decisions or design.min_completers  # the guards rarely let random states escalate
    assert any(h for _, _, h in seen)  # a sentinel hold


def test_counts_by_hand():
    # window 28, as of day 30: P0 (day 0, no DLT) complete; P1 (day 10, DLT on day 5 after
    # infusion, so known on day 15) DLT; P2 (day 20, DLT onset 12 -> day 32, not yet known)
    # pending with u = 10; P3 (day 26, level 1) pending with u = 4; P4 (day 1, level 1)
    # withdrew on day 3: not evaluable (left out of n)
    nan = math.nan
    rec = engine.Record(np.array([[0.0, 10.0, 20.0, 26.0, 1.0]]), np.array([[0, 0, 0, 1, 1]]),
                        np.array([[False, True, True, False, False]]), np.array([[nan, 5.0, 12.0, nan, nan]]),
                        np.array([[nan, nan, nan, nan, 3.0]]), np.array([[0, 0, 0, 0, REASON_CODE["withdrawn"]]]),
                        np.full((1, 5), nan), np.full((1, 5), nan))
    c = engine.counts(BoinDesign(), 2, np.array([30.0]), rec)
    assert list(c.n[0]) == [3, 1] and list(c.y[0]) == [1, 0] and list(c.c[0]) == [1, 1]
    assert list(c.n_not_evaluable[0]) == [0, 1]
    assert c.stft[0] == pytest.approx([10 / 28, 4 / 28]) and list(c.min_followup[0]) == [10.0, 4.0]
