"""Scalar helpers the generated model kernels call (compiled with numba).

Each has the numeric semantics of the expression language (:mod:`ctkinetics.modeling.
expressions`) and of its numpy twin in :mod:`ctkinetics.modeling.symbolic`: NaN in, NaN out;
no exceptions (overflow gives inf, 0/0 gives NaN).
"""
from __future__ import annotations

import math

from numba import njit

_OPTS = dict(cache=True, error_model="numpy", inline="always")


@njit(**_OPTS)
def kmin(a, b):
    if a != a or b != b:
        return math.nan
    return a if a <= b else b


@njit(**_OPTS)
def kmax(a, b):
    if a != a or b != b:
        return math.nan
    return a if a >= b else b


@njit(**_OPTS)
def ksign(x):
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return x  # 0 or NaN


@njit(**_OPTS)
def kstep(x):
    return 1.0 if x >= 0.0 else 0.0


@njit(**_OPTS)
def _kpow(b, n):
    """b^n; b itself for n = 1 (what pow returns there, exactly, without its ~20 ns: the
    Hill coefficient of a model is often fixed at 1)."""
    if n == 1.0:
        return b
    return b ** n


@njit(**_OPTS)
def khill(x, n, k):
    """x^n/(k^n + x^n) written as 1/(1 + (k/x)^n), 0 for x <= 0."""
    if x != x:
        return math.nan
    if x <= 0.0:
        return 0.0
    return 1.0 / (1.0 + _kpow(k / x, n))


@njit(**_OPTS)
def _hill_hh(x, n, k):
    r = _kpow(k / x, n)
    if not math.isfinite(r):
        return 0.0
    return r / ((1.0 + r) * (1.0 + r))


@njit(**_OPTS)
def khill_dx(x, n, k):
    if not x > 0.0:
        return 0.0
    return n * _hill_hh(x, n, k) / x


@njit(**_OPTS)
def khill_dn(x, n, k):
    if not x > 0.0:
        return 0.0
    hh = _hill_hh(x, n, k)
    if hh == 0.0:
        return 0.0
    return -hh * math.log(k / x)


@njit(**_OPTS)
def khill_dk(x, n, k):
    if not x > 0.0:
        return 0.0
    return -n * _hill_hh(x, n, k) / k


@njit(**_OPTS)
def kexprel(x):
    """(e^x − 1)/x, 1 at 0 (scipy.special.exprel)."""
    if x != x:
        return math.nan
    if abs(x) < 1e-5:
        return 1.0 + x / 2.0 + x * x / 6.0
    if x > 717.0:
        return math.inf
    return math.expm1(x) / x


@njit(**_OPTS)
def kexprel_d(x):
    """d/dx (e^x − 1)/x."""
    if x != x:
        return math.nan
    if abs(x) < 1e-3:
        return 0.5 + x / 3.0 + x * x / 8.0 + x * x * x / 30.0
    return (x * math.exp(x) - math.expm1(x)) / (x * x)
