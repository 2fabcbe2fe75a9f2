"""Per-trial rows and streaming summaries of virtual trials (bounded memory, exact sums).

:func:`trial_columns` turns one batch of simulated trials into the columns of the per-trial
table (one row per trial × rule × dose level, vectorised). :class:`Accumulator` keeps
everything the summary needs as integer sums and fixed-bin histograms, so 100,000 trials
cost the same memory as 100:

- counts per rule and level (selections, evaluable participants, DLTs, participants not
  evaluable (replaced), responders, expansion);
- the trial durations and suspended days as sums in units of 2^-16 day (the calendar's grid,
  so exact) and 1-day histograms (quantiles to within a day);
- each participant's exposure on ln scale as count, Σ x and Σ x² with x = ln E in units of
  2^-32 (fixed point: exact integer sums) — the geometric mean exp(Σx/n) and the geometric
  CV % = 100·sqrt(exp(s²) − 1) with the sample variance s² — and a histogram of log10 E in
  bins of 0.01 (medians and percentiles to within 2.3 %).

Every sum is an exact integer, so the summary is bit-for-bit the same whatever the batching,
the number of workers or the order in which batches are merged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.trialsim.failures import ExposureError
from ctkinetics.trialsim.guards import masked_median

EXPOSURE_METRICS = ("cmax", "auc0_28")
LOG10_LOW, LOG10_HIGH, LOG10_STEP = -3.0, 12.0, 0.01
DAY_BINS = 4000  # 1-day bins; the last one collects anything longer
DAY_UNIT = 2 ** 16  # durations are summed in units of 2^-16 day
LN_UNIT = 2 ** 32  # ln exposures are summed in units of 2^-32
_LN_LIMIT = 256.0  # |ln E| below this keeps the split squares below 2^63 (see _ln_sums)
_SPLIT = 20

TRIAL_COLUMNS = ("trial", "rule", "level", "dose", "selected", "mtd", "n", "dlt", "n_expansion",
                 "dlt_expansion", "cmax_gmean", "cmax_median", "auc0_28_gmean", "auc0_28_median",
                 "duration_escalation_days", "duration_total_days", "days_suspended", "stop_rule",
                 "n_not_evaluable", "n_efficacy")


def _n_log_bins():
    return int(round((LOG10_HIGH - LOG10_LOW) / LOG10_STEP))


def participant_exposure(draws, level: np.ndarray) -> dict:
    """metric -> each participant slot's exposure (m, P) at the level given (``level`` (m, P),
    −1 where not infused: NaN there)."""
    given = level >= 0
    r, s = np.nonzero(given)
    at = draws.exposure(r, s, level[r, s])
    out = {}
    for metric in EXPOSURE_METRICS:
        x = np.full(level.shape, np.nan)
        x[r, s] = at[metric]
        out[metric] = x
    return out


def _fixed(x, unit):
    return np.rint(np.asarray(x, dtype=float) * unit).astype(np.int64)


def _ln_sums(x):
    """Exact integer sums of fixed-point ln exposures ``x`` (1-D): (Σq, Σq²) as Python ints,
    q = round(x·2^32). q² is split as (h·2^20 + l)² so each partial sum stays in int64."""
    q = _fixed(x, LN_UNIT)
    h = q >> _SPLIT
    lo = q - (h << _SPLIT)
    s2 = (int((h * h).sum()) << (2 * _SPLIT)) + (int((h * lo).sum()) << (_SPLIT + 1)) + int((lo * lo).sum())
    return int(q.sum()), s2


@dataclass
class Accumulator:
    n_rules: int
    n_levels: int

    def __post_init__(self):
        r, d = self.n_rules, self.n_levels
        m = len(EXPOSURE_METRICS)
        self.trials = np.zeros(r, dtype=np.int64)
        self.selected = np.zeros((r, d + 1), dtype=np.int64)  # column d: no MTD
        self.n = np.zeros((r, d), dtype=np.int64)
        self.dlt = np.zeros((r, d), dtype=np.int64)
        self.n_exp = np.zeros((r, d), dtype=np.int64)
        self.dlt_exp = np.zeros((r, d), dtype=np.int64)
        self.n_ne = np.zeros((r, d), dtype=np.int64)
        self.n_eff = np.zeros((r, d), dtype=np.int64)
        self.duration_sum = np.zeros((r, 2), dtype=object)  # escalation, total; 2^-16 day
        self.suspended_sum = np.zeros(r, dtype=object)
        self.duration_hist = np.zeros((r, 2, DAY_BINS), dtype=np.int64)
        self.expo_count = np.zeros((r, d, m), dtype=np.int64)
        self.expo_sum = np.zeros((r, d, m), dtype=object)  # Σ q, q = ln E in 2^-32
        self.expo_sum2 = np.zeros((r, d, m), dtype=object)  # Σ q²
        self.expo_hist = np.zeros((r, d, m, _n_log_bins()), dtype=np.int64)

    _FIELDS = ("trials", "selected", "n", "dlt", "n_exp", "dlt_exp", "n_ne", "n_eff", "duration_sum", "suspended_sum",
               "duration_hist", "expo_count", "expo_sum", "expo_sum2", "expo_hist")

    def merge(self, other: "Accumulator") -> None:
        for name in self._FIELDS:
            getattr(self, name).__iadd__(getattr(other, name))

    def add(self, ri: int, out, draws) -> None:
        """Add the m trials of one rule's :class:`~ctkinetics.trialsim.calendar.RuleOutcomes`."""
        d = self.n_levels
        m = out.selected.size
        self.trials[ri] += m
        self.selected[ri] += np.bincount(np.where(out.selected >= 0, out.selected, d), minlength=d + 1)
        self.n[ri] += out.n.sum(axis=0)
        self.dlt[ri] += out.dlt.sum(axis=0)
        self.n_exp[ri] += out.n_expansion.sum(axis=0)
        self.dlt_exp[ri] += out.dlt_expansion.sum(axis=0)
        self.n_ne[ri] += out.n_not_evaluable.sum(axis=0)
        self.n_eff[ri] += out.n_efficacy.sum(axis=0)
        for k, v in enumerate((out.duration_escalation, out.duration_total)):
            self.duration_sum[ri, k] += int(_fixed(v, DAY_UNIT).sum())
            self.duration_hist[ri, k] += np.bincount(np.clip(v.astype(int), 0, DAY_BINS - 1), minlength=DAY_BINS)
        self.suspended_sum[ri] += int(_fixed(out.days_suspended, DAY_UNIT).sum())
        if draws.kinetics is None:
            return
        nb = _n_log_bins()
        given = out.level >= 0
        lv = out.level[given]
        expo = participant_exposure(draws, out.level)
        for mi, metric in enumerate(EXPOSURE_METRICS):
            e = expo[metric][given]
            if not np.all(np.isfinite(e) & (e > 0)):
                raise ExposureError(f"the kinetics gave a {metric} that is not a positive finite number "
                                    "(check the model's typical values and variability in the spec)")
            x = np.log(e)
            if np.any(np.abs(x) >= _LN_LIMIT):
                raise ExposureError(f"a simulated {metric} is outside e^±{_LN_LIMIT:g}: check the kinetics spec")
            b = np.clip(((x / np.log(10) - LOG10_LOW) / LOG10_STEP).astype(int), 0, nb - 1)
            self.expo_hist[ri, :, mi] += np.bincount(lv * nb + b, minlength=d * nb).reshape(d, nb)
            self.expo_count[ri, :, mi] += np.bincount(lv, minlength=d)
            for j in range(d):
                s1, s2 = _ln_sums(x[lv == j])
                self.expo_sum[ri, j, mi] += s1
                self.expo_sum2[ri, j, mi] += s2

    def mean_days(self, ri: int, k: int | None = None) -> float:
        """Mean duration (k = 0 escalation, 1 total) or, with k None, mean days suspended."""
        total = self.suspended_sum[ri] if k is None else self.duration_sum[ri, k]
        return int(total) / (max(int(self.trials[ri]), 1) * DAY_UNIT)

    def ln_moments(self, ri: int, j: int, mi: int) -> tuple:
        """(count, mean of ln E, sample variance of ln E) at level j; variance 0 for one value."""
        n = int(self.expo_count[ri, j, mi])
        s1, s2 = int(self.expo_sum[ri, j, mi]), int(self.expo_sum2[ri, j, mi])
        if n == 0:
            return 0, float("nan"), float("nan")
        var = (n * s2 - s1 * s1) / (n * (n - 1) * LN_UNIT * LN_UNIT) if n > 1 else 0.0
        return n, s1 / (n * LN_UNIT), var


def hist_quantile(hist, q, low=0.0, step=1.0):
    """Quantile q of a histogram (linear inside the bin); NaN when empty."""
    total = hist.sum()
    if total == 0:
        return float("nan")
    cum = np.cumsum(hist)
    target = q * total
    i = int(np.searchsorted(cum, target, side="left"))
    before = cum[i - 1] if i > 0 else 0
    frac = (target - before) / hist[i] if hist[i] else 0.0
    return float(low + (i + frac) * step)


def sequential_sum(x):
    """Sum along the last axis, term by term from the first: the same bits for a row whatever
    the array's shape and memory layout (numpy's ``sum`` adds pairwise on contiguous rows but
    in another order on strided ones, so a trial's numbers would depend on its batch)."""
    return np.cumsum(x, axis=-1)[..., -1] if x.shape[-1] else np.zeros(x.shape[:-1])


def _level_summaries(x, level, j):
    """Geometric mean and median (m,) of ``x`` (m, P) over the participants at level j."""
    mask = level == j
    cnt = mask.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.exp(sequential_sum(np.where(mask, np.log(np.where(mask, x, 1.0)), 0.0)) / cnt)
    return np.where(cnt > 0, g, np.nan), masked_median(x, mask)


def trial_columns(spec, sim) -> dict:
    """Columns (numpy arrays) of the per-trial table for one batch: trial × rule × level rows,
    in that order (:data:`TRIAL_COLUMNS`)."""
    levels, doses = spec.design.levels, spec.design.doses
    m, r, d = sim.draws.m, len(spec.rules), len(levels)
    shape = (m, r, d)
    cols = {"trial": np.broadcast_to(sim.trials[:, None, None], shape),
            "rule": np.broadcast_to(np.array([x.name for x in spec.rules], dtype=object)[None, :, None], shape),
            "level": np.broadcast_to(np.array(levels, dtype=object)[None, None, :], shape),
            "dose": np.broadcast_to(np.array(doses, dtype=float)[None, None, :], shape)}
    def dtype(name):
        if name == "mtd":
            return object
        return float if name.endswith(("gmean", "median", "days", "suspended")) else np.int64

    per = {k: np.empty(shape, dtype=dtype(k)) for k in TRIAL_COLUMNS[4:]}
    labels = np.array(list(levels) + ["none"], dtype=object)
    for ri, out in enumerate(sim.outcomes):
        per["selected"][:, ri] = out.selected[:, None] == np.arange(d)
        per["mtd"][:, ri] = labels[np.where(out.selected >= 0, out.selected, d)][:, None]
        for name, v in (("n", out.n), ("dlt", out.dlt), ("n_expansion", out.n_expansion),
                        ("dlt_expansion", out.dlt_expansion), ("n_not_evaluable", out.n_not_evaluable),
                        ("n_efficacy", out.n_efficacy)):
            per[name][:, ri] = v
        for name, v in (("duration_escalation_days", out.duration_escalation),
                        ("duration_total_days", out.duration_total), ("days_suspended", out.days_suspended),
                        ("stop_rule", out.stop_rule)):
            per[name][:, ri] = v[:, None]
        expo = None if sim.draws.kinetics is None else participant_exposure(sim.draws, out.level)
        for metric in EXPOSURE_METRICS:
            if expo is None:
                per[f"{metric}_gmean"][:, ri] = per[f"{metric}_median"][:, ri] = np.nan
                continue
            x = expo[metric]
            for j in range(d):
                per[f"{metric}_gmean"][:, ri, j], per[f"{metric}_median"][:, ri, j] = _level_summaries(x, out.level, j)
    cols.update(per)
    return {k: np.ascontiguousarray(cols[k]).ravel() for k in TRIAL_COLUMNS}


def accumulate(spec, sim) -> Accumulator:
    acc = Accumulator(len(spec.rules), len(spec.design.levels))
    for ri, out in enumerate(sim.outcomes):
        acc.add(ri, out, sim.draws)
    return acc
