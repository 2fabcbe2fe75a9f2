"""A batch of virtual trials: draw once, then run the calendar of every rule on the same draws.

Each participant's draws (arrival, delay, toxicity uniform, onset, kinetic η) are made once
per trial and shared by every rule (common random numbers: rules are compared on the same
virtual participants). See :mod:`ctkinetics.trialsim.draws` for the draws and
:mod:`ctkinetics.trialsim.calendar` for the calendar.
"""
from __future__ import annotations

from dataclasses import dataclass

from ctkinetics.trialsim.calendar import RuleOutcomes, run_rule
from ctkinetics.trialsim.draws import TrialDraws, draw_trials, on_grid, seed_sequence

__all__ = ["SimulatedTrials", "simulate_trials_local", "RuleOutcomes", "TrialDraws", "draw_trials",
           "on_grid", "seed_sequence"]


@dataclass(frozen=True)
class SimulatedTrials:
    """m trials of a spec: their draws and, per rule (spec order), a :class:`RuleOutcomes`."""

    draws: TrialDraws
    outcomes: tuple

    @property
    def trials(self):
        return self.draws.trials


def simulate_trials_local(spec, seed: int, trials) -> SimulatedTrials:
    """Simulate trials ``trials`` (indices) under every rule of ``spec``, in this process.

    Every array is indexed by the position of the trial in ``trials``; a trial's numbers do not
    depend on the other trials of the batch.
    """
    draws = draw_trials(spec, seed, trials)
    return SimulatedTrials(draws, tuple(run_rule(spec, rule, draws) for rule in spec.rules))
