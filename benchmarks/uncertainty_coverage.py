"""Coverage of 95 % intervals of θ: Wald (FOCE-I Hessian) vs bootstrap vs SIR, on the
stein2019 recovery studies of benchmarks/popfit_recovery.py.

The studies are those of popfit_recovery.py with the same seed (12–30 participants, days 1 to
365, stein2019's typical values and ω², residual SD 0.56 on ln, LLOQ 20 copies/µg, BLQ by
M3; FOCE-I started away from the truth). For each study and each typical value θ:

- Wald: ln θ̂ ± 1.96·SE from the covariance step (a study without an SE counts as not
  covering, and is also reported apart: ``se_missing``);
- bootstrap: the percentile interval of ``--replicates`` case-resampling replicates (failed
  and not converged replicates left out, those with an estimate at a bound kept);
- SIR: the 2.5–97.5 % limits SIR reports with ``--sir-samples`` / ``--sir-resamples``
  (proposal: the covariance step, or SE 0.3 without one): the quantiles of the last
  iteration's importance-weighted proposals (method ``sir``), and PsN's quantiles of its
  resamples (method ``sir_resamples``; rows written before the weighted limits existed, with
  method ``sir``, are these: same seeds, same resamples).

Rows (study, n, method, parameter, low, high, covered, ...) are appended to OUT.csv study by
study, the table to OUT.txt; ``--from-csv`` tabulates an earlier (possibly stopped) run.
Replicates and SIR objective values run on one local Dask cluster of ``--workers`` processes.

    python benchmarks/uncertainty_coverage.py [--studies 50] [--replicates 100]
        [--sir-samples 1000,1000,1000] [--sir-resamples 200,400,500] [--workers 2]
        [--max-minutes 600] [--first-study 0] [--methods wald,bootstrap,sir]
        [--out benchmarks/results/uncertainty_coverage]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

COLUMNS = ["study", "n", "method", "parameter", "truth", "low", "high", "covered",
           "available", "note"]


def tabulate(d: pd.DataFrame) -> pd.DataFrame:
    """Coverage per method and parameter: over all studies (an interval that could not be
    computed does not cover) and over the studies where it could."""
    d = d.assign(covered=d["covered"].astype(bool), available=d["available"].astype(bool))
    g = d.groupby(["method", "parameter"], sort=False)
    out = g.agg(studies=("study", "nunique"), coverage=("covered", "mean"),
                missing_pct=("available", lambda v: 100 * (1 - v.mean())))
    out["coverage_when_available"] = g.apply(
        lambda x: x.loc[x["available"], "covered"].mean(), include_groups=False)
    out["median_width_ln"] = g.apply(
        lambda x: float(np.nanmedian(np.log(x["high"] / x["low"]))), include_groups=False)
    # Monte-Carlo error of the coverage itself: Wilson's 95 % interval of a binomial share
    k, n = out["coverage"] * out["studies"], out["studies"]
    z2 = 1.959964 ** 2
    mid, half = (k + z2 / 2) / (n + z2), 1.959964 * np.sqrt(k * (n - k) / n + z2 / 4) / (n + z2)
    out["coverage_lo95"], out["coverage_hi95"] = mid - half, mid + half
    # which side the misses fall on: an interval wholly below / above the truth (a biased
    # estimate misses on one side; an interval too narrow misses on both)
    out["below"] = g.apply(lambda x: int((x["available"] & (x["high"] < x["truth"])).sum()),
                           include_groups=False)
    out["above"] = g.apply(lambda x: int((x["available"] & (x["low"] > x["truth"])).sum()),
                           include_groups=False)
    return out


def one_study(s, n, seed, a, executor):
    from popfit_recovery import INIT, TIMES

    from ctkinetics.estimation.population import fit_population
    from ctkinetics.estimation.population.simulate import simulate_study
    from ctkinetics.modeling import load_model

    m = load_model("stein2019")
    truth = m.defaults()
    ds = simulate_study(m, n, TIMES, lloq=20.0, sigma=0.56, seed=seed)
    res = fit_population(ds, m, init=INIT)
    t = res.parameters.set_index("parameter")
    rows = []
    methods = a.methods.split(",")
    for p in m.param_names if "wald" in methods else ():
        lo, hi = t.loc[p, "ci_low"], t.loc[p, "ci_high"]
        ok = bool(np.isfinite(lo) and np.isfinite(hi))
        rows.append((s, n, "wald", p, truth[p], lo, hi, ok and lo <= truth[p] <= hi, ok,
                     "" if ok else "no SE"))
    if "bootstrap" in methods:
        rows += _bootstrap_rows(s, n, seed, a, executor, ds, m, res, truth)
    if "sir" in methods:
        rows += _sir_rows(s, n, seed, a, executor, ds, m, res, truth)
    return rows


def _bootstrap_rows(s, n, seed, a, executor, ds, m, res, truth):
    from ctkinetics.estimation.bootstrap import bootstrap

    rows = []
    b = bootstrap(ds, m, a.replicates, seed=seed, original=res, bca=False, executor=executor)
    bi = b.intervals.set_index("parameter")
    note = (f"used {b.shares['n_used']}/{a.replicates}; failed {b.shares['failed_pct']:.0f} %, "
            f"not converged {b.shares['not_converged_pct']:.0f} %, at bound "
            f"{b.shares['at_bound_pct']:.0f} %")
    for p in m.param_names:
        lo, hi = bi.loc[p, "pct_low"], bi.loc[p, "pct_high"]
        ok = bool(np.isfinite(lo) and np.isfinite(hi))
        rows.append((s, n, "bootstrap", p, truth[p], lo, hi, ok and lo <= truth[p] <= hi, ok,
                     note))
    return rows


def _sir_rows(s, n, seed, a, executor, ds, m, res, truth):
    from ctkinetics.estimation.sir import sir

    rows = []
    samples = [int(v) for v in a.sir_samples.split(",")]
    resamples = [int(v) for v in a.sir_resamples.split(",")]
    r = sir(ds, m, res, samples=samples, resamples=resamples, seed=seed, executor=executor)
    si = r.intervals.set_index("parameter")
    note = (f"{r.settings['proposal']}; ESS {r.iterations['effective_sample_size'].iloc[-1]:.0f}"
            f"; flags {';'.join(r.flags)}")
    for method, col in (("sir", "sir"), ("sir_resamples", "resample")):
        for p in m.param_names:
            lo, hi = si.loc[p, f"{col}_low"], si.loc[p, f"{col}_high"]
            ok = bool(np.isfinite(lo) and np.isfinite(hi))
            rows.append((s, n, method, p, truth[p], lo, hi, ok and lo <= truth[p] <= hi, ok,
                         note))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--studies", type=int, default=50)
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--sir-samples", default="1000,1000,1000")
    ap.add_argument("--sir-resamples", default="200,400,500")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-minutes", type=float, default=np.inf)
    ap.add_argument("--methods", default="wald,bootstrap,sir",
                    help="comma-separated subset of wald,bootstrap,sir")
    ap.add_argument("--first-study", type=int, default=0,
                    help="skip the studies before this one (to continue an earlier run's CSV)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--from-csv", default=None)
    a = ap.parse_args(argv)
    if a.from_csv:
        d = pd.read_csv(a.from_csv, header=None, names=COLUMNS, keep_default_na=False,
                        na_values=[""])
        print(f"# {d['study'].nunique()} studies from {a.from_csv}")
        print(tabulate(d).to_string(float_format=lambda v: f"{v:.3f}"))
        return
    from ctkinetics.executors import local_cluster

    rng = np.random.default_rng(a.seed)       # the studies of popfit_recovery.py
    rows = []
    t0 = time.perf_counter()
    with local_cluster(workers=a.workers) as ex:
        for s in range(a.studies):
            n, seed = int(rng.integers(12, 31)), int(rng.integers(1e9))
            if s < a.first_study:
                continue
            if time.perf_counter() - t0 > 60 * a.max_minutes:
                print(f"time limit: {s} studies done", flush=True)
                break
            t1 = time.perf_counter()
            try:
                new = one_study(s, n, seed, a, ex)
            except Exception as exc:  # noqa: BLE001 - a failed study is reported, not fatal
                print(f"study {s}: {type(exc).__name__}: {exc}", flush=True)
                continue
            rows += new
            if a.out:
                pd.DataFrame(new).to_csv(a.out + ".csv", mode="a", header=False, index=False)
            print(f"study {s + 1}/{a.studies} (n={n}) {time.perf_counter() - t1:.0f} s; "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    d = pd.DataFrame(rows, columns=COLUMNS)
    text = tabulate(d).to_string(float_format=lambda v: f"{v:.3f}")
    print(text)
    if a.out:
        with open(a.out + ".txt", "w") as fh:
            fh.write(f"# {d['study'].nunique()} studies, seed {a.seed}, {a.replicates} "
                     f"bootstrap replicates, SIR {a.sir_samples} / {a.sir_resamples}, "
                     f"{time.perf_counter() - t0:.0f} s wall-clock\n{text}\n")


if __name__ == "__main__":
    main()
