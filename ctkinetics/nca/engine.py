"""Vectorised NCA quantities of many profiles at once.

:class:`Profiles` wraps the padded arrays of :class:`~ctkinetics.nca.profiles.ProfileSet`
and computes each intermediate (Cmax, Tlast, cumulative AUC, λz, ...) once, on demand, for
all profiles together. The parameter registry (:mod:`ctkinetics.nca.parameters`) reads
these; formulas live in :mod:`~ctkinetics.nca.auc`, :mod:`~ctkinetics.nca.blq` and
:mod:`~ctkinetics.nca.lambdaz` only.

Conventions (PKNCA): Cmax is the highest observed concentration (0 when all samples are
BLQ), Tmax the first time it occurs (undefined when Cmax is 0); Tlast/Clast the last
positive concentration; AUClast integrates from the first point (time 0) to Tlast, AUCall
to the last sample (trailing BLQ as kept by the BLQ rule), AUCIFO = AUClast + Clast/λz.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np

from ctkinetics.nca.auc import AUC_METHODS, exp_tail_area, partial_area, segment_area
from ctkinetics.nca.lambdaz import LambdaZ, fit_lambda_z
from ctkinetics.nca.options import NCAOptions

NO_SAMPLE = "no post-infusion sample"
ALL_BLQ = "no quantifiable sample (all BLQ)"


def _reasons(n, *pairs):
    """Object array of reasons: the first (mask, text) pair that applies wins."""
    out = np.full(n, "", dtype=object)
    for mask, text in reversed(pairs):
        if isinstance(text, np.ndarray):
            out = np.where(mask, text, out)
        else:
            out[mask] = text
    return out


class Profiles:
    """All profiles of an NCA run as padded arrays (rows = profiles, packed left by time)."""

    def __init__(self, t, c, valid, is_sample, options: NCAOptions, dose=None):
        self.t, self.c, self.valid, self.is_sample = t, c, valid, is_sample
        self.options = options
        self.n = t.shape[0]
        self.rows = np.arange(self.n)
        self.dose = np.full(self.n, np.nan) if dose is None else np.asarray(dose, float)

    # ---- restriction to an interval (parameters other than AUCINT) ---------------------
    def restrict(self, start: float, end: float) -> "Profiles":
        """The same profiles with only the points in [start, end] (PKNCA's interval data)."""
        t0 = np.nanmin(np.where(self.valid, self.t, np.inf), axis=1, initial=np.inf)
        if np.all(start <= t0) and np.isinf(end):
            return self
        keep = self.valid & (self.t >= start) & (self.t <= end)
        m = keep.shape[1]
        cols = np.arange(m)
        order = np.argsort(np.where(keep, cols, m + cols), axis=1, kind="stable")
        take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
        v = take(keep)
        return Profiles(np.where(v, take(self.t), np.nan), np.where(v, take(self.c), np.nan), v,
                        take(self.is_sample) & v, self.options, self.dose)

    # ---- counts -------------------------------------------------------------------------
    @cached_property
    def n_valid(self):
        return self.valid.sum(axis=1)

    @cached_property
    def has_sample(self):
        return (self.valid & self.is_sample).any(axis=1)

    # ---- Cmax / Tmax --------------------------------------------------------------------
    @cached_property
    def _imax(self):
        elig = self.valid & self.is_sample
        if self.options.cmax_exclude_before is not None:
            elig &= self.t >= self.options.cmax_exclude_before
        filled = np.where(elig, self.c, -np.inf)
        i = np.argmax(filled, axis=1)  # first occurrence wins on ties
        return i, filled[self.rows, i]

    @cached_property
    def cmax(self):
        v = self._imax[1]
        return np.where(np.isfinite(v), v, np.nan)

    @cached_property
    def tmax(self):
        i, v = self._imax
        return np.where(np.isfinite(v) & (v > 0), self.t[self.rows, i], np.nan)

    @cached_property
    def cmax_reason(self):
        reason = NO_SAMPLE
        if self.options.cmax_exclude_before is not None:
            reason = f"no sample at or after {self.options.cmax_exclude_before:g} {self.options.time_unit}"
        return _reasons(self.n, (~self.has_sample, NO_SAMPLE), (np.isnan(self.cmax), reason))

    @cached_property
    def tmax_reason(self):
        return _reasons(self.n, (np.isnan(self.cmax), self.cmax_reason), (self.cmax == 0, ALL_BLQ))

    # ---- Tlast / Clast ------------------------------------------------------------------
    @cached_property
    def _ilast(self):
        pos = self.valid & (self.c > 0)
        m = pos.shape[1]
        has = pos.any(axis=1)
        return np.where(has, m - 1 - np.argmax(pos[:, ::-1], axis=1), -1), has

    @property
    def itlast(self):
        return self._ilast[0]

    @property
    def has_quant(self):
        return self._ilast[1]

    @cached_property
    def tlast(self):
        return np.where(self.has_quant, self.t[self.rows, np.maximum(self.itlast, 0)], np.nan)

    @cached_property
    def clast(self):
        return np.where(self.has_quant, self.c[self.rows, np.maximum(self.itlast, 0)], np.nan)

    @cached_property
    def quant_reason(self):
        return _reasons(self.n, (~self.has_sample, NO_SAMPLE), (~self.has_quant, ALL_BLQ))

    # ---- AUC ----------------------------------------------------------------------------
    @cached_property
    def _segments(self):
        t, c, v = self.t, self.c, self.valid
        t1, t2, c1, c2 = t[:, :-1], t[:, 1:], c[:, :-1], c[:, 1:]
        ok = v[:, :-1] & v[:, 1:]
        with np.errstate(invalid="ignore"):
            after_tmax = t1 >= self.tmax[:, None]
        is_log = AUC_METHODS[self.options.auc_method].use_log(c1, c2, after_tmax) & ok
        area = np.where(ok, segment_area(t1, c1, t2, c2, is_log), 0.0)
        cum = np.concatenate([np.zeros((self.n, 1)), np.cumsum(area, axis=1)], axis=1)
        return is_log, cum

    @property
    def cum_auc(self):
        return self._segments[1]

    @cached_property
    def auclast(self):
        val = self.cum_auc[self.rows, np.maximum(self.itlast, 0)]
        return np.where(self.has_quant, val, np.where(self.has_sample, 0.0, np.nan))

    @cached_property
    def aucall(self):
        val = self.cum_auc[self.rows, np.maximum(self.n_valid - 1, 0)]
        return np.where(self.has_sample, val, np.nan)

    def auc_to(self, x, auc_type: str):
        """F(x) = area from the first point (time 0) to x under the ``auc_type`` curve.

        'last': the data up to Tlast, 0 after; 'all': all points (trailing BLQ as the BLQ
        rule set them), 0 after the last; 'inf': the data up to Tlast, then
        Clast·exp(−λz·(t − Tlast)). Inside a segment the segment's own rule interpolates.
        """
        x = np.broadcast_to(np.asarray(x, float), (self.n,))
        t, c, rows = self.t, self.c, self.rows
        is_log, cum = self._segments
        if auc_type == "all":
            kend = np.where(self.has_sample, self.n_valid - 1, -1)
        else:
            kend = self.itlast
        ke = np.maximum(kend, 0)
        tend = t[rows, ke]
        cnt = (self.valid & (t <= x[:, None])).sum(axis=1) - 1
        k = np.clip(cnt, 0, np.maximum(ke - 1, 0))
        k1 = np.minimum(k + 1, t.shape[1] - 1)
        seg_log = is_log[rows, np.minimum(k, is_log.shape[1] - 1)] if is_log.shape[1] else np.zeros(self.n, bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            part = partial_area(t[rows, k], c[rows, k], t[rows, k1], c[rows, k1], seg_log, x)
            if auc_type == "inf":
                tail = np.where(x > tend, exp_tail_area(self.clast, self.lamz.lamz, x - tend), 0.0)
            else:
                tail = 0.0
            inside = np.where(x <= t[:, 0], 0.0, cum[rows, k] + part)
            val = np.where(x >= tend, cum[rows, ke] + tail, inside)
        # no quantifiable sample but samples (all BLQ as 0): the curve is 0 everywhere
        val = np.where(kend < 0, np.where(self.has_sample, 0.0, np.nan), val)
        return val

    def auc_interval(self, start, end, auc_type):
        """AUC from ``start`` to ``end`` of type 'last', 'all' or 'inf', with reasons."""
        val = self.auc_to(end, auc_type) - self.auc_to(start, auc_type)
        reason = _reasons(self.n, (~self.has_sample, NO_SAMPLE))
        if auc_type == "inf":
            need = self.has_quant & (end > self.tlast) & np.isnan(self.lamz.lamz)
            reason = np.where(need & (reason == ""),
                              "cannot extrapolate past Tlast: " + self.lamz.reason.astype(str), reason)
        return val, reason

    # ---- λz -----------------------------------------------------------------------------
    @cached_property
    def lamz(self) -> LambdaZ:
        o = self.options
        base = self.valid & self.is_sample & (self.c > 0)
        with np.errstate(invalid="ignore"):
            if o.lamz_window is None:
                elig = base & (self.t > self.tmax[:, None]) & (self.t <= self.tlast[:, None])
            else:
                lo, hi = o.lamz_window
                elig = base & (self.t >= lo) & (self.t <= hi)
        fit = fit_lambda_z(self.t, self.c, elig, o.lamz_min_points, o.lamz_adj_r2_tolerance,
                           use_all=o.lamz_window is not None, selection=o.lamz_selection)
        reason = np.where(self.quant_reason != "", self.quant_reason, fit.reason)
        return LambdaZ(fit.lamz, fit.intercept, fit.r2, fit.adj_r2, fit.n_points, fit.t_lower,
                       fit.t_upper, reason)

    @cached_property
    def clast_pred(self):
        return np.exp(self.lamz.intercept - self.lamz.lamz * self.tlast)

    @cached_property
    def aucifo(self):
        return self.auclast + self.clast / self.lamz.lamz

    @cached_property
    def aucifp(self):
        return self.auclast + self.clast_pred / self.lamz.lamz

    @cached_property
    def dose_reason(self):
        return _reasons(self.n, (~np.isfinite(self.dose) | (self.dose <= 0), "dose unknown"))
