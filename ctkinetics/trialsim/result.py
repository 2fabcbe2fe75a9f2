"""The result of a virtual-trial run: :class:`TrialSimResult` (frozen; plots read it)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ctkinetics.jsonable import jsonable, records
from ctkinetics.stats import geometric_cv_pct
from ctkinetics.trialsim.aggregate import (DAY_BINS, EXPOSURE_METRICS, LOG10_LOW, LOG10_STEP,
                                           Accumulator, hist_quantile)

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class TrialSimResult:
    """Virtual trials of one spec.

    Attributes
    ----------
    name : str
        The spec's name.
    levels, doses : tuple
        Dose levels (labels) and doses (cells).
    rules : tuple of str
        Decision rules compared (same virtual participants for every rule).
    n_trials, seed : int
    trials : pandas.DataFrame or None
        One row per trial × rule × level (None when streamed to a file only).
    summary : pandas.DataFrame
        Per rule and level (plus a level ``none`` row for no MTD): pct_selected,
        mean_participants (evaluable), mean_dlts, mean_expansion, mean_dlts_expansion,
        mean_not_evaluable (replaced), mean_efficacy (responders; NaN without an efficacy
        model), mean durations
        (days), and per-participant CK summaries (n, geometric mean, geometric CV %, median,
        5th/95th percentiles of Cmax and AUC0-28; NaN without kinetics).
    durations : pandas.DataFrame
        Per rule and phase (``escalation``, ``total``): mean and quantiles of the duration
        (days), and the 1-day histogram as ``counts`` (tuple).
    exposure : pandas.DataFrame
        Per rule, level and metric: quantiles of the participants' exposure (for figures).
    """

    name: str
    levels: tuple
    doses: tuple
    rules: tuple
    n_trials: int
    seed: int
    trials: object
    summary: object
    durations: object
    exposure: object
    kinetics: bool

    def to_frame(self):
        return self.summary.copy()

    def to_dict(self) -> dict:
        return {"name": self.name, "n_trials": self.n_trials, "seed": self.seed,
                "levels": list(self.levels), "doses": list(self.doses), "rules": list(self.rules),
                "kinetics": self.kinetics, "summary": records(self.summary),
                "durations": records(self.durations), "exposure": records(self.exposure)}


def build_result(spec, n_trials: int, seed: int, acc: Accumulator, trials=None) -> TrialSimResult:
    import pandas as pd

    levels, doses = spec.design.levels, spec.design.doses
    rows, drows, erows = [], [], []
    d = len(levels)
    for ri, rule in enumerate(spec.rules):
        m = max(int(acc.trials[ri]), 1)
        dur = (acc.mean_days(ri, 0), acc.mean_days(ri, 1))
        common = {"mean_duration_escalation_days": dur[0], "mean_duration_total_days": dur[1],
                  "mean_days_suspended": acc.mean_days(ri)}
        for j in range(d):
            row = {"rule": rule.name, "level": levels[j], "dose": doses[j],
                   "pct_selected": 100.0 * acc.selected[ri, j] / m,
                   "mean_participants": acc.n[ri, j] / m, "mean_dlts": acc.dlt[ri, j] / m,
                   "mean_expansion": acc.n_exp[ri, j] / m, "mean_dlts_expansion": acc.dlt_exp[ri, j] / m,
                   "mean_not_evaluable": acc.n_ne[ri, j] / m,
                   "mean_efficacy": acc.n_eff[ri, j] / m if spec.efficacy is not None else math.nan,
                   **common}
            for mi, metric in enumerate(EXPOSURE_METRICS):
                cnt, mean, var = acc.ln_moments(ri, j, mi)
                row[f"{metric}_n"] = cnt
                if cnt:
                    qs = [10 ** hist_quantile(acc.expo_hist[ri, j, mi], q, LOG10_LOW, LOG10_STEP) for q in QUANTILES]
                    row.update({f"{metric}_gmean": math.exp(mean),
                                f"{metric}_gcv_pct": float(geometric_cv_pct(math.sqrt(var))),
                                f"{metric}_median": qs[2], f"{metric}_p05": qs[0], f"{metric}_p95": qs[4]})
                    erows.append({"rule": rule.name, "level": levels[j], "metric": metric, "n": cnt,
                                  **{f"q{int(q * 100):02d}": v for q, v in zip(QUANTILES, qs)}})
                else:
                    row.update({f"{metric}_{s}": math.nan for s in ("gmean", "gcv_pct", "median", "p05", "p95")})
            rows.append(row)
        rows.append({"rule": rule.name, "level": "none", "dose": math.nan,
                     "pct_selected": 100.0 * acc.selected[ri, d] / m, **common})
        for k, phase in enumerate(("escalation", "total")):
            h = acc.duration_hist[ri, k]
            drows.append({"rule": rule.name, "phase": phase, "mean_days": dur[k],
                          **{f"q{int(q * 100):02d}_days": hist_quantile(h, q) for q in QUANTILES},
                          "counts": tuple(int(c) for c in np.trim_zeros(h, "b"))})
    summary = pd.DataFrame(rows)
    durations = pd.DataFrame(drows)
    exposure = pd.DataFrame(erows, columns=["rule", "level", "metric", "n"] +
                            [f"q{int(q * 100):02d}" for q in QUANTILES])
    return TrialSimResult(spec.name, tuple(levels), tuple(doses), tuple(r.name for r in spec.rules),
                          int(n_trials), int(seed), trials, summary, durations, exposure,
                          spec.kinetics is not None)


__all__ = ["TrialSimResult", "build_result", "DAY_BINS"]
