"""Covariate search on simulated studies: is a planted dose effect on Cmax found, and a noise
covariate left out?

Each of ``--studies`` studies has 12 participants, 4 at each of 3 dose levels (3e7, 1e8,
3e8 cells; ``--per-level 7``: 21, as escalation plus one expansion group of 9), sampled as in benchmarks/popfit_recovery.py (days 1 to 365, residual SD 0.56 on
ln, LLOQ 20 copies/µg, BLQ by M3), stein2019's typical values and ω², and
Cmax ∝ (dose / 1e8)^``--beta`` (default 1: Cmax proportional to dose; with ω²(Cmax) = 0.65 and
12 participants the effect is about 3 standard errors from 0 by the -2LL it is worth: median
dOFV 11 at 1 df in the runs, so the backward test at p < 0.01 (dOFV > 6.63) keeps it in
only about 3/4 of the studies (non-central chi-square, noncentrality 10: 0.72), the search's power
and not a fault of it); each
participant also has a noise covariate (log-normal, unrelated to anything). The search
(``covariate_search``: forward p < 0.05, backward p < 0.01) considers dose and noise on
``--parameters`` (default Cmax and Tmax: 4 candidate relations). A study is a success when the final model holds
Cmax~dose and nothing with the noise covariate.

Rows are appended to OUT.csv study by study (relations found, -2LL drop of Cmax~dose, time);
the table (success rate, how often each relation was kept) goes to OUT.txt; ``--from-csv``
tabulates an earlier run. Candidate fits of a step run on a local Dask cluster of ``--workers``.
``--first-study K`` resumes a stopped run (study K of the same seeds; rows are appended). The
CPU seconds of a study are those of this process and its cluster's worker processes (psutil),
beside its wall-clock seconds (the machine is shared).

    python benchmarks/covsearch_recovery.py [--studies 50] [--beta 1] [--workers 2]
        [--first-study 0] [--out benchmarks/results/covsearch_recovery]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

DOSES = np.array([3e7, 1e8, 3e8])
COLUMNS = ["study", "relations", "success", "dose_on_cmax", "noise_kept", "dofv_dose_cmax",
           "p_dose_cmax", "fits", "seconds", "cpu_seconds"]



def simulate(seed, beta, n_per_level=4):
    from popfit_recovery import TIMES

    from ctkinetics.estimation.population.simulate import simulate_study
    from ctkinetics.modeling import load_model

    m = load_model("stein2019")
    rng = np.random.default_rng(seed)
    dose = np.repeat(DOSES, n_per_level)
    noise = np.exp(rng.normal(0.0, 0.5, dose.size)) * 50
    ds = simulate_study(m, dose.size, TIMES, lloq=20.0, sigma=0.56, seed=int(rng.integers(1e9)),
                        covariates={"dose": dose, "noise": noise},
                        effects={("Cmax", "dose"): (beta, 1e8)})
    ds.subjects["dose_level"] = np.repeat(["1", "2", "3"], n_per_level)
    return ds, m


def _wilson(k, n, z=1.96):
    """95 % Wilson score interval of a proportion k/n."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return c - h, c + h


def tabulate(d):
    cpu = pd.to_numeric(d.get("cpu_seconds", pd.Series(dtype=float)), errors="coerce")
    lo, hi = _wilson(int(d["success"].sum()), len(d))
    rel = pd.Series([r for cell in d["relations"].fillna("") for r in str(cell).split(";")
                     if r]).value_counts()
    lines = [f"studies: {len(d)}",
             f"success (Cmax~dose kept, no noise relation): {d['success'].mean():.1%} "
             f"({int(d['success'].sum())}/{len(d)}; 95 % Wilson interval {lo:.0%}-{hi:.0%})",
             f"Cmax~dose kept: {d['dose_on_cmax'].mean():.1%}; a noise relation kept: "
             f"{d['noise_kept'].mean():.1%}",
             f"median dOFV of Cmax~dose when first tested: {d['dofv_dose_cmax'].median():.1f}",
             f"fits per study: median {d['fits'].median():.0f}; seconds per study: median "
             f"{d['seconds'].median():.0f} wall"
             + (f", {cpu.median():.0f} CPU (studies {int(cpu.notna().sum())} with CPU recorded)"
                if cpu.notna().any() else ""),
             "relations in the final models:"] + [f"  {k}: {v}" for k, v in rel.items()]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--studies", type=int, default=50)
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--parameters", default="Cmax,Tmax")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--first-study", type=int, default=0)
    ap.add_argument("--per-level", type=int, default=4,
                    help="participants per dose level (4: the 12 of dose escalation; 7: 21, "
                         "escalation plus one expansion group of 9)")
    ap.add_argument("--from-csv", default=None)
    a = ap.parse_args(argv)
    if a.from_csv:
        print(tabulate(read_rows(a.from_csv)))
        return
    from _cputime import tree_cpu_seconds
    from popfit_recovery import INIT

    from ctkinetics.estimation.covsearch import covariate_search
    from ctkinetics.executors import local_cluster

    rows = []
    t0 = time.perf_counter()
    seeds = np.random.default_rng(a.seed).integers(1e9, size=a.studies)
    with local_cluster(workers=a.workers) as ex:
        for s, seed in enumerate(seeds):
            if s < a.first_study:
                continue
            t1, c1 = time.perf_counter(), tree_cpu_seconds()
            ds, m = simulate(int(seed), a.beta, a.per_level)
            try:
                r = covariate_search(ds, m, parameters=a.parameters, covariates="dose,noise",
                                     init=INIT, executor=ex, covariance=False)
            except Exception as exc:  # noqa: BLE001 - a failed study is reported, not fatal
                print(f"study {s}: {type(exc).__name__}: {exc}", flush=True)
                continue
            log = r.log
            first = log[(log["relation"] == "Cmax~dose:power") & (log["direction"] == "forward")]
            dose = "Cmax~dose:power" in r.relations
            noise = any("~noise:" in x for x in r.relations)
            row = (s, ";".join(r.relations), dose and not noise, dose, noise,
                   float(first["dofv"].iloc[0]) if len(first) else np.nan,
                   float(first["p_value"].iloc[0]) if len(first) else np.nan,
                   int((log["direction"] != "skipped").sum()) + 2,
                   time.perf_counter() - t1, tree_cpu_seconds() - c1)
            rows.append(row)
            if a.out:   # the table of every study in OUT.csv so far, after each study
                pd.DataFrame([row]).to_csv(a.out + ".csv", mode="a", header=False, index=False)
                write_table(a, read_rows(a.out + ".csv"))
            print(f"study {s + 1}/{a.studies}: {row[1] or '(none)'} ({row[-2]:.0f} s wall, "
                  f"{row[-1]:.0f} s CPU, load "
                  f"{os.getloadavg()[0]:.1f})", flush=True)
    print(tabulate(read_rows(a.out + ".csv") if a.out else pd.DataFrame(rows, columns=COLUMNS)))
    print(f"{time.perf_counter() - t0:.0f} s wall-clock for this run")


def read_rows(path):
    """The rows of OUT.csv (rows written before the CPU column have no CPU seconds)."""
    d = pd.read_csv(path, header=None, names=COLUMNS, keep_default_na=False)
    for c in ("success", "dose_on_cmax", "noise_kept"):
        d[c] = d[c].astype(str) == "True"
    return d


def write_table(a, d):
    with open(a.out + ".txt", "w") as fh:
        fh.write(f"# covariate search, {len(d)} of {a.studies} planned studies of "
                 f"{3 * a.per_level} participants, beta {a.beta}, candidates dose and noise on {a.parameters}, "
                 f"seed {a.seed}\n{tabulate(d)}\n")


if __name__ == "__main__":
    main()
