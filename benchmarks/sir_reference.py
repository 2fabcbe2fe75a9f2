"""SIR's reference objective at the estimates against the fit's own −2LL, on the stein2019
studies of the coverage benchmark (benchmarks/uncertainty_coverage.py, same seed).

SIR measures every proposal's dOFV from the FOCE-I objective at the estimates x̂. That objective
depends on the EBEs (a posterior with a switch time has several modes per participant): from
the fit's own EBEs (what :func:`ctkinetics.estimation.sir.sir` does) it is the fit's −2LL unless
a random restart finds a mode of lower posterior −2 log density h (the EBE's definition);
started from η = 0 (what SIR did before 0.1.0's fix), participants can stay in other modes —
of higher h, so not the EBE, with a FOCE-I term (h + ln|A|) higher or lower than the fit's —
and shift every dOFV. Per study: the fit's −2LL and the reference's difference from it, both
ways (4-5 s a study).

    python benchmarks/sir_reference.py [--studies 50] [--out benchmarks/results/sir_reference.txt]
"""
from __future__ import annotations

import argparse
import uuid

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=50)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    from popfit_recovery import INIT, TIMES

    from ctkinetics.estimation.population import fit_population
    from ctkinetics.estimation.population.predictive import fitted_ebe
    from ctkinetics.estimation.population.simulate import simulate_study
    from ctkinetics.estimation.resampling import FitData, ModelRef
    from ctkinetics.estimation.sir import _objective
    from ctkinetics.modeling import load_model

    m = load_model("stein2019")
    rng = np.random.default_rng(a.seed)          # the studies of popfit_recovery.py
    lines = ["| study | n | fit's -2LL | reference - fit, EBEs from eta = 0 | reference - fit, "
             "from the fit's EBEs |", "|---|---|---|---|---|"]
    d0, d1 = [], []
    for s in range(a.studies):
        n, seed = int(rng.integers(12, 31)), int(rng.integers(1e9))
        ds = simulate_study(m, n, TIMES, lloq=20.0, sigma=0.56, seed=seed)
        res = fit_population(ds, m, init=INIT)
        data, ref = FitData.of(ds), ModelRef.of(m)
        out = []
        for from_fit in (False, True):
            obj = _objective(data, ref, {"result": res, "key": (uuid.uuid4().hex, tuple(res.x))})
            if from_fit:
                obj.eta = fitted_ebe(res, obj.pm.data, res.spec)
            out.append(obj(np.asarray(res.x, float), update=True, explore=True) - res.ofv)
        d0.append(out[0])
        d1.append(out[1])
        lines.append(f"| {s} | {n} | {res.ofv:.4f} | {out[0]:+.4f} | {out[1]:+.4f} |")
        print(lines[-1], flush=True)
    d0, d1 = np.array(d0), np.array(d1)
    summary = [f"\n{a.studies} studies: |reference - fit| > 0.05 in {int(np.sum(abs(d0) > 0.05))} "
               f"from eta = 0 (> 0.5 in {int(np.sum(abs(d0) > 0.5))}; range {d0.min():+.2f} to "
               f"{d0.max():+.2f}), in {int(np.sum(abs(d1) > 0.05))} from the fit's EBEs "
               f"(range {d1.min():+.2f} to {d1.max():+.2f})"]
    print(summary[0])
    if a.out:
        with open(a.out, "w") as fh:
            fh.write("\n".join(lines + summary) + "\n")


if __name__ == "__main__":
    main()
