"""Normalised prediction distribution errors (NPDE) of a population fit, BLQ handled as the
R package ``npde`` does (Brendel et al. 2006, Pharm Res 23:2036; Comets, Brendel, Mentré 2008,
Comput Methods Programs Biomed 90:154; Nguyen, Comets, Mentré 2012, J Pharmacokinet
Pharmacodyn 39:499 for censored data).

For each observation y_ij of subject i, K replicates of the study are simulated from the fit
(:func:`.predictive.simulate`); on the scale of the residual error model (ln for
proportional error, as one would give log-transformed data to ``npde``):

- pd_ij = #{k : y_sim,ijk < y_ij} / K (prediction discrepancy); ``npd = Φ⁻¹(pd)``;
- a censored observation (BLQ, M3) gets pd_ij ~ U(0, p_LOQ,ij), p_LOQ,ij the share of its
  simulations below its LLOQ, and the value at that quantile of its simulations is imputed
  (``ycomp``); every simulated value below its LLOQ is likewise replaced by a value drawn from
  the lower part of the predictive distribution (``npde``'s ``cens.method = "cdf"``);
- decorrelation per subject with the mean E_i and covariance V_i of its (imputed)
  simulations: y*_i = L_i⁻¹(y_i − E_i), y*_sim,ik = L_i⁻¹(y_sim,ik − E_i), V_i = L_i L_iᵀ
  (Cholesky, ``decorr.method = "cholesky"``); pde_ij = #{k : y*_sim,ijk < y*_ij} / K and
  ``npde = Φ⁻¹(pde)``.

pd and pde of 0 or 1 become 1/(2K) and 1 − 1/(2K) (``ties = TRUE``). Under the model, npde
are N(0, 1) and independent within a subject; :func:`gof_test` gives ``npde``'s tests
(Student t of the mean, Fisher test of the variance, Shapiro–Wilk), each p-value multiplied by
3 (Bonferroni) and the global test the smallest adjusted p-value.

>>> r = npde(result, ds, "onecpt_oral", n_simulations=1000, seed=1)   # doctest: +SKIP
>>> r.tests                                                            # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.likelihood import CENSORED, EXCLUDED
from ctkinetics.estimation.result_folder import FolderResult

NPDE_COLUMNS = ["subject", "analyte", "time", "observed", "blq", "lloq", "scale",
                "y_used", "imputed", "epred", "ploq", "pd", "npd", "npde"]
TEST_COLUMNS = ["statistic", "n", "mean", "se_mean", "variance", "se_variance", "skewness",
                "kurtosis", "p_mean", "p_variance", "p_normality", "p_global"]


@dataclass(frozen=True)
class NPDEResult(FolderResult):
    """NPDE of a population fit.

    Attributes
    ----------
    table : DataFrame
        One row per observation used in the fit (:data:`NPDE_COLUMNS`): the observation,
        the scale of the computation (``ln`` or ``natural``), the value used there (the
        imputed one for BLQ, ``imputed`` True), the mean of its simulations (``epred``),
        p_LOQ, pd, npd and npde.
    tests : DataFrame
        :func:`gof_test` of npde and of npd (:data:`TEST_COLUMNS`, p-values Bonferroni-
        adjusted as ``npde`` prints them).
    settings : dict
    """

    table: pd.DataFrame
    tests: pd.DataFrame
    settings: dict = field(default_factory=dict)

    FILES = (("table", "npde.csv"), ("tests", "npde_tests.csv"))
    JSON, KIND, META = "npde.json", "npde", ("settings",)

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def test(self, statistic="npde") -> dict:
        """The tests of one statistic as a dict."""
        return self.tests.set_index("statistic").loc[statistic].to_dict()


# --------------------------------------------------------------------------------------
# the computation on arrays (also what the comparison with R's npde runs)
# --------------------------------------------------------------------------------------
def _clamp(p, K):
    """npde's ``ties = TRUE``: 0 -> 1/(2K), 1 -> 1 − 1/(2K)."""
    p = np.asarray(p, float).copy()
    p[p == 0] = 1.0 / (2 * K)
    p[p == 1] = 1.0 - 1.0 / (2 * K)
    return p


def compute_npde(group, y, censored, lloq, ysim, rng=None) -> dict:
    """NPDE from observations and simulations (see the module).

    Parameters
    ----------
    group : (N,) array
        Subject of each observation; a subject's observations must be consecutive.
    y : (N,) float
        Observations (for censored ones the value is not used).
    censored : (N,) bool
    lloq : (N,) float
        Each observation's LLOQ (the censoring limit of observed and simulated values;
        NaN: none).
    ysim : (N, K) float
        K simulated replicates of every observation.
    rng : numpy Generator
        For the imputation of censored values.

    Returns
    -------
    dict of (N,) arrays: ``epred`` (mean of the simulations), ``ploq``, ``pd``, ``npd``,
    ``ycomp`` (y with censored values imputed), ``pde``, ``npde``; and ``ysim_imp`` (N, K).
    """
    from scipy.special import ndtri

    y = np.asarray(y, float)
    cens = np.asarray(censored, bool)
    ysim = np.asarray(ysim, float)
    N, K = ysim.shape
    limit = np.where(np.isfinite(lloq), lloq, -np.inf)[:, None]
    rng = rng or np.random.default_rng(0)
    ploq = np.mean(ysim < limit, axis=1)
    yref = np.where(cens, np.asarray(lloq, float), y)
    pd_ = np.mean(ysim < yref[:, None], axis=1)
    ycomp, ysim_imp = y.copy(), ysim.copy()
    group = np.asarray(group)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    bounds = list(zip(starts, np.r_[starts[1:], N]))
    for a, b in bounds:               # per subject, as npde does (its order of draws)
        rows = slice(a, b)
        c = np.flatnonzero(cens[rows])
        if c.size:
            pd_[a + c] = rng.uniform(0.0, ploq[a + c])
        sim_low = np.argwhere(ysim[rows] < limit[rows])
        if c.size or len(sim_low):
            srt = np.sort(ysim[rows], axis=1)
            if c.size:
                k = np.minimum((pd_[a + c] * K).astype(int), K - 1)
                ycomp[a + c] = srt[c, k]
            if len(sim_low):
                r_, k_ = sim_low[:, 0], sim_low[:, 1]
                u = rng.uniform(0.0, ploq[a + r_])
                ysim_imp[a + r_, k_] = srt[r_, np.minimum((u * K).astype(int), K - 1)]
    pd_ = _clamp(pd_, K)
    pde = np.full(N, np.nan)
    for a, b in bounds:
        pde[a:b] = _pde_subject(ycomp[a:b], ysim_imp[a:b])
    pde = _clamp(pde, K)
    return {"epred": ysim.mean(axis=1), "ploq": ploq, "pd": pd_, "npd": ndtri(pd_),
            "ycomp": ycomp, "pde": pde, "npde": ndtri(pde), "ysim_imp": ysim_imp}


def _pde_subject(yobs, matsim):
    """pde of one subject: decorrelation by the Cholesky factor of the simulations'
    covariance (R's ``cov``, n − 1); NaN when that covariance is not positive definite."""
    mean = matsim.mean(axis=1, keepdims=True)
    if matsim.shape[0] == 1:
        sd = matsim.std(ddof=1)
        dsim, dobs = (matsim - mean) / sd, (yobs[:, None] - mean) / sd
    else:
        V = np.cov(matsim)
        try:
            L = np.linalg.cholesky(V)
        except np.linalg.LinAlgError:
            return np.full(yobs.size, np.nan)
        # one small general solve (scipy's triangular solver is slower at this size)
        d = np.linalg.solve(L, np.concatenate([matsim, yobs[:, None]], axis=1) - mean)
        dsim, dobs = d[:, :-1], d[:, -1:]
    return np.mean(dsim < dobs, axis=1)


def gof_test(values) -> dict:
    """``npde``'s ``gof.test`` of values against N(0, 1): mean, its SE, variance, its SE,
    skewness and kurtosis (Snedecor & Cochran), p-values of the Student t test (mean 0), the
    Fisher test (variance 1: 2·min(F, 1 − F) of χ²ₙ₋₁ at (n − 1)s²) and Shapiro–Wilk, each
    × 3 (Bonferroni, capped at 1), and the global p-value min(1, 3·min p)."""
    from scipy import stats

    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    n = x.size
    if n < 3:
        return dict(n=n, mean=np.nan, se_mean=np.nan, variance=np.nan, se_variance=np.nan,
                    skewness=np.nan, kurtosis=np.nan, p_mean=np.nan, p_variance=np.nan,
                    p_normality=np.nan, p_global=np.nan)
    s2 = float(np.var(x, ddof=1))
    d = x - x.mean()
    m2, m3, m4 = np.sum(d**2), np.sum(d**3), np.sum(d**4)
    chi = s2 * (n - 1)
    cdf = stats.chi2.cdf(chi, n - 1)
    p = np.array([stats.ttest_1samp(x, 0.0).pvalue, 2 * min(cdf, 1 - cdf),
                  stats.shapiro(x).pvalue if n <= 5000 else stats.normaltest(x).pvalue])
    adj = np.minimum(3 * p, 1.0)
    return dict(n=n, mean=float(x.mean()), se_mean=float(np.sqrt(s2 / n)), variance=s2,
                se_variance=s2 * np.sqrt(2.0 / (n - 1)), skewness=float(m3 / (m2 * np.sqrt(m2 / n))),
                kurtosis=float(m4 * n / m2**2 - 3), p_mean=float(adj[0]),
                p_variance=float(adj[1]), p_normality=float(adj[2]),
                p_global=float(min(1.0, 3 * p.min())))


# --------------------------------------------------------------------------------------
def npde(result, dataset, model, n_simulations=1000, seed=0) -> NPDEResult:
    """NPDE of a population fit on the data it was fitted to (see the module).

    Parameters
    ----------
    result : PopulationResult
    dataset : Dataset
        The data set fitted.
    model : str or Model
        The model fitted.
    n_simulations : int
        Replicates K (``npde`` recommends ≥ 1000).
    seed : int
    """
    from ctkinetics.estimation.population.predictive import rebuild, simulate

    K = int(n_simulations)
    if K < 100:
        raise SettingsError(f"NPDE needs at least 100 simulations (got {K}); npde "
                            "recommends 1000")
    fitted = rebuild(result, dataset, model)
    rng = np.random.default_rng(seed)
    sim = simulate(fitted, K, rng)
    obs = observation_arrays(fitted, sim)
    out = compute_npde(obs["group"], obs["y"], obs["censored"], obs["lloq"], obs["ysim"], rng)
    ln = fitted.error.log_transform
    table = pd.DataFrame({
        "subject": obs["subject"], "analyte": obs["analyte"], "time": obs["time"],
        "observed": obs["observed"], "blq": obs["censored"], "lloq": obs["lloq_natural"],
        "scale": "ln" if ln else "natural", "y_used": out["ycomp"],
        "imputed": obs["censored"], "epred": out["epred"], "ploq": out["ploq"],
        "pd": out["pd"], "npd": out["npd"], "npde": out["npde"]}, columns=NPDE_COLUMNS)
    tests = pd.DataFrame([dict(statistic=s, **gof_test(out[s])) for s in ("npde", "npd")],
                         columns=TEST_COLUMNS)
    return NPDEResult(table, tests, dict(
        n_simulations=K, seed=int(seed), model=result.model, method=result.method,
        scale="ln (proportional error)" if ln else "natural",
        censoring="cdf (npde: pd of a BLQ sample ~ U(0, p_LOQ), value imputed from the "
                  "predictive distribution; simulated BLQ values imputed the same way)",
        decorrelation="cholesky", ties=True))


def observation_arrays(fitted, sim) -> dict:
    """Per observation used in the fit (subject-major, then analyte, then time): subject,
    analyte, time, the observed value (NaN when BLQ), censored, the LLOQ, and on the error
    model's scale ``y``, ``lloq`` and the simulations ``ysim`` (N, K)."""
    data, err = fitted.data, fitted.error
    parts = []
    for a, ys in zip(data.analytes, sim.y):
        used = a.mode != EXCLUDED
        i, j = np.nonzero(used)
        parts.append(dict(i=i, t=a.time[i, j], analyte=np.full(i.size, a.analyte, object),
                          y=a.y[i, j], cens=a.mode[i, j] == CENSORED, lloq=a.lloq[i, j],
                          ysim=np.moveaxis(ys[:, i, j], 0, -1)))
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((cat["t"], np.concatenate([np.full(len(p["i"]), k)
                                                   for k, p in enumerate(parts)]), cat["i"]))
    cat = {k: v[order] for k, v in cat.items()}
    tr = err.transform
    ids = np.asarray(data.subjects, object)
    return {"group": cat["i"], "subject": ids[cat["i"]], "analyte": cat["analyte"],
            "time": cat["t"], "observed": np.where(cat["cens"], np.nan, cat["y"]),
            "censored": cat["cens"], "lloq_natural": cat["lloq"],
            "y": tr(np.where(cat["cens"], cat["lloq"], cat["y"])),
            "lloq": np.where(np.isfinite(cat["lloq"]), tr(cat["lloq"]), np.nan),
            "ysim": tr(cat["ysim"])}


__all__ = ["npde", "NPDEResult", "compute_npde", "gof_test", "observation_arrays",
           "NPDE_COLUMNS", "TEST_COLUMNS"]
