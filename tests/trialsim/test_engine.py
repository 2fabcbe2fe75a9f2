"""The fast adapter gives exactly the escalation engine's decide() on random states."""
import math

import numpy as np
import pytest

from ctkinetics.escalation import BoinDesign, EscalationState, Participant, decide
from ctkinetics.trialsim.engine import engine_step


def random_state(rng, k=3):
    n = int(rng.integers(0, 10))
    parts, day = [], 0.0
    level = 0
    for i in range(n):
        day += float(rng.choice([0.0, 3.0, 7.5, 14.0, 20.0]))
        level = int(np.clip(level + rng.integers(-1, 2), 0, k - 1))
        dlt = float(rng.random() < 0.3)
        dlt_day = float(rng.uniform(1, 28)) if dlt else math.nan
        parts.append(Participant(f"P{i}", level, day, dlt, dlt_day))
    elim = None if rng.random() < 0.8 else int(rng.integers(1, k))
    return EscalationState(("L1", "L2", "L3")[:k], parts, eliminated_from=elim), day


@pytest.mark.parametrize("tite", [True, False])
def test_engine_step_equals_decide(tite):
    rng = np.random.default_rng(5)
    design = BoinDesign(tite=tite, stagger_days=14.0)
    seen = set()
    for _ in range(60):
        state, last = random_state(rng)
        as_of = last + float(rng.choice([0.0, 5.0, 13.0, 20.0, 40.0]))
        ref = decide(state, design, as_of)
        step, earliest = engine_step(state, design, as_of)
        seen.add(ref.decision + ("/suspended" if ref.suspended else ""))
        assert step.decision == ref.decision
        assert step.suspended == ref.suspended
        if not step.stopped:
            assert state.levels[step.next_level] == ref.next_level
        assert (step.eliminated_from if step.eliminated_from < 3 else None) == ref.eliminated_from
        assert earliest == ref.earliest_next_infusion_day
    # the random states reach the interesting branches, not only "stay"
    assert len({s.split("/")[0] for s in seen}) >= 3 and any("suspended" in s for s in seen)
