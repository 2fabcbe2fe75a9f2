"""FOCE-I: first-order conditional estimation with interaction.

The marginal likelihood of each subject is approximated by Laplace's method around the
empirical Bayes estimate with the Gauss–Newton Hessian (:func:`.inner.foce_terms`), and
the sum over subjects is minimised over ``x = [θ, β, Ω part, ln σ]`` by L-BFGS-B with the
envelope-theorem gradient of :mod:`.gradient` (no EBE re-optimisation per component).

Why it is built this way (stein2019, 100 simulated subjects, 11 % BLQ): the switch time
Tmax puts a kink in the prediction at every sampling time, and the conditional posterior
of η has a local mode on many of them. The former design — central finite differences
of F with the EBEs re-solved from a warm start — met (1) modes on kinks, where a
one-sided Jacobian flipped ln|A_i| by tenths of a unit between neighbouring x (now a
central ±1 % secant, continuous in η), and (2) several basins per subject, where the
basin reached depended on the path (half the subjects, ~100 units of −2LL; now the best
of the warm start, screened candidates, a library of every accepted mode and, at the
first and last point, random restarts). F was noisy by ~0.3 per 1e-3 step, so its
finite-difference gradient was noise and L-BFGS-B stalled.

Each evaluation warm-starts the EBEs from the best point so far; L-BFGS-B is restarted
from its end point while a restart (after a fresh search for better basins) still
lowers F by more than ``_FLAT``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from ctkinetics.estimation.population.gradient import foce_gradient
from ctkinetics.estimation.population.inner import foce_terms

_BIG = 1e12
_RESTARTS = 6
_UNIT = 0.1       # length of L-BFGS-B's first trial step in x
_FLAT = 0.05     # −2LL units: an objective flat to this over 5 iterations has converged


@dataclass(frozen=True)
class OuterResult:
    x: np.ndarray
    ofv: float
    success: bool
    message: str
    iterations: int
    evaluations: int
    history: tuple          # (iteration, ofv) pairs


class FoceObjective:
    """Σ_i FOCE-I −2·ln L_i as a function of ``x`` (with an EBE cache for warm starts)."""

    def __init__(self, pm, tol=1e-7, library_size=12, explore_every=0, explore_starts=4,
                 seed=7):
        self.pm, self.spec, self.tol = pm, pm.spec, tol
        # the first accepted evaluation, every ``explore_every``-th (0: none) and the end
        # point of the optimiser (see fit_focei) also run
        # local searches from ``explore_starts`` draws of N(0, 1.69·Ω) (1.3 ω): the modes found go
        # into the library below
        self.explore_every, self.explore_starts = explore_every, explore_starts
        self.rng = np.random.default_rng(seed)
        self.updates = 0
        self.best = np.inf
        self.eta = np.zeros((pm.n, pm.spec.q))
        self.evaluations = 0
        # individual parameters φ of the modes accepted so far: screened at every later x
        # so that a basin once found is not lost (keeps F a function of x, not of the path)
        self.library, self.library_size = [], library_size
        # the last deterministic evaluation (no random starts): an identical call (same x,
        # warm start, tolerance, search and library) returns it instead of searching again
        # — the SAEM path evaluates its estimates twice at tol 1e-9 before the Hessian
        self._last = None

    def _extra(self, theta, beta):
        if not self.library:
            return None
        mu = self.pm.phi_pop(theta, beta)[:, self.spec.random_index]
        return np.stack(self.library) - mu

    def terms(self, x, eta0=None, tol=None, explore=False, search=True):
        """Per-subject −2·ln L_i at ``x`` and the EBEs (:func:`.inner.foce_terms`), the
        local searches warm-started at ``eta0`` (default: the last accepted modes)."""
        x = np.asarray(x, float)
        key = None
        if not (explore and self.explore_starts):
            warm = self.eta if eta0 is None else np.asarray(eta0, float)
            key = (x.tobytes(), warm.tobytes(), tol or self.tol, bool(search),
                   len(self.library), self.library[-1].tobytes() if self.library else b"")
            if self._last is not None and self._last[0] == key:
                return self._last[1]
        out = self._terms(x, eta0, tol, explore, search)
        if key is not None:
            self._last = (key, out)
        return out

    def _terms(self, x, eta0, tol, explore, search):
        theta, beta, omega, sigma = self.spec.split(x)
        self.evaluations += 1
        try:
            L = np.linalg.cholesky(omega)
        except np.linalg.LinAlgError:
            return np.full(self.pm.n, np.inf), None
        starts = None
        if explore and self.explore_starts:
            z = self.rng.standard_normal((self.explore_starts, self.pm.n, self.spec.q))
            starts = 1.3 * z @ L.T
        return foce_terms(self.pm, self.pm.phi_pop(theta, beta), omega, sigma,
                          self.eta if eta0 is None else eta0, tol or self.tol,
                          search=search, extra=self._extra(theta, beta) if search else None,
                          starts=starts)

    def __call__(self, x, update=False, tol=None, explore=None):
        if explore is None:
            explore = update and (self.updates == 0 or (
                self.explore_every > 0 and self.updates % self.explore_every == 0))
        t, e = self.terms(x, tol=tol, explore=explore)
        total = float(np.sum(t))
        # a trial point far worse than the best so far (an over-long first line-search
        # step) must not become the warm start of the next evaluations
        if update and e is not None and np.isfinite(total) and total < self.best + 50.0:
            self.best = min(self.best, total)
            self.updates += 1
            self.eta = e.eta
            theta, beta, _, _ = self.spec.split(x)
            phi = self.pm.phi_pop(theta, beta)[:, self.spec.random_index] + e.eta
            if not self.library or np.max(np.abs(phi - self.library[-1])) > 1e-3:
                self.library = (self.library + [phi])[-self.library_size:]
        return total if np.isfinite(total) else _BIG

    def value_and_gradient(self, x):
        """F(x) with converged (best-basin) EBEs and its envelope-theorem gradient
        (:func:`.gradient.foce_gradient`: no EBE re-optimisation per component)."""
        x = np.asarray(x, float)
        f0 = self(x, update=True)
        self.last = (x.copy(), f0)
        if f0 >= _BIG:
            return f0, np.zeros_like(x)
        return f0, foce_gradient(self.pm, x, self.eta)


def fit_focei(pm, x0, max_iter=300, progress=None) -> tuple[OuterResult, FoceObjective]:
    """Minimise the FOCE-I objective from ``x0``; returns the result and the objective."""
    obj = FoceObjective(pm)
    lo, hi = pm.spec.bounds()
    x0 = np.clip(np.asarray(x0, float), lo + 1e-9, hi - 1e-9)
    history = []

    def callback(xk):
        last_x, f = getattr(obj, "last", (None, None))
        if last_x is None or not np.array_equal(last_x, xk):
            f = obj(xk, update=True)
        history.append((len(history) + 1, f))
        if progress is not None:
            progress(f"FOCE-I iteration {len(history)}: -2LL = {f:.4f}")

    # L-BFGS-B's first trial step has unit length in its variables: optimise z = x/_UNIT
    # so that it moves x by _UNIT (log scale), not by up to the width of the bounds (a
    # first step of 10 on ln ke gave F ≈ 4e12 and a line search that shrank to nothing)
    def fun(z):
        f, g = obj.value_and_gradient(z * _UNIT)
        return f, g * _UNIT

    def callback_z(zk):
        callback(zk * _UNIT)

    bounds = list(zip(lo / _UNIT, hi / _UNIT))
    # A basin found late lowers F discontinuously and ends L-BFGS-B's line search (its
    # curvature pairs no longer describe F): restart from the last point while that helps.
    x, nit, flat = x0, 0, False
    for _ in range(_RESTARTS):
        f_start = obj(x, update=True)
        res = minimize(fun, x / _UNIT, jac=True, method="L-BFGS-B", bounds=bounds,
                       callback=callback_z,
                       options=dict(maxiter=max(1, int(max_iter) - nit), ftol=1e-13,
                                    gtol=1e-4, maxcor=20))
        x, nit = res.x * _UNIT, nit + int(res.nit)
        # look for better basins of the EBEs at the end point; if any, go on from there
        f = obj(x, update=True, explore=True)
        flat = f_start - f < _FLAT
        if flat or nit >= max_iter:
            break
    # The envelope gradient is accurate to ~1e-2 of its scale (finite differences of the
    # model, kinks), so L-BFGS-B usually ends in a line search that cannot improve: that is
    # convergence when a restart from the end point no longer lowers the objective.
    _, g = obj.value_and_gradient(x)
    free = (x > lo + 1e-6) & (x < hi - 1e-6)
    gmax = float(np.max(np.abs(g[free]))) if free.any() else 0.0
    ok = flat or gmax < 0.05
    msg = (f"{res.message}; max |gradient| over free parameters {gmax:.2g}; "
           + ("a restart lowered -2LL by < " + f"{_FLAT}" if flat else
              "still improving at the iteration limit"))
    return OuterResult(x, f, ok, msg, nit, obj.evaluations, tuple(history)), obj


def hessian(obj: FoceObjective, x, step=2e-2, tol=1e-9):
    """Hessian of the objective at ``x``: central differences of the envelope gradient,
    symmetrised. At x ± step·e_j the EBEs are re-optimised (warm-started from those at
    ``x``, best basin kept) and the gradient evaluated there; differencing a gradient needs
    one step per parameter instead of the 2·p² objective values of a second difference,
    and is far less sensitive to the objective's small jumps where a mode sits on a kink.
    The step, 2 % on the log scale, spans those kinks: with 0.5 % the curvature in ln Tmax
    of a 12–30-subject stein2019 study was sometimes negative (no SE; 18 % of the
    recovery studies) and varied 3-fold with the step, with 2 % and 5 % it agreed.
    """
    x = np.asarray(x, float)
    obj(x, update=True, tol=tol)
    eta_x = obj.eta.copy()
    pm, spec = obj.pm, obj.spec
    # the searches at x ± step·e_j start from the modes predicted to first order,
    # φ̂ ± step·dφ̂/dx_j (implicit function theorem, from the gradient at x): the same
    # local modes (to the search's tolerance) in fewer Newton iterations
    slopes = foce_gradient(pm, x, eta_x, mode_slopes=True)[1]
    phi_x = pm.phi_pop(*spec.split(x)[:2])[:, spec.random_index] + eta_x
    p = x.size
    H = np.zeros((p, p))
    for j in range(p):
        cols = []
        for sgn in (1.0, -1.0):
            xj = x.copy()
            xj[j] += sgn * step
            mu_j = pm.phi_pop(*spec.split(xj)[:2])[:, spec.random_index]
            shift = sgn * step * slopes[:, :, j]
            # a predicted move beyond 0.1 on the estimation scale is not first-order small:
            # that subject starts at its mode at x
            shift[np.max(np.abs(shift), axis=1) > 0.1] = 0.0
            start = phi_x + shift - mu_j
            # a step of 2e-2 does not move a mode to another basin: local search only
            t, e = obj.terms(xj, start, tol, search=False)
            if e is None or not np.all(np.isfinite(t)):
                H[:, j] = np.nan
                break
            cols.append(foce_gradient(obj.pm, xj, e.eta))
        else:
            H[:, j] = (cols[0] - cols[1]) / (2 * step)
    # obj.terms leaves the warm start alone: obj is still at the modes of x
    return 0.5 * (H + H.T)
