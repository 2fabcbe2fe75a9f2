"""Operating characteristics by simulating many trials at once (numpy, vectorised over trials).

Two simulators share the rules of :mod:`ctkinetics.escalation.rules` and the MTD selection of
:mod:`ctkinetics.escalation.mtd` (so they follow exactly what :func:`decide` tells a committee):

- :func:`simulate_boin` — cohort by cohort with complete DLT data before each decision, as the
  BOIN R package's ``get.oc``: every cohort's outcomes are known at once; no calendar.
- :func:`simulate_tite` — participant by participant on a calendar: Poisson arrivals at
  ``accrual_per_month`` (1 month = 365.25/12 days), DLT onset uniform over the window
  (Yuan et al. 2018's default), TITE-BOIN with accrual suspension, and the stagger of
  :mod:`ctkinetics.escalation.decision` as a time gate (the sentinel's safety gate needs a
  committee's review and CRS/ICANS outcomes: the virtual trials of :mod:`ctkinetics.trialsim`
  model it; compare with a design whose ``protocol.sentinel`` is disabled). Arriving
  participants queue while accrual is suspended or the stagger holds; the decision is re-taken at each event (a DLT, the end of a
  window, the end of a stagger wait). Duration runs from the first infusion to the last DLT
  window's resolution (or to the stop for safety).

Randomness comes from one ``numpy.random.Generator(seed)``; the draws can be passed in
explicitly to replay trials (tests do so to check the simulators against :func:`decide`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ctkinetics.errors import SettingsError
from ctkinetics.escalation.boundaries import BoinDesign, _check_count, _check_probability
from ctkinetics.escalation.mtd import select_mtd_batch
from ctkinetics.escalation.rules import STOP, action_of, eliminated_from, next_step, suspends

DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True)
class OperatingCharacteristics:
    """Summary of simulated trials.

    Attributes
    ----------
    selection_pct : tuple of float
        % of trials selecting each level as the MTD.
    no_mtd_pct : float
        % of trials selecting no MTD (stopped for safety).
    mean_participants, mean_dlts : tuple of float
        Mean participants treated and mean DLTs per level.
    mean_duration_days : float or None
        Mean trial duration (calendar simulator only).
    n_trials : int
    true_tox : tuple of float
    selected : numpy.ndarray
        Per trial, the selected level (−1 none); ``n``, ``y`` (trials × levels) and
        ``duration`` (trials, NaN without a calendar) keep the raw results.
    """

    selection_pct: tuple
    no_mtd_pct: float
    mean_participants: tuple
    mean_dlts: tuple
    mean_duration_days: float | None
    n_trials: int
    true_tox: tuple
    selected: np.ndarray
    n: np.ndarray
    y: np.ndarray
    duration: np.ndarray

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({
            "level": np.arange(1, len(self.true_tox) + 1), "true_tox": self.true_tox,
            "selection_pct": self.selection_pct, "mean_participants": self.mean_participants,
            "mean_dlts": self.mean_dlts,
        })

    def to_dict(self) -> dict:
        out = {
            "selection_pct": [float(v) for v in self.selection_pct],
            "no_mtd_pct": float(self.no_mtd_pct),
            "mean_participants": [float(v) for v in self.mean_participants],
            "mean_dlts": [float(v) for v in self.mean_dlts],
            "n_trials": int(self.n_trials),
            "true_tox": [float(v) for v in self.true_tox],
        }
        if self.mean_duration_days is not None:
            out["mean_duration_days"] = float(self.mean_duration_days)
        return out


def _check(true_tox, n_cohorts, n_trials, design):
    p = np.array([_check_probability("true toxicity", v) for v in true_tox], dtype=float)
    if p.size == 0:
        raise SettingsError("give at least one true toxicity probability")
    n_cohorts = design.simulation_cohorts(n_cohorts)
    n_trials = _check_count("n_trials", n_trials)
    if design.start_level >= p.size:
        raise SettingsError(f"start level {design.start_level + 1} is above the {p.size} dose levels")
    design = dataclasses.replace(design, max_subjects=n_cohorts * design.cohort_size)
    return p, n_cohorts, n_trials, design


def _summarise(p, selected, n, y, duration):
    m, d = n.shape
    sel_pct = tuple(100.0 * np.mean(selected == j) for j in range(d))
    dur = None if np.all(np.isnan(duration)) else float(np.nanmean(duration))
    return OperatingCharacteristics(
        selection_pct=sel_pct, no_mtd_pct=100.0 * float(np.mean(selected < 0)),
        mean_participants=tuple(n.mean(axis=0).tolist()), mean_dlts=tuple(y.mean(axis=0).tolist()),
        mean_duration_days=dur, n_trials=m, true_tox=tuple(p.tolist()),
        selected=selected, n=n, y=y, duration=duration,
    )


def simulate_boin(design: BoinDesign, true_tox, n_cohorts: int, n_trials: int = 10000,
                  seed: int | None = None, uniforms=None) -> OperatingCharacteristics:
    """BOIN operating characteristics, cohort by cohort (as ``BOIN::get.oc``).

    Participant k of a trial has a DLT iff ``uniforms[trial, k] < true_tox[level]``; the
    uniforms are drawn as ``default_rng(seed).random((n_trials, n_cohorts·cohort_size))``
    unless given. The design's ``n_earlystop``, ``extrasafe``/``offset`` and ``bound_mtd`` act
    as R BOIN's options of the same names (tested against R BOIN 2.7.2's get.oc).

    Examples
    --------
    >>> oc = simulate_boin(BoinDesign(0.3), [0.05, 0.15, 0.3, 0.45, 0.6], 10, 2000, seed=1)
    >>> round(sum(oc.selection_pct) + oc.no_mtd_pct)
    100
    """
    p, n_cohorts, n_trials, design = _check(true_tox, n_cohorts, n_trials, design)
    cs = design.cohort_size
    d_count = p.size
    if uniforms is None:
        uniforms = np.random.default_rng(seed).random((n_trials, n_cohorts * cs))
    u = np.asarray(uniforms, dtype=float)
    rows = np.arange(n_trials)
    n = np.zeros((n_trials, d_count), dtype=int)
    y = np.zeros((n_trials, d_count), dtype=int)
    level = np.full(n_trials, design.start_level)
    elim = np.full(n_trials, d_count)
    active = np.ones(n_trials, dtype=bool)
    n_total = np.zeros(n_trials, dtype=int)
    no_pending = np.zeros(n_trials, dtype=int)
    no_stft = np.zeros(n_trials)
    # Whole-array updates masked by `active` are faster than subsetting rows each cohort.
    for cohort in range(n_cohorts):
        act = active.astype(int)
        tox = (u[:, cohort * cs:(cohort + 1) * cs] < p[level][:, None]).sum(axis=1) * act
        n[rows, level] += cs * act
        y[rows, level] += tox
        n_total += cs * act
        n_cur, y_cur = n[rows, level], y[rows, level]
        elim = eliminated_from(design, n, y, elim)  # incl. the extra-safe rule for the lowest dose
        rule, nxt, _ = next_step(design, d_count, level, n_cur, y_cur, no_pending, no_stft, elim, n_total)
        stop = action_of(rule) == STOP
        level = np.where(active, nxt, level)
        active &= ~stop
        if not active.any():
            break
    selected = select_mtd_batch(design, n, y, elim)
    return _summarise(p, selected, n, y, np.full(n_trials, np.nan))


def simulate_tite(design: BoinDesign, true_tox, n_cohorts: int, n_trials: int = 10000,
                  seed: int | None = None, accrual_per_month: float = 2.0,
                  draws: dict | None = None) -> OperatingCharacteristics:
    """TITE-BOIN (or plain BOIN with ``design.tite=False``) on a calendar; see the module doc.

    ``draws`` (for replay) holds arrays of shape (n_trials, N), N = n_cohorts·cohort_size:
    ``tox`` (uniforms: DLT iff < true rate), ``onset`` (uniforms: DLT day = infusion + onset·T)
    and ``arrival`` (arrival day of the k-th participant, non-decreasing).
    """
    p, n_cohorts, n_trials, design = _check(true_tox, n_cohorts, n_trials, design)
    try:
        rate = float(accrual_per_month)
    except (TypeError, ValueError):
        raise SettingsError(f"accrual per month must be a number, got {accrual_per_month!r}") from None
    if not rate > 0:
        raise SettingsError(f"accrual per month must be positive, got {accrual_per_month!r}")
    big_n = n_cohorts * design.cohort_size
    if draws is None:
        rng = np.random.default_rng(seed)
        tox_u = rng.random((n_trials, big_n))
        onset_u = rng.random((n_trials, big_n))
        gaps = rng.exponential(DAYS_PER_MONTH / rate, (n_trials, big_n))
        gaps[:, 0] = 0.0
        arrival = np.cumsum(gaps, axis=1)
    else:
        tox_u, onset_u, arrival = (np.asarray(draws[k], dtype=float) for k in ("tox", "onset", "arrival"))
    calendar = _TiteCalendar(design, p, tox_u, onset_u)
    for k in range(big_n):
        calendar.enrol(k, np.maximum(arrival[:, k], calendar.t_prev))
    return calendar.result()


class _TiteCalendar:
    """The state of ``n_trials`` TITE-BOIN trials on one calendar: participant k of every
    trial is placed (or the trial stops) before participant k + 1 arrives."""

    def __init__(self, design: BoinDesign, p, tox_u, onset_u):
        n_trials, big_n = tox_u.shape
        self.design, self.p, self.tox_u, self.onset_u = design, p, tox_u, onset_u
        self.T, self.S, self.d_count = design.dlt_window_days, design.stagger_days, p.size
        self.inf_t = np.full((n_trials, big_n), np.nan)
        self.lev = np.full((n_trials, big_n), -1)
        self.dlt = np.zeros((n_trials, big_n), dtype=bool)
        self.resolve = np.full((n_trials, big_n), np.inf)  # DLT day, or end of window
        self.sentinel = np.full((n_trials, self.d_count), np.nan)
        self.elim = np.full(n_trials, self.d_count)
        self.active = np.ones(n_trials, dtype=bool)
        self.t_prev = np.zeros(n_trials)
        self.end_time = np.full(n_trials, np.nan)
        self.levels_idx = np.arange(self.d_count)

    def enrol(self, k: int, t) -> None:
        """Participant k of every active trial: placed when the rules allow, else the trial
        waits for its next event (a DLT, a window end, the stagger gate) or stops."""
        design, d_count = self.design, self.d_count
        waiting = self.active.copy()
        while waiting.any():
            r = np.nonzero(waiting)[0]
            tr = t[r]
            cur, n_all, y_all, c_all, stft_all, min_u = self._known(k, r, tr)
            self.elim[r] = eliminated_from(design, n_all, y_all, self.elim[r])
            ii = np.arange(r.size)
            rule, nxt, _ = next_step(design, d_count, cur, n_all[ii, cur], y_all[ii, cur],
                                     c_all[ii, cur], stft_all[ii, cur], self.elim[r], n_all.sum(axis=1),
                                     min_followup=min_u)
            stop = action_of(rule) == STOP
            suspend = suspends(rule)
            gate = self.sentinel[r, np.clip(nxt, 0, d_count - 1)] + self.S
            held = ~stop & ~suspend & (tr < gate - 1e-9)
            place = ~stop & ~suspend & ~held
            self.active[r[stop]] = False  # trials that stop now
            self.end_time[r[stop]] = tr[stop]
            self._place(k, r[place], nxt[place], tr[place])
            wait = suspend | held  # the others wait for the next event
            rw = r[wait]
            t[rw] = self._next_event(k, rw, t, held[wait], gate[wait])
            waiting[r[stop | place]] = False

    def _known(self, k: int, r, tr):
        """What the rules see at day ``tr`` in trials ``r``: current level, treated, DLTs,
        pending and their follow-up fraction per level, the smallest pending follow-up."""
        d_count, T = self.d_count, self.T
        if k == 0:
            n_all = np.zeros((r.size, d_count), dtype=int)
            return (np.full(r.size, self.design.start_level), n_all, n_all.copy(), n_all.copy(),
                    np.zeros((r.size, d_count)), None)
        L = self.lev[r, :k]
        res = self.resolve[r, :k]
        known_dlt = self.dlt[r, :k] & (res <= tr[:, None])
        pending = res > tr[:, None]
        u = np.clip(tr[:, None] - self.inf_t[r, :k], 0.0, T)
        onehot = L[:, :, None] == self.levels_idx
        n_all = onehot.sum(axis=1)
        y_all = (onehot & known_dlt[:, :, None]).sum(axis=1)
        c_all = (onehot & pending[:, :, None]).sum(axis=1)
        stft_all = (onehot * (np.where(pending, u, 0.0) / T)[:, :, None]).sum(axis=1)
        cur = L[:, -1]
        min_u = None
        if self.design.min_pending_followup > 0:  # smallest pending follow-up at the current level
            at_cur = pending & (L == cur[:, None])
            min_u = np.where(at_cur, u, np.inf).min(axis=1)
        return cur, n_all, y_all, c_all, stft_all, min_u

    def _place(self, k: int, rp, lp, tp) -> None:
        """Participant k infused at day ``tp`` on level ``lp`` in trials ``rp``."""
        self.inf_t[rp, k] = tp
        self.lev[rp, k] = lp
        is_dlt = self.tox_u[rp, k] < self.p[lp]
        self.dlt[rp, k] = is_dlt
        self.resolve[rp, k] = np.where(is_dlt, tp + self.onset_u[rp, k] * self.T, tp + self.T)
        first = np.isnan(self.sentinel[rp, lp])
        self.sentinel[rp[first], lp[first]] = tp[first]
        self.t_prev[rp] = tp

    def _next_event(self, k: int, rw, t, held, gate):
        """The day trials ``rw`` (waiting at ``t``) see something new: a DLT or window end, a
        participant reaching the guard's follow-up, or (when held) the stagger gate."""
        nxt_event = np.full(rw.size, np.inf)
        if k > 0:
            res = self.resolve[rw, :k]
            nxt_event = np.where(res > t[rw][:, None], res, np.inf).min(axis=1)
            if self.design.min_pending_followup > 0:  # the day a participant reaches the guard's follow-up
                reach = self.inf_t[rw, :k] + self.design.min_pending_followup
                nxt_event = np.minimum(nxt_event, np.where(reach > t[rw][:, None] + 1e-9, reach, np.inf).min(axis=1))
        nxt_event = np.where(held, np.minimum(nxt_event, gate), nxt_event)
        if np.any(~np.isfinite(nxt_event)):  # pragma: no cover - cannot happen by construction
            raise RuntimeError("simulated trial waiting for an event that never comes")
        return nxt_event

    def result(self) -> OperatingCharacteristics:
        """The final analysis on complete data (every DLT of a treated participant known)."""
        end_time = self.end_time.copy()
        done = np.isnan(end_time)
        last = np.where(np.isfinite(self.resolve), self.resolve, -np.inf).max(axis=1)
        end_time[done] = last[done]
        duration = end_time - self.inf_t[:, 0]
        onehot = self.lev[:, :, None] == self.levels_idx
        n = onehot.sum(axis=1)
        y = (onehot & self.dlt[:, :, None]).sum(axis=1)
        elim = eliminated_from(self.design, n, y, self.elim)
        selected = select_mtd_batch(self.design, n, y, elim)
        return _summarise(self.p, selected, n, y, duration)
