"""Everything random about a batch of virtual trials, drawn once and shared by every rule.

Trial ``i`` draws from its own stream, ``numpy.random.SeedSequence(seed, spawn_key=(i,))``,
in a fixed order (escalation arrival gaps, their manufacturing delays, toxicity uniforms,
onset uniforms, kinetic η, expansion arrival gaps, their manufacturing delays), so a trial's
draws do not depend on which other trials share its batch or worker.

A participant's kinetics, and so the DLT and its onset, depend on the dose level given. They
are computed for the (participant, level) pairs the calendar asks for
(:meth:`TrialDraws.outcome`), in one vectorised model call per request over all trials of the
batch (:class:`ctkinetics.trialsim.kinetics.ExposureTable`), and kept; the DLT follows from
the toxicity link (:func:`ctkinetics.trialsim.toxicity.dlt_outcomes`) with the participant's
uniforms, so it is the same whichever rule or request computes it first.

Days are rounded to a 2^-16-day grid (1.3 s): sums and differences of such days are exact in
floating point, so a window ending on day t0 + 28 has elapsed, as the engine sees it
(as_of − t0 >= 28), on exactly that day, and summed durations do not depend on the order
of summation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.trialsim.kinetics import ExposureTable
from ctkinetics.trialsim.toxicity import dlt_outcomes

DAYS_PER_MONTH = 365.25 / 12
GRID = 2.0 ** 16


def on_grid(days):
    """Days rounded to the 2^-16-day grid (at least one grid step when positive)."""
    d = np.asarray(days, dtype=float)
    q = np.round(d * GRID) / GRID
    return np.where(d > 0, np.maximum(q, 1.0 / GRID), q)


def seed_sequence(seed: int, trial: int) -> np.random.SeedSequence:
    """Trial ``trial``'s seed: the ``trial``-th child of ``SeedSequence(seed)``, without spawning
    all earlier children (identical to ``SeedSequence(seed).spawn(trial + 1)[trial]``)."""
    return np.random.SeedSequence(seed, spawn_key=(trial,))


@dataclass(frozen=True)
class TrialDraws:
    """Random inputs of m trials: N escalation slots, then M expansion slots (P = N + M).

    Attributes
    ----------
    trials : ndarray (m,) of int
        Trial indices.
    ready : ndarray (m, N)
        Study day each escalation participant's product is ready (sorted per trial).
    exp_offsets : ndarray (m, M)
        Days after the end of escalation each expansion product is ready (sorted).
    tox_u, onset_u : ndarray (m, P)
        Each participant's uniforms for the DLT and its onset.
    kinetics : ExposureTable or None
        The participants' exposures by level (None without kinetics).
    """

    trials: np.ndarray
    ready: np.ndarray
    exp_offsets: np.ndarray
    tox_u: np.ndarray
    onset_u: np.ndarray
    kinetics: ExposureTable | None
    toxicity: object  # ToxicitySpec
    window: float

    @property
    def m(self) -> int:
        return int(self.trials.size)

    def exposure(self, rows, slots, levels) -> dict | None:
        """metric -> exposure of the participants at (trial row, slot) given ``levels``
        (index arrays broadcast together); None without kinetics."""
        return None if self.kinetics is None else self.kinetics.at(rows, slots, levels)

    def outcome(self, rows, slots, levels):
        """``(dlt, onset)`` of participants at (trial row, slot) given ``levels`` (index arrays
        broadcast together): whether they have a DLT there and its onset (days after infusion,
        on the grid; meaningful where DLT)."""
        rows, slots, levels = np.broadcast_arrays(rows, slots, levels)
        dlt, onset = dlt_outcomes(self.toxicity, self.tox_u[rows, slots], self.onset_u[rows, slots],
                                  self.exposure(rows, slots, levels), levels, self.window)
        return dlt, on_grid(onset)


def draw_trials(spec, seed: int, trials) -> TrialDraws:
    """Draw trials ``trials`` (indices) of ``spec``; see the module doc."""
    d = spec.design
    n_esc, n_exp = d.boin.max_subjects, d.n_expansion
    total = n_esc + n_exp
    scale = DAYS_PER_MONTH / d.accrual_per_month
    kin = spec.kinetics
    trials = np.asarray(list(trials), dtype=np.int64)
    m = trials.size
    ready = np.empty((m, n_esc))
    exp_offsets = np.empty((m, n_exp))
    tox_u = np.empty((m, total))
    onset_u = np.empty((m, total))
    n_eta = len(kin.variable) if kin is not None else 0
    eta = np.empty((m, total, n_eta))
    for i, trial in enumerate(trials):
        rng = np.random.default_rng(seed_sequence(seed, int(trial)))
        gaps = rng.exponential(scale, n_esc)
        gaps[0] = 0.0
        ready[i] = np.sort(np.cumsum(gaps) + d.manufacturing.draw(rng, n_esc))
        tox_u[i] = rng.random(total)
        onset_u[i] = rng.random(total)
        if kin is not None:
            eta[i] = rng.standard_normal((total, n_eta))
        exp_offsets[i] = np.sort(np.cumsum(rng.exponential(scale, n_exp)) + d.manufacturing.draw(rng, n_exp))
    table = ExposureTable(kin, eta, d.doses) if kin is not None else None
    window = max(r.design.dlt_window_days for r in spec.rules)
    return TrialDraws(trials, on_grid(ready), on_grid(exp_offsets), tox_u, onset_u, table,
                      spec.toxicity, window)
