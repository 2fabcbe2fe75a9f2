"""Recovery of the Stein 2019 population by FOCE-I, SAEM and the two-stage approach; with
``--model cart_bcell_sle``, of the mechanistic model by FOCE-I, SAEM and individual ML and
MAP fits (issue 12).

Each of ``--studies`` simulated studies has 12–30 participants (uniform) sampled on
days 1, 4, 7, 10, 14, 21, 28, 56, 90, 180, 270, 365 from stein2019's typical values and
ω² (Table 1), residual SD 0.56 on ln, LLOQ 20 copies/µg (BLQ by M3). Fits start away from
the truth. Per parameter: relative bias of the typical value (on ln: mean of ln(est/true))
and of ω², and the coverage of the 95 % Wald CI of ln θ (two-stage: geometric mean ± 1.96
SD/√n of the ln individual estimates; its ω² is the variance of those estimates), and of the
95 % Wald CI of ln ω² (SE(ω²)/ω² from the covariance step; two-stage: √(2/(n−1)), the SE of a
log sample variance of n normal values).

    python benchmarks/popfit_recovery.py [--studies 100] [--methods focei,saem,twostage]
        [--max-minutes 30] [--out benchmarks/results/popfit_recovery]
    python benchmarks/popfit_recovery.py --model cart_bcell_sle --studies 50
        --methods focei,saem,ml,map --out benchmarks/results/popfit_recovery_cart
        [--start K]     # continue a stopped run at study K (appends to OUT.csv)

cart_bcell_sle: 12–30 participants on the sample cohort's schedule (days 1 … 180) and LLOQs
(transgene 20 copies/µg, CAR flow 0.5 and B cells 1 cells/µL, BLQ by M3), doses of the three
dose levels, the model file's typical values and ω² for its estimated parameters, residual
SDs on ln as the model file declares them ([residual_error]: 0.25 qPCR, 0.30 flow, 0.20 B cells;
before 2026-12-01 22:30 UTC 0.3 for each, so rows of earlier runs are not comparable). ``ml`` / ``map``: individual fits without / with the model file's
prior (``--prior model``); their rows are per participant and parameter (bias of ln(est/true)
of the individual value, coverage of its 95 % CI).

Rows are appended to ``OUT.csv`` study by study and the table is written to ``OUT.txt``:
a run stopped by ``--max-minutes`` reports the studies it finished (column ``studies``).
SEs are FOCE-I Hessian SEs for both population methods (for SAEM: at its estimates).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

TIMES = np.array([1, 4, 7, 10, 14, 21, 28, 56, 90, 180, 270, 365.0])
INIT = {"Cmax": 15000, "Tmax": 8, "foldx": 2000, "alpha": 0.2, "FB": 0.01, "beta": 0.005}


def _two_stage(ds, m):
    from ctkinetics.estimation import fit

    res = fit(ds, m, blq="M3", starts=3)
    t = res.to_frame()
    out = {}
    ok = {f.subject for f in res.fits if f.success}
    for p in m.param_names:
        v = np.log(t[(t["parameter"] == p) & t["subject"].isin(ok)]["estimate"].to_numpy(float))
        v = v[np.isfinite(v)]
        out[p] = (v.mean(), v.std(ddof=1) / np.sqrt(v.size), v.var(ddof=1), v.size)
    return out


#: ``omega2_se_ln``: SE of ln ω² (delta method: SE(ω²)/ω², the covariance step's), added on
#: 2026-12-02; rows written before have 7 columns and no ω² coverage.
COLUMNS = ["study", "method", "parameter", "ln_error", "se", "omega2_rel_error", "converged",
           "omega2_se_ln"]


def read_rows(path):
    """The rows of an OUT.csv (rows of runs before the ``omega2_se_ln`` column get NaN)."""
    return pd.read_csv(path, header=None, names=COLUMNS)


def omega2_se_ln(table, name):
    """SE of ln ω² of parameter ``name`` from a population parameter table (NaN without one)."""
    r = table.loc[f"omega2_{name}"]
    return float(r["se"] / r["estimate"]) if r["estimate"] > 0 else np.nan


def tabulate(d):
    """Bias, RMSE and Wald coverage of ln θ, bias and Wald coverage of ω² (on ln ω²: the
    interval ω²·exp(±1.96·SE/ω²), which stays positive), per method and parameter (``d``:
    rows with :data:`COLUMNS`, e.g. from :func:`read_rows`). Each coverage is over the studies
    with a finite SE: ``se_missing_pct`` says how many had none for θ, ``omega2_studies`` how
    many have one for ω² (rows of runs before the ω² SE was recorded have none)."""
    ln_ratio = np.log1p(d["omega2_rel_error"].astype(float))       # ln(ω² est / true)
    ok2 = d["omega2_se_ln"].notna() & np.isfinite(ln_ratio)
    d = d.assign(covered=np.where(d["se"].notna(),
                                  np.abs(d["ln_error"]) <= 1.96 * d["se"], np.nan),
                 omega2_covered=np.where(ok2, np.abs(ln_ratio) <= 1.96 * d["omega2_se_ln"],
                                         np.nan),
                 omega2_has_se=np.where(ok2, d["study"], np.nan))
    return d.groupby(["method", "parameter"], sort=False).agg(
        studies=("study", "nunique"), bias_ln_theta=("ln_error", "mean"),
        rmse_ln_theta=("ln_error", lambda v: float(np.sqrt(np.mean(v**2)))),
        coverage_95=("covered", "mean"),
        se_missing_pct=("se", lambda v: 100 * float(v.isna().mean())),
        bias_omega2_pct=("omega2_rel_error", lambda v: 100 * float(np.mean(v))),
        omega2_studies=("omega2_has_se", "nunique"),
        omega2_coverage_95=("omega2_covered", "mean"),
        converged=("converged", "mean"))


SLE_TIMES = np.array([1, 4, 7, 10, 14, 21, 28, 42, 56, 90, 180.0])
SLE_ASSAYS = {"transgene": ("qpcr", "copies/ug", 20.0),
              "car_flow": ("flow", "cells/uL", 0.5),
              "bcell": ("bcell", "cells/uL", 1.0)}


def _sle_assays(m):
    """The assays with the residual SD (on ln) the model file declares for each kind
    ([residual_error]): the SD the ``map`` fits hold fixed, so MAP is compared like with like."""
    sd = {r.kind: r.sigmas["sigma"] for r in m.residual_error}
    return {a: (kind, unit, lloq, sd[kind]) for a, (kind, unit, lloq) in SLE_ASSAYS.items()}
SLE_DOSES = np.array([3e8, 4.5e8, 6e8])


def _cart_study(m, n, rng):
    from ctkinetics.estimation.population.simulate import simulate_study

    dose = rng.choice(SLE_DOSES, n)
    return simulate_study(m, n, SLE_TIMES, analytes=_sle_assays(m), covariates={"dose": dose},
                          seed=int(rng.integers(1e9)))


def _cart_rows(s, method, ds, m, random):
    """Rows of one study and method of the cart_bcell_sle recovery (see the module)."""
    from ctkinetics.estimation import fit
    from ctkinetics.estimation.population import fit_population

    truth = m.defaults()
    w2 = {p.name: p.omega2 for p in m.parameters}
    if method in ("ml", "map"):
        r = fit(ds, m, starts=2, derived=False, prior="model" if method == "map" else None)
        t = r.to_frame()
        true = ds.truth.set_index(["subject", "parameter"])["value"]
        rows = []
        for _, row in t[t["parameter"].isin(random)].iterrows():
            v = true.loc[(row["subject"], row["parameter"])]
            rows.append((s, method, row["parameter"], row["estimate_transformed"] - np.log(v),
                         row["se_transformed"], np.nan, True, np.nan))
        return rows
    r = fit_population(ds, m, method=method, blq="M3")
    t = r.parameters.set_index("parameter")
    return [(s, method, p, t.loc[p, "estimate_transformed"] - np.log(truth[p]),
             t.loc[p, "se_transformed"], t.loc[f"omega2_{p}", "estimate"] / w2[p] - 1,
             r.converged, omega2_se_ln(t, p)) for p in random]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--studies", type=int, default=100)
    ap.add_argument("--methods", default="focei,saem,twostage")
    ap.add_argument("--model", default="stein2019", choices=("stein2019", "cart_bcell_sle"))
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--max-minutes", type=float, default=np.inf)
    ap.add_argument("--start", type=int, default=0,
                    help="continue an earlier run: skip the first START studies (their random "
                         "draws are made, so study k is the same study as in a full run)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--from-csv", default=None,
                    help="only tabulate the rows of an earlier run's OUT.csv")
    a = ap.parse_args(argv)
    if a.from_csv:
        d = read_rows(a.from_csv)
        print(f"# {d['study'].nunique()} studies from {a.from_csv}")
        print(tabulate(d).to_string(float_format=lambda v: f"{v:.3f}"))
        return
    from ctkinetics.estimation.population import fit_population
    from ctkinetics.estimation.population.simulate import simulate_study
    from ctkinetics.modeling import load_model

    m = load_model(a.model)
    truth = m.defaults()
    w2 = {p.name: p.omega2 for p in m.parameters}
    random = [p.name for p in m.parameters if p.omega2 and getattr(p, "estimate", True)]
    rng = np.random.default_rng(a.seed)
    rows = []
    t0 = time.perf_counter()
    seconds = {}
    for s in range(a.studies):
        if time.perf_counter() - t0 > 60 * a.max_minutes:
            print(f"time limit: {s} studies done", flush=True)
            break
        n = int(rng.integers(12, 31))
        if s < a.start:                  # the draws of a study done by an earlier run
            if a.model == "cart_bcell_sle":
                rng.choice(SLE_DOSES, n)
            rng.integers(1e9)
            continue
        if a.model == "cart_bcell_sle":
            ds = _cart_study(m, n, rng)
        else:
            ds = simulate_study(m, n, TIMES, lloq=20.0, sigma=0.56, seed=int(rng.integers(1e9)))
        for method in a.methods.split(","):
            t1 = time.perf_counter()
            try:
                if a.model == "cart_bcell_sle":
                    rows += _cart_rows(s, method, ds, m, random)
                    seconds.setdefault(method, []).append(time.perf_counter() - t1)
                    continue
                if method == "twostage":
                    est = _two_stage(ds, m)
                    for p in m.param_names:
                        mu, se, var, n_ok = est[p]
                        rows.append((s, method, p, mu - np.log(truth[p]), se, var / w2[p] - 1,
                                     True, np.sqrt(2.0 / (n_ok - 1))))
                    seconds.setdefault(method, []).append(time.perf_counter() - t1)
                    continue
                r = fit_population(ds, m, method=method, init=INIT, seed=s)
                t = r.parameters.set_index("parameter")
                for p in m.param_names:
                    rows.append((s, method, p, t.loc[p, "estimate_transformed"]
                                 - np.log(truth[p]), t.loc[p, "se_transformed"],
                                 t.loc[f"omega2_{p}", "estimate"] / w2[p] - 1, r.converged,
                                 omega2_se_ln(t, p)))
            except Exception as exc:  # noqa: BLE001 - a failed study is counted, not fatal
                print(f"study {s} {method}: {type(exc).__name__}: {exc}")
            seconds.setdefault(method, []).append(time.perf_counter() - t1)
        if a.out:
            pd.DataFrame([r for r in rows if r[0] == s]).to_csv(
                a.out + ".csv", mode="a", header=False, index=False)
        print(f"study {s + 1}/{a.studies} (n={n}) done, {time.perf_counter() - t0:.0f} s",
              flush=True)
    d = pd.DataFrame(rows, columns=COLUMNS)
    tab = tabulate(d)
    tab["sec_per_fit"] = [float(np.mean(seconds.get(m, [np.nan]))) for m, _ in tab.index]
    text = tab.to_string(float_format=lambda v: f"{v:.3f}")
    print(text)
    if a.out:
        with open(a.out + ".txt", "w") as fh:
            fh.write(f"# {d['study'].nunique()} studies, seed {a.seed}, "
                     f"{time.perf_counter() - t0:.0f} s wall-clock\n{text}\n")


if __name__ == "__main__":
    main()
