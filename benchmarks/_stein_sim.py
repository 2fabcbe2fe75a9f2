"""Virtual stein2019 participants for the estimation benchmarks (shared by both scripts)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

TIMES = np.array([1, 4, 7, 10, 14, 21, 28, 60, 90, 180, 270, 365.0])  # DOMAIN.md typical
DENSE = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 17, 21, 28, 42, 60, 90, 120, 150,
                  180, 270, 365.0])
# DOMAIN.md §3.1 IIV ω² (log) for Cmax, Tmax, foldx, alpha, FB, beta, scaled down
OMEGA2 = {"Cmax": 0.65, "Tmax": 0.38, "foldx": 2.4, "alpha": 0.91, "FB": 0.86, "beta": 0.8}


def simulate(model, n, seed, omega_scale=0.1, sigma=0.3, lloq=None, blq_target=0.3,
             times=TIMES):
    """n participants: log-normal IIV (ω² × omega_scale), proportional error σ on ln.

    The LLOQ, when not given, is the ``blq_target`` quantile of all simulated values, so that
    the BLQ fraction is about that. Returns (dataset-like, truth DataFrame, lloq).
    """
    rng = np.random.default_rng(seed)
    names = [p.name for p in model.parameters]
    typ = np.array([p.default for p in model.parameters])
    om = np.array([OMEGA2.get(k, 0.5) * omega_scale for k in names])
    truth = typ * np.exp(rng.normal(0, 1, (n, len(names))) * np.sqrt(om))
    for i, p in enumerate(model.parameters):   # keep the truth inside the bounds
        truth[:, i] = np.clip(truth[:, i], p.lower * 1.01, p.upper / 1.01)
    pred = np.asarray(model.predict({k: truth[:, i] for i, k in enumerate(names)},
                                    times)["qpcr"])
    y = pred * np.exp(rng.normal(0, sigma, pred.shape))
    if lloq is None:
        lloq = float(np.quantile(y, blq_target))
    ids = [f"V{i:04d}" for i in range(n)]
    obs = pd.DataFrame({"subject": np.repeat(ids, len(times)), "time": np.tile(times, n),
                        "analyte": "qpcr", "value": y.ravel(), "unit": "copies/ug",
                        "lloq": lloq, "pre_infusion": False, "source_file": "sim",
                        "source_row": np.arange(y.size) + 2})
    obs["blq"] = obs["value"] < lloq
    obs.loc[obs["blq"], "value"] = np.nan
    subjects = pd.DataFrame({"subject": ids, "dose_level": "sim", "dose": 1.0})
    study = SimpleNamespace(analytes={"qpcr": SimpleNamespace(name="qpcr", unit="copies/ug",
                                                              lloq=lloq, kind="qpcr")})
    ds = SimpleNamespace(observations=obs, subjects=subjects, study=study)
    return ds, pd.DataFrame(truth, index=ids, columns=names), lloq
