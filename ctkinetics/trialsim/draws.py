"""Everything random about a batch of virtual trials, drawn once and shared by every rule.

Trial ``i`` draws from its own stream, ``numpy.random.SeedSequence(seed, spawn_key=(i,))``,
in a fixed order (escalation arrival gaps, their manufacturing delays, toxicity uniforms,
onset uniforms, kinetic η, expansion arrival gaps, their manufacturing delays), so a trial's
draws do not depend on which other trials share its batch or worker. The kinetics of all
participants of the batch then take one vectorised model call
(:func:`ctkinetics.trialsim.kinetics.exposures`), and the DLT indicators and onsets follow
from the toxicity link (:func:`ctkinetics.trialsim.toxicity.dlt_outcomes`).

Days are rounded to a 2^-16-day grid (1.3 s): sums and differences of such days are exact in
floating point, so a window ending on day t0 + 28 has elapsed, as the engine sees it
(as_of − t0 >= 28), on exactly that day, and summed durations do not depend on the order
of summation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.trialsim.kinetics import exposures
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
    dlt : ndarray (m, P, D) of bool
        Whether participant slot p would have a DLT at level j.
    onset : ndarray (m, P, D)
        Days after infusion of that DLT.
    exposure : dict metric -> ndarray (m, P, D), or None without kinetics
    """

    trials: np.ndarray
    ready: np.ndarray
    exp_offsets: np.ndarray
    dlt: np.ndarray
    onset: np.ndarray
    exposure: dict | None

    @property
    def m(self) -> int:
        return int(self.trials.size)

    def subset(self, rows) -> "TrialDraws":
        """The draws of some of the trials (``rows`` index this batch, not trial numbers)."""
        e = None if self.exposure is None else {k: v[rows] for k, v in self.exposure.items()}
        return TrialDraws(self.trials[rows], self.ready[rows], self.exp_offsets[rows], self.dlt[rows],
                          self.onset[rows], e)


def draw_trials(spec, seed: int, trials) -> TrialDraws:
    """Draw trials ``trials`` (indices) of ``spec``; see the module doc."""
    d = spec.design
    n_esc, n_exp = d.boin.max_subjects, d.n_expansion
    total = n_esc + n_exp
    k_levels = len(d.levels)
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
    expo = None
    if kin is not None:
        flat = exposures(kin, eta.reshape(m * total, n_eta), d.doses)
        expo = {k: v.reshape(m, total, k_levels) for k, v in flat.items()}
    window = max(r.design.dlt_window_days for r in spec.rules)
    flat_expo = None if expo is None else {k: v.reshape(m * total, k_levels) for k, v in expo.items()}
    dlt, onset = dlt_outcomes(spec.toxicity, tox_u.ravel(), onset_u.ravel(), flat_expo, window, k_levels)
    return TrialDraws(trials, on_grid(ready), on_grid(exp_offsets), dlt.reshape(m, total, k_levels),
                      on_grid(onset).reshape(m, total, k_levels), expo)
