"""The integrator's small dense solvers (modeling/radau.py) against numpy.linalg.solve."""
import numpy as np

from ctkinetics.modeling import radau


def _factor(a):
    lu = a.copy()
    piv = np.empty(a.shape[0], dtype=np.int64)
    radau._lu_factor(lu, piv, a.shape[0])
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
        radau._lu_solve(lu, piv, x, x.shape[0])
        np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-10, atol=1e-12)


def test_equilibrated_elimination_of_many_columns():
    """_eliminate: Gaussian elimination of D⁻¹·A·D, D = diag(sc), solves A x = b for every
    column, with row exchanges and scales tens of decades apart."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((12, 12)) + 4.0 * np.eye(12)
    a[0, 0] = 1e-12          # forces a row exchange at the first column
    sc = 10.0 ** rng.uniform(-8, 8, 12)
    B = rng.standard_normal((12, 6)) * sc[:, None]
    ref = np.linalg.solve(a, B)

    def solve(r0):
        X = B.copy()
        radau._eliminate(a / sc[:, None] * sc[None, :], X, sc, np.empty(12), r0, 12)
        return X

    X = solve(0)
    np.testing.assert_allclose(X / sc[:, None], ref / sc[:, None], rtol=1e-9, atol=1e-12)
    # only the last rows wanted (the last Radau stage): the back substitution stops there,
    # with the same operations for those rows
    np.testing.assert_array_equal(solve(8)[8:], X[8:])


def test_a_singular_system_of_many_columns_gives_nan():
    X = np.ones((3, 2))
    radau._eliminate(np.ones((3, 3)), X, np.ones(3), np.empty(3), 0, 3)
    assert np.isnan(X).all()


def test_a_singular_matrix_gives_nan_not_an_exception():
    for dtype in (np.float64, np.complex128):
        a = np.ones((3, 3), dtype=dtype)
        lu, piv = _factor(a)
        x = np.ones(3, dtype=dtype)
        radau._lu_solve(lu, piv, x, x.shape[0])
        assert np.isnan(x).any()
