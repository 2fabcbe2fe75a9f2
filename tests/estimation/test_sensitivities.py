"""The residual Jacobian from the model's sensitivities (the compiled engine's exact
derivatives) against central differences of the residuals themselves."""
import numpy as np
import pandas as pd
import pytest

from ctkinetics.estimation.fitproblem import FitProblem
from ctkinetics.estimation.objective import Group
from est_fakes import dataset

TIMES = np.array([1, 2, 4, 7, 9, 11, 14, 21, 28, 42, 60, 90, 180.0])


def _problem(error, blq="M3"):
    rng = np.random.default_rng(4)
    rows = []
    for s in ("A", "B", "C"):
        y = 3000 * np.exp(-0.05 * np.abs(TIMES - 9)) * np.exp(rng.normal(0, 0.3, TIMES.size))
        rows.append(pd.DataFrame({"subject": s, "time": TIMES, "analyte": "tg", "value": y,
                                  "lloq": 300.0}))
        rows.append(pd.DataFrame({"subject": s, "time": TIMES[::2], "analyte": "cells",
                                  "value": y[::2] / 50, "lloq": 5.0}))
    obs = pd.concat(rows, ignore_index=True)
    obs["blq"] = obs["value"] < obs["lloq"]
    obs.loc[obs["blq"], "value"] = np.nan
    ds = dataset(obs, pd.DataFrame({"subject": ["A", "B", "C"], "dose_level": "1"}),
                 {"tg": ("copies/ug", 300.0, "qpcr"), "cells": ("cells/uL", 5.0, "cells")})
    return FitProblem.build(ds, "stein2019", analytes="tg,cells", blq=blq, error=error)


def _central(g, theta, h=1e-6):
    cols = []
    for j in range(theta.shape[1]):
        e = np.zeros_like(theta)
        e[:, j] = h
        cols.append((g.residuals(theta + e) - g.residuals(theta - e)) / (2 * h))
    return np.stack(cols, axis=2)


@pytest.mark.parametrize("error", ["proportional", "combined"])
def test_exact_residual_jacobian_equals_central_differences(error):
    p = _problem(error)
    g = Group(p.model, p.layout, p.error, list(p.subjects))
    assert g.predictor.has_sensitivities
    rng = np.random.default_rng(1)
    start = np.array([float(s.to_est(s.default)) for s in p.layout.specs])
    theta = start + rng.normal(0, 0.1, (g.G, start.size))
    names = p.layout.names
    theta[:, names.index("Tmax")] = np.log([8.2, 10.3, 12.6])     # not on a sample (a kink)
    censored = sum(int((m == 2).sum()) for m in g.mode)
    assert censored >= 5                                              # M3 terms are covered
    exact = g.jacobian_blocks(theta)
    ref = _central(g, theta)
    scale = np.maximum(np.abs(ref), 1e-3 * np.abs(ref).max())
    assert np.max(np.abs(exact - ref) / scale) < 1e-5
    # and the optimiser's forward differences agree within their own error
    g.analytic = False
    fd = g.jacobian_blocks(theta)
    assert np.max(np.abs(fd - ref) / scale) < 1e-3
