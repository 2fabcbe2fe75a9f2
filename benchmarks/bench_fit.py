"""Time per stein2019 participant-fit (closed form, BLQ M3, one start).

Goal: ≤ 2 ms per participant-fit (R's minpack.lm: about 1.3 ms for the same closed form
without BLQ handling). Prints the wall time per fit of the whole `fit` call (data labelling,
estimation, Hessian covariance, CIs, diagnostics, result tables):

* a batch of N virtual participants sampled alike (``engine='auto'``: the batched
  Levenberg–Marquardt engine over the stack), best of ``--repeat`` runs and the median;
* the same participants through lmfit one at a time (``engine='lmfit'``, first ``--n-lmfit``);
* with the derived exposure (Cmax/Tmax/AUC0-28 by grid and zoom);
* one likelihood and one Jacobian evaluation of a lone subject.

The machine is shared (2 cores, other engineers' jobs): figures are noisy; the best of
several runs is the least disturbed one.

    python benchmarks/bench_fit.py [--n 1000] [--n-lmfit 50] [--repeat 3] [--jobs 1]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _stein_sim import simulate  # noqa: E402

from ctkinetics.estimation import fit  # noqa: E402
from ctkinetics.modeling import load_model  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--n-lmfit", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    model = load_model("stein2019")
    ds, truth, lloq = simulate(model, a.n, seed=3)
    small, _, _ = simulate(model, 5, seed=4, lloq=lloq)
    fit(small, model, starts=1)  # warm-up: imports, caches
    rows = []
    times = []
    for _ in range(max(1, a.repeat)):
        t0 = time.perf_counter()
        res = fit(ds, model, blq="M3", starts=1, jobs=a.jobs, derived=False)
        times.append(time.perf_counter() - t0)
    rows.append((f"batch, engine auto (best of {len(times)})", a.n, min(times),
                 1e3 * min(times) / a.n, res.n_failed))
    rows.append((f"batch, engine auto (median of {len(times)})", a.n, float(np.median(times)),
                 1e3 * float(np.median(times)) / a.n, res.n_failed))
    for label, n, kw in ((f"one at a time, engine lmfit", a.n_lmfit, dict(engine="lmfit")),
                         ("batch, engine auto, with derived", min(a.n, 200), dict(derived=True))):
        kw = dict(dict(derived=False), **kw)
        sub = list(truth.index[:n])
        t0 = time.perf_counter()
        res = fit(ds, model, blq="M3", starts=1, jobs=a.jobs, subjects=sub, **kw)
        el = time.perf_counter() - t0
        rows.append((label, n, el, 1e3 * el / n, res.n_failed))
    # the two inner evaluations the optimiser repeats
    from ctkinetics.estimation.likelihood import get_blq_method, get_error_model
    from ctkinetics.estimation.objective import Group
    from ctkinetics.estimation.problem import analyte_maps, build_layout, subject_data

    err, blq = get_error_model("proportional"), get_blq_method("M3")
    maps = analyte_maps(model, ["qpcr"], {"qpcr": "qpcr"}, {"qpcr": ""})
    obs = ds.observations[ds.observations.subject == truth.index[0]]
    sd = subject_data(truth.index[0], obs, None, model, maps, blq, err)
    g = Group(model, build_layout(model, maps, err, {"qpcr": obs.value.dropna()}), err, [sd])
    th = np.array([[float(s.to_est(s.default)) for s in g.layout.specs]])
    for label, fn in (("one -2LL residual evaluation", lambda: g.residuals(th)),
                      ("one Jacobian (p+1 sets, one call)", lambda: g.jacobian(th))):
        k = 300
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        el = time.perf_counter() - t0
        rows.append((label, k, el, 1e3 * el / k, 0))
    print(f"stein2019 bench: LLOQ {lloq:.1f}, BLQ {100 * ds.observations.blq.mean():.0f} %, "
          f"jobs={a.jobs}")
    import os

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)")
    print(f"{'what':42s} {'n':>6s} {'total s':>9s} {'ms each':>9s} {'failed':>7s}")
    for label, n, el, ms, failed in rows:
        print(f"{label:42s} {n:6d} {el:9.2f} {ms:9.3f} {failed:7d}")


if __name__ == "__main__":
    main()
