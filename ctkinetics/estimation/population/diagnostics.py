"""Tables of a population fit: parameters with SEs, Ω, EBEs and per-sample diagnostics.

Standard errors of derived quantities (θ on the natural scale, ω², σ) use the delta method
on the covariance of the optimiser's vector ``x``: Cov(g) = G·Cov(x)·Gᵀ, G = ∂g/∂x by
central differences.

CWRES (Hooker, Staatz, Karlsson 2007, Pharm Res 24:2187) for FOCE: with G_i = ∂T(f_i)/∂η at
the EBE (T = ln for proportional error),
    e_i = T(y_i) − T(f_i(η̂_i)) + G_i·η̂_i,   C_i = G_i Ω G_iᵀ + diag(sd_i²),
    CWRES_i = L_i⁻¹ e_i with C_i = L_i L_iᵀ,
over the quantified samples of each subject (censored samples get P(BLQ) instead).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.estimation.likelihood import CENSORED, EXCLUDED, QUANTIFIED
from ctkinetics.stats import geometric_cv_pct
from ctkinetics.estimation.population.results import (
    INDIVIDUAL_COLUMNS, OMEGA_COLUMNS, PARAMETER_COLUMNS, PREDICTION_COLUMNS,
)

_Z = 1.959963984540054


def covariance_from_hessian(H):
    """Cov(x) = 2·H⁻¹ for an objective that is −2·ln L; NaN when H is not invertible."""
    p = H.shape[0]
    try:
        cov = 2.0 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return np.full((p, p), np.nan), np.inf
    if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) <= 0):
        cov = np.where(np.isfinite(cov), cov, np.nan)
    w = np.linalg.eigvalsh(0.5 * (H + H.T))
    cond = float(w[-1] / w[0]) if w[0] > 0 else np.inf
    return cov, cond


def uninformed(H, names) -> list:
    """What the data do not inform, from the Hessian ``H`` of the −2LL at the estimates (on
    the estimation scale), by the registry's ``non_identifiable`` rule (the individual fits'):
    a quantity whose diagonal entry is at most ``limit`` × the largest is named alone
    (the objective is flat in it); of the rest, on the scale where each diagonal entry is 1,
    every direction whose eigenvalue is not positive or at most ``limit`` × the largest names
    the quantities loading on it (|component| > ``identifiability.LOADING``), joined by
    "+" (``Cmax+Tmax``: a ridge along which only a combination is informed). Empty when
    ``H`` is positive definite and well conditioned."""
    from ctkinetics.estimation.flags import FLAGS
    from ctkinetics.estimation.identifiability import LOADING

    limit = FLAGS["non_identifiable"].limit
    H = 0.5 * (np.asarray(H, float) + np.asarray(H, float).T)
    if H.size == 0 or not np.all(np.isfinite(H)):
        return []
    d = np.abs(np.diag(H))
    top = d.max()
    if top <= 0:
        return list(names)
    flat = d <= limit * top
    out = [n for n, f in zip(names, flat) if f]
    keep = np.flatnonzero(~flat)
    if keep.size:
        s = np.sqrt(d[keep])
        try:
            w, V = np.linalg.eigh(H[np.ix_(keep, keep)] / np.outer(s, s))
        except np.linalg.LinAlgError:
            return out + ["+".join(names[k] for k in keep)]
        for j in np.flatnonzero((w <= 0) | (w <= limit * w.max())):
            load = [names[keep[k]] for k in np.flatnonzero(np.abs(V[:, j]) > LOADING)]
            if load:
                out.append("+".join(load))
    return out


def flag_details(res) -> dict:
    """What carries each flag of a population fit ``res``: flag id -> text (e.g.
    ``non_identifiable`` -> ``foldx, FB, Cmax+Tmax``; '' when nothing more to say). The one
    home of these details: the CLI's flag lines and the report's population box read them."""
    from ctkinetics.estimation.flags import FLAGS

    p, d = res.parameters, res.diagnostics
    out = {"at_bound": ", ".join(d.get("at_bound", ())),
           "non_identifiable": ", ".join(d.get("uninformed", ()))}
    if len(p):
        rse = p[p["rse_pct"].astype(float) > FLAGS["rse>50%"].limit]
        out["rse>50%"] = ", ".join(f"{r.parameter} {r.rse_pct:.0f} %" for r in rse.itertuples())
        sh = p[p["shrinkage_pct"].astype(float) > FLAGS["shrinkage>30%"].limit]
        out["shrinkage>30%"] = ", ".join(f"{r.parameter} {r.shrinkage_pct:.1f} %"
                                         for r in sh.itertuples())
    return {k: v for k, v in out.items() if v}


def _natural(spec, x):
    theta, beta, omega, sigma = spec.split(x)
    nat = [np.exp(t) if s.log else t for t, s in zip(theta, spec.thetas)]
    tri = spec.structure.entries(omega)
    return np.concatenate([nat, beta, tri, sigma])


def _delta(spec, x, cov):
    g0 = _natural(spec, x)
    G = np.zeros((g0.size, x.size))
    for j in range(x.size):
        h = 1e-6 * max(1.0, abs(x[j]))
        xp, xm = x.copy(), x.copy()
        xp[j] += h
        xm[j] -= h
        G[:, j] = (_natural(spec, xp) - _natural(spec, xm)) / (2 * h)
    v = np.diag(G @ cov @ G.T)
    return g0, np.sqrt(np.where(v > 0, v, np.nan))


def parameter_names(spec) -> list:
    """The parameter table's name of each entry of x (θ, covariate effects, Ω entries as
    omega2_A / omega_A_B, σ): what ``ctk popfit --init`` and SIR's lowest proposal use."""
    names = [t.name for t in spec.thetas] + [e.name for e in spec.effects]
    for (i, j) in spec.structure.pairs(spec.q):
        a, b = spec.random[i], spec.random[j]
        names.append(f"omega2_{a}" if i == j else f"omega_{a}_{b}")
    return names + [s.name for s in spec.sigmas]


def parameter_table(spec, x, cov, shrinkage, references=()):
    """The parameter table (see :class:`PopulationResult`)."""
    names = parameter_names(spec)
    est, se = _delta(spec, x, cov)
    dv = np.diag(cov) if cov.size else np.full(x.size, np.nan)
    se_x = np.sqrt(np.where(dv > 0, dv, np.nan))
    theta, beta, omega, sigma = spec.split(x)
    rows = []
    k = 0
    for j, t in enumerate(spec.thetas):
        lo, hi = (np.exp(theta[j] - _Z * se_x[j]), np.exp(theta[j] + _Z * se_x[j])) if t.log \
            else (theta[j] - _Z * se_x[j], theta[j] + _Z * se_x[j])
        rows.append(dict(parameter=names[k], kind="theta", estimate=est[k], se=se[k],
                         ci_low=lo, ci_high=hi, unit=t.unit,
                         scale="log" if t.log else "linear",
                         estimate_transformed=theta[j], se_transformed=se_x[j],
                         description="typical value" if t.role == "model"
                         else "assay scale factor"))
        k += 1
    off = spec.p
    for j, e in enumerate(spec.effects):
        ref = references[j] if j < len(references) else np.nan
        rows.append(dict(parameter=names[k], kind="covariate", estimate=est[k], se=se[k],
                         ci_low=est[k] - _Z * se[k], ci_high=est[k] + _Z * se[k], unit="",
                         scale="linear", estimate_transformed=beta[j],
                         se_transformed=se_x[off + j],
                         description=f"{e.kind} effect of {e.covariate} on {e.parameter} "
                                     f"(reference {ref:.6g})"))
        k += 1
    pairs = spec.structure.pairs(spec.q)
    is_log = {t.name: t.log for t in spec.thetas}
    for (i, j) in pairs:
        a, b = spec.random[i], spec.random[j]
        v = est[k]
        if i == j:
            cv = geometric_cv_pct(np.sqrt(v)) if is_log[a] else np.sqrt(v)
            rows.append(dict(parameter=names[k], kind="omega", estimate=v, se=se[k],
                             ci_low=np.nan, ci_high=np.nan, unit="", scale="variance",
                             estimate_transformed=np.nan, se_transformed=np.nan, cv_pct=cv,
                             shrinkage_pct=shrinkage[i],
                             description=f"variance of eta_{a}" +
                             (" (log parameter: CV% = 100*sqrt(exp(omega2)-1))"
                              if is_log[a] else " (CV column: SD)")))
        else:
            rows.append(dict(parameter=names[k], kind="omega", estimate=v, se=se[k],
                             ci_low=np.nan, ci_high=np.nan, unit="", scale="covariance",
                             estimate_transformed=np.nan, se_transformed=np.nan,
                             description=f"covariance of eta_{a} and eta_{b}"))
        k += 1
    s0 = spec.slices[3].start
    for j, s in enumerate(spec.sigmas):
        lx, sx = np.log(sigma[j]), se_x[s0 + j]
        rows.append(dict(parameter=names[k], kind="sigma", estimate=est[k], se=se[k],
                         ci_low=np.exp(lx - _Z * sx), ci_high=np.exp(lx + _Z * sx),
                         unit=s.unit, scale="log", estimate_transformed=lx,
                         se_transformed=sx, description=f"residual SD of {s.analyte}"))
        k += 1
    table = pd.DataFrame(rows).reindex(columns=PARAMETER_COLUMNS)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["rse_pct"] = 100.0 * table["se"] / table["estimate"].abs()
    return table


def omega_table(spec, omega, params):
    """Ω entry by entry with SE, CV % and correlations (from the parameter table)."""
    rows = []
    by = params.set_index("parameter")
    for i in range(spec.q):
        for j in range(i + 1):
            a, b = spec.random[i], spec.random[j]
            name = f"omega2_{a}" if i == j else f"omega_{a}_{b}"
            r = by.loc[name] if name in by.index else None
            corr = omega[i, j] / np.sqrt(omega[i, i] * omega[j, j])
            rows.append(dict(parameter=a, parameter2=b, estimate=omega[i, j],
                             se=r["se"] if r is not None else 0.0,
                             rse_pct=r["rse_pct"] if r is not None else np.nan,
                             cv_pct=r["cv_pct"] if r is not None and i == j else np.nan,
                             correlation=corr,
                             shrinkage_pct=r["shrinkage_pct"] if r is not None and i == j
                             else np.nan))
    return pd.DataFrame(rows, columns=OMEGA_COLUMNS)


def shrinkage(eta, omega):
    """η-shrinkage % per random effect: 100·(1 − SD(η̂)/ω)."""
    if eta.shape[1] == 0:
        return np.zeros(0)
    sd = eta.std(axis=0, ddof=1) if eta.shape[0] > 1 else np.full(eta.shape[1], np.nan)
    return 100.0 * (1.0 - sd / np.sqrt(np.diag(omega)))


def individual_table(pm, phi_pop, eta):
    spec = pm.spec
    phi = pm.with_eta(phi_pop, eta)
    rows = []
    ridx = list(spec.random_index)
    for j, t in enumerate(spec.thetas):
        ind = np.exp(phi[:, j]) if t.log else phi[:, j]
        typ = np.exp(phi_pop[:, j]) if t.log else phi_pop[:, j]
        e = eta[:, ridx.index(j)] if j in ridx else np.zeros(pm.n)
        rows.append(pd.DataFrame({"subject": list(pm.data.subjects), "parameter": t.name,
                                  "eta": e, "individual": ind, "typical": typ}))
    out = pd.concat(rows, ignore_index=True)[INDIVIDUAL_COLUMNS]
    order = {s: i for i, s in enumerate(pm.data.subjects)}
    return out.sort_values(["subject"], key=lambda s: s.map(order),
                           kind="stable").reset_index(drop=True)


def _cwres(pm, phi_pop, eta, omega, sigma, ipred):
    """CWRES per analyte (n, m) — see the module docstring."""
    n, q = eta.shape
    err = pm.error
    step = 1e-6
    stack = np.concatenate([eta[None], eta[None] + step * np.eye(q)[:, None, :]]) if q else \
        eta[None]
    preds = pm.predict(pm.with_eta(phi_pop, stack))
    T = err.transform
    Gs = [np.moveaxis((T(p[1:]) - T(p[0])) / step, 0, -1) for p in preds]   # (n, m, q)
    out = [np.full(a.y.shape, np.nan) for a in pm.data.analytes]
    sds = [w[0] for w in pm.weighted(ipred, sigma)]
    for i in range(n):
        sel, es, Gl, sd2 = [], [], [], []
        for k, a in enumerate(pm.data.analytes):
            m = np.flatnonzero(a.mode[i] == QUANTIFIED)
            sel.append(m)
            es.append(T(a.y[i, m]) - T(ipred[k][i, m]) + Gs[k][i, m] @ eta[i])
            Gl.append(Gs[k][i, m])
            sd2.append(sds[k][i, m] ** 2)
        e = np.concatenate(es)
        if e.size == 0:
            continue
        G = np.concatenate(Gl)
        C = G @ omega @ G.T + np.diag(np.concatenate(sd2))
        try:
            w = np.linalg.solve(np.linalg.cholesky(C), e)
        except np.linalg.LinAlgError:
            continue
        pos = 0
        for k, m in enumerate(sel):
            out[k][i, m] = w[pos:pos + m.size]
            pos += m.size
    return out


def prediction_table(pm, phi_pop, eta, omega, sigma):
    """PRED, IPRED, IWRES, CWRES and P(BLQ) for every sample; also returns ε-shrinkage %."""
    pred = pm.predict(phi_pop)
    ipred = pm.predict(pm.with_eta(phi_pop, eta))
    weighted = pm.weighted(ipred, sigma)
    cwres = _cwres(pm, phi_pop, eta, omega, sigma, ipred)
    frames, iw_all = [], []
    for i, s in enumerate(pm.data.subjects):
        rec = pm.data.records[i]
        out = rec[["subject", "analyte", "time", "observed", "blq", "lloq", "status",
                   "reason"]].copy()
        for col in ("pred", "ipred", "iwres", "cwres", "p_blq"):
            out[col] = np.nan
        for k, a in enumerate(pm.data.analytes):
            keep = a.rows[i] >= 0
            rows = a.rows[i][keep]
            cols = {"pred": pred[k][i], "ipred": ipred[k][i], "iwres": weighted[k][1][i],
                    "cwres": cwres[k][i], "p_blq": weighted[k][2][i]}
            for col, v in cols.items():
                out.iloc[rows, out.columns.get_loc(col)] = v[keep]
            iw_all.append(weighted[k][1][i][keep & (a.mode[i] == QUANTIFIED)])
        frames.append(out)
    table = pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS]
    iw = np.concatenate(iw_all) if iw_all else np.array([])
    iw = iw[np.isfinite(iw)]
    eps_shrink = float(100 * (1 - iw.std(ddof=1))) if iw.size > 1 else np.nan
    return table, eps_shrink


__all__ = ["parameter_table", "omega_table", "shrinkage", "individual_table",
           "prediction_table", "covariance_from_hessian", "CENSORED", "EXCLUDED"]
