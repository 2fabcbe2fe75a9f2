"""Radau IIA (order 5) in compiled code, for small stiff systems, with exact sensitivities.

Why this integrator
-------------------
The mechanistic CAR-T models are small (4-10 states) and stiff (B-cell killing at up to
1,000/day beside a 365-day horizon), are fitted at tight tolerances (rtol 1e-8; loose
tolerances corrupt standard errors) and need parameter sensitivities for every fit. Radau
IIA with 3 stages (Hairer & Wanner, *Solving ODEs II*, §IV.8; the RADAU5 code) is
L-stable, of order 5, and a collocation method: its step is the solution of a nonlinear
system that does not depend on the Newton matrix, so the *exact derivative of the computed
solution* with respect to the parameters follows from one linear solve per step with the
Jacobians at the stages (the staggered direct method, as in SUNDIALS CVODES/IDAS, applied to
the collocation equations). The gradient an optimiser sees is therefore the derivative of
the objective it evaluates. ``benchmarks/bench_ode.py`` compares this code with SciPy's LSODA,
Radau and BDF and with SUNDIALS CVODE (scikit-sundae) on the same compiled right-hand side.

Method
------
Stages Y_i = y + Z_i at t + c_i h solve Z = h (A ⊗ I) F(Y) by simplified Newton with the
Jacobian at (t, y) (the full 3n × 3n system is factored: n is small); y_{n+1} = y + Z_3.
Error estimate (Hairer's RADAU5): err = (μ/h·I − J)⁻¹ (f(t, y) + Σ e_i Z_i / h), refined
once through f(t, y + err) on a first or rejected step; step size by the predictive
(Gustafsson) controller with Hairer's safety factor. Every requested time is landed on
exactly (no interpolation), every switch time is a restart.

Sensitivities S = ∂y/∂θ: differentiating the collocation equations gives
    (I − h [a_ij J(Y_j)]) vec(S_Z) = h (A ⊗ I) [J(Y_j) S + ∂f/∂θ(Y_j)]_j,   S_{n+1} = S + S_Z,3
(solved multiplied by (A ⊗ I)⁻¹/h: (A⁻¹/h ⊗ I − diag(J(Y_j))) vec(S_Z) = [J(Y_j) S + ∂f/∂θ(Y_j)]_j)
and at a switch time τ(θ) between phases a and b: S⁺ = S⁻ + (f_a − f_b)(τ, y) ∂τ/∂θ.
The sensitivities take part in the error test only on request (``errcon``, CVODES'
``errconS``, each scaled by its parameter's magnitude); by default, as in CVODES, the steps
are chosen for the states and the sensitivities are the exact derivatives of the computed
solution.

Log coordinates
---------------
A state the model file declares ``positive`` (cells, amounts) is integrated as u = ln(x + c),
c = 1e-300, from the first step that changes it by at most 10 % (:func:`_switch_to_log`; a
state rising from 0 is ~ a·t, a straight line in x but ln t in u, so it waits until it is
established). Exponential expansion and contraction, most of a CAR-T course, are straight
lines in u: the typical cart_bcell_sle subject takes 178 steps instead of 445 at the same
tolerance, a subject growing by hundreds of e-folds no longer accumulates relative error over
its steps, and a state keeps its relative accuracy however small it gets. The kernels are
called at x = e^u − c and their outputs transformed (du/dt = f/(x + c), the Jacobian
D⁻¹JD − diag(du/dt), ∂/∂θ rows divided by x + c, D = diag(x + c)); the error test on u is
absolute at rtol, the same relative test on x. The states and sensitivities go back to x at
every stop (outputs, doses, switch times). ``max_step`` bounds the steps: with the decaying
states no longer limiting them, a stiff component held at a quasi-steady state (B cells
under killing) can see steps long enough that its error escapes the error estimate.

All arrays are float64; kernels are compiled model functions of the fixed signatures below
(:mod:`ctkinetics.modeling.compiled` generates them from the model file). Arithmetic follows
numpy's error model (a division by zero gives inf or NaN, never an exception): a solution
that explodes ends as a status, and the rest of the stack is solved.
"""
from __future__ import annotations

import math

import numpy as np
from numba import boolean, complex128, float64, int64, njit, types
from numba.typed import List

from ctkinetics.modeling.unowned import keep_alive, unowned
from ctkinetics.modeling.status import NOT_FINITE, OK, STEP_TOO_SMALL, STATUS_TEXT, TOO_MANY_STEPS  # noqa: F401

# ---- kernel signatures ---------------------------------------------------------------
V1 = float64[::1]
M2 = float64[:, ::1]
#: rhs(phase, t, tau, y, pc, out), jac / rhs_p(phase, t, tau, y, pc, out2d)
RHS_SIG = types.void(int64, float64, float64, V1, V1, V1)
JAC_SIG = types.void(int64, float64, float64, V1, V1, M2)
#: jac_p_f(phase, t, tau, y, pc, f, out2d): [J | ∂f/∂θ] and f in one pass
JACF_SIG = types.void(int64, float64, float64, V1, V1, V1, M2)
#: init / switches(pc, out), init_p / switches_p(pc, out2d)
VEC_SIG = types.void(V1, V1)
MAT_SIG = types.void(V1, M2)
#: outputs(t, y, pc, out), outputs_y / outputs_p(t, y, pc, out2d)
OUT_SIG = types.void(float64, V1, V1, V1)
OUTD_SIG = types.void(float64, V1, V1, M2)
#: closed(t, pc, sens, out, dout, work): closed-form outputs and their derivatives at one time
CLOSED_SIG = types.void(float64, V1, boolean, V1, M2, M2)
#: dose(t, pc, amt, y, out): the jump of the states at a dose; dose_y / dose_p its derivatives
DOSE_SIG = types.void(float64, V1, float64, V1, V1)
DOSED_SIG = types.void(float64, V1, float64, V1, M2)
#: kernel(op, ph, t, tau, amt, y, pc, o1, o2): every kernel of a model behind one function
#: (one first-class function argument: numba types each such argument at every call from
#: Python, ~0.1 ms apiece), op as the OP_* codes below; o1 / o2 the vector / matrix output
KERNEL_SIG = types.void(int64, int64, float64, float64, float64, V1, V1, V1, M2)
KERNEL_T = types.FunctionType(KERNEL_SIG)
OP_RHS, OP_JAC, OP_RHS_P, OP_INIT, OP_INIT_P, OP_SWITCHES, OP_SWITCHES_P = range(7)
OP_OUTPUTS, OP_OUTPUTS_Y, OP_OUTPUTS_P, OP_DOSE, OP_DOSE_Y, OP_DOSE_P = range(7, 13)
#: the Jacobian (columns 0..n-1) and ∂f/∂θ (columns n..n+P-1) in one matrix and the
#: right-hand side f (into o1), in one pass (the stages of a step with sensitivities)
OP_JAC_P_F = 13
#: How Python hands a kernel to the integrator: a typed list holding it (:func:`kernel_list`).
#: Passed directly, numba looks the compiled function up at every call (its type, then its
#: addresses: ~40-55 µs a call, 2-3 % of a one-subject solve with sensitivities); the list
#: was converted once and unboxes in ~1 µs, and calls through it are direct calls (a cfunc
#: wrapper address alone costs ~12 ns more per kernel call, ~10 of them a step).
KERNELS_T = types.ListType(KERNEL_T)
RHS_T = types.FunctionType(RHS_SIG)
JAC_T = types.FunctionType(JAC_SIG)
VEC_T = types.FunctionType(VEC_SIG)
MAT_T = types.FunctionType(MAT_SIG)
OUT_T = types.FunctionType(OUT_SIG)
OUTD_T = types.FunctionType(OUTD_SIG)
CLOSED_T = types.FunctionType(CLOSED_SIG)
CLOSEDS_T = types.ListType(CLOSED_T)
DOSE_T = types.FunctionType(DOSE_SIG)
DOSED_T = types.FunctionType(DOSED_SIG)

# ---- Radau IIA (s = 3) coefficients ----------------------------------------------------
_S6 = 6.0 ** 0.5
C = np.array([(4.0 - _S6) / 10.0, (4.0 + _S6) / 10.0, 1.0])
A = np.array([
    [(88.0 - 7.0 * _S6) / 360.0, (296.0 - 169.0 * _S6) / 1800.0, (-2.0 + 3.0 * _S6) / 225.0],
    [(296.0 + 169.0 * _S6) / 1800.0, (88.0 + 7.0 * _S6) / 360.0, (-2.0 - 3.0 * _S6) / 225.0],
    [(16.0 - _S6) / 36.0, (16.0 + _S6) / 36.0, 1.0 / 9.0],
])
AINV = np.linalg.inv(A)
E = np.array([-13.0 - 7.0 * _S6, -13.0 + 7.0 * _S6, -1.0]) / 3.0
MU_REAL = 3.0 + 3.0 ** (2.0 / 3.0) - 3.0 ** (1.0 / 3.0)
#: The eigenbasis of A⁻¹ (real T): T⁻¹ A⁻¹ T = [[μ_r, 0, 0], [0, a, b], [0, −b, a]], so the
#: stage system splits into a real and a complex one with shifts μ_r and μ_c = a − i b.
def _eigenbasis():
    w, V = np.linalg.eig(np.linalg.inv(A))
    i = int(np.argmin(np.abs(w.imag)))
    j = [k for k in range(3) if k != i and w[k].imag > 0][0]
    T = np.column_stack([V[:, i].real, V[:, j].real, V[:, j].imag])
    lam = np.linalg.inv(T) @ np.linalg.inv(A) @ T
    return T, np.linalg.inv(T), complex(lam[1, 1], lam[2, 1])


T, TI, MU_COMPLEX = _eigenbasis()
#: collocation polynomial u(x) = y + Σ_k Q_k x^k (k = 1..3) through u(c_i) = y + Z_i: Q = V⁻¹ Z
VINV = np.linalg.inv(np.array([[c, c * c, c * c * c] for c in C]))

NEWTON_MAXITER = 6
#: where a step's Jacobian comes from (:func:`_factor`)
JAC_EVAL, JAC_KEPT, JAC_STAGE = 0, 1, 2
MIN_FACTOR = 0.2
MAX_FACTOR = 10.0
#: the largest growth after the first step of an interval that starts afresh (a subject's
#: start, a dose, a switch): LSODE's 1e4. The initial-step heuristic is cautious (a state
#: rising from 0 at atol 1e-16 gives 1e-8 days for cart_bcell_sle), and at 10 a step the
#: ramp to the dynamics' own scale took 6-7 steps of errors 1e-10 .. 1e-2.
MAX_FACTOR_FIRST = 1e4
EPS = np.finfo(float).eps


#: The step's helpers, the small solvers and the sensitivity step are inlined by numba (its IR,
#: before LLVM) into the one function that runs the steps: a call costs its arguments' setup and
#: reference counts each time (measured, with the arrays unowned: the sensitivity step as a call
#: 0.61 ms a cart_bcell_sle subject with 6 sensitivities, inlined 0.52, the solvers inlined too
#: 0.49-0.51; the integrator's one-off compile stays ~70 s). The step's arrays are cut once per
#: interval (:func:`_views`) and passed as arguments, not sliced inside the helpers.
#: The step loop (:func:`_advance`, with :func:`_advance_u` and the helpers inlined) is called
#: through a function pointer (:func:`advance_list`), not linked into its callers: numba links a
#: called function's code into its caller's module and optimises it again there, and the step
#: loop so optimised five times (once per function of the chain :func:`solve_batch`,
#: :func:`_solve_range`, :func:`_solve_subject`, :func:`_advance`, :func:`_advance_u`) ran slower
#: with sensitivities in a process loading numba's cache (0.43-0.50 ms a cart_bcell_sle subject
#: with 6) than optimised once (0.35 ms); inlining the whole chain into one function (0.28 ms)
#: took ~2 min to compile per variant (issue 12's notes). In the compiling process calls bind
#: to the once-optimised copies (weak symbols, first definition wins): measure speed in a
#: process that loads the cache.
_INLINE = dict(cache=True, error_model="numpy", inline="always")


# ---- small dense linear algebra (partial pivoting), in place --------------------------
@njit(**_INLINE)
def _mag(v):
    """The pivot's size: |re| + |im| (LAPACK's izamax; a complex abs costs a hypot)."""
    return abs(v.real) + abs(v.imag)


@njit(**_INLINE)
def _pivot(a, k, n):
    """Partial pivoting: the row (k..n-1) of column k's largest entry (size :func:`_mag`)."""
    p = k
    big = _mag(a[k, k])
    for i in range(k + 1, n):
        v = _mag(a[i, k])
        if v > big:
            big = v
            p = i
    return p


@njit(**_INLINE)
def _lu_factor(a, piv, n):
    """LU with partial pivoting in place (``n``: a.shape[0], passed so that a specialised
    integrator sees a constant, :func:`_nstates`); the diagonal holds the pivots' reciprocals (each
    solve multiplies instead of dividing: complex division costs a hypot), NaN for a zero
    pivot (a singular Newton matrix, e.g. from states that overflowed: NaN fails the Newton
    iteration, a status, never an exception — numba's complex division raises)."""
    for k in range(n):
        p = _pivot(a, k, n)
        piv[k] = p
        if p != k:
            for j in range(n):
                tmp = a[k, j]
                a[k, j] = a[p, j]
                a[p, j] = tmp
        d = a[k, k]
        if d == 0.0:
            a[k, k] = d * np.nan
            continue
        inv = 1.0 / d
        a[k, k] = inv
        for i in range(k + 1, n):
            f = a[i, k] * inv
            a[i, k] = f
            if f != 0.0:
                for j in range(k + 1, n):
                    a[i, j] -= f * a[k, j]


@njit(**_INLINE)
def _lu_solve(lu, piv, b, n):
    for k in range(n):
        p = piv[k]
        if p != k:
            tmp = b[k]
            b[k] = b[p]
            b[p] = tmp
    for i in range(n):
        s = b[i]
        for j in range(i):
            s -= lu[i, j] * b[j]
        b[i] = s
    for i in range(n - 1, -1, -1):
        s = b[i]
        for j in range(i + 1, n):
            s -= lu[i, j] * b[j]
        b[i] = s * lu[i, i]


@njit(**_INLINE)
def _lu_solve_scaled(lu, piv, b, sc, n):
    """Solve with the LU of an equilibrated matrix D⁻¹·A·D, D = diag(sc): returns A⁻¹b.
    Equilibration keeps the pivots right when the states differ by tens of decades (an
    exploding effector pool beside a depleted B-cell pool)."""
    for i in range(n):
        b[i] /= sc[i]
    _lu_solve(lu, piv, b, n)
    for i in range(n):
        b[i] *= sc[i]


@njit(**_INLINE)
def _rms(v, scale, m):
    """The RMS of v[:m]/scale[:m]."""
    s = 0.0
    for i in range(m):
        x = v[i] / scale[i]
        s += x * x
    return math.sqrt(s / max(m, 1))


# ---- kernel calls --------------------------------------------------------------------
#: The offset c of the log coordinates u = ln(x + c): tiny, so that a state keeps its
#: relative accuracy however small it gets and cannot turn negative (an offset of atol/rtol
#: let a state that fell below it be pushed below 0 by rounding, then grow negative when its
#: drive returned), yet keeps x + c above exp's underflow (a state that decays for a year
#: stops at c instead of giving ln 0).
LOG_FLOOR = 1e-300

# kx = (kernel, 1-d dummy, 2-d dummy, W, nt): nt a tuple of n zeros or () (:func:`_nstates`);
# W (6, n + 1) holds the log coordinates (one array,
# not six: every compiled call passes kx). Row 0: 1 where state r is integrated as
# u = ln(x + c), c = LOG_FLOOR (W[0, n] counts them); row 1: W[1, n] the longest step (the other
# cells unused); rows 2 and 3: x and d = dx/du at the last u converted; row 4 f at that x; row 5:
# 1 where the model file declares the state positive (W[5, n] counts them; :func:`_switch_to_log`).
# _f, _jac, _jac_p_f and _fp take and give the integrator's coordinates (u for those states):
#     du/dt = f(x)/(x + c),  ∂u̇_r/∂u_c = J_rc·d_c/d_r − δ_rc·u̇_r,  ∂u̇/∂θ = (∂f/∂θ)/d  (d = x + c)
# (all inlined, _INLINE: ~10 kernel calls a step).
#: Rows of the workspace's vectors (:func:`_work`) holding du/dt at the three stages of a step
#: with sensitivities (:func:`_stage_sensitivities`); the last one is f at the step's end.
UDOT_ROW = 20


@njit(**_INLINE)
def _nstates(kx, y):
    """The number of states: ``len(kx[4])``, a constant of the compiled code, when
    :func:`solve_batch` was given a tuple of that length (``nt``), else y's length. With a
    constant the loops over states, stages and the 3n × 3n systems have fixed trip counts,
    which LLVM unrolls and folds: a cart_bcell_sle subject without sensitivities ~30 % faster
    (0.24 -> 0.17 ms), with 6 a few %; each state count is then a compiled variant of its
    own."""
    k = len(kx[4])
    if k > 0:
        return k
    return y.shape[0]


@njit(**_INLINE)
def _to_x(W, u, n):
    """x (``W[2]``) and d = dx/du (``W[3]``) at the integrator's coordinates u (n states)."""
    for r in range(n):
        if W[0, r] > 0.0:
            e = math.exp(u[r])
            W[2, r] = e - LOG_FLOOR
            W[3, r] = e
        else:
            W[2, r] = u[r]
            W[3, r] = 1.0


@njit(**_INLINE)
def _f(kx, ph, t, tau, y, pc, out):
    n = _nstates(kx, y)
    W = kx[3]
    if W[0, n] == 0.0:
        kx[0](OP_RHS, ph, t, tau, 0.0, y, pc, out, kx[2])
        return
    _to_x(W, y, n)
    kx[0](OP_RHS, ph, t, tau, 0.0, W[2, :n], pc, out, kx[2])
    for r in range(n):
        if W[0, r] > 0.0:
            out[r] /= W[3, r]


@njit(**_INLINE)
def _f_raw(kx, ph, t, tau, x, pc, out):
    """f at states x (never log coordinates: the switch jumps, outside the steps)."""
    kx[0](OP_RHS, ph, t, tau, 0.0, x, pc, out, kx[2])


@njit(**_INLINE)
def _mat_u(kx, op, ph, t, tau, y, pc, out):
    """The matrix kernel ``op`` at the states whose integrator coordinates are y; True if some
    are log coordinates (then ``W[2]`` and ``W[3]`` hold x and dx/du, and ``out`` still
    needs the chain rule)."""
    n = _nstates(kx, y)
    W = kx[3]
    if W[0, n] == 0.0:
        kx[0](op, ph, t, tau, 0.0, y, pc, kx[1], out)
        return False
    _to_x(W, y, n)
    kx[0](op, ph, t, tau, 0.0, W[2, :n], pc, kx[1], out)
    return True


@njit(**_INLINE)
def _jac_any(kx, op, ph, t, tau, y, pc, out, udot, known):
    """J (op OP_JAC) or [J | ∂f/∂θ] (OP_JAC_P_F: f from the same kernel call) in the
    integrator's coordinates. ``udot``: du/dt at the same point, which the log
    coordinates' diagonal term needs: given (``known``: OP_JAC, with f(t, y) of the step) or
    written here from the f that OP_JAC_P_F gives (the same numbers as :func:`_f`). ``known``
    restates the op, but as a literal at each call it keeps the compiled step fast: a version
    that derived it from ``op`` and shared :func:`_mat_u`'s dispatch gave the same numbers
    ~12 % slower (interleaved, one cart_bcell_sle subject with 6 sensitivities)."""
    n = _nstates(kx, y)
    W = kx[3]
    fx = W[4, :n]
    if W[0, n] == 0.0:
        kx[0](op, ph, t, tau, 0.0, y, pc, fx, out)
        if not known and op == OP_JAC_P_F:
            for r in range(n):
                udot[r] = fx[r]
        return
    _to_x(W, y, n)
    kx[0](op, ph, t, tau, 0.0, W[2, :n], pc, fx, out)
    if not known:
        for r in range(n):
            udot[r] = fx[r] / W[3, r] if W[0, r] > 0.0 else fx[r]
    db = W[3]
    for r in range(n):
        idr = 1.0 / db[r]
        for c in range(n):
            # (J_rc·d_c)·(1/d_r), and an exact 0 kept: states tens of decades apart (a pool
            # decayed to 1e-300 beside one at 1e50) would give 0·inf = NaN through d_c/d_r
            v = out[r, c]
            if v != 0.0:
                out[r, c] = (v * db[c]) * idr
        if W[0, r] > 0.0:
            out[r, r] -= udot[r]
        for c in range(n, out.shape[1]):
            out[r, c] *= idr


@njit(**_INLINE)
def _jac(kx, ph, t, tau, y, pc, out, udot):
    """J at a point where du/dt (``udot``) is known."""
    _jac_any(kx, OP_JAC, ph, t, tau, y, pc, out, udot, True)


@njit(**_INLINE)
def _fp(kx, ph, t, tau, y, pc, out):
    """∂f/∂θ in the integrator's coordinates (rows of log states divided by x + c)."""
    if not _mat_u(kx, OP_RHS_P, ph, t, tau, y, pc, out):
        return
    W = kx[3]
    for r in range(y.shape[0]):
        idr = 1.0 / W[3, r]
        for c in range(out.shape[1]):
            out[r, c] *= idr


@njit(**_INLINE)
def _jac_p_f(kx, ph, t, tau, y, pc, out, udot):
    """[J | ∂f/∂θ] and du/dt (``udot``) at a stage."""
    _jac_any(kx, OP_JAC_P_F, ph, t, tau, y, pc, out, udot, False)


@njit(**_INLINE)
def _sc(W, r, y, rtol, atol):
    """The error scale of coordinate r: atol + |y|·rtol, or rtol for a log coordinate (its
    absolute error is the relative error of x + c: the relative test, with no floor above
    c = LOG_FLOOR)."""
    if W[0, r] > 0.0:
        return rtol
    return atol + abs(y) * rtol


@njit(cache=True, error_model="numpy")
def _vec(kx, op, t, amt, y, pc, out):
    kx[0](op, 0, t, 0.0, amt, y, pc, out, kx[2])


@njit(cache=True, error_model="numpy")
def _mat(kx, op, t, amt, y, pc, out):
    kx[0](op, 0, t, 0.0, amt, y, pc, kx[1], out)


# ---- workspace ---------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _work(n, npar, q):
    """Arrays reused for every step of every subject of a batch."""
    n3 = 3 * n
    f = np.empty((24, max(n3, 1)))       # row vectors of length 3n (or n)
    mats = np.empty((1, n3, n3))          # the stages' sensitivity system
    small = np.empty((3, n, n))
    cplx = np.empty((2, n, n), dtype=np.complex128)
    cvec = np.empty((2, max(n, 1)), dtype=np.complex128)
    jst = np.empty((3, n, n + npar))     # per stage [J | ∂f/∂θ]
    fp = np.empty((1, n, max(npar, 1)))
    sens = np.empty((1, n3, max(q, 1)))
    piv = np.empty((2, max(n, 1)), dtype=np.int64)   # the complex and real Newton LUs
    return f, mats, small, cplx, cvec, jst, fp, sens, piv


# ---- one subject ----------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _initial_step(kx, ph, t, tau, y, pc, f0, t_end, rtol, atol, tmp, tmpf):
    n = _nstates(kx, y)
    W = kx[3]
    d0 = 0.0
    d1 = 0.0
    for i in range(n):
        sc = _sc(W, i, y[i], rtol, atol)
        # a log coordinate's size is that of x + c in its own scale: 1/rtol
        d0 += (1.0 / rtol) ** 2 if W[0, i] > 0.0 else (y[i] / sc) ** 2
        d1 += (f0[i] / sc) ** 2
    d0 = math.sqrt(d0 / n)
    d1 = math.sqrt(d1 / n)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = 1e-6
    else:
        h0 = 0.01 * d0 / d1
    h0 = min(h0, t_end - t)
    for i in range(n):
        tmp[i] = y[i] + h0 * f0[i]
    _f(kx, ph, t + h0, tau + h0, tmp, pc, tmpf)
    d2 = 0.0
    for i in range(n):
        sc = _sc(W, i, y[i], rtol, atol)
        d2 += ((tmpf[i] - f0[i]) / sc) ** 2
    d2 = math.sqrt(d2 / n) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** 0.25
    h = min(100.0 * h0, h1)
    if not math.isfinite(h) or h <= 0.0:
        h = 1e-6
    # a state starting at 0 with a large derivative asks for a step below what t can
    # resolve; start from the smallest step that advances t and let the error test grow it
    h = max(h, 1000.0 * EPS * max(1.0, abs(t)))
    return min(h, t_end - t)


@njit(**_INLINE)
def _shifted(J, mu_over_h, scale, out, n):
    """out = μ/h·I − J, equilibrated by the state scales (real or complex μ)."""
    for r in range(n):
        for c in range(n):
            out[r, c] = -J[r, c] * scale[c] / scale[r]
        out[r, r] += mu_over_h


@njit(**_INLINE)
def _eliminate(a, B, sc, tmp, r0, n):
    """Solve A X = B in place (B ← X, every column at once) by Gaussian elimination with
    partial pivoting of the equilibrated matrix ``a`` = D⁻¹·A·D, D = diag(sc), n × n (``a``
    is overwritten; ``tmp`` scratch of length n). The matrix is used once, so no L is kept:
    each row operation is applied to B as it is made (the operations of an LU factorisation
    and its forward substitution, in the same order), a row swap moves only the columns not
    yet eliminated, and the back substitution stops at row r0 (rows r0.. are exactly those
    of the whole solve; the rows above are left half-solved). A zero pivot (a singular
    system, e.g. from states that overflowed) gives NaN in every row of B: there is no
    derivative to report."""
    q = B.shape[1]
    for r in range(n):
        tmp[r] = 1.0 / sc[r]
    for r in range(n):
        s = tmp[r]
        for c in range(q):
            B[r, c] *= s
    for k in range(n):
        p = _pivot(a, k, n)
        if p != k:
            for j in range(k, n):
                t = a[k, j]
                a[k, j] = a[p, j]
                a[p, j] = t
            for c in range(q):
                t = B[k, c]
                B[k, c] = B[p, c]
                B[p, c] = t
        d = a[k, k]
        if d == 0.0 or d != d:
            for r in range(n):
                for c in range(q):
                    B[r, c] = math.nan
            return
        inv = 1.0 / d
        a[k, k] = inv
        for i in range(k + 1, n):
            f = a[i, k]
            if f != 0.0:
                f *= inv
                for j in range(k + 1, n):
                    a[i, j] -= f * a[k, j]
                for c in range(q):
                    B[i, c] -= f * B[k, c]
    for i in range(n - 1, r0 - 1, -1):
        for j in range(i + 1, n):
            u = a[i, j]
            if u != 0.0:
                for c in range(q):
                    B[i, c] -= u * B[j, c]
        d = a[i, i]
        for c in range(q):
            B[i, c] *= d
    for r in range(r0, n):
        s = sc[r]
        for c in range(q):
            B[r, c] *= s


@njit(**_INLINE)
def _stage_sensitivities(kx, ph, t, tau, h, y, Z, S, pc, wrt, scale, scale3, work, all_stages):
    """S_Z (3n × q) of the step: (A⁻¹/h ⊗ I − diag(J(Y_j))) S_Z = [J(Y_j) S + ∂f/∂θ(Y_j)]_j,
    with the Jacobians at the converged stages (the exact derivative of the step); without
    ``all_stages`` only the last stage's rows (the end of the step: all that a step landing
    on its stops needs, when the sensitivities are not in the error test). Leaves
    [J | ∂f/∂θ] at the stages in ``jst``: the last stage is the end of the step, where the
    next step's Newton matrix needs J again (:func:`_advance` takes it from there)."""
    f, mats, small, cplx, cvec, jst, fp, sw, piv = work
    n = _nstates(kx, y)
    q = wrt.shape[0]
    Ms = mats[0]
    SZ = sw[0]
    ystage = f[12, :n]
    ratio = small[2]
    for i in range(3):
        for r in range(n):
            ystage[r] = y[r] + Z[i * n + r]
        _jac_p_f(kx, ph, t + C[i] * h, tau + C[i] * h, ystage, pc, jst[i], f[UDOT_ROW + i, :n])
    for r in range(n):
        for c in range(n):
            ratio[r, c] = scale[c] / scale[r]
    # the system multiplied by (A ⊗ I)⁻¹/h: off the diagonal, blocks (A⁻¹)_ij/h·I; no
    # product with A on the right-hand side
    for i in range(3):
        Ji = jst[i]
        for j in range(3):
            a = AINV[i, j] / h
            for r in range(n):
                for c in range(n):
                    Ms[i * n + r, j * n + c] = 0.0
                Ms[i * n + r, j * n + r] = a
        for r in range(n):
            for c in range(n):
                Ms[i * n + r, i * n + c] -= Ji[r, c] * ratio[r, c]
    # G_j = J(Y_j) S + ∂f/∂θ(Y_j), all q columns together, solved in place
    for j in range(3):
        Jj = jst[j]
        for r in range(n):
            row = j * n + r
            for k in range(q):
                SZ[row, k] = Jj[r, n + wrt[k]]
            for c in range(n):
                jrc = Jj[r, c]
                if jrc != 0.0:
                    for k in range(q):
                        SZ[row, k] += jrc * S[c, k]
    _eliminate(Ms, SZ, scale3, f[19, :3 * n], 0 if all_stages else 2 * n, 3 * n)


@njit(cache=True, error_model="numpy")
def _sensitivity_error(kx, ph, t, tau, h, y, J, S, pc, wrt, pbar, rtol, atol, scale, work):
    """Largest RMS error estimate of the sensitivity columns (CVODES errconS), each scaled
    by its parameter's magnitude, with the LU of μ/h·I − J of the step."""
    f, mats, small, cplx, cvec, jst, fp, sw, piv = work
    n = _nstates(kx, y)
    q = wrt.shape[0]
    SZ = sw[0]
    LUr = small[1]
    Fp0 = fp[0]
    errS = f[16, :n]
    W = kx[3]
    _fp(kx, ph, t, tau, y, pc, Fp0)
    worst = 0.0
    for k in range(q):
        pk = wrt[k]
        for r in range(n):
            s = Fp0[r, pk]
            for c in range(n):
                s += J[r, c] * S[c, k]
            s2 = 0.0
            for i in range(3):
                s2 += E[i] * SZ[i * n + r, k]
            errS[r] = s + s2 / h
        _lu_solve_scaled(LUr, piv[1], errS, scale, n)
        pb = pbar[k]
        acc = 0.0
        for r in range(n):
            sn = S[r, k] + SZ[2 * n + r, k]
            # CVODES' scale atolS = atol/pbar with the coordinate's own atol (_sc at 0)
            sc = (_sc(W, r, 0.0, rtol, atol) + max(abs(S[r, k]), abs(sn)) * pb * rtol) / pb
            x = errS[r] / sc
            acc += x * x
        enk = math.sqrt(acc / n)
        if not math.isfinite(enk):
            enk = 1e10
        worst = max(worst, enk)
    return worst




@njit(**_INLINE)
def _all_finite(v):
    for i in range(v.shape[0]):
        if not math.isfinite(v[i]):
            return False
    return True


@njit(**_INLINE)
def _factor(kx, ph, t, tau, h, y, pc, rtol, atol, J, LUr, LUc, piv, scale, scale3, jac_from,
            Jend, f0):
    """The Jacobian at (t, y), the state scales and the LU decompositions of the real
    (μ_r/h·I − J) and complex (μ_c/h·I − J) Newton matrices, equilibrated by the scales.
    ``jac_from``: JAC_EVAL evaluates J; JAC_KEPT: J is already the one at (t, y) (a step
    retried from the same point); JAC_STAGE: ``Jend`` (the last stage's Jacobian of the
    step just accepted with sensitivities, the same point: t + c_3·h = t + h, y + Z_3) is
    copied — the same numbers as evaluating it again. ``f0``: f(t, y) in the integrator's
    coordinates."""
    n = _nstates(kx, y)
    if jac_from == JAC_EVAL:
        _jac(kx, ph, t, tau, y, pc, J, f0)
    elif jac_from == JAC_STAGE:
        for r in range(n):
            for c in range(n):
                J[r, c] = Jend[r, c]
    W = kx[3]
    for r in range(n):
        scale[r] = _sc(W, r, y[r], rtol, atol)
    for i in range(3):
        for r in range(n):
            scale3[i * n + r] = scale[r]
    _shifted(J, MU_REAL / h, scale, LUr, n)
    _lu_factor(LUr, piv[1], n)
    _shifted(J, MU_COMPLEX / h, scale, LUc, n)
    _lu_factor(LUc, piv[0], n)


@njit(**_INLINE)
def _predict(use_poly, h, h_old, poly, Z, W, n):
    """Newton's starting stages Z (and W = T⁻¹Z): the last step's collocation polynomial
    continued to the new stages, else zero."""
    if use_poly:
        for i in range(3):
            x = 1.0 + C[i] * h / h_old
            for r in range(n):
                Z[i * n + r] = poly[0, r] * (x - 1.0) + poly[1, r] * (x * x - 1.0) \
                    + poly[2, r] * (x * x * x - 1.0)
    else:
        for r in range(3 * n):
            Z[r] = 0.0
    for i in range(3):
        for r in range(n):
            W[i * n + r] = TI[i, 0] * Z[r] + TI[i, 1] * Z[n + r] + TI[i, 2] * Z[2 * n + r]


@njit(**_INLINE)
def _newton(kx, ph, t, tau, h, y, pc, newton_tol, Z, W, dW, Fst, ystage, fstage, scale,
            scale3, gc, LUr, LUc, piv):
    """Simplified Newton on the collocation system from the predicted Z and W = T⁻¹Z: per
    iteration F at the three stages Y_i = y + Z_i, the increment of W from one real and one
    complex n × n solve, Hairer's (RADAU5) convergence test on the contraction rate.
    Returns (converged, iterations)."""
    n = _nstates(kx, y)
    n_iter = 0
    dz_old = -1.0
    rate = -1.0
    for k in range(NEWTON_MAXITER):
        n_iter = k + 1
        ok = True
        for i in range(3):
            for r in range(n):
                ystage[r] = y[r] + Z[i * n + r]
            _f(kx, ph, t + C[i] * h, tau + C[i] * h, ystage, pc, fstage)
            for r in range(n):
                vv = fstage[r]
                if not math.isfinite(vv):
                    ok = False
                Fst[i * n + r] = vv
        if not ok:
            break
        mr = MU_REAL / h
        mc = MU_COMPLEX / h
        for r in range(n):
            F1 = Fst[r]
            F2 = Fst[n + r]
            F3 = Fst[2 * n + r]
            dW[r] = TI[0, 0] * F1 + TI[0, 1] * F2 + TI[0, 2] * F3 - mr * W[r]
            gc[r] = complex(TI[1, 0] * F1 + TI[1, 1] * F2 + TI[1, 2] * F3,
                            TI[2, 0] * F1 + TI[2, 1] * F2 + TI[2, 2] * F3) \
                - mc * complex(W[n + r], W[2 * n + r])
        _lu_solve_scaled(LUr, piv[1], dW[:n], scale, n)
        _lu_solve_scaled(LUc, piv[0], gc, scale, n)
        for r in range(n):
            dW[n + r] = gc[r].real
            dW[2 * n + r] = gc[r].imag
        dz = _rms(dW, scale3, 3 * n)
        if not math.isfinite(dz):
            break
        if dz_old > 0.0:
            rate = dz / dz_old
        if rate >= 0.0 and (rate >= 1.0 or
                            rate ** (NEWTON_MAXITER - k) / (1.0 - rate) * dz > newton_tol):
            break
        for r in range(3 * n):
            W[r] += dW[r]
        for i in range(3):
            for r in range(n):
                Z[i * n + r] = T[i, 0] * W[r] + T[i, 1] * W[n + r] + T[i, 2] * W[2 * n + r]
        if dz == 0.0 or (rate >= 0.0 and rate / (1.0 - rate) * dz < newton_tol):
            return True, n_iter
        dz_old = dz
    return False, n_iter


@njit(**_INLINE)
def _error_norm(h, y, f0, Z, ZE, err, ynew, escale, scale, LUr, piv, rtol, atol, W, n):
    """RMS of Hairer's error estimate err = (μ_r/h·I − J)⁻¹ (f(t, y) + Σ e_i Z_i / h), with
    ynew = y + Z_3 written beside it."""
    for r in range(n):
        ynew[r] = y[r] + Z[2 * n + r]
    for r in range(n):
        s = 0.0
        for i in range(3):
            s += E[i] * Z[i * n + r]
        ZE[r] = s / h
    for r in range(n):
        err[r] = f0[r] + ZE[r]
    _lu_solve_scaled(LUr, piv[1], err, scale, n)
    for r in range(n):
        escale[r] = _sc(W, r, max(abs(y[r]), abs(ynew[r])), rtol, atol)
    return _rms(err, escale, n)


@njit(cache=True, error_model="numpy")
def _error_refined(kx, ph, t, tau, y, pc, err, ZE, tmp, tmpf, escale, scale, LUr, piv):
    """The error estimate refined once through f(t, y + err) (Hairer's RADAU5, on a first
    or rejected step whose estimate fails)."""
    n = _nstates(kx, y)
    for r in range(n):
        tmp[r] = y[r] + err[r]
    _f(kx, ph, t, tau, tmp, pc, tmpf)
    for r in range(n):
        err[r] = tmpf[r] + ZE[r]
    _lu_solve_scaled(LUr, piv[1], err, scale, n)
    return _rms(err, escale, n)


@njit(**_INLINE)
def _polynomial(ynew, Z, poly, n):
    """The collocation polynomial u(x) = y + Σ_k Q_k x^k of an accepted step (Q = V⁻¹Z: the
    Newton predictor of the next step and the dense output); False if ynew is not finite."""
    if not _all_finite(ynew):
        return False
    for kk in range(3):
        for r in range(n):
            poly[kk, r] = VINV[kk, 0] * Z[r] + VINV[kk, 1] * Z[n + r] + VINV[kk, 2] * Z[2 * n + r]
    return True


@njit(**_INLINE)
def _next_step(h, en, err_old, h_old, safety, landing, h_prop):
    """The predictive (Gustafsson) controller with Hairer's safety factor; a step shortened
    to land on t_end does not shrink the next one."""
    if err_old > 0.0 and h_old > 0.0 and en > 0.0:
        mult = h / h_old * (err_old / en) ** 0.25
    else:
        mult = 1.0
    cap = MAX_FACTOR if h_old > 0.0 else MAX_FACTOR_FIRST
    factor = cap if en == 0.0 else min(cap, safety * min(1.0, mult) * en ** -0.25)
    h_new = h * factor
    if landing:
        h_new = max(h_new, h_prop)
    return h_new


@njit(**_INLINE)
def _step_sensitivities(kx, ph, t, tau, h, y, S, pc, wrt, pbar, errcon, rtol, atol, en, work,
                        dense):
    """The stage sensitivities S_Z of a step that passed the error test; with ``errcon`` the
    error norm grows to include theirs (returned). Every stage's with ``errcon`` or ``dense``
    (the error estimate and the dense output use them), else the last stage's only."""
    f, mats, small, cplx, cvec, jst, fp, sw, piv = work
    n = _nstates(kx, y)
    _stage_sensitivities(kx, ph, t, tau, h, y, f[7, :3 * n], S, pc, wrt, f[3, :n],
                         f[14, :3 * n], work, errcon or dense)
    if errcon:
        en = max(en, _sensitivity_error(kx, ph, t, tau, h, y, small[0], S, pc, wrt, pbar,
                                        rtol, atol, f[3, :n], work))
    return en


@njit(**_INLINE)
def _add_last_stage(S, SZ, n):
    """S_{n+1} = S + S_Z,3 (the sensitivities at the end of an accepted step)."""
    for k in range(S.shape[1]):
        for r in range(n):
            S[r, k] += SZ[2 * n + r, k]


@njit(**_INLINE)
def _save(state, h_prop, err_old, h_old, use_poly):
    """The step controller's memory for the next interval of the same phase."""
    state[0] = h_prop
    state[1] = err_old
    state[2] = h_old
    state[4] = 1.0 if use_poly else 0.0


@njit(**_INLINE)
def _views(work, n):
    """The step's arrays, cut once per interval from the workspace :func:`_work`."""
    f, mats, small, cplx, cvec, jst, fp, sw, piv = work
    n3 = 3 * n
    return (f[0, :n], f[2, :n], f[3, :n], f[4, :n], f[5, :n], f[6, :n], f[7, :n3], f[8, :n3],
            f[17, :n3], f[10, :n3], f[11, :n], f[12, :n], f[13, :n], f[14, :n3],
            f[18, :n], small[0], small[1], cplx[0], cvec[0], sw[0], piv)


#: A state the model file declares non-negative moves to log coordinates u = ln(x + c)
#: (and stays there for the rest of the subject) at the first step that changes it by at most
#: this fraction, h·|f|/(x + c) ≤ LOG_SWITCH (the module's docstring): a state rising from 0
#: (memory cells, ~ a·t) waits until its steps are short beside its age.
LOG_SWITCH = 0.1


@njit(**_INLINE)
def _row_to_log(y, S, r, sens):
    """State r (and its sensitivities) into log coordinates: y_r ← ln(x_r + c), S_r ← S_r/(x_r + c);
    returns x_r + c."""
    d = y[r] + LOG_FLOOR
    y[r] = math.log(d)
    if sens:
        for k in range(S.shape[1]):
            S[r, k] /= d
    return d


@njit(**_INLINE)
def _switch_to_log(kx, y, S, f0, h, sens):
    """Move the non-negative states that the next step (of size h) changes by at most
    LOG_SWITCH to log coordinates: y, its sensitivities and f(t, y) in place. True if any."""
    W = kx[3]
    n = _nstates(kx, y)
    moved = False
    for r in range(n):
        if W[5, r] > 0.0 and W[0, r] == 0.0 and y[r] > 0.0:
            if h * abs(f0[r]) <= LOG_SWITCH * (y[r] + LOG_FLOOR):
                f0[r] /= _row_to_log(y, S, r, sens)
                W[0, r] = 1.0
                W[0, n] += 1.0
                moved = True
    return moved


@njit(**_INLINE)
def _coords(kx, y, S, sens, to_log):
    """States (and sensitivities) into the integrator's coordinates (``to_log``: x → u =
    ln(x + c), S → S/(x + c) where a state is in log coordinates) or back."""
    W = kx[3]
    n = _nstates(kx, y)
    if W[0, n] == 0.0:
        return
    for r in range(n):
        if W[0, r] > 0.0:
            if to_log:
                _row_to_log(y, S, r, sens)
            else:
                d = math.exp(y[r])
                y[r] = d - LOG_FLOOR
                if sens:
                    for k in range(S.shape[1]):
                        S[r, k] *= d


@njit(cache=True, error_model="numpy")
def _advance(kx, ph, t, tau, t_end, y, S, pc, wrt, pbar, sens, errcon, rtol,
             atol, state, poly, work, max_steps, dense, rec):
    """Integrate phase ``ph`` from t to t_end exactly (:func:`_advance_u`), taking the
    states and sensitivities into the integrator's coordinates and back. Its callers call it
    through :func:`advance_list` (compiled for :func:`_advance_type`)."""
    with_s = sens and wrt.shape[0] > 0
    _coords(kx, y, S, with_s, True)
    code = _advance_u(kx, ph, t, tau, t_end, y, S, pc, wrt, pbar, sens, errcon, rtol,
                      atol, state, poly, work, max_steps, dense, rec)
    _coords(kx, y, S, with_s, False)
    return code


@njit(**_INLINE)
def _advance_u(kx, ph, t, tau, t_end, y, S, pc, wrt, pbar, sens, errcon, rtol,
               atol, state, poly, work, max_steps, dense, rec):
    """Integrate phase ``ph`` from t to t_end exactly, in the integrator's coordinates (y
    and S in log coordinates where ``kx[3][0]`` says so, :func:`_switch_to_log`). ``state`` carries h, the previous
    error norm and step, the step counter and whether ``poly`` (the last step's collocation
    polynomial) may be used as the Newton predictor. Returns a status code.

    With ``dense``, the output times strictly inside a step (``rec``: the recording
    arguments of :func:`_record_dense`) are interpolated with the step's collocation
    polynomial (of the states and, with ``sens``, of the sensitivities); otherwise the
    caller lands on every output time.

    The Newton iteration runs in the eigenbasis of A⁻¹ (Hairer's RADAU5): W = T⁻¹Z splits
    the 3n × 3n system into one real (μ_r/h·I − J) and one complex (μ_c/h·I − J) n × n
    system; the real one also serves the error estimate."""
    n = _nstates(kx, y)
    q = wrt.shape[0]
    v = _views(work, n)
    (f0, err, scale, ynew, tmp, tmpf, Z, W, dW, Fst, ZE, ystage, fstage, scale3, escale,
     J, LUr, LUc, gc, SZ, piv) = v
    newton_tol = max(10.0 * EPS / rtol, min(0.03, rtol ** 0.5))
    h = state[0]
    err_old = state[1]
    h_old = state[2]
    use_poly = state[4] > 0.5
    h_prop = h
    if t_end <= t:
        return OK
    _f(kx, ph, t, tau, y, pc, f0)
    if not _all_finite(f0):
        return NOT_FINITE
    if h <= 0.0:
        h_prop = h = min(_initial_step(kx, ph, t, tau, y, pc, f0, t_end, rtol, atol, tmp, tmpf),
                         kx[3][1, n])
    rejected = True  # the first step of an interval gets the refined error estimate
    jac_from = JAC_EVAL
    Jend = work[5][2]
    fend = work[0][UDOT_ROW + 2, :n]
    while t < t_end:
        if state[3] >= max_steps:
            return TOO_MANY_STEPS
        h = min(h_prop, kx[3][1, n])
        landing = False
        if t + 1.1 * h >= t_end:
            h = t_end - t
            landing = True
        if h < 10.0 * EPS * max(1.0, abs(t)):
            return STEP_TOO_SMALL
        if kx[3][0, n] < kx[3][5, n] and _switch_to_log(kx, y, S, f0, h, sens and q > 0):
            jac_from = JAC_EVAL
            use_poly = False
        _factor(kx, ph, t, tau, h, y, pc, rtol, atol, J, LUr, LUc, piv, scale, scale3, jac_from,
                Jend, f0)
        jac_from = JAC_KEPT     # until a step is accepted: retries start from (t, y)
        _predict(use_poly, h, h_old, poly, Z, W, n)
        converged, n_iter = _newton(kx, ph, t, tau, h, y, pc, newton_tol, Z, W, dW, Fst, ystage,
                                    fstage, scale, scale3, gc, LUr, LUc, piv)
        if not converged:
            h_prop = 0.5 * h
            use_poly = False
            rejected = True
            state[3] += 1
            state[6] += 1
            continue
        en = _error_norm(h, y, f0, Z, ZE, err, ynew, escale, scale, LUr, piv, rtol, atol,
                         kx[3], n)
        if en > 1.0 and rejected:
            en = _error_refined(kx, ph, t, tau, y, pc, err, ZE, tmp, tmpf, escale, scale, LUr, piv)
        if not math.isfinite(en):
            en = 1e10
        if sens and q > 0 and en <= 1.0:
            en = _step_sensitivities(kx, ph, t, tau, h, y, S, pc, wrt, pbar, errcon, rtol,
                                     atol, en, work, dense)
        state[3] += 1
        safety = 0.9 * (2 * NEWTON_MAXITER + 1) / (2 * NEWTON_MAXITER + n_iter)
        if en > 1.0:
            h_prop = h * max(MIN_FACTOR, safety * en ** -0.25)
            rejected = True
            state[5] += 1
            # the predictor remains valid for a shorter step from the same point
            continue
        if not _polynomial(ynew, Z, poly, n):
            return NOT_FINITE
        if dense:
            _record_dense(t, h, t_end, y, S, poly, SZ, sens and q > 0, pc, wrt, rec)
        if sens and q > 0:
            _add_last_stage(S, SZ, n)
            if not landing:
                jac_from = JAC_STAGE
            else:
                jac_from = JAC_EVAL   # t jumps to t_end exactly: maybe not t + h
        else:
            jac_from = JAC_EVAL
        use_poly = True
        h_new = _next_step(h, en, err_old, h_old, safety, landing, h_prop)
        err_old = max(en, 1e-10)
        h_old = h
        t = t + h
        tau = tau + h
        if landing:
            t = t_end
        for r in range(n):
            y[r] = ynew[r]
        if jac_from == JAC_STAGE:
            # f at the last stage (t + c_3·h = t + h, y + Z_3: this point) came with its
            # Jacobian: the same numbers as evaluating it again
            for r in range(n):
                f0[r] = fend[r]
        else:
            _f(kx, ph, t, tau, y, pc, f0)
        if not _all_finite(f0):
            return NOT_FINITE
        h_prop = h_new
        rejected = False
    _save(state, h_prop, err_old, h_old, use_poly)
    return OK


@njit(cache=True, error_model="numpy")
def _record_dense(t, h, t_end, y, S, poly, SZ, sens, pc, wrt, rec):
    """Record every output time in (t, min(t + h, t_end)) from the collocation polynomials
    u(x) = y + Σ_k Q_k x^k (x = (time − t)/h) of the states and of the sensitivities."""
    kx, T, order, jp, lo, OUT, SENS, o, oy, op, yi, Si, polyS = rec
    n = y.shape[0]
    q = wrt.shape[0]
    end = min(t + h, t_end)
    first = True
    while jp[0] < T.shape[0]:
        tt = T[order[jp[0]]]
        if tt >= end:
            break
        x = (tt - t) / h
        for r in range(n):
            yi[r] = y[r] + poly[0, r] * x + poly[1, r] * x * x + poly[2, r] * x * x * x
        if sens:
            if first:
                for kk in range(3):
                    for r in range(n):
                        for k in range(q):
                            polyS[kk, r, k] = VINV[kk, 0] * SZ[r, k] + VINV[kk, 1] * SZ[n + r, k] \
                                + VINV[kk, 2] * SZ[2 * n + r, k]
                first = False
            for r in range(n):
                for k in range(q):
                    Si[r, k] = S[r, k] + polyS[0, r, k] * x + polyS[1, r, k] * x * x \
                        + polyS[2, r, k] * x * x * x
        _coords(kx, yi, Si, sens, False)
        _record(kx, tt, yi, Si, pc, wrt, sens, lo + order[jp[0]], OUT, SENS, o, oy, op)
        jp[0] += 1


@njit(cache=True, error_model="numpy")
def _record(kx, t, y, S, pc, wrt, sens, row, OUT, SENS, o, oy, op):
    _vec(kx, OP_OUTPUTS, t, 0.0, y, pc, o)
    nout = o.shape[0]
    for m in range(nout):
        OUT[row, m] = o[m]
    if sens:
        _mat(kx, OP_OUTPUTS_Y, t, 0.0, y, pc, oy)
        _mat(kx, OP_OUTPUTS_P, t, 0.0, y, pc, op)
        n = y.shape[0]
        for m in range(nout):
            for k in range(wrt.shape[0]):
                s = op[m, wrt[k]]
                for c in range(n):
                    s += oy[m, c] * S[c, k]
                SENS[row, m, k] = s


@njit(cache=True, error_model="numpy")
def _subject_work(n, nph, npar_all, q, nout):
    """Per-thread arrays of :func:`_solve_range` beside the step workspace :func:`_work`:
    y, S, ∂y0/∂θ, the switch times (raw, their ∂/∂θ, cumulative, cumulative ∂/∂θ), the
    rates either side of a switch, the outputs and their derivatives, the step state, the
    parameter magnitudes, the dense-output cursor and scratch, the dose jump and its
    derivatives, and the subject's parameter row."""
    qq = max(q, 1)
    ns = max(nph - 1, 1)
    return (np.empty(n), np.zeros((n, qq)), np.empty((n, npar_all)),
            np.empty(ns), np.empty((ns, npar_all)), np.empty(ns), np.zeros((ns, qq)),
            np.empty(n), np.empty(n),
            np.empty(nout), np.empty((nout, n)), np.empty((nout, npar_all)),
            np.zeros((3, n)), np.zeros(8), np.ones(qq), np.zeros(1, dtype=np.int64),
            np.empty(n), np.zeros((n, qq)), np.zeros((3, n, qq)),
            np.empty(n), np.empty((n, n)), np.empty((n, npar_all)), np.empty((n, qq)),
            np.empty(npar_all))


@njit(**_INLINE)
def _switch_times(kx, nph, wrt, sens, y, pc, sw, swp, st, dst):
    """The phases' switch times as cumulative maxima (NaN = never reached, +inf) and their
    derivatives (0 where a switch is not reached or coincides with an earlier one)."""
    q = wrt.shape[0]
    _vec(kx, OP_SWITCHES, 0.0, 0.0, y, pc, sw)
    if sens:
        _mat(kx, OP_SWITCHES_P, 0.0, 0.0, y, pc, swp)
    prev = 0.0
    for k in range(nph - 1):
        v = sw[k]
        if v != v:
            v = np.inf
        if v > prev:
            st[k] = v
            prev = v
            for j in range(q):
                dst[k, j] = swp[k, wrt[j]] if (sens and math.isfinite(v) and v > 0.0) else 0.0
        else:
            st[k] = prev
            for j in range(q):
                dst[k, j] = dst[k - 1, j] if k > 0 else 0.0


@njit(**_INLINE)
def _start_subject(kx, nph, row, wrt, sens, sub):
    """Parameters, initial states (and sensitivities), parameter magnitudes and switch
    times of one subject; returns NOT_FINITE if an initial state is not finite."""
    (y, S, Y0p, sw, swp, st, dst, fa, fb, o, oy, op, poly, state, pbar, jp, yi, Si, polyS,
     gj, Gy, Gp, Stmp, pc) = sub
    n = y.shape[0]
    q = wrt.shape[0]
    W = kx[3]
    for r in range(n + 1):
        W[0, r] = 0.0
    for r in range(pc.shape[0]):
        pc[r] = row[r]
    for k in range(q):
        v = abs(pc[wrt[k]])
        pbar[k] = v if v > 0.0 and math.isfinite(v) else 1.0
    _vec(kx, OP_INIT, 0.0, 0.0, y, pc, y)
    if sens:
        _mat(kx, OP_INIT_P, 0.0, 0.0, y, pc, Y0p)
        for r in range(n):
            for k in range(q):
                S[r, k] = Y0p[r, wrt[k]]
    if nph > 1:
        _switch_times(kx, nph, wrt, sens, y, pc, sw, swp, st, dst)
    for k in range(7):
        state[k] = 0.0
    return OK if _all_finite(y) else NOT_FINITE


@njit(**_INLINE)
def _dose(kx, t, amt, y, S, pc, wrt, sens, sub):
    """A dose: y⁺ = y + g(t, y), S⁺ = S + ∂g/∂y·S + ∂g/∂θ."""
    (_y, _S, Y0p, sw, swp, st, dst, fa, fb, o, oy, op, poly, state, pbar, jp, yi, Si, polyS,
     gj, Gy, Gp, Stmp, _pc) = sub
    n = y.shape[0]
    q = wrt.shape[0]
    _vec(kx, OP_DOSE, t, amt, y, pc, gj)
    if sens and q > 0:
        _mat(kx, OP_DOSE_Y, t, amt, y, pc, Gy)
        _mat(kx, OP_DOSE_P, t, amt, y, pc, Gp)
        for r in range(n):
            for k in range(q):
                acc = Gp[r, wrt[k]]
                for c in range(n):
                    acc += Gy[r, c] * S[c, k]
                Stmp[r, k] = acc
        for r in range(n):
            for k in range(q):
                S[r, k] += Stmp[r, k]
    for r in range(n):
        y[r] += gj[r]


@njit(**_INLINE)
def _events(kx, t, ep, e1, ev_t, ev_amt, ev_cov, npar, wrt, sens, sub):
    """Apply the events at time t (doses, new covariate values) from row ``ep`` on.
    Returns (next event row, whether any applied)."""
    y, S, pc = sub[0], sub[1], sub[23]
    changed = False
    while ep < e1 and ev_t[ep] <= t:
        amt = ev_amt[ep]
        if amt == amt:
            _dose(kx, t, amt, y, S, pc, wrt, sens, sub)
        for k in range(ev_cov.shape[1]):
            v = ev_cov[ep, k]
            if v == v:
                pc[npar + k] = v
        changed = True
        ep += 1
    return ep, changed


@njit(**_INLINE)
def _restart(state):
    """A new right-hand side or state: a new initial step and no Newton predictor."""
    state[0] = 0.0
    state[1] = 0.0
    state[2] = 0.0
    state[4] = 0.0


@njit(**_INLINE)
def _switch_jump(kx, ph, t, start, y, S, pc, dst, fa, fb):
    """S⁺ = S⁻ + (f_a − f_b)(τ, y) ∂τ/∂θ at the switch from phase ph to ph + 1."""
    n = y.shape[0]
    _f_raw(kx, ph, t, t - start, y, pc, fa)
    _f_raw(kx, ph + 1, t, 0.0, y, pc, fb)
    for r in range(n):
        d = fa[r] - fb[r]
        for k in range(S.shape[1]):
            S[r, k] += d * dst[ph, k]


@njit(**_INLINE)
def _nan_rest(T, order, j, lo, sens, OUT, SENS):
    """NaN outputs (and derivatives) from the j-th output time on (a failed subject)."""
    while j < T.shape[0]:
        row = lo + order[j]
        for m in range(OUT.shape[1]):
            OUT[row, m] = np.nan
            if sens:
                for k in range(SENS.shape[2]):
                    SENS[row, m, k] = np.nan
        j += 1


@njit(cache=True, error_model="numpy")
def _solve_subject(kx, advance, i, nph, PC, times, offsets, wrt, sens, errcon, rtol, atol,
                   max_steps, dense_above, ev_off, ev_t, ev_amt, ev_cov, OUT, SENS, work, sub):
    """One subject of :func:`_solve_range`: from t = 0 from stop to stop (output times,
    events, switch times); returns its status code."""
    (y, S, Y0p, sw, swp, st, dst, fa, fb, o, oy, op, poly, state, pbar, jp, yi, Si, polyS,
     gj, Gy, Gp, Stmp, pc) = sub
    q = wrt.shape[0]
    npar = PC.shape[1] - ev_cov.shape[1]
    ep = ev_off[i]
    e1 = ev_off[i + 1]
    lo = offsets[i]
    T = times[lo:offsets[i + 1]]
    order_owned = np.argsort(T)
    order = unowned(order_owned)
    dense = T.shape[0] > dense_above
    jp[0] = 0
    rec = (kx, T, order, jp, lo, OUT, SENS, o, oy, op, yi, Si, polyS)
    code = _start_subject(kx, nph, PC[i], wrt, sens, sub)
    t = 0.0
    ph = 0
    start = 0.0
    t_last = T[order[T.shape[0] - 1]] if T.shape[0] else 0.0
    while jp[0] < T.shape[0] and code == OK:
        # outputs at the current time (the start, a switch, a landing point; before an
        # event at that time)
        while jp[0] < T.shape[0] and T[order[jp[0]]] <= t:
            _record(kx, t, y, S, pc, wrt, sens, lo + order[jp[0]], OUT, SENS, o, oy, op)
            jp[0] += 1
        # events at the current time: doses and covariate changes, then a restart
        ep, changed = _events(kx, t, ep, e1, ev_t, ev_amt, ev_cov, npar, wrt, sens, sub)
        if changed:
            if not _all_finite(y):
                code = NOT_FINITE
            _restart(state)
        if jp[0] >= T.shape[0] or code != OK:
            break
        # the next stop: a switch or an event before the next output time, else that
        # output time (landing) or, with dense output, the last output time
        target = t_last if dense else T[order[jp[0]]]
        if ep < e1 and ev_t[ep] < target:
            target = ev_t[ep]
        switching = ph < nph - 1 and st[ph] <= target
        if switching:
            target = st[ph]
        code = advance(kx, ph, t, t - start, target, y, S, pc, wrt, pbar,
                       sens, errcon, rtol, atol, state, poly, work, max_steps, dense, rec)
        if code != OK:
            break
        t = target
        if switching:
            if sens and q > 0:
                _switch_jump(kx, ph, t, start, y, S, pc, dst, fa, fb)
            start = t
            ph += 1
            _restart(state)
    _nan_rest(T, order, jp[0], lo, sens, OUT, SENS)
    keep_alive(order_owned)
    return code


@njit(KERNELS_T(KERNEL_T), cache=True)
def kernel_list(kernel):
    """[kernel] as the first argument of :func:`solve_batch` (built once per model)."""
    out = List.empty_list(KERNEL_T)
    out.append(kernel)
    return out


@njit(CLOSEDS_T(CLOSED_T), cache=True)
def closed_list(closed):
    """[closed] as the first argument of :func:`closed_batch` (built once per model)."""
    out = List.empty_list(CLOSED_T)
    out.append(closed)
    return out


#: State counts that get an integrator compiled for their size (:func:`_nstates`,
#: :func:`specialisation`): each is a compile of ~1 min on a new machine. One or two states
#: are cheap to solve either way; beyond eight, unrolled loops only grow the code. The others
#: share the integrator compiled for any size.
SPECIALISED_SIZES = range(3, 9)


def _advance_type(nt):
    """The type of :func:`_advance` for :func:`specialisation` ``nt`` (as its callers pass it):
    ``work`` mirrors :func:`_work`'s tuple, ``rec`` the one :func:`_solve_subject` builds; a
    change there must be made here too (else the first solve stops at numba's typing)."""
    F3 = float64[:, :, ::1]
    I1 = int64[::1]
    nt_t = types.UniTuple(int64, len(nt)) if nt else types.Tuple(())
    kx = types.Tuple((KERNEL_T, V1, M2, M2, nt_t))
    work = types.Tuple((M2, F3, F3, complex128[:, :, ::1], complex128[:, ::1], F3, F3, F3,
                        int64[:, ::1]))
    rec = types.Tuple((kx, V1, I1, I1, int64, M2, F3, V1, M2, M2, V1, M2, F3))
    return types.FunctionType(int64(kx, int64, float64, float64, float64, V1, M2, V1, I1, V1,
                                    boolean, boolean, float64, float64, V1, M2, work, int64,
                                    boolean, rec))


def _advance_list_py(advance):
    """[advance] (compiled per type by :func:`advance_list`)."""
    out = List()
    out.append(advance)
    return out


_ADVANCE_LISTS = {}


def advance_list(nt):
    """[:func:`_advance`] compiled for ``nt`` (:func:`specialisation`), the ``advances``
    argument of :func:`solve_batch`: the integrator's step loop is called through this
    pointer, so its callers do not link and optimise it again (see ``_INLINE``). The call
    goes through numba's C wrapper, which cannot pass an exception on: the step loop raises
    none (``error_model="numpy"``; a singular or non-finite system is a NaN and a status)."""
    lst = _ADVANCE_LISTS.get(nt)
    if lst is None:
        adv_t = _advance_type(nt)
        make = njit(types.ListType(adv_t)(adv_t), cache=True)(_advance_list_py)
        lst = _ADVANCE_LISTS.setdefault(nt, make(_advance))
    return lst


def specialisation(n):
    """The ``nt`` argument of :func:`solve_batch` for a model of n states: a tuple of length n
    (its type carries the size into the compiled code), or () for the integrator of any size."""
    return (0,) * n if n in SPECIALISED_SIZES else ()


@njit(cache=True, error_model="numpy")
def _solve_range(kx, advance, n, nph, PC, times, offsets, wrt, sens, errcon, rtol, atol,
                 max_steps, dense_above, ev_off, ev_t, ev_amt, ev_cov, OUT, SENS, status, nsteps,
                 i0, i1):
    """Subjects i0..i1-1 of :func:`solve_batch`, with their own workspace (one per thread)."""
    q = wrt.shape[0]
    work_owned = _work(n, PC.shape[1], q)
    sub_owned = _subject_work(n, nph, PC.shape[1], q, OUT.shape[1])
    # every array of the loop as an unowned view (:mod:`~ctkinetics.modeling.unowned`): no
    # atomic reference counting at each view, tuple read and call of the steps
    work = unowned(work_owned)
    sub = unowned(sub_owned)
    args = unowned((PC, times, offsets, wrt, ev_off, ev_t, ev_amt, ev_cov, OUT, SENS))
    PCu, times_u, offsets_u, wrt_u, ev_off_u, ev_t_u, ev_amt_u, ev_cov_u, OUT_u, SENS_u = args
    state = sub[13]
    for i in range(i0, i1):
        status[i] = _solve_subject(kx, advance, i, nph, PCu, times_u, offsets_u, wrt_u, sens,
                                   errcon, rtol, atol, max_steps, dense_above, ev_off_u,
                                   ev_t_u, ev_amt_u, ev_cov_u, OUT_u, SENS_u, work, sub)
        nsteps[i, 0] = int(state[3])
        nsteps[i, 1] = int(state[5])
        nsteps[i, 2] = int(state[6])
    keep_alive(work_owned, sub_owned)


@njit(cache=True, nogil=True, error_model="numpy")
def solve_batch(kernels, advances, n, nph, PC, times, offsets, wrt, sens, errcon, rtol, atol,
                max_steps, dense_above, ev_off, ev_t, ev_amt, ev_cov, OUT, SENS, status, nsteps,
                positive, max_step, nt):
    """Solve N subjects (``kernels``: the model's kernel in a list, :func:`kernel_list`) (rows of ``PC``: parameters then covariates), each at its own
    times ``times[offsets[i]:offsets[i + 1]]`` (any order, >= 0). Writes the outputs
    (states then observables) to ``OUT`` rows in the same order as ``times``, their
    derivatives with respect to the parameters ``wrt`` to ``SENS`` (if ``sens``), a status
    code and per subject the number of steps, of steps rejected by the error test and of
    Newton failures (``nsteps`` columns). A state with ``positive`` 1 may be integrated in
    log coordinates once it is established (:func:`_switch_to_log`); no step is longer than
    ``max_step`` (inf: no bound).

    A subject with at most ``dense_above`` times is solved landing exactly on each of them
    (the accuracy of a step end); one with more (a plotting grid) by dense output inside
    the steps the tolerance asks for (interpolation error of the order of the tolerance).

    Events of subject i are rows ``ev_off[i]:ev_off[i + 1]`` (sorted by time ``ev_t`` > 0):
    a dose of ``ev_amt`` (NaN: none) adds ``dose(t, pc, amt, y)`` to the states, with the
    sensitivities S⁺ = S + ∂g/∂y·S + ∂g/∂θ; ``ev_cov`` holds new values of the covariate
    slots (after the parameters; NaN: unchanged). Outputs at an event time are taken before
    it (a pre-dose sample); the solver restarts after it.
    It releases the GIL: :mod:`ctkinetics.modeling.compiled` runs slices of a large stack
    on several threads. ``nt``: :func:`specialisation` of n, ``advances``: :func:`advance_list`
    of ``nt`` (the arrays must be C-contiguous, as
    :class:`~ctkinetics.modeling.compiled.CompiledModel` lays them out)."""
    # the log coordinates of the non-negative states (``positive[r]`` = 1: the model file's
    # ``positive = true``; all 0: every state in x), :func:`_switch_to_log`
    W = np.zeros((6, n + 1))
    for r in range(n):
        if positive[r] != 0:
            W[5, r] = 1.0
            W[5, n] += 1.0
    W[1, n] = max_step
    kx_owned = (kernels[0], np.zeros(1), np.zeros((1, 1)), W, nt)
    kx = unowned(kx_owned)
    _solve_range(kx, advances[0], n, nph, PC, times, offsets, wrt, sens, errcon, rtol, atol,
                 max_steps, dense_above, ev_off, ev_t, ev_amt, ev_cov, OUT, SENS, status, nsteps,
                 0, PC.shape[0])
    keep_alive(kx_owned)



@njit(types.void(CLOSEDS_T, int64, M2, V1, int64[::1], int64[::1], boolean, M2,
                 float64[:, :, ::1]), cache=True, error_model="numpy")
def closed_batch(closeds, nph, PC, times, offsets, wrt, sens, OUT, SENS):
    """The closed-form outputs (and derivatives with respect to ``wrt``) of N subjects at
    their own times, laid out as :func:`solve_batch` (``closeds``: :func:`closed_list`)."""
    closed = closeds[0]
    N = PC.shape[0]
    npar_all = PC.shape[1]
    nout = OUT.shape[1]
    o = np.empty(nout)
    do = np.empty((nout, max(npar_all, 1)))
    work = np.empty((max(nph, 1), max(npar_all, 1)))
    for i in range(N):
        pc = PC[i]
        for row in range(offsets[i], offsets[i + 1]):
            closed(times[row], pc, sens, o, do, work)
            for m in range(nout):
                OUT[row, m] = o[m]
                if sens:
                    for k in range(wrt.shape[0]):
                        SENS[row, m, k] = do[m, wrt[k]]
