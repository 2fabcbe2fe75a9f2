"""Speed of stein2019 individual fits (closed form, BLQ M3), against R minpack.lm in the same run.

Part 1 — the sample cohort (``data/sample/sle_cohort``, 12 participants, transgene qPCR):
``fit(..., starts=1)`` per participant (the whole call: labelling, estimation, Hessian
covariance, CIs, flags, diagnostics; without and with the derived exposure) and with the
default 4 starts, the ``ctk fit``
command (start-up and CSV writing included), and R's ``minpack.lm::nls.lm`` on the same
objective (−2LL with M3 as pseudo-residuals, ln parameters, same bounds and start:
``benchmarks/r/fit_stein.R``), wall clock and CPU, best of ``--repeat``. Then the optimum of
every participant: ours with 1 start and with the default 4 starts (switch-interval screen)
against R's.

Part 2 — ``--n`` virtual participants sampled alike (``benchmarks/_stein_sim.py``): the
batched engine over the stack, lmfit one at a time, and one likelihood / Jacobian evaluation.

Part 3 (``--ode``, issue 12) — the mechanistic ``cart_bcell_sle`` on the sample cohort: fE,
kexp, kfade, dM, Bbase, kkill (the others at the model defaults) and one SD per analyte
(qPCR, flow, B cells), 1 start, BLQ M1: ``fit()`` on the compiled engine with exact
sensitivities against R deSolve ``lsoda`` (R right-hand side, rtol 1e-8) + ``nls.lm`` on the
same objective (``benchmarks/r/fit_cart_bcell.R``), CPU of the whole cohort, and the
optimum of every participant. R takes minutes.

The machine is shared (2 cores, other engineers' jobs): figures are noisy; CPU times and the
best of several runs are the least disturbed ones; both sides are timed in the same run.

    python benchmarks/bench_fit.py [--repeat 5] [--n 1000] [--n-lmfit 50] [--skip-r] [--skip-batch]
                                   [--ode]
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")   # one thread: CPU time = work, as R's single thread

import argparse  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _stein_sim import simulate  # noqa: E402

from ctkinetics.estimation import fit  # noqa: E402
from ctkinetics.modeling import load_model  # noqa: E402

COHORT = HERE.parent / "data" / "sample" / "sle_cohort"


def _best(fn, repeat):
    """(best wall s, best CPU s, last result) of ``repeat`` calls."""
    walls, cpus, out = [], [], None
    for _ in range(max(1, repeat)):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus), out


def _r_data(problem, path):
    rows = [(d.subject, t, y, int(m == 2)) for d in problem.subjects
            for t, y, m in zip(d.analytes[0].times, d.analytes[0].y, d.analytes[0].mode) if m]
    pd.DataFrame(rows, columns=["subject", "time", "y", "cens"]).to_csv(path, index=False)


def cohort(repeat, skip_r):
    from ctkinetics.data import load_study
    from ctkinetics.estimation.fitproblem import FitProblem

    ds = load_study(COHORT)
    model = load_model("stein2019")
    n = len(ds.subjects)
    fit(ds, model, starts=1)  # warm-up: imports, caches
    rows = []
    for label, kw in (("ctkinetics fit(), 1 start, no derived", dict(derived=False)),
                      ("ctkinetics fit(), 1 start, with derived", {})):
        wall, cpu, res1 = _best(lambda: fit(ds, model, starts=1, **kw), repeat)
        rows.append((label, n, wall, cpu))
    # the default (4 starts, switch-interval screen): what reaches R's optimum or a lower one
    wall, cpu, res4 = _best(lambda: fit(ds, model), repeat)
    rows.append(("ctkinetics fit(), default 4 starts, with derived", n, wall, cpu))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "ctkinetics.cli.main", "fit", str(COHORT), "--model",
               "stein2019", "--out", tmp, "--starts", "1"]
        wall, cpu, _ = _best(lambda: subprocess.run(cmd, capture_output=True, check=True), 2)
        rows.append(("ctk fit command, 1 start (start-up, CSVs)", n, wall, np.nan))
    r_table = None
    if not skip_r and shutil.which("Rscript"):
        with tempfile.TemporaryDirectory() as tmp:
            data, out = Path(tmp) / "data.csv", Path(tmp) / "out.csv"
            _r_data(FitProblem.build(ds, model), data)
            subprocess.run(["Rscript", str(HERE / "r" / "fit_stein.R"), str(data),
                            str(max(5, repeat * 4)), str(out)], check=True)
            r_table = pd.read_csv(out).set_index("subject")
        rows.append(("R minpack.lm nls.lm, 1 start (mean)", n,
                     n * float(r_table["seconds_per_fit"].iloc[0]),
                     n * float(r_table["cpu_seconds_per_fit"].iloc[0])))
    print(f"Part 1: sample cohort, {n} participants, stein2019, BLQ M3, proportional error")
    print(f"{'what':49s} {'n':>4s} {'wall ms/pt':>11s} {'CPU ms/pt':>10s}")
    for label, k, wall, cpu in rows:
        print(f"{label:49s} {k:4d} {1e3 * wall / k:11.2f} {1e3 * cpu / k:10.2f}")
    table = pd.DataFrame({"ofv_1_start": res1.fits_frame().set_index("subject")["ofv"],
                          "ofv_4_starts": res4.fits_frame().set_index("subject")["ofv"]})
    if r_table is not None:
        table["ofv_R"] = r_table["ofv"]
        table["R_iterations"] = r_table["iterations"]
        d1 = table["ofv_1_start"] - table["ofv_R"]
        d4 = table["ofv_4_starts"] - table["ofv_R"]
        print(f"optimum vs R: 1 start equal (|d -2LL| < 1e-3) for {(d1.abs() < 1e-3).sum()}/{n}"
              f", lower for {(d1 < -1e-3).sum()}, higher for {(d1 > 1e-3).sum()}; "
              f"4 starts equal or lower for {(d4 < 1e-3).sum()}/{n}")
    print(table.round(4).to_string())


ODE_ESTIMATED = ["fE", "kexp", "kfade", "dM", "Bbase", "kkill"]


def ode(repeat, skip_r):
    from ctkinetics.data import load_study
    from ctkinetics.estimation.fitproblem import FitProblem

    ds = load_study(COHORT)
    model = load_model("cart_bcell_sle")
    n = len(ds.subjects)
    kw = dict(estimate=ODE_ESTIMATED, starts=1, blq="M1", derived=False)
    fit(ds, model, subjects=list(ds.subjects["subject"][:2]), **kw)   # warm-up: kernels
    wall, cpu, res = _best(lambda: fit(ds, model, **kw), repeat)
    rows = [("ctkinetics fit(), compiled engine + sensitivities", wall, cpu)]
    table = pd.DataFrame({"ofv": res.fits_frame().set_index("subject")["ofv"]})
    if not skip_r and shutil.which("Rscript"):
        problem = FitProblem.build(ds, model, estimate=ODE_ESTIMATED, blq="M1")
        kinds = {m.analyte: m.kind for m in problem.maps}
        data = [(d.subject, kinds[a.analyte], t, y, d.covariates["dose"])
                for d in problem.subjects for a in d.analytes
                for t, y, mo in zip(a.times, a.y, a.mode) if mo == 1]
        with tempfile.TemporaryDirectory() as tmp:
            src, out = Path(tmp) / "data.csv", Path(tmp) / "out.csv"
            pd.DataFrame(data, columns=["subject", "kind", "time", "y", "dose"]).to_csv(
                src, index=False)
            subprocess.run(["Rscript", str(HERE / "r" / "fit_cart_bcell.R"), str(src),
                            str(out)], check=True)
            r = pd.read_csv(out).set_index("subject")
        rows.append(("R deSolve lsoda + minpack.lm nls.lm", float(r["seconds"].sum()),
                     float(r["cpu_seconds"].sum())))
        table["ofv_R"] = r["ofv"]
        table["R_iterations"] = r["iterations"]
    print(f"\nPart 3: cart_bcell_sle, {n} participants, {len(ODE_ESTIMATED)} parameters + 3 SDs, "
          "1 start, BLQ M1")
    print(f"{'what':52s} {'wall s':>8s} {'CPU s':>8s}")
    for label, w, c in rows:
        print(f"{label:52s} {w:8.2f} {c:8.2f}")
    if len(rows) > 1:
        print(f"R / ctkinetics: {rows[1][1] / rows[0][1]:.0f}x wall, "
              f"{rows[1][2] / rows[0][2]:.0f}x CPU; optimum equal or lower for "
              f"{int((table['ofv'] <= table['ofv_R'] + 1e-3).sum())}/{n}")
    print(table.round(3).to_string())


def batch(a):
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
    for label, n, kw in (("one at a time, engine lmfit", a.n_lmfit, dict(engine="lmfit")),
                         ("batch, engine auto, with derived", min(a.n, 200), dict(derived=True))):
        kw = dict(dict(derived=False), **kw)
        sub = list(truth.index[:n])
        t0 = time.perf_counter()
        res = fit(ds, model, blq="M3", starts=1, jobs=a.jobs, subjects=sub, **kw)
        el = time.perf_counter() - t0
        rows.append((label, n, el, 1e3 * el / n, res.n_failed))
    # the two inner evaluations the optimiser repeats
    from ctkinetics.estimation.fitproblem import FitProblem
    from ctkinetics.estimation.objective import Group

    one = FitProblem.build(ds, model, subjects=[truth.index[0]])
    g = Group(model, one.layout, one.error, list(one.subjects))
    th = np.array([[float(s.to_est(s.default)) for s in g.layout.specs]])
    for label, fn in (("one -2LL residual evaluation", lambda: g.residuals(th)),
                      ("one Jacobian (p+1 sets, one call)", lambda: g.jacobian(th))):
        k = 300
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        el = time.perf_counter() - t0
        rows.append((label, k, el, 1e3 * el / k, 0))
    print(f"\nPart 2: {a.n} virtual participants sampled alike, LLOQ {lloq:.1f}, BLQ "
          f"{100 * ds.observations.blq.mean():.0f} %, jobs={a.jobs}")
    print(f"{'what':42s} {'n':>6s} {'total s':>9s} {'ms each':>9s} {'failed':>7s}")
    for label, n, el, ms, failed in rows:
        print(f"{label:42s} {n:6d} {el:9.2f} {ms:9.3f} {failed:7d}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--n-lmfit", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-r", action="store_true")
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument("--ode", action="store_true", help="part 3: cart_bcell_sle against R deSolve")
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)")
    cohort(a.repeat, a.skip_r)
    if not a.skip_batch:
        batch(a)
    if a.ode:
        ode(max(1, a.repeat // 2), a.skip_r)


if __name__ == "__main__":
    main()
