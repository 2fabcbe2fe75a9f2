"""The compiled ODE engine: accuracy against LSODA at rtol 1e-10, and speed against the
library integrators on the same compiled right-hand side.

Run:  python benchmarks/bench_ode.py [--draws 1000] [--quick]
      python benchmarks/bench_ode.py --fingerprint-save before.npz   (then, after a change:)
      python benchmarks/bench_ode.py --fingerprint-compare before.npz after.npz

Part 1 (accuracy). For every library model, ``--draws`` parameter sets drawn log-uniformly
inside each parameter's [lower, upper] (linear parameters uniformly), solved at the 16
sampling times of a CAR-T schedule scaled to the model's horizon, by the compiled Radau
engine at the model's default tolerances and by SciPy's LSODA at rtol 1e-10 / atol 1e-14
(``method="lsoda"``). Error per observable: |engine − LSODA| / max(|LSODA|, 1e-6·peak of
that subject) — relative, with values six decades below the subject's peak compared
absolutely. Draws where LSODA itself fails (the dynamics overflow) are counted and
skipped. Sensitivities (a subset of draws): the engine's derivative against five-point
central differences of engine solutions at rtol 1e-12, relative to max(|FD|, 1e-5·value/θ).

Fingerprint (for refactors of the integrator that must not change a bit): values,
derivatives, steps and status of ``Model.solve(..., sensitivities=True)`` for every library
model on 50 random draws (ODE path), without sensitivities, ragged times, a dense-output grid,
errcon, doses (one regimen and per subject), time-varying covariates and a 300-subject stack
(threads), saved to a .npz; the comparison counts the arrays not ``np.array_equal``.

Part 2 (speed, cart_bcell_sle, 0-365 d, 16 sampling times). Best of repeated runs (the
machine is shared: the load average is printed): the compiled engine without and with
sensitivities (6 and all 15 parameters), one subject and a stack of 1,000; SciPy's LSODA,
Radau and BDF and (if installed) SUNDIALS CVODE via scikit-sundae, each given the same
compiled right-hand side and Jacobian as Python callables; and the previous engine
(odeint on the interpreted expressions, ``method="lsoda"``).
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

from ctkinetics.modeling import list_models, load_model
from ctkinetics.modeling.compiled import compiled

SCHEDULE = np.array([0.0, 0.25, 1, 2, 4, 7, 10, 14, 21, 28, 42, 60, 90, 180, 270, 365])


def draws(m, n, rng):
    out = {}
    for p in m.parameters:
        if p.scale == "log":
            out[p.name] = np.exp(rng.uniform(np.log(p.lower), np.log(p.upper), n))
        else:
            out[p.name] = rng.uniform(p.lower, p.upper, n)
    return out


def rel_error(got, ref):
    floor = 1e-6 * np.nanmax(np.abs(ref), axis=-1, keepdims=True)
    return np.abs(got - ref) / np.maximum(np.abs(ref), floor)


def reference(m, p, t):
    """LSODA at rtol 1e-10 (atol 1e-22) one draw at a time: the reference path stacks subjects in one
    banded system, so one draw LSODA cannot finish (excess work near a bound) would void the
    whole stack; here it voids only itself (NaN)."""
    tight = m.with_tolerances(1e-10, 1e-22)   # atol far below every state's scale
    n = len(next(iter(p.values())))
    out = None
    for i in range(n):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                r = tight.predict({k: v[i:i + 1] for k, v in p.items()}, t, method="lsoda")
            except Exception:  # noqa: BLE001 - a failed reference is counted, not fatal
                r = None
        if out is None and r is not None:
            out = {k: np.full((n, len(t)), np.nan) for k in r}
        if r is not None:
            for k in r:
                out[k][i] = np.asarray(r[k]).reshape(-1)
    return out or {}


def accuracy(n_draws, n_sens, seed=20261201):
    print(f"\n## Accuracy: compiled engine (each model's tolerances) vs LSODA (rtol 1e-10, atol 1e-22), "
          f"{n_draws} draws per model")
    print("Draws where the two references (LSODA and this engine, both at rtol 1e-10) disagree by more "
          "than 1e-7 are ill-conditioned (the solution's dependence on rounding is chaotic there: no "
          "reference exists) and counted apart.")
    print("| model | draws compared | LSODA failed | engine failed | ill-conditioned | max rel error | "
          "99th pct | > 1e-6 | sens draws | sens max rel error | sens > 1e-4 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(seed)
    for name in list_models():
        m = load_model(name)
        t = SCHEDULE * m.horizon / 365.0
        p = draws(m, n_draws, rng)
        ref = reference(m, p, t)
        sol = m.solve(p, t)
        ok_ref = np.all([np.all(np.isfinite(v), axis=1) for v in ref.values()], axis=0)
        ok_eng = sol.status == 0
        alt = m.with_tolerances(1e-10, 1e-20).solve(p, t)
        with np.errstate(all="ignore"):
            gap = np.max([np.max(rel_error(alt.values[k], ref[k]), axis=1) for k in ref], axis=0)
        ill = ok_ref & ok_eng & (alt.status == 0) & ~(gap <= 1e-7)
        both = ok_ref & ok_eng & ~ill
        errs = np.max([np.max(rel_error(sol.values[k][both], ref[k][both]), axis=1)
                       for k in ref], axis=0)
        # sensitivities on a subset of the compared draws
        idx = np.flatnonzero(both)[:n_sens]
        sens_err = []
        tight = m.with_tolerances(1e-12, 1e-16)
        for i in idx:
            pi = {k: float(v[i]) for k, v in p.items()}
            s = m.solve(pi, t[1:], sensitivities=True)
            worst = 0.0
            for j, pn in enumerate(m.param_names):
                h = 1e-3 * abs(pi[pn])
                f = {}
                for kk in (-2, -1, 1, 2):
                    q = dict(pi)
                    q[pn] += kk * h
                    f[kk] = tight.predict(q, t[1:], method="ode")
                for kind, d in s.derivs.items():
                    fd = (8 * (f[1][kind] - f[-1][kind]) - (f[2][kind] - f[-2][kind])) / (12 * h)
                    # relative to the derivative, floored as the values are (1e-6 of its
                    # largest magnitude over time): where a state has decayed below the
                    # tolerances (1e-20 cells/uL a year on) neither derivative means anything
                    floor = 1e-6 * np.nanmax(np.abs(fd)) if np.any(np.isfinite(fd)) else 0.0
                    scale = np.maximum(np.maximum(np.abs(fd), floor),
                                       1e-5 * np.abs(s.values[kind]) / abs(pi[pn]))
                    with np.errstate(all="ignore"):
                        e = np.nanmax(np.abs(d[:, j] - fd) / scale)
                    worst = max(worst, float(e))
            sens_err.append(worst)
        worst, p99 = (errs.max(), np.quantile(errs, 0.99)) if errs.size else (np.nan, np.nan)
        se = np.asarray(sens_err)
        print(f"| {name} | {both.sum()} | {(~ok_ref).sum()} | {(ok_ref & ~ok_eng).sum()} | {ill.sum()} | "
              f"{worst:.2e} | {p99:.2e} | {(errs > 1e-6).sum()} | {len(idx)} | "
              f"{(se.max() if se.size else float('nan')):.2e} | {(se > 1e-4).sum()} |", flush=True)


def fingerprint(path, seed=7):
    """Save the engine's outputs on the fixed cases of the module docstring to ``path``."""
    from ctkinetics.modeling.solution import TimeCourse

    rng = np.random.default_rng(seed)
    res = {}

    def put(key, sol):
        for k, v in sol.values.items():
            res[f"{key}/v/{k}"] = np.asarray(v)
        for k, v in (sol.derivs or {}).items():
            res[f"{key}/d/{k}"] = np.asarray(v)
        res[f"{key}/status"] = np.asarray(sol.status)
        res[f"{key}/steps"] = np.asarray(sol.steps)

    time_varying = {"stein2019_comed": {"toci": TimeCourse([0.0, 3.0, 10.0], [0.0, 1.0, 0.0]),
                                        "steroid": TimeCourse([0.0, 5.5], [0.0, 1.0])},
                    "cart_bcell_sle_dna": {"alc": TimeCourse([0.0, 7.0, 30.0],
                                                             [1000.0, 300.0, 1500.0])}}
    for name in list_models():
        m = load_model(name)
        t = SCHEDULE * m.horizon / 365.0
        p = draws(m, 50, rng)
        put(f"{name}/stack", m.solve(p, t, sensitivities=True, method="ode"))
        put(f"{name}/nosens", m.solve(p, t, method="ode"))
        ragged = [np.sort(rng.uniform(0, m.horizon, rng.integers(1, 20))) for _ in range(50)]
        put(f"{name}/ragged", m.solve(p, ragged, sensitivities=True, method="ode"))
        p3 = {k: v[:3] for k, v in p.items()}
        put(f"{name}/dense", m.solve(p3, np.linspace(0, m.horizon, 2500), sensitivities=True,
                                     method="ode"))
        cm = compiled(m)
        s = cm.solve(cm.pc_matrix(p, dict(m.covariates), 50), np.tile(t, 50),
                     np.arange(51, dtype=np.int64) * t.size, sens=True, errcon=True)
        res.update({f"{name}/errcon/v": s.values, f"{name}/errcon/s": s.sens,
                    f"{name}/errcon/steps": s.steps, f"{name}/errcon/status": s.status})
        if m.dosing:
            put(f"{name}/doses", m.solve(p, t, doses=[[60.0, 4.5e8], [120.0, 2e8]],
                                         sensitivities=True, method="ode"))
            put(f"{name}/doses_ragged", m.solve(
                p3, [t, t[:8], t[4:]], sensitivities=True, method="ode",
                doses=[np.array([[30.0, 1e8]]), np.zeros((0, 2)),
                       np.array([[5.0, 1e7], [90.0, 3e8]])]))
        if name in time_varying:
            put(f"{name}/tv", m.solve(p, t, covariates=time_varying[name], sensitivities=True,
                                      method="ode"))
        if name == "cart_bcell_sle":
            put(f"{name}/big", m.solve(draws(m, 300, rng), t, sensitivities=True, method="ode"))
    np.savez(path, **res)
    print(f"{len(res)} arrays saved to {path}")


def fingerprint_compare(a_path, b_path):
    """Print the arrays of two fingerprints that are not bit-identical; return their count."""
    a, b = np.load(a_path), np.load(b_path)
    if set(a.files) != set(b.files):
        print("different cases:", sorted(set(a.files) ^ set(b.files)))
        return -1
    bad = [k for k in a.files if not np.array_equal(a[k], b[k], equal_nan=True)]
    for k in bad:
        print("differs:", k)
    print(f"{len(a.files)} arrays compared, {len(bad)} not bit-identical")
    return len(bad)


def best(fn, repeat=7, number=1):
    b = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        b = min(b, (time.perf_counter() - t0) / number)
    return b


def speed(quick=False):
    m = load_model("cart_bcell_sle")
    cm = compiled(m)
    t = SCHEDULE
    est = ["fE", "kexp", "kfade", "dM", "Bbase", "kkill"]
    rng = np.random.default_rng(1)
    pop = {p.name: (p.default * np.exp(0.3 * rng.standard_normal(1000)) if p.scale == "log"
                    else np.full(1000, p.default)) for p in m.parameters}
    pop = {k: np.clip(v, m.parameter(k).lower, m.parameter(k).upper) for k, v in pop.items()}
    one = m.defaults()
    pc1 = cm.pc_matrix(one, dict(m.covariates), 1)
    off1 = np.array([0, t.size], dtype=np.int64)
    pcN = cm.pc_matrix(pop, dict(m.covariates), 1000)
    offN = np.arange(1001, dtype=np.int64) * t.size
    tN = np.tile(t, 1000)
    cm.solve(pc1, t, off1, sens=True)
    steps = int(cm.solve(pc1, t, off1).steps[0, 0])
    rep = 3 if quick else 7
    print(f"\n## Speed: cart_bcell_sle 0-365 d, 16 times (load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; best of {rep})")
    print(f"typical subject: {steps} Radau steps at rtol {m.rtol:g}, atol {m.atol:g}\n")
    print("| engine | one subject | 1,000 subjects | per subject in the stack |")
    print("|---|---|---|---|")

    def row(label, f1, fN):
        a = best(f1, rep, 20)
        b = best(fN, max(2, rep // 2), 1) if fN is not None else np.nan
        per = f"{b / 1000 * 1e3:.3f} ms" if fN is not None else "—"
        print(f"| {label} | {a * 1e3:.3f} ms | {b:.3f} s | {per} |" if fN is not None
              else f"| {label} | {a * 1e3:.3f} ms | — | — |")

    row("compiled Radau, no sensitivities", lambda: cm.solve(pc1, t, off1),
        lambda: cm.solve(pcN, tN, offN))
    row("compiled Radau + 6 sensitivities", lambda: cm.solve(pc1, t, off1, sens=True, wrt=est),
        lambda: cm.solve(pcN, tN, offN, sens=True, wrt=est))
    row("compiled Radau + 15 sensitivities", lambda: cm.solve(pc1, t, off1, sens=True),
        lambda: cm.solve(pcN, tN, offN, sens=True))

    # library integrators on the same compiled kernels, called from Python
    from scipy.integrate import solve_ivp

    k = cm.kernels
    pc = pc1[0]
    y0 = np.empty(4)
    k.init(pc, y0)

    def f(tt, y):
        out = np.empty(4)
        k.rhs(0, tt, tt, np.ascontiguousarray(y, dtype=float), pc, out)
        return out

    def jac(tt, y):
        out = np.empty((4, 4))
        k.jac(0, tt, tt, np.ascontiguousarray(y, dtype=float), pc, out)
        return out

    for meth in ("LSODA", "Radau", "BDF"):
        row(f"SciPy solve_ivp {meth} (compiled RHS + Jacobian), no sensitivities",
            lambda meth=meth: solve_ivp(f, (0, 365), y0, method=meth, jac=jac, t_eval=t,
                                        rtol=m.rtol, atol=m.atol), None)
    try:
        from sksundae.cvode import CVODE

        def f_cv(tt, y, yp):
            out = np.empty(4)
            k.rhs(0, tt, tt, np.array(y, dtype=float), pc, out)
            yp[:] = out

        def j_cv(tt, y, yp, JJ):
            out = np.empty((4, 4))
            k.jac(0, tt, tt, np.array(y, dtype=float), pc, out)
            JJ[:, :] = out

        solver = CVODE(f_cv, rtol=m.rtol, atol=m.atol, jacfn=j_cv, max_num_steps=100000)
        row("SUNDIALS CVODE BDF (scikit-sundae; compiled RHS + Jacobian)",
            lambda: solver.solve(t, y0), None)
    except ImportError:
        print("| SUNDIALS CVODE (scikit-sundae) | not installed (pip install scikit-sundae) | | |")
    row("previous engine: odeint on interpreted expressions (rtol 1e-8)",
        lambda: m.with_tolerances(1e-8, 1e-10).predict(None, t, method="lsoda"), None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--sens-draws", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="100 draws, fewer repeats")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--fingerprint-save", metavar="NPZ")
    ap.add_argument("--fingerprint-compare", nargs=2, metavar=("BEFORE", "AFTER"))
    a = ap.parse_args()
    if a.fingerprint_save:
        fingerprint(a.fingerprint_save)
        return
    if a.fingerprint_compare:
        raise SystemExit(1 if fingerprint_compare(*a.fingerprint_compare) else 0)
    if a.quick:
        a.draws, a.sens_draws = 100, 10
    if not a.skip_speed:
        speed(a.quick)
    if not a.skip_accuracy:
        accuracy(a.draws, a.sens_draws)


if __name__ == "__main__":
    main()
