"""The compiled ODE engine: accuracy against LSODA at rtol 1e-10, and speed against the
library integrators on the same compiled right-hand side.

Run:  python benchmarks/bench_ode.py [--draws 1000] [--quick]
      python benchmarks/bench_ode.py --skip-speed --models cart_bcell_sle --failures f.csv --worst 5
      python benchmarks/bench_ode.py --scan 7e-7:1e-16,7e-7:1e-12,1e-5:1e-16 --scan-draws 472,586
      python benchmarks/bench_ode.py --fingerprint-save before.npz   (then, after a change:)
      python benchmarks/bench_ode.py --fingerprint-compare before.npz after.npz

Part 1 (accuracy). For every library model, ``--draws`` parameter sets drawn log-uniformly
inside each parameter's [lower, upper] (linear parameters uniformly), solved at the 16
sampling times of a CAR-T schedule scaled to the model's horizon, by the compiled Radau
engine at the model's default tolerances and by SciPy's LSODA at rtol 1e-10 / atol 1e-22
(``method="lsoda"``). Error per observable: |engine − LSODA| / max(|LSODA|, 1e-6·peak of
that subject) — relative, with values six decades below the subject's peak compared
absolutely. Draws where LSODA itself fails (the dynamics overflow) are counted and
skipped. Sensitivities (a subset of draws): the engine's derivative against five-point
central differences (step 1e-3·θ) of engine solutions at rtol 1e-12 / atol 1e-22 (of the
closed form for a model that has one), relative to max(|FD|, 1e-5·value/θ); where they
differ by more than 1e-4 the difference is refined over four smaller steps and the best
converged one kept (:func:`sens_errors` says why: curvature, switch times, rounding).
``--failures FILE`` writes every failing draw (model, draw index, parameters, observable,
time, engine, reference, error) and ``--worst K`` prints the K worst; ``--models`` picks
rows, and :func:`draw_of` gives a draw's parameters to study it alone.

Tolerance scan (``--scan``): steps and true error (the table's metric, against LSODA at
rtol 1e-10) of the typical subject and of chosen draws (``--scan-draws``, indices of the
1,000-draw table) of one model (the first of ``--models``, default cart_bcell_sle) at
several rtol:atol pairs: what a tolerance change buys in steps and costs in accuracy, before
running the whole table. ``--scan-time`` adds, per setting, the typical subject's time without
and with the 6 sensitivities of the fit benchmark (best of 9 × 50 calls): how fast one subject
could be at a tolerance chosen for it alone (the smallest number of steps meeting 1e-6).

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

#: the 6 parameters of the 12-subject fit benchmark (issue 12): the sensitivities timed here
FIT_PARAMS = ["fE", "kexp", "kfade", "dM", "Bbase", "kkill"]
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


def _fd5(tight, pi, pn, t, steps):
    """Five-point central differences of ``tight`` solutions w.r.t. ``pn`` at each step of
    ``steps`` (absolute), all perturbed parameter sets solved in one stack: dict kind ->
    (len(steps), T). A model with a closed form is differenced in it (what its
    sensitivities are the symbolic derivatives of; double-precision values instead of an
    ODE solution's 1e-12 noise, which over a step of 1e-3·θ is 1e-9·value/θ: more than the
    derivative itself where a parameter no longer acts, e.g. foldx after the peak)."""
    n = len(steps)
    q = {k: np.full(4 * n, v) for k, v in pi.items()}
    for i, h in enumerate(steps):
        q[pn][4 * i:4 * i + 4] = pi[pn] + np.array([-2, -1, 1, 2]) * h
    f = tight.predict(q, t, method="closed" if tight.has_closed_form else "ode")
    out = {}
    for kind, v in f.items():
        v = v.reshape(n, 4, -1)
        out[kind] = ((8 * (v[:, 2] - v[:, 1]) - (v[:, 3] - v[:, 0]))
                     / (12 * np.asarray(steps)[:, None]))
    return out


#: Tolerances of the solutions differenced: atol far below every value compared (a value
#: below atol, 1e-16 cells/uL a year on, is noise of that size in the difference quotient)
FD_TOL = (1e-12, 1e-22)

#: Steps (relative to θ) of the refined central differences, after the first one (1e-3)
REFINE = 1e-3 * 10.0 ** -np.arange(0.5, 2.01, 0.5)


def sens_errors(m, pi, t, tight=None):
    """Worst relative error of the engine's sensitivities at ``pi`` against five-point
    central differences of engine solutions at rtol 1e-12: (error, where) with where =
    (parameter, observable, time, engine derivative, central difference).

    The step is 1e-3·θ; where the engine differs from it by more than 1e-4, the difference
    is taken again at 10^-0.5, 10^-1, 10^-1.5 and 10^-2 of that step, and the estimate kept
    is the smaller step of the two consecutive steps that agree best (numdifftools' rule):
    a step of 1e-3·θ is too large where the solution is strongly curved in θ (ln y
    changing by ~1 over the stencil when y has grown by hundreds of e-folds) or where a
    switch time τ(θ) moves across the sampling time inside the stencil (y is not smooth
    in θ there); too small a step is lost in the solutions' rounding, hence the rule."""
    s = m.solve(pi, t, sensitivities=True)
    tight = tight or m.with_tolerances(*FD_TOL)
    worst, where = 0.0, None
    for j, pn in enumerate(m.param_names):
        h = 1e-3 * abs(pi[pn])
        fd1 = _fd5(tight, pi, pn, t, [h])
        refined = None
        for kind, d in s.derivs.items():
            fd = fd1[kind][0]

            def err(fd):
                # relative to the derivative, floored as the values are (1e-6 of its
                # largest magnitude over time): where a state has decayed below the
                # tolerances (1e-20 cells/uL a year on) neither derivative means anything
                floor = 1e-6 * np.nanmax(np.abs(fd)) if np.any(np.isfinite(fd)) else 0.0
                scale = np.maximum(np.maximum(np.abs(fd), floor),
                                   1e-5 * np.abs(s.values[kind]) / abs(pi[pn]))
                with np.errstate(all="ignore"):
                    return np.abs(d[:, j] - fd) / scale

            e = err(fd)
            if np.nanmax(e, initial=0.0) > 1e-4:
                if refined is None:
                    refined = _fd5(tight, pi, pn, t, h * REFINE / 1e-3)
                seq = np.vstack([fd[None], refined[kind]])          # (5, T), step falling
                with np.errstate(all="ignore"):
                    gap = np.abs(np.diff(seq, axis=0))
                best = np.argmin(np.where(np.isfinite(gap), gap, np.inf), axis=0)
                fd = np.where(e > 1e-4, seq[best + 1, np.arange(seq.shape[1])], fd)
                e = err(fd)
            if np.any(np.isfinite(e)) and np.nanmax(e) > worst:
                k = int(np.nanargmax(e))
                worst = float(e[k])
                where = (pn, kind, float(t[k]), float(d[k, j]), float(fd[k]))
    return worst, where


def model_accuracy(m, p, t, n_sens, sens_draws=None):
    """One model's accuracy row and its failures (value error > 1e-6, sensitivity > 1e-4).

    Returns (row, failures): row the table's cells; failures dicts with the draw index, the
    parameters, the observable, time, engine value, reference value and error of each failing
    draw's worst point. ``sens_draws`` (indices) overrides the first ``n_sens`` compared draws."""
    ref = reference(m, p, t)
    sol = m.solve(p, t)
    ok_ref = np.all([np.all(np.isfinite(v), axis=1) for v in ref.values()], axis=0)
    ok_eng = sol.status == 0
    alt = m.with_tolerances(1e-10, 1e-20).solve(p, t)
    with np.errstate(all="ignore"):
        gap = np.max([np.max(rel_error(alt.values[k], ref[k]), axis=1) for k in ref], axis=0)
    ill = ok_ref & ok_eng & (alt.status == 0) & ~(gap <= 1e-7)
    both = ok_ref & ok_eng & ~ill
    per = {k: rel_error(sol.values[k], ref[k]) for k in ref}
    errs = np.max([np.max(per[k][both], axis=1) for k in ref], axis=0)
    fails = []
    for i in np.flatnonzero(both):
        k = max(ref, key=lambda kk: np.max(per[kk][i]))
        j = int(np.argmax(per[k][i]))
        if per[k][i, j] > 1e-6:
            fails.append(dict(kind="value", draw=int(i), observable=k, time=float(t[j]),
                              engine=float(sol.values[k][i, j]), reference=float(ref[k][i, j]),
                              error=float(per[k][i, j]), param="",
                              params={q: float(v[i]) for q, v in p.items()}))
    # sensitivities on a subset of the compared draws
    idx = np.flatnonzero(both)[:n_sens] if sens_draws is None else np.asarray(sens_draws)
    sens_err = []
    tight = m.with_tolerances(*FD_TOL)
    for i in idx:
        pi = {k: float(v[i]) for k, v in p.items()}
        worst, where = sens_errors(m, pi, t[1:], tight)
        sens_err.append(worst)
        if worst > 1e-4:
            pn, k, tt, d, fd = where
            fails.append(dict(kind="sens", draw=int(i), observable=k, time=tt, engine=d,
                              reference=fd, error=worst, param=pn, params=pi))
    worst, p99 = (errs.max(), np.quantile(errs, 0.99)) if errs.size else (np.nan, np.nan)
    se = np.asarray(sens_err)
    row = [both.sum(), (~ok_ref).sum(), (ok_ref & ~ok_eng).sum(), ill.sum(), f"{worst:.2e}",
           f"{p99:.2e}", (errs > 1e-6).sum(), len(idx),
           f"{(se.max() if se.size else float('nan')):.2e}", (se > 1e-4).sum()]
    return row, fails


def accuracy(n_draws, n_sens, seed=20261201, models=None, failures=None, worst=0):
    """The accuracy table. ``models`` restricts the rows (the draws of the others are still
    drawn, so draw i of a model is the same parameter set whatever is selected);
    ``failures`` a CSV path for every failing draw; ``worst`` prints the K worst of each kind."""
    print(f"\n## Accuracy: compiled engine (each model's tolerances) vs LSODA (rtol 1e-10, atol 1e-22), "
          f"{n_draws} draws per model")
    print("Draws where the two references (LSODA and this engine, both at rtol 1e-10) disagree by more "
          "than 1e-7 are ill-conditioned (the solution's dependence on rounding is chaotic there: no "
          "reference exists) and counted apart.")
    print("| model | draws compared | LSODA failed | engine failed | ill-conditioned | max rel error | "
          "99th pct | > 1e-6 | sens draws | sens max rel error | sens > 1e-4 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(seed)
    all_fails = []
    for name in list_models():
        m = load_model(name)
        t = SCHEDULE * m.horizon / 365.0
        p = draws(m, n_draws, rng)
        if models and name not in models:
            continue
        row, fails = model_accuracy(m, p, t, n_sens)
        print(f"| {name} | " + " | ".join(str(c) for c in row) + " |", flush=True)
        all_fails += [dict(model=name, **f) for f in fails]
    if failures:
        write_failures(failures, all_fails)
    for kind in ("value", "sens"):
        top = sorted((f for f in all_fails if f["kind"] == kind), key=lambda f: -f["error"])[:worst]
        for f in top:
            print(f"{f['model']} draw {f['draw']} {kind} {f['param']} {f['observable']} "
                  f"t={f['time']:g}: engine {f['engine']:.10g} reference {f['reference']:.10g} "
                  f"error {f['error']:.3g}  {f['params']}")


FAILURE_COLUMNS = ["model", "kind", "draw", "param", "observable", "time", "engine", "reference",
                   "error", "params"]


def write_failures(path, fails):
    """Failing draws, one a row (kind value: engine vs LSODA; kind sens: derivative w.r.t.
    ``param`` vs central differences), parameters as JSON, numbers to 17 digits."""
    import csv
    import json

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(FAILURE_COLUMNS)
        for f in fails:
            w.writerow([f["model"], f["kind"], f["draw"], f["param"], f["observable"],
                        repr(f["time"]), repr(f["engine"]), repr(f["reference"]),
                        f"{f['error']:.4g}", json.dumps(f["params"])])
    print(f"{len(fails)} failing draws written to {path}")


def draw_of(name, index, n_draws=1000, seed=20261201):
    """Parameters of draw ``index`` of model ``name`` in an accuracy run of ``n_draws``."""
    rng = np.random.default_rng(seed)
    for other in list_models():
        m = load_model(other)
        p = draws(m, n_draws, rng)
        if other == name:
            return {k: float(v[index]) for k, v in p.items()}
    raise KeyError(name)


def tolerance_scan(name, settings, indices=(), timed=False):
    """Print steps and the worst relative error over the observables (``rel_error`` against
    LSODA rtol 1e-10) per case (the typical subject, then draws ``indices``) and setting;
    ``timed``: a row of the typical subject's time per call without / with 6 sensitivities."""
    m = load_model(name)
    t = SCHEDULE * m.horizon / 365.0
    cases = [("typical", m.defaults())] + [(f"draw {i}", draw_of(name, i)) for i in indices]
    print(f"\n## Tolerance scan: {name}, steps and max relative error vs LSODA rtol 1e-10")
    print("| case | " + " | ".join(f"rtol {r:g}, atol {a:g}" for r, a in settings) + " |")
    print("|---|" + "---|" * len(settings))
    for label, pi in cases:
        p = {k: np.array([v]) for k, v in pi.items()}
        ref = reference(m, p, t)
        cells = []
        for rtol, atol in settings:
            s = m.with_tolerances(rtol, atol).solve(p, t)
            with np.errstate(all="ignore"):
                err = max(np.nanmax(rel_error(np.reshape(s.values[k], (1, -1)), ref[k]))
                          for k in ref)
            cells.append(f"{int(s.steps[0])} steps, {err:.2e}")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    if timed:
        est = FIT_PARAMS
        off = np.array([0, t.size], dtype=np.int64)
        cells = []
        for rtol, atol in settings:
            cm = compiled(m.with_tolerances(rtol, atol))
            pc = cm.pc_matrix(m.defaults(), dict(m.covariates), 1)
            cm.solve(pc, t, off, sens=True, wrt=est)       # compile outside the timing
            a, _ = best(lambda: cm.solve(pc, t, off), 9, 50)
            b, _ = best(lambda: cm.solve(pc, t, off, sens=True, wrt=est), 9, 50)
            cells.append(f"{a * 1e3:.3f} / {b * 1e3:.3f} ms")
        print(f"| typical: one call without / with 6 sensitivities (load "
              f"{os.getloadavg()[0]:.1f}) | " + " | ".join(cells) + " |", flush=True)


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
    """(wall, CPU) seconds per call, each the best of ``repeat`` rounds of ``number`` calls
    (CPU: the process's, every thread's)."""
    b, c = np.inf, np.inf
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(number):
            fn()
        b = min(b, (time.perf_counter() - t0) / number)
        c = min(c, (time.process_time() - c0) / number)
    return b, c


def speed(quick=False):
    m = load_model("cart_bcell_sle")
    cm = compiled(m)
    t = SCHEDULE
    est = FIT_PARAMS
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
    steps_units = int(cm.solve(pc1, t, off1, log_states=False, max_step=np.inf).steps[0, 0])
    rep = 3 if quick else 7
    print(f"\n## Speed: cart_bcell_sle 0-365 d, 16 times (load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; best of {rep})")
    print(f"typical subject: {steps} Radau steps at rtol {m.rtol:g}, atol {m.atol:g}, max_step "
          f"{m.max_step:g} (log coordinates); {steps_units} with every state in its own units\n")
    from ctkinetics.modeling import radau
    hits = all(not f.stats.cache_misses for f in (radau.solve_batch, radau._advance))
    print(f"integrator ({cm.n_states} states, specialised: {cm.specialised}): "
          f"{'loaded from numba' + chr(39) + 's cache' if hits else 'compiled in this process'}"
          " (a user's later processes load it from the cache)\n")
    print("Wall time (CPU time of the process, every thread) of the best round.\n")
    print("| engine | one subject | 1,000 subjects | per subject in the stack |")
    print("|---|---|---|---|")

    def row(label, f1, fN):
        a, ac = best(f1, rep, 20)
        one = f"{a * 1e3:.3f} ms ({ac * 1e3:.3f})"
        if fN is None:
            print(f"| {label} | {one} | — | — |")
            return
        b, bc = best(fN, max(2, rep // 2), 1)
        print(f"| {label} | {one} | {b:.3f} s ({bc:.3f}) | {b:.3f} ms ({bc:.3f}) |")

    row("compiled Radau, no sensitivities", lambda: cm.solve(pc1, t, off1),
        lambda: cm.solve(pcN, tN, offN))
    row("compiled Radau + 6 sensitivities", lambda: cm.solve(pc1, t, off1, sens=True, wrt=est),
        lambda: cm.solve(pcN, tN, offN, sens=True, wrt=est))
    row("compiled Radau + 15 sensitivities", lambda: cm.solve(pc1, t, off1, sens=True),
        lambda: cm.solve(pcN, tN, offN, sens=True))
    units = dict(log_states=False, max_step=np.inf)
    row("compiled Radau + 6 sensitivities, states in their own units (as before log coordinates)",
        lambda: cm.solve(pc1, t, off1, sens=True, wrt=est, **units),
        lambda: cm.solve(pcN, tN, offN, sens=True, wrt=est, **units))

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
    ap.add_argument("--models", help="comma-separated models for the accuracy table (default all)")
    ap.add_argument("--failures", metavar="CSV", help="write every failing draw of the accuracy "
                    "table (parameters, observable, time, engine, reference, error)")
    ap.add_argument("--worst", type=int, default=0, metavar="K",
                    help="print the K worst value and sensitivity draws")
    ap.add_argument("--scan", metavar="RTOL:ATOL,...",
                    help="tolerance scan: steps and error of the typical subject (and --scan-draws)")
    ap.add_argument("--scan-draws", default="", metavar="I,J",
                    help="draw indices of the accuracy table to add to --scan")
    ap.add_argument("--scan-time", action="store_true",
                    help="with --scan: time the typical subject at each setting")
    ap.add_argument("--fingerprint-save", metavar="NPZ")
    ap.add_argument("--fingerprint-compare", nargs=2, metavar=("BEFORE", "AFTER"))
    a = ap.parse_args()
    if a.fingerprint_save:
        fingerprint(a.fingerprint_save)
        return
    if a.fingerprint_compare:
        raise SystemExit(1 if fingerprint_compare(*a.fingerprint_compare) else 0)
    if a.scan:
        settings = [tuple(float(v) for v in pair.split(":")) for pair in a.scan.split(",")]
        tolerance_scan((a.models or "cart_bcell_sle").split(",")[0], settings,
                       [int(i) for i in a.scan_draws.split(",") if i], a.scan_time)
        return
    if a.quick:
        a.draws, a.sens_draws = 100, 10
    if not a.skip_speed:
        speed(a.quick)
    if not a.skip_accuracy:
        accuracy(a.draws, a.sens_draws, models=a.models and a.models.split(","),
                 failures=a.failures, worst=a.worst)


if __name__ == "__main__":
    main()
