"""The integrator's small dense solvers (modeling/radau.py) against numpy.linalg.solve."""
import numpy as np

from ctkinetics.modeling import radau


def _factor(a):
    lu = a.copy()
    piv = np.empty(a.shape[0], dtype=np.int64)
    radau._lu_factor(lu, piv)
    return lu, piv


def test_real_and_complex_systems_with_row_exchanges():
    rng = np.random.default_rng(3)
    for dtype in (np.float64, np.complex128):
        a = rng.standard_normal((6, 6)).astype(dtype)
        if dtype == np.complex128:
            a = a + 1j * rng.standard_normal((6, 6))
        a[0, 0] = 1e-12          # forces a row exchange at the first column
        b = rng.standard_normal(6).astype(dtype)
        lu, piv = _factor(a)
        assert (piv != np.arange(6)).any()
        x = b.copy()
        radau._lu_solve(lu, piv, x)
        np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-10, atol=1e-12)


def test_equilibrated_solve_of_many_columns():
    """_lu_solve_many: the LU of D⁻¹·A·D, D = diag(sc), solves A x = b for every column."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((12, 12)) + 4.0 * np.eye(12)
    sc = 10.0 ** rng.uniform(-8, 8, 12)
    lu, piv = _factor(a / sc[:, None] * sc[None, :])
    B = rng.standard_normal((12, 6)) * sc[:, None]
    X = B.copy()
    radau._lu_solve_many(lu, piv, X, sc, np.empty(12), 0)
    ref = np.linalg.solve(a, B)
    np.testing.assert_allclose(X / sc[:, None], ref / sc[:, None], rtol=1e-9, atol=1e-12)
    # only the last rows wanted (the last Radau stage): the back substitution stops there,
    # with the same operations for those rows
    X8 = B.copy()
    radau._lu_solve_many(lu, piv, X8, sc, np.empty(12), 8)
    np.testing.assert_array_equal(X8[8:], X[8:])


def test_a_singular_matrix_gives_nan_not_an_exception():
    for dtype in (np.float64, np.complex128):
        a = np.ones((3, 3), dtype=dtype)
        lu, piv = _factor(a)
        x = np.ones(3, dtype=dtype)
        radau._lu_solve(lu, piv, x)
        assert np.isnan(x).any()
