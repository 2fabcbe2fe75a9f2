"""The one home of the AUC segment rules.

Every area in :mod:`ctkinetics.nca` (AUClast, AUCall, interval AUCs, partial segments when
an interval ends between two samples) is computed by :func:`segment_area` and
:func:`partial_area` below, with the segment's rule chosen by an entry of
:data:`AUC_METHODS`. All functions are elementwise and vectorised over numpy arrays.

Formulas (segment from (t1, c1) to (t2, c2), Δt = t2 − t1):

- linear trapezoid: Δt·(c1 + c2)/2
- log trapezoid:    Δt·(c1 − c2)/ln(c1/c2)   (exact for an exponential decline; needs
  c1, c2 > 0 and c1 ≠ c2)

Interpolating inside a segment uses the same rule as its area (PKNCA, WinNonlin): a linear
segment is a straight line, a log segment c(t) = c1·(c2/c1)^((t − t1)/Δt).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def _lin_up_log_down(c1, c2, after_tmax):
    """Log when the concentration falls and both ends are positive (PKNCA's default)."""
    return (c2 < c1) & (c2 > 0) & (c1 > 0)


def _linear(c1, c2, after_tmax):
    return np.zeros(np.broadcast(c1, c2).shape, dtype=bool)


def _lin_log(c1, c2, after_tmax):
    """Linear up to Tmax, log after it wherever the log formula is defined (WinNonlin)."""
    return after_tmax & (c1 > 0) & (c2 > 0) & (c1 != c2)


@dataclass(frozen=True)
class AUCMethod:
    """A named rule deciding, per segment, whether the log trapezoid is used."""

    name: str
    description: str
    use_log: Callable  # (c1, c2, after_tmax: bool array) -> bool array


#: Registry of AUC rules; the CLI choices and docs come from it.
AUC_METHODS: dict[str, AUCMethod] = {
    m.name: m
    for m in (
        AUCMethod("lin-up/log-down", "linear trapezoid when rising or flat, log trapezoid "
                  "when falling between two positive concentrations", _lin_up_log_down),
        AUCMethod("linear", "linear trapezoid everywhere", _linear),
        AUCMethod("lin-log", "linear trapezoid before Tmax, log trapezoid after Tmax "
                  "between positive unequal concentrations", _lin_log),
    )
}


def segment_area(t1, c1, t2, c2, is_log):
    """Area of whole segments, linear or log trapezoid per ``is_log``.

    Examples
    --------
    >>> float(segment_area(0.0, 1.0, 2.0, 3.0, False))
    4.0
    """
    dt = np.asarray(t2, float) - t1
    with np.errstate(divide="ignore", invalid="ignore"):
        log_area = dt * (c1 - c2) / np.log(np.divide(c1, c2))
    return np.where(is_log, log_area, dt * (np.add(c1, c2)) / 2.0)


def interpolate(t1, c1, t2, c2, is_log, x):
    """Concentration at x inside the segment, by the segment's rule."""
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = (np.asarray(x, float) - t1) / (np.asarray(t2, float) - t1)
        lin = c1 + frac * (np.subtract(c2, c1))
        log = c1 * np.power(np.divide(c2, c1), frac)
    return np.where(is_log, log, lin)


def partial_area(t1, c1, t2, c2, is_log, x):
    """Area from t1 to x (t1 ≤ x ≤ t2) under the segment, by the segment's rule.

    For a log segment with L = ln(c1/c2): area = Δt·(c1 − c(x))/L, which is 0 at x = t1 and
    the whole log trapezoid at x = t2, so areas of split segments add up exactly.
    """
    cx = interpolate(t1, c1, t2, c2, is_log, x)
    dx = np.asarray(x, float) - t1
    with np.errstate(divide="ignore", invalid="ignore"):
        log_area = (np.asarray(t2, float) - t1) * (c1 - cx) / np.log(np.divide(c1, c2))
    return np.where(is_log, log_area, dx * (np.add(c1, cx)) / 2.0)


def exp_tail_area(clast, lamz, dt):
    """Area of Clast·exp(−λz·s) from s = 0 to dt (dt may be inf): Clast·(1 − e^(−λz·dt))/λz."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return clast * (-np.expm1(-lamz * dt)) / lamz
