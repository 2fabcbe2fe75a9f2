"""Unowned array views (ctkinetics.modeling.unowned): the same memory, not reference counted."""
import numpy as np
from numba import njit

from ctkinetics.modeling.unowned import keep_alive, unowned


@njit
def _write_through(a, b):
    va, (vb, k) = unowned((a, (b, 7)))
    for i in range(va.shape[0]):
        va[i] = 2.0 * i
    vb[1, 2] = -1.0
    row = vb[0]            # a view of an unowned view is unowned too
    row[0] = 5.0
    keep_alive(a, b)
    return k


@njit
def _owned_inside(n):
    owner = np.zeros(n)
    v = unowned(owner)
    s = 0.0
    for i in range(n):
        v[i] = i + 1.0
    for i in range(n):
        s += owner[i]
    keep_alive(owner)
    return s


def test_views_share_the_owners_memory():
    a = np.zeros(4)
    b = np.zeros((2, 3))
    assert _write_through(a, b) == 7               # a scalar member passes through
    np.testing.assert_array_equal(a, [0.0, 2.0, 4.0, 6.0])
    assert b[1, 2] == -1.0 and b[0, 0] == 5.0


def test_an_array_made_in_compiled_code_is_written_through_its_view():
    assert _owned_inside(10) == sum(range(1, 11))   # 55, by hand
