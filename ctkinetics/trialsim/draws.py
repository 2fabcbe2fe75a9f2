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

import dataclasses
from dataclasses import dataclass

import numpy as np

from ctkinetics.trialsim.kinetics import ExposureTable
from ctkinetics.trialsim.toxicity import dlt_outcomes, response

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
    """Random inputs of m trials: N escalation slots (the maximum plus the replacements
    allowed), then M expansion slots (P = N + M).

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
    conduct_u : ndarray (5, m, P)
        Uniforms for the dropout, its day, the shortfall, the fraction received, efficacy.
    kinetics : ExposureTable or None
        The participants' exposures by level (None without kinetics).
    """

    trials: np.ndarray
    ready: np.ndarray
    exp_offsets: np.ndarray
    tox_u: np.ndarray
    onset_u: np.ndarray
    conduct_u: np.ndarray
    kinetics: ExposureTable | None
    spec: object  # TrialSpec (toxicity and efficacy links, doses, conduct)
    window: float

    @property
    def m(self) -> int:
        return int(self.trials.size)

    @property
    def doses(self) -> tuple:
        return self.spec.design.doses

    @property
    def dropout(self) -> np.ndarray:
        """(m, P) whether each participant's window would end early (without a DLT)."""
        return self.conduct_u[0] < self.spec.design.conduct.dropout_probability

    @property
    def dropout_day(self) -> np.ndarray:
        """(m, P) when, as a fraction of the window (in (0, 1], on the day grid after × T)."""
        return np.maximum(self.conduct_u[1], 1e-9)

    @property
    def fraction(self) -> np.ndarray:
        """(m, P) fraction of the planned dose each product delivers (1 unless short)."""
        c = self.spec.design.conduct
        short = self.conduct_u[2] < c.shortfall_probability
        return np.where(short, c.shortfall_low + self.conduct_u[3] * (c.shortfall_high - c.shortfall_low), 1.0)

    def exposure(self, rows, slots, levels) -> dict | None:
        """metric -> exposure of the participants at (trial row, slot) given ``levels``
        (index arrays broadcast together), at the dose their product delivered; None without
        kinetics."""
        return None if self.kinetics is None else self.kinetics.at(rows, slots, levels)

    def outcome(self, rows, slots, levels, rate_levels=None):
        """``(dlt, onset)`` of participants at (trial row, slot) given ``levels`` (index arrays
        broadcast together): whether they have a DLT there and its onset (days after infusion,
        on the grid; meaningful where DLT). A fixed-rate link reads the rate of ``rate_levels``
        (default ``levels``; the level reached by a short product)."""
        rows, slots, levels = np.broadcast_arrays(rows, slots, levels)
        at = levels if rate_levels is None else np.broadcast_to(rate_levels, levels.shape)
        dlt, onset = dlt_outcomes(self.spec.toxicity, self.tox_u[rows, slots], self.onset_u[rows, slots],
                                  self.exposure(rows, slots, levels), at, self.window)
        return dlt, on_grid(onset)

    def efficacy(self, rows, slots, levels):
        """Efficacy responses (bool) of participants given ``levels``; None without an efficacy
        model (:func:`ctkinetics.trialsim.toxicity.response`)."""
        if self.spec.efficacy is None:
            return None
        rows, slots, levels = np.broadcast_arrays(rows, slots, levels)
        return response(self.spec.efficacy, self.conduct_u[4][rows, slots], self.exposure(rows, slots, levels),
                        levels)


def draw_trials(spec, seed: int, trials) -> TrialDraws:
    """Draw trials ``trials`` (indices) of ``spec``; see the module doc."""
    d = spec.design
    n_esc, n_exp = d.n_slots, d.n_expansion
    total = n_esc + n_exp
    scale = DAYS_PER_MONTH / d.accrual_per_month
    kin = spec.kinetics
    trials = np.asarray(list(trials), dtype=np.int64)
    m = trials.size
    ready = np.empty((m, n_esc))
    exp_offsets = np.empty((m, n_exp))
    tox_u = np.empty((m, total))
    onset_u = np.empty((m, total))
    conduct_u = np.empty((5, m, total))
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
        conduct_u[:, i] = rng.random((5, total))  # drawn last: earlier draws do not depend on it
    window = max(r.design.dlt_window_days for r in spec.rules)
    draws = TrialDraws(trials, on_grid(ready), on_grid(exp_offsets), tox_u, onset_u, conduct_u, None, spec,
                       window)
    if kin is not None:
        by_day = None
        if d.conduct.no_expansion_lloq is not None:
            by_day = spec.rules[0].design.protocol.no_expansion.by_day
        table = ExposureTable(kin, eta, d.doses, draws.fraction, peak_by_day=by_day)
        draws = dataclasses.replace(draws, kinetics=table)
    return draws
