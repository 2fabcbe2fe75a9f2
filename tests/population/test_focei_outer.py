"""The FOCE-I machinery that makes stein2019 converge, each against a second method.

- the envelope-theorem gradient (no EBE re-solve) against central differences of the
  objective with the EBEs re-solved tightly at every point (Theoph, a smooth model);
- the best-basin EBEs against brute force (many independent local searches from random
  starts) on a simulated stein2019 study, whose conditional posteriors are multimodal
  (a local mode wherever Tmax falls on a sampling time);
(SAEM's SEs — FOCE-I Hessian at SAEM's estimates — are checked against nlme's in
test_theoph.py.)
"""
from __future__ import annotations

import numpy as np
from ctkinetics.estimation.likelihood import get_blq_method, get_error_model
from ctkinetics.estimation.population.data import build_data
from ctkinetics.estimation.population.focei import FoceObjective
from ctkinetics.estimation.population.gradient import foce_gradient
from ctkinetics.estimation.population.inner import ebe, global_ebe
from ctkinetics.estimation.population.simulate import simulate_study
from ctkinetics.estimation.population.structure import PopModel, make_spec
from ctkinetics.modeling import load_model

from .theoph import dataset, onecpt_model


def _pm(ds, model, random, error):
    err = get_error_model(error)
    data = build_data(ds, model, err, get_blq_method("M3"))
    spec, x0 = make_spec(data, model, random, ())
    return PopModel(model, data, spec, err), x0


def test_envelope_gradient_matches_differences_of_the_objective():
    pm, x0 = _pm(dataset(), onecpt_model(), ["ka", "CL"], "additive")
    x = x0 + np.array([0.1, -0.1, 0.05, 0.2, -0.1, 0.1])    # away from the optimum
    obj = FoceObjective(pm)
    obj(x, update=True, tol=1e-11)
    g = foce_gradient(pm, x, obj.eta)
    h = 1e-4
    fd = np.array([(obj(x + h * e, tol=1e-11) - obj(x - h * e, tol=1e-11)) / (2 * h)
                   for e in np.eye(x.size)])
    # both sides use the same ±1 % secant Jacobian inside ln|A|; the gradient's implicit
    # term uses a finite-difference Hessian of h, hence 2 % (and 0.05 absolute)
    np.testing.assert_allclose(g, fd, rtol=0.02, atol=0.05)


def test_best_basin_ebes_match_brute_force_on_stein2019():
    m = load_model("stein2019")
    t = np.array([1, 4, 7, 10, 14, 21, 28, 56, 90, 180, 270, 365.0])
    ds = simulate_study(m, 16, t, lloq=20.0, sigma=0.56, seed=3)
    pm, x0 = _pm(ds, m, None, "proportional")
    theta, beta, omega, sigma = pm.spec.split(x0)
    mu = pm.phi_pop(theta, beta)
    local = ebe(pm, mu, omega, sigma)
    rng = np.random.default_rng(0)
    L = np.linalg.cholesky(omega)
    best = local.h.copy()
    for _ in range(25):                      # brute force: 25 independent local searches
        best = np.minimum(best, ebe(pm, mu, omega, sigma,
                                    1.3 * rng.standard_normal((pm.n, pm.spec.q)) @ L.T).h)
    starts = 1.3 * np.random.default_rng(1).standard_normal((4, pm.n, pm.spec.q)) @ L.T
    found = global_ebe(pm, mu, omega, sigma, starts=starts)
    assert np.all(found.h <= local.h + 1e-6)
    # the posterior is multimodal: the plain local search misses better modes here
    assert np.sum(local.h - best) > 1.0
    # and the best-basin search finds (nearly) all the brute-force gain
    assert np.sum(found.h - best) < 0.1 * np.sum(local.h - best)

