"""Recovery study: do individual stein2019 fits recover the truth, by BLQ method?

200 virtual participants (Stein 2019 typical values, IIV ω² scaled down), sampled to day 365 (24 samples; ``--design typical``: the 12 of DOMAIN.md),
proportional error σ = 0.3, an LLOQ set to give about 30 % BLQ. Each is fitted with M3, M1
and M6; the table gives per parameter the median relative bias (estimate/truth − 1) and the
coverage of the 95 % CIs: ``wald-t`` (the default: t(n−p) quantile and sqrt(n/(n−p))
small-sample factor, R nls's convention) and ``wald`` (θ ± 1.96·SE, ML Hessian; computed from
the same fits). ``--profile`` adds profile-likelihood CIs (slow: lmfit re-fits). Goal with
M3: |bias| < 5 % for Cmax, Tmax, alpha; coverage 90–98 %. ``tmax_at_sample_pct``: fits whose
Tmax sits on a sampling time (a kink of the likelihood; flagged ``at_sample_time``).

    python benchmarks/recovery.py [--n 200] [--seed 1] [--starts 2] [--jobs 2] [--profile]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _stein_sim import DENSE, TIMES, simulate  # noqa: E402

from ctkinetics.estimation import fit  # noqa: E402
from ctkinetics.modeling import load_model  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--starts", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--methods", default="M3,M1,M6")
    ap.add_argument("--profile", action="store_true", help="also profile-likelihood CIs")
    ap.add_argument("--design", choices=["typical", "dense"], default="dense",
                    help="typical: 12 samples (DOMAIN.md); dense: 24 samples to day 365")
    a = ap.parse_args(argv)
    model = load_model("stein2019")
    times = DENSE if a.design == "dense" else TIMES
    ds, truth, lloq = simulate(model, a.n, a.seed, times=times)
    blq = ds.observations["blq"].mean()
    print(f"stein2019 recovery: n={a.n}, seed={a.seed}, LLOQ={lloq:.1f} copies/ug, "
          f"BLQ {100 * blq:.1f} % of samples, starts={a.starts}, design={a.design} "
          f"({len(times)} samples)")
    rows = []
    for method in a.methods.split(","):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fit(ds, model, blq=method, starts=a.starts, seed=a.seed, jobs=a.jobs,
                      derived=False, profile=a.profile)
        el = time.perf_counter() - t0
        tab = res.to_frame()
        tab = tab[tab["role"] == "model"]
        ok = {f.subject for f in res.fits if f.success}
        for param, d in tab.groupby("parameter", sort=False):
            d = d[d["subject"].isin(ok)]
            tr = truth.loc[d["subject"], param].to_numpy()
            rel = d["estimate"].to_numpy() / tr - 1
            has_ci = d["ci_low"].notna() & d["ci_high"].notna()
            cover = ((d["ci_low"] <= tr) & (tr <= d["ci_high"]))[has_ci]
            th, se = d["estimate_transformed"].to_numpy(), d["se_transformed"].to_numpy()
            z = (np.abs(th - np.log(tr)) <= 1.959964 * se)[has_ci.to_numpy()]
            kind = "cover_" + "_".join(sorted(set(d["ci_method"]))).replace("-", "_") + "_pct"
            flags = d["flags"].fillna("").astype(str)
            rows.append({"method": method, "parameter": param, "n_ok": len(d),
                         "median_rel_bias_pct": 100 * np.nanmedian(rel),
                         kind: 100 * cover.mean() if len(cover) else np.nan,
                         "cover_wald_z_pct": 100 * z.mean() if len(z) else np.nan,
                         "n_with_ci": int(has_ci.sum()),
                         "at_sample_time_pct": 100 * flags.str.contains("at_sample_time").mean(),
                         "seconds": el})
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 120, "display.precision", 1):
        print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
