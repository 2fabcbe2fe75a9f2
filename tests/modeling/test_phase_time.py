"""A phase whose right-hand side reads τ (time since the phase began) after a switch time
that depends on the parameters: the forward sensitivities need ∂f/∂θ at fixed t,
∂f/∂θ|_τ − ∂f/∂τ · d(start)/dθ (issue 12; before, d/dT of such a model was wrong by the
second term: -0.818 for -0.545 at t = 6 below). Checked against the closed form, written
out by hand: phases y' = -k y until T1, y' = -b y until T2, then y' = -a τ y, so that
    y(t) = 10 e^(-k T1) e^(-b (T2 - T1)) e^(-a (t - T2)^2 / 2)      (T1 < T2 < t)
and, when T2 < T1 (the middle phase never runs: switch times are cumulative maxima),
    y(t) = 10 e^(-k T1) e^(-a (t - T1)^2 / 2)                          (T1 < t).
"""
import numpy as np
import pytest

from ctkinetics.modeling.model import Model
from ctkinetics.modeling.modelfile import parse_model_text

TEXT = '''
name = "tau_phases"
title = "Three phases, the last one reading the time since it began"
reference = "test model"
time_unit = "day"
horizon = 20
''' + "".join(f'''
[parameters.{n}]
default = {d}
lower = {lo}
upper = {hi}
unit = "1"
source = "test"
''' for n, d, lo, hi in [("k", 0.3, 0.01, 5), ("b", 0.1, 0.01, 5), ("a", 0.05, 0.001, 1),
                         ("T1", 4.0, 0.5, 10), ("T2", 5.0, 0.5, 10)]) + '''
[states.y]
initial = 10
unit = "1"

[[phases]]
name = "one"
end = "T1"
ode = { y = "-k * y" }

[[phases]]
name = "two"
end = "T2"
ode = { y = "-b * y" }

[[phases]]
name = "three"
ode = { y = "-a * tau * y" }

[observables]
conc = "y"
'''


def _by_hand(p, t):
    """y and dy/d(k, b, a, T1, T2) after the last switch (t > max(T1, T2))."""
    k, b, a, T1, T2 = (p[n] for n in ("k", "b", "a", "T1", "T2"))
    if T2 > T1:
        s = t - T2
        y = 10 * np.exp(-k * T1 - b * (T2 - T1) - a * s ** 2 / 2)
        d = [-T1 * y, -(T2 - T1) * y, -s ** 2 / 2 * y, (-k + b) * y, (-b + a * s) * y]
    else:
        s = t - T1
        y = 10 * np.exp(-k * T1 - a * s ** 2 / 2)
        d = [-T1 * y, 0 * y, -s ** 2 / 2 * y, (-k + a * s) * y, 0 * y]
    return y, np.stack(d, axis=-1)


@pytest.mark.parametrize("T1, T2", [(4.0, 5.0), (4.0, 2.5)], ids=["T1 < T2", "T2 < T1 (phase two skipped)"])
def test_sensitivities_of_a_phase_reading_tau_equal_the_closed_form(T1, T2):
    # at rtol 1e-10: the check is of the equations (the former error was O(1)), not of
    # the tolerance, which leaves the sensitivities' own error outside the error test
    m = Model(**parse_model_text(TEXT)).with_tolerances(1e-10, 1e-14)
    p = {"k": 0.3, "b": 0.1, "a": 0.05, "T1": T1, "T2": T2}
    t = np.array([6.0, 8.0, 10.0, 15.0, 20.0])
    sol = m.solve(p, t, sensitivities=True, method="ode")
    y, d = _by_hand(p, t)
    np.testing.assert_allclose(sol.values["conc"], y, rtol=1e-8)
    # relative to the derivative, or to value/θ where it is 0 (dy/dT2 with phase two skipped)
    theta = np.array([p[n] for n in m.param_names])
    scale = np.maximum(np.abs(d), 1e-3 * y[:, None] / theta)
    assert np.max(np.abs(sol.derivs["conc"] - d) / scale) < 1e-6
