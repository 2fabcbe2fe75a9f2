"""Visual predictive check (VPC) by simulation from a population fit, BLQ-aware.

Each replicate re-samples every subject's random effects η ~ N(0, Ω) and residual errors
from the fitted error model (on the transformed scale: y = f·exp(sd·ε) for proportional,
y = f + sd·ε otherwise) at the subjects' own sampling times, covariates and LLOQs; a
simulated value below its sample's LLOQ is BLQ, as the assay would report it.

Per analyte and time bin the observed and each replicate's statistics are computed the same
way: the 5th/50th/95th percentiles with BLQ samples counted as below every quantified value
(a percentile that falls among the BLQ samples is undefined, NaN, rather than biased by
substitution), and the fraction of samples BLQ. The table gives the observed statistic and
the median and the ``ci`` % interval of the simulated ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.likelihood import CENSORED, EXCLUDED, QUANTIFIED

VPC_COLUMNS = ["analyte", "bin", "time_low", "time_high", "time_mid", "n", "statistic",
               "observed", "sim_low", "sim_median", "sim_high"]


@dataclass(frozen=True)
class VPCResult:
    """A VPC: ``table`` (columns :data:`VPC_COLUMNS`, statistics ``p5``, ``p50``, ``p95``
    — or the percentiles asked for — and ``blq_fraction``), the observed samples
    (``observed``: analyte, time, value, blq, lloq, bin), and the settings."""

    table: pd.DataFrame
    observed: pd.DataFrame
    model: str
    method: str
    n_replicates: int
    percentiles: tuple
    ci: float
    time_unit: str = ""
    settings: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()


def _percentile_stats(values, blq, pcts):
    """Percentiles over axis -1 with BLQ as −inf; NaN where the percentile is BLQ.

    ``values`` (..., m) may contain NaN for samples not in the bin (ignored)."""
    v = np.where(blq, -np.inf, values)
    v = np.where(np.isnan(values) & ~blq, np.nan, v)
    with np.errstate(all="ignore"):
        out = np.nanpercentile(v, pcts, axis=-1, method="linear")
    out = np.where(np.isfinite(out), out, np.nan)
    return out   # (len(pcts), ...)


def _bins(times, bins):
    t = times[np.isfinite(times)]
    if bins is None:
        uniq = np.unique(t)
        if uniq.size <= 12:
            edges = np.concatenate([[uniq[0]], 0.5 * (uniq[1:] + uniq[:-1]), [uniq[-1]]])
        else:
            edges = np.unique(np.quantile(t, np.linspace(0, 1, 9)))
    else:
        edges = np.unique(np.asarray(bins, float))
    if edges.size < 2:
        edges = np.array([t.min(), t.max() + 1e-9])
    edges = edges.astype(float)
    edges[0], edges[-1] = min(edges[0], t.min()), max(edges[-1], t.max())
    return edges


def vpc(result, dataset, model, n_replicates=200, seed=0, bins=None,
        percentiles=(5, 50, 95), ci=90.0) -> VPCResult:
    """Simulate ``n_replicates`` copies of the study from ``result`` and summarise them.

    Parameters
    ----------
    result : PopulationResult
    dataset : Dataset
        The data set that was fitted (its design, covariates and LLOQs are reused).
    model : str or Model
        The model that was fitted.
    n_replicates : int
    seed : int
    bins : array-like, optional
        Time bin edges; default: one bin per nominal time when there are at most 12
        distinct times, else 8 bins of equal counts.
    percentiles : tuple of float
    ci : float
        Width (%) of the interval of each simulated statistic.
    """
    if isinstance(model, str):
        from ctkinetics.modeling import load_model

        model = load_model(model)
    if result.spec is None or result.x is None:
        raise SettingsError("this PopulationResult carries no estimates to simulate from")
    if int(n_replicates) < 2:
        raise SettingsError("a VPC needs at least 2 replicates")
    # the fit rebuilt on its data and the replicates: one home, shared with NPDE and pcVPC
    from ctkinetics.estimation.population.predictive import rebuild, simulate

    fitted = rebuild(result, dataset, model)
    data, R = fitted.data, int(n_replicates)
    sim = simulate(fitted, R, np.random.default_rng(seed))
    pcts = tuple(float(p) for p in percentiles)
    lo_q, hi_q = 50 - ci / 2, 50 + ci / 2
    rows, obs_rows = [], []
    for a, ysim, sim_blq in zip(data.analytes, sim.y, sim.blq):
        used = a.mode != EXCLUDED
        obs_blq = a.mode == CENSORED
        obs_val = np.where(a.mode == QUANTIFIED, a.y, np.nan)
        times = np.where(used, a.time, np.nan)
        edges = _bins(times[used], bins)
        b = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, edges.size - 2)
        b = np.where(used, b, -1)
        obs_rows.append(pd.DataFrame({
            "analyte": a.analyte, "time": times[used], "value": obs_val[used],
            "blq": obs_blq[used], "lloq": a.lloq[used], "bin": b[used]}))
        for k in range(edges.size - 1):
            inb = b == k
            if not inb.any():
                continue
            ov = obs_val[inb]
            ob = obs_blq[inb]
            sv = ysim[:, inb]
            sb = sim_blq[:, inb]
            o_p = _percentile_stats(ov, ob, pcts)
            s_p = _percentile_stats(sv, sb, pcts)          # (P, R)
            stats = {f"p{p:g}": (o_p[i], s_p[i]) for i, p in enumerate(pcts)}
            stats["blq_fraction"] = (ob.mean(), sb.mean(axis=1))
            tmid = float(np.median(times[inb]))
            for name, (o, sims) in stats.items():
                sims = np.asarray(sims, float)
                with np.errstate(all="ignore"):
                    qs = np.nanpercentile(sims, [lo_q, 50, hi_q]) if np.isfinite(sims).any() \
                        else [np.nan] * 3
                rows.append(dict(analyte=a.analyte, bin=k, time_low=edges[k],
                                 time_high=edges[k + 1], time_mid=tmid, n=int(inb.sum()),
                                 statistic=name, observed=float(o), sim_low=qs[0],
                                 sim_median=qs[1], sim_high=qs[2]))
    table = pd.DataFrame(rows, columns=VPC_COLUMNS)
    return VPCResult(table, pd.concat(obs_rows, ignore_index=True), result.model,
                     result.method, R, pcts, float(ci),
                     getattr(model, "time_unit", ""),
                     dict(seed=int(seed), bins=None if bins is None else list(bins)))
