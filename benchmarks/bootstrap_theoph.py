"""Bootstrap and SIR intervals of R's Theoph against R-computed references, within
Monte-Carlo error.

Model: onecpt_oral (= SSfol), random effects on ka and CL, additive error, FOCE-I.

- Bootstrap: ``--replicates`` (default 1,000) case-resampling replicates + the 12 jackknife fits
  on a local Dask cluster; percentile and BCa 95 % limits against R's (nlme ML + a bootstrap
  of 1,000 replicates with its own random resamples: tests/data/theoph_bootstrap.R).
- SIR: PsN's default schedule (1000/200, 1000/400, 1000/500, 2000/1000, 2000/1000) against
  the quantiles of the same target (exp(−OFV/2), flat prior on the estimation vector) by
  importance sampling in R with R's own FOCE-I objective (5,000 draws:
  tests/data/theoph_sir.R). Rows "SIR vs R importance sampling": the reported limits (the
  quantiles of the last iteration's importance-weighted proposals); rows "SIR resamples (PsN)
  vs R IS": the quantiles of the resamples, PsN's limits.

- ``--importance N``: the same target by importance sampling with this project's objective
  (N draws from N(x̂, 1.5² Cov), as R's script does): rows "ours IS vs R IS" tell whether the
  two objectives agree; rows "SIR vs ours IS" how far SIR's own approximation (a finite number
  of iterations, resampling without replacement, normal proposals on a Yeo–Johnson scale) is
  from the exact quantiles of the target it samples.

Monte-Carlo SE of a limit: SD of the quantile over 400 resamples (with replacement) of the
replicate values (ours and R's separately; for R's importance sampling, ours × sqrt(m/ESS));
of a weighted limit (SIR's, importance sampling's): SD of the quantile over 400 weighted
resamples of the effective sample size.
``z`` = difference / combined SE (the BCa limits use the percentile limits' SE, an
approximation); |z| < 2 is agreement within Monte-Carlo error.

    python benchmarks/bootstrap_theoph.py [--replicates 1000] [--workers 2] [--seed 1]
        [--out benchmarks/results/bootstrap_theoph.txt]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
NAMES = {"ka": "ka", "ke": "ke", "CL": "CL", "omega2_ka": "omega2_ka",
         "omega2_CL": "omega2_CL", "sigma_conc": "sigma"}


def mc_se(values, p, rng, n=400):
    """SD of the p-quantile of ln(values) over resamples of the values."""
    v = np.log(np.asarray(values, float))
    v = v[np.isfinite(v)]
    q = [np.quantile(rng.choice(v, v.size), p) for _ in range(n)]
    return float(np.std(q, ddof=1))


def importance(ds, m, res, n, seed, executor):
    """(natural-scale draws × parameters as a DataFrame, normalised weights) of importance
    sampling of exp(−OFV/2) (flat prior on the estimation vector) with N(x̂, 1.5² Cov)."""
    from ctkinetics.estimation.resampling import FitData, ModelRef, run_tasks
    from ctkinetics.estimation.sir import _natural, _objective, ofv_items

    xhat, cov = np.asarray(res.x, float), 2.25 * res.covariance.to_numpy(float)
    x = np.random.default_rng(seed).multivariate_normal(xhat, cov, n)
    data, ref = FitData.of(ds), ModelRef.of(m)
    meta = {"result": res, "key": ("importance", seed)}
    obj = _objective(data, ref, meta)
    ofv0 = obj(xhat, update=True, explore=True)
    out = []
    run_tasks(executor, ofv_items, (data, ref, meta, obj.eta.copy()), list(x), out.extend,
              batch_size=100)
    d = x - xhat
    log_w = -0.5 * (np.asarray(out) - ofv0) + 0.5 * np.einsum(
        "ni,ij,nj->n", d, np.linalg.inv(cov), d)
    w = np.exp(log_w - np.max(log_w[np.isfinite(log_w)]))
    w = np.where(np.isfinite(w), w, 0.0)
    names = list(res.parameters["parameter"])
    nat = pd.DataFrame([_natural(res.spec, v) for v in x], columns=names)
    return nat, w / w.sum()


def r_weighted_quantile(v, w, p):
    """The p-quantile as tests/data/theoph_sir.R computes R's importance-sampling limits
    (``wq``: the inverse of the weighted step distribution function, R's type 1 with
    weights), so that 'ours IS vs R IS' compares two samples under one definition. The
    limits SIR reports are ``ctkinetics.stats.weighted_quantile`` (interpolated, Hazen's
    positions), which 'SIR vs ours IS' compares within Monte-Carlo error."""
    o = np.argsort(v)
    return float(v[o][np.searchsorted(np.cumsum(w[o]), p)])


def mc_se_weighted(v, w, p, rng, n=400):
    """MC SE of the p-quantile of ln(v) under normalised weights w: SD of the quantile over
    ``n`` weighted resamples (with replacement) of the effective sample size."""
    ess = int(1.0 / np.sum(w**2))
    return float(np.std([np.quantile(np.log(rng.choice(v, ess, p=w)), p) for _ in range(n)],
                        ddof=1))


def sir_weighted(s):
    """{parameter: (values, normalised weights)} of SIR's last weighted proposals."""
    out = {}
    for name, g in s.weighted.groupby("parameter", sort=False):
        w = g["probability"].to_numpy(float)
        out[name] = (g["estimate"].to_numpy(float), w / w.sum())
    return out


def importance_rows(imp, sir_res, rng, n=400):
    """Rows 'ours IS vs R IS' and 'SIR vs ours IS' (MC SE of an IS limit: SD of the quantile
    over ``n`` weighted resamples of the ESS size)."""
    nat, w = imp
    r_sir = pd.read_csv(DATA / "theoph_sir_r_ci.csv").set_index("parameter")
    si, sw = sir_res.intervals.set_index("parameter"), sir_weighted(sir_res)
    rows = []
    for ours_name, r_name in NAMES.items():
        v = nat[ours_name].to_numpy(float)
        for lim, p, col in (("low", 0.025, "q025"), ("high", 0.975, "q975")):
            q = r_weighted_quantile(v, w, p)
            se_is = mc_se_weighted(v, w, p, rng, n)
            r = r_sir.loc[r_name, col]
            rows.append(dict(method="ours IS vs R IS", parameter=ours_name, limit=lim, ours=q,
                             r=r, ln_diff=np.log(q / r), mc_se_ln=se_is * np.sqrt(2),
                             z=np.log(q / r) / (se_is * np.sqrt(2))))
            mine = float(si.loc[ours_name, f"sir_{lim}"])
            se = np.hypot(se_is, mc_se_weighted(*sw[ours_name], p, rng, n))
            rows.append(dict(method="SIR vs ours IS", parameter=ours_name, limit=lim,
                             ours=mine, r=q, ln_diff=np.log(mine / q), mc_se_ln=se,
                             z=np.log(mine / q) / se))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-sir", action="store_true")
    ap.add_argument("--importance", type=int, default=0, metavar="N",
                    help="also sample the SIR target by importance sampling (N draws)")
    ap.add_argument("--skip-bootstrap", action="store_true",
                    help="compare the SIR only (the bootstrap rows are left out)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    from _cputime import tree_cpu_seconds
    from population.theoph import dataset, onecpt_model

    from ctkinetics.estimation.bootstrap import bootstrap
    from ctkinetics.estimation.population import fit_population
    from ctkinetics.estimation.sir import sir
    from ctkinetics.executors import local_cluster

    ds, m = dataset(), onecpt_model()
    opts = dict(random_effects="ka,CL", error="additive")
    res = fit_population(ds, m, **opts)
    rng = np.random.default_rng(0)
    lines = [f"# Theoph, FOCE-I -2LL {res.ofv:.3f}; "
             + ("bootstrap skipped" if a.skip_bootstrap
                else f"bootstrap {a.replicates} replicates (seed {a.seed})") + ", "
             + ("SIR skipped" if a.skip_sir else f"SIR PsN schedule (seed {a.seed})")]
    with local_cluster(workers=a.workers) as ex:
        t0, c0 = time.perf_counter(), tree_cpu_seconds()
        b = None if a.skip_bootstrap else bootstrap(ds, m, a.replicates, seed=a.seed,
                                                    original=res, executor=ex, **opts)
        tb, cb = time.perf_counter() - t0, tree_cpu_seconds() - c0
        print(f"bootstrap done in {tb:.0f} s wall, {cb:.0f} s CPU", flush=True)
        s = None
        if not a.skip_sir:
            s = sir(ds, m, res, seed=a.seed, executor=ex)
        ts, cs = time.perf_counter() - t0 - tb, tree_cpu_seconds() - c0 - cb
        imp = importance(ds, m, res, a.importance, a.seed, ex) if a.importance else None
    r_ci = pd.read_csv(DATA / "theoph_bootstrap_r_ci.csv").set_index("parameter")
    r_rep = pd.read_csv(DATA / "theoph_bootstrap_r_replicates.csv", dtype={"replicate": str})
    r_rep = r_rep[~r_rep["replicate"].str.startswith("jack") & (r_rep["converged"] == 1)]
    rows = []
    for ours_name, r_name in NAMES.items() if b is not None else ():
        ours, bi = b.values(), b.intervals.set_index("parameter")
        for lim, p in (("low", 0.025), ("high", 0.975)):
            mine, theirs = bi.loc[ours_name, f"pct_{lim}"], r_ci.loc[r_name, f"pct_{lim}"]
            se = np.hypot(mc_se(ours[ours_name], p, rng), mc_se(r_rep[r_name], p, rng))
            rows.append(dict(method="bootstrap percentile", parameter=ours_name, limit=lim,
                             ours=mine, r=theirs, ln_diff=np.log(mine / theirs), mc_se_ln=se,
                             z=np.log(mine / theirs) / se))
            mine, theirs = bi.loc[ours_name, f"bca_{lim}"], r_ci.loc[r_name, f"bca_{lim}"]
            rows.append(dict(method="bootstrap BCa", parameter=ours_name, limit=lim, ours=mine,
                             r=theirs, ln_diff=np.log(mine / theirs), mc_se_ln=se,
                             z=np.log(mine / theirs) / se))
    if s is not None:
        r_sir = pd.read_csv(DATA / "theoph_sir_r_ci.csv").set_index("parameter")
        est = s.estimates.pivot(index="sample", columns="parameter", values="estimate")
        si = s.intervals.set_index("parameter")
        ess = float(r_sir["ess"].iloc[0])
        sw = sir_weighted(s)
        ess_sir = float(s.iterations["effective_sample_size"].iloc[-1])
        for ours_name, r_name in NAMES.items():
            for lim, p, col in (("low", 0.025, "q025"), ("high", 0.975, "q975")):
                # the reported limits: quantiles of the last iteration's weighted proposals
                # (R's MC SE: ours scaled by the ratio of the effective sample sizes)
                mine, theirs = si.loc[ours_name, f"sir_{lim}"], r_sir.loc[r_name, col]
                se = mc_se_weighted(*sw[ours_name], p, rng) * np.sqrt(1 + ess_sir / ess)
                rows.append(dict(method="SIR vs R importance sampling", parameter=ours_name,
                                 limit=lim, ours=mine, r=theirs, ln_diff=np.log(mine / theirs),
                                 mc_se_ln=se, z=np.log(mine / theirs) / se))
                # PsN's limits: the quantiles of the resamples
                mine = si.loc[ours_name, f"resample_{lim}"]
                se = mc_se(est[ours_name], p, rng) * np.sqrt(1 + len(est) / ess)
                rows.append(dict(method="SIR resamples (PsN) vs R IS", parameter=ours_name,
                                 limit=lim, ours=mine, r=theirs, ln_diff=np.log(mine / theirs),
                                 mc_se_ln=se, z=np.log(mine / theirs) / se))
        if imp is not None:
            rows += importance_rows(imp, s, rng)
        it = s.iterations.iloc[-1]
        lines.append(f"# SIR: last ESS {it['effective_sample_size']:.0f}, mean dOFV of the "
                     f"resamples {it['mean_dofv_resamples']:.2f} (df {int(it['df'])}), flags "
                     f"{s.flags}; {ts:.0f} s wall, {cs:.0f} s CPU")
    t = pd.DataFrame(rows)
    lines.append("# bootstrap skipped" if b is None else
                 f"# bootstrap: {b.shares['n_used']} of {a.replicates} used (failed "
                 f"{b.shares['failed_pct']:.1f} %, not converged "
                 f"{b.shares['not_converged_pct']:.1f} %, at a bound "
                 f"{b.shares['at_bound_pct']:.1f} %); R: {int(r_ci['n_ok'].iloc[0])} of "
                 f"{int(r_ci['B'].iloc[0])}; {tb:.0f} s wall, {cb:.0f} s CPU on {a.workers} "
                 f"workers (load {'/'.join(f'{x:.1f}' for x in os.getloadavg())})")
    lines.append(t.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    lines.append(f"# |z| < 2 for {int((t['z'].abs() < 2).sum())} of {len(t)} limits; "
                 f"max |z| {t['z'].abs().max():.2f}")
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
