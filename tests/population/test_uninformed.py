"""What a population fit's data do not inform, named from its Hessian
(ctkinetics.estimation.population.diagnostics.uninformed): on Hessians built from a known
Jacobian, and on a fit where the reason is known independently (the model's predictions at
every sample do not depend on the parameter named)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ctkinetics.estimation.population.diagnostics import uninformed

ROOT = Path(__file__).resolve().parents[2]


def test_flat_and_ridge_directions_are_named_and_a_good_hessian_names_nothing():
    rng = np.random.default_rng(0)
    J = rng.normal(size=(40, 4))
    assert uninformed(J.T @ J, ["a", "b", "c", "d"]) == []
    J[:, 1] = 0.0                                 # b changes no prediction: flat
    J[:, 3] = 2.0 * J[:, 2]                       # c and d only as c + 2d: a ridge
    assert uninformed(J.T @ J, ["a", "b", "c", "d"]) == ["b", "c+d"]
    # a saddle (a negative eigenvalue) along a and c: not a minimum in that direction
    H = np.diag([4.0, 1.0, 4.0])
    H[0, 2] = H[2, 0] = 5.0
    assert uninformed(H, ["a", "b", "c"]) == ["a+c"]
    assert uninformed(np.full((2, 2), np.nan), ["a", "b"]) == []


def test_the_sample_cohort_fit_names_what_its_samples_cannot_see():
    from ctkinetics.data import load_study
    from ctkinetics.estimation.population import fit_population
    from ctkinetics.modeling import load_model

    ds = load_study(ROOT / "data" / "sample" / "sle_cohort")
    res = fit_population(ds, "stein2019", method="focei", random_effects="Cmax", blq="M3")
    found = res.diagnostics["uninformed"]
    assert "non_identifiable" in res.diagnostics["flags"] and "foldx" in found
    # independently: at the estimates, no prediction at any sample time moves with foldx
    # (the estimated Tmax lies before the first sample, so the expansion phase is unseen)
    m = load_model("stein2019")
    est = res.parameters.set_index("parameter")["estimate"]
    theta = {p: float(est[p]) for p in m.param_names}
    times = np.unique(ds.observations["time"].to_numpy(float))
    times = times[times > 0]
    assert theta["Tmax"] < times.min()
    base = m.predict(theta, times)
    moved = m.predict({**theta, "foldx": 2.0 * theta["foldx"]}, times)
    for kind in base:
        np.testing.assert_array_equal(base[kind], moved[kind])
