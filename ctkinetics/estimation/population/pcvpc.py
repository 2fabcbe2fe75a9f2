"""Prediction-corrected visual predictive check (pcVPC; Bergstrand, Hooker, Wallin, Karlsson
2011, AAPS J 13:143) with BLQ samples imputed from the predictive distribution as ``npde``
does, and the BLQ-fraction panel.

Within a time bin, observations of participants with different doses or covariates have
different typical predictions, so a plain VPC mixes them. Each observed and simulated value is
normalised to the median typical prediction of its bin:

    pcY_ij = Y_ij · median_bin(PRED) / PRED_ij

(PRED: the prediction with η = 0; the lower bound is 0; a value whose PRED or bin median is
0 — a sample at the time of dosing — is not corrected). The percentiles of pcY are compared
with the intervals of the same percentiles over ``n_replicates`` simulated studies.

BLQ (``blq="impute"``, default): a censored observation is replaced by a value drawn from the
lower part of its predictive distribution (:func:`.npde.compute_npde`, ``npde``'s
``cens.method = "cdf"``), and simulated values below the LLOQ likewise, so the percentiles
are defined down to the lowest; ``blq="censor"`` instead counts BLQ values below every
quantified one and leaves a percentile that falls among them undefined (as
:func:`.vpc.vpc`). Either way the table gives, per bin, the observed fraction BLQ and the
interval of the simulated fraction (raw simulated values against each sample's LLOQ) — the
panel that shows whether the model predicts how often the assay reads BLQ.

>>> v = pcvpc(result, ds, "stein2019", n_replicates=500, seed=1)   # doctest: +SKIP
>>> v.table[v.table["statistic"] == "blq_fraction"]                 # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.population.vpc import (
    VPC_COLUMNS, VPCResult, _bins, _percentile_stats,
)

BLQ_HANDLING = ("impute", "censor")


def pcvpc(result, dataset, model, n_replicates=500, seed=0, bins=None,
          percentiles=(5, 50, 95), ci=90.0, blq="impute", prediction_corrected=True) -> VPCResult:
    """pcVPC of a population fit (see the module).

    Parameters
    ----------
    result : PopulationResult
    dataset, model
        The data set and model fitted.
    n_replicates : int
        Simulated studies (≥ 100: the imputation of BLQ values uses their distribution).
    seed : int
    bins : array-like, optional
        Time bin edges (default as :func:`.vpc.vpc`).
    percentiles : tuple of float
    ci : float
        Width (%) of the interval of each simulated statistic.
    blq : {'impute', 'censor'}
    prediction_corrected : bool
        False gives a plain VPC with the same BLQ handling.

    Returns
    -------
    VPCResult
        ``settings`` says ``prediction_corrected`` and ``blq``; ``observed`` holds the
        (corrected, imputed) values plotted, with ``blq`` marking the imputed ones.
    """
    from ctkinetics.estimation.population.npde import compute_npde, observation_arrays
    from ctkinetics.estimation.population.predictive import rebuild, simulate

    if blq not in BLQ_HANDLING:
        raise SettingsError(f"blq must be one of {BLQ_HANDLING} (got {blq!r})")
    R = int(n_replicates)
    if R < 100:
        raise SettingsError(f"a pcVPC needs at least 100 replicates (got {R})")
    fitted = rebuild(result, dataset, model)
    rng = np.random.default_rng(seed)
    sim = simulate(fitted, R, rng)
    obs = observation_arrays(fitted, sim)
    back = np.exp if fitted.error.log_transform else (lambda v: v)
    cens = obs["censored"]
    if blq == "impute":
        out = compute_npde(obs["group"], obs["y"], cens, obs["lloq"], obs["ysim"], rng)
        y_obs, y_sim = back(out["ycomp"]), back(out["ysim_imp"])
    else:
        y_obs, y_sim = np.where(cens, np.nan, back(obs["y"])), back(obs["ysim"])
    raw_sim = back(obs["ysim"])
    limit = np.where(np.isfinite(obs["lloq_natural"]), obs["lloq_natural"], -np.inf)
    sim_blq = raw_sim < limit[:, None]
    pred = _pred(fitted, obs)
    pcts = tuple(float(p) for p in percentiles)
    rows, observed = [], []
    for analyte in dict.fromkeys(obs["analyte"]):
        a = obs["analyte"] == analyte
        r, o = _analyte(analyte, obs["time"][a], y_obs[a], y_sim[a], pred[a], cens[a],
                        sim_blq[a], obs["lloq_natural"][a], bins, pcts, ci, blq,
                        prediction_corrected)
        rows += r
        observed.append(o)
    table = pd.DataFrame(rows, columns=VPC_COLUMNS)
    return VPCResult(table, pd.concat(observed, ignore_index=True), result.model,
                     result.method, R, pcts, float(ci),
                     getattr(fitted.pm.model, "time_unit", ""),
                     dict(seed=int(seed), bins=None if bins is None else list(bins),
                          prediction_corrected=bool(prediction_corrected), blq=blq,
                          correction="pcY = Y * median_bin(PRED) / PRED (lower bound 0)"
                          if prediction_corrected else "none"))


def _analyte(analyte, times, yo, ys, pr, cens, sim_blq, lloq, bins, pcts, ci, blq,
             corrected):
    """(table rows, observed table) of one analyte: bins, prediction correction, the
    percentiles and the BLQ fraction per bin."""
    edges = _bins(times, bins)
    b = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, edges.size - 2)
    if corrected:
        factor = np.ones(times.size)
        for k in range(edges.size - 1):
            inb = b == k
            if inb.any():
                with np.errstate(divide="ignore", invalid="ignore"):
                    factor[inb] = np.median(pr[inb]) / pr[inb]
        # where PRED is 0 (before absorption, e.g.) no correction is possible: kept as is
        factor = np.where(np.isfinite(factor) & (factor > 0), factor, 1.0)
        yo, ys = yo * factor, ys * factor[:, None]
    observed = pd.DataFrame({"analyte": analyte, "time": times, "value": yo, "blq": cens,
                             "lloq": lloq, "bin": b})
    rows = []
    for k in range(edges.size - 1):
        inb = b == k
        if not inb.any():
            continue
        c_o, c_s = cens[inb], sim_blq[inb].T           # (m,), (R, m)
        if blq == "impute":
            o_p = np.nanpercentile(yo[inb], pcts) if np.isfinite(yo[inb]).any() \
                else np.full(len(pcts), np.nan)
            with np.errstate(all="ignore"):
                s_p = np.nanpercentile(ys[inb].T, pcts, axis=1)
        else:
            o_p = _percentile_stats(yo[inb], c_o, pcts)
            s_p = _percentile_stats(ys[inb].T, c_s, pcts)
        stats = {f"p{p:g}": (o_p[i], s_p[i]) for i, p in enumerate(pcts)}
        stats["blq_fraction"] = (c_o.mean(), c_s.mean(axis=1))
        rows += _rows(analyte, k, edges, times[inb], stats, ci)
    return rows, observed


def _pred(fitted, obs):
    """PRED (η = 0) of every observation, in the order of ``observation_arrays``."""
    preds = fitted.population_predictions()
    data = fitted.data
    out = np.full(obs["group"].size, np.nan)
    for a, f in zip(data.analytes, preds):
        sel = obs["analyte"] == a.analyte
        i = obs["group"][sel]
        # each observation's column in the padded arrays: match on time within the subject
        cols = np.array([np.flatnonzero(a.time[ii] == t)[0]
                         for ii, t in zip(i, obs["time"][sel])])
        out[sel] = f[i, cols]
    return out


def _rows(analyte, k, edges, times, stats, ci):
    lo_q, hi_q = 50 - ci / 2, 50 + ci / 2
    out = []
    for name, (o, sims) in stats.items():
        sims = np.asarray(sims, float)
        with np.errstate(all="ignore"):
            qs = np.nanpercentile(sims, [lo_q, 50, hi_q]) if np.isfinite(sims).any() \
                else [np.nan] * 3
        out.append(dict(analyte=analyte, bin=k, time_low=edges[k], time_high=edges[k + 1],
                        time_mid=float(np.median(times)), n=int(times.size), statistic=name,
                        observed=float(o), sim_low=qs[0], sim_median=qs[1], sim_high=qs[2]))
    return out


__all__ = ["pcvpc", "BLQ_HANDLING"]
