"""Per-trial rows and streaming summaries of virtual trials (bounded memory).

:func:`trial_rows` turns one batch of simulated trials into the tidy per-trial table
(one row per trial × rule × dose level). :class:`Accumulator` keeps everything the summary
needs as sums and fixed-bin histograms, so 100,000 trials cost the same memory as 100:

- counts and sums per rule and level (selections, participants, DLTs, expansion);
- the trial durations as 1-day histograms (quantiles to within a day);
- each participant's exposure on ln scale as count, Σ ln E, Σ (ln E)² (geometric mean and
  geometric CV % = 100·sqrt(exp(s²) − 1), exact) and a histogram of log10 E in bins of 0.01
  (medians and percentiles to within 2.3 %).

Accumulators add; merging them in batch order makes the result independent of the number of
workers (floating-point sums are taken in the same order).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.trialsim.trial import participant_index

EXPOSURE_METRICS = ("cmax", "auc0_28")
LOG10_LOW, LOG10_HIGH, LOG10_STEP = -3.0, 12.0, 0.01
DAY_BINS = 4000  # 1-day bins; the last one collects anything longer


def _n_log_bins():
    return int(round((LOG10_HIGH - LOG10_LOW) / LOG10_STEP))


@dataclass
class Accumulator:
    n_rules: int
    n_levels: int

    def __post_init__(self):
        r, d = self.n_rules, self.n_levels
        self.trials = np.zeros(r, dtype=np.int64)
        self.selected = np.zeros((r, d + 1), dtype=np.int64)  # column d: no MTD
        self.n = np.zeros((r, d), dtype=np.int64)
        self.dlt = np.zeros((r, d), dtype=np.int64)
        self.n_exp = np.zeros((r, d), dtype=np.int64)
        self.dlt_exp = np.zeros((r, d), dtype=np.int64)
        self.duration_sum = np.zeros((r, 2))  # escalation, total
        self.suspended_sum = np.zeros(r)
        self.duration_hist = np.zeros((r, 2, DAY_BINS), dtype=np.int64)
        m = len(EXPOSURE_METRICS)
        self.expo_count = np.zeros((r, d, m), dtype=np.int64)
        self.expo_sum = np.zeros((r, d, m))
        self.expo_sum2 = np.zeros((r, d, m))
        self.expo_hist = np.zeros((r, d, m, _n_log_bins()), dtype=np.int64)

    def merge(self, other: "Accumulator") -> None:
        for name in ("trials", "selected", "n", "dlt", "n_exp", "dlt_exp", "duration_sum",
                     "suspended_sum", "duration_hist", "expo_count", "expo_sum", "expo_sum2", "expo_hist"):
            getattr(self, name).__iadd__(getattr(other, name))

    def add_outcome(self, ri: int, outcome, draws, n_escalation: int) -> None:
        d = self.n_levels
        self.trials[ri] += 1
        self.selected[ri, outcome.selected if outcome.selected >= 0 else d] += 1
        self.n[ri] += outcome.n
        self.dlt[ri] += outcome.dlt
        self.n_exp[ri] += outcome.n_expansion
        self.dlt_exp[ri] += outcome.dlt_expansion
        durations = (outcome.duration_escalation, outcome.duration_total)
        self.duration_sum[ri] += durations
        self.suspended_sum[ri] += outcome.days_suspended
        for k, v in enumerate(durations):
            self.duration_hist[ri, k, min(int(v), DAY_BINS - 1)] += 1
        if draws.exposure is None or not outcome.participants:
            return
        rows = participant_index(outcome, n_escalation)
        levels = np.array([p[0] for p in outcome.participants])
        for mi, metric in enumerate(EXPOSURE_METRICS):
            x = np.log(draws.exposure[metric][rows, levels])
            b = np.clip(((x / np.log(10) - LOG10_LOW) / LOG10_STEP).astype(int), 0, _n_log_bins() - 1)
            np.add.at(self.expo_count[ri, :, mi], levels, 1)
            np.add.at(self.expo_sum[ri, :, mi], levels, x)
            np.add.at(self.expo_sum2[ri, :, mi], levels, x * x)
            np.add.at(self.expo_hist[ri, :, mi], (levels, b), 1)


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


def trial_rows(spec, trials, results) -> dict:
    """Columns of the per-trial table for one batch (trial × rule × level rows)."""
    d = len(spec.design.levels)
    cols = {k: [] for k in (
        "trial", "rule", "level", "dose", "selected", "mtd", "n", "dlt", "n_expansion",
        "dlt_expansion", "cmax_gmean", "cmax_median", "auc0_28_gmean", "auc0_28_median",
        "duration_escalation_days", "duration_total_days", "days_suspended", "stop_rule")}
    n_esc = spec.design.boin.max_subjects
    for trial, (draws, outcomes) in zip(trials, results):
        for rule, out in zip(spec.rules, outcomes):
            mtd = spec.design.levels[out.selected] if out.selected >= 0 else "none"
            if draws.exposure is not None and out.participants:
                rows = participant_index(out, n_esc)
                lv = np.array([p[0] for p in out.participants])
            for j in range(d):
                cols["trial"].append(trial)
                cols["rule"].append(rule.name)
                cols["level"].append(spec.design.levels[j])
                cols["dose"].append(spec.design.doses[j])
                cols["selected"].append(int(out.selected == j))
                cols["mtd"].append(mtd)
                cols["n"].append(int(out.n[j]))
                cols["dlt"].append(int(out.dlt[j]))
                cols["n_expansion"].append(int(out.n_expansion[j]))
                cols["dlt_expansion"].append(int(out.dlt_expansion[j]))
                for metric in EXPOSURE_METRICS:
                    g = m = float("nan")
                    if draws.exposure is not None and out.participants:
                        x = draws.exposure[metric][rows[lv == j], j]
                        if x.size:
                            g, m = float(np.exp(np.mean(np.log(x)))), float(np.median(x))
                    cols[f"{metric}_gmean"].append(g)
                    cols[f"{metric}_median"].append(m)
                cols["duration_escalation_days"].append(out.duration_escalation)
                cols["duration_total_days"].append(out.duration_total)
                cols["days_suspended"].append(out.days_suspended)
                cols["stop_rule"].append(out.stop_rule)
    return cols


def accumulate(spec, results) -> Accumulator:
    acc = Accumulator(len(spec.rules), len(spec.design.levels))
    n_esc = spec.design.boin.max_subjects
    for draws, outcomes in results:
        for ri, out in enumerate(outcomes):
            acc.add_outcome(ri, out, draws, n_esc)
    return acc
