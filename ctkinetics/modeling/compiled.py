"""The compiled engine of a model: native kernels + the Radau IIA integrator, batched.

``compiled(model)`` returns the :class:`CompiledModel` of a model, built once per process
(and once per machine: the generated module is kept on disk, keyed by the hash of its
source, and numba caches its machine code beside it). One call of
:meth:`CompiledModel.solve` integrates a whole stack of subjects, each with its own
parameters, covariates, switch times and sampling times, with or without the sensitivities
of every output to chosen parameters; no Python runs per subject or per step.

The cache folder is ``$CTK_CACHE_DIR``, else ``$XDG_CACHE_HOME/ctkinetics`` or
``~/.cache/ctkinetics``; where none is writable a temporary folder is used (compiled again
in every process).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctkinetics.modeling.codegen import kernel_source, model_graph

_LOCK = threading.Lock()
#: Output times per subject beyond which the engine interpolates (dense output) instead of
#: landing on each time: sampling schedules land, plotting grids interpolate.
DENSE_ABOVE = 2000


_RADAU = []


def _radau():
    """The integrator module, imported quietly: numba compiles it on first use in a machine
    (about a minute once; cached afterwards) and calls its first-class function
    arguments 'experimental' each time it compiles a function that takes one (a filter for
    that one message stays on: the compile happens at a solve, not at import). Imported once
    (the warning filters cost ~30 µs a call)."""
    if _RADAU:
        return _RADAU[0]
    import warnings

    warnings.filterwarnings("ignore", message=".*First-class function type.*")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        from ctkinetics.modeling import radau
    _RADAU[:] = [radau]
    return radau


def cache_dir() -> Path:
    """Folder of the generated kernel modules (see the module docstring)."""
    env = os.environ.get("CTK_CACHE_DIR")
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "ctkinetics"
    folder = base / "kernels"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe{os.getpid()}"
        probe.write_text("")
        probe.unlink()
        return folder
    except OSError:
        folder = Path(tempfile.gettempdir()) / f"ctkinetics-kernels-{os.getuid() if hasattr(os, 'getuid') else 0}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def _load_module(source: str):
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    name = f"ctk_kernels_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    path = cache_dir() / f"{name}.py"
    if not path.is_file() or path.read_text() != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)  # atomic: concurrent processes see a whole file
    _radau()
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Events:
    """Doses and covariate changes of N subjects, sorted by time within each subject.

    ``offsets`` (N + 1,) delimit the subjects' rows; ``times`` (E,) > 0; ``amounts`` (E,)
    the dose (NaN: no dose at that row); ``slots`` (E, K) new values of the K covariate
    slots (NaN: unchanged).
    """

    offsets: np.ndarray
    times: np.ndarray
    amounts: np.ndarray
    slots: np.ndarray

    @staticmethod
    def none(n, k):
        return Events(np.zeros(n + 1, dtype=np.int64), np.zeros(0), np.zeros(0),
                      np.zeros((0, k)))

    def take(self, rows):
        """The events of the subjects ``rows`` (in that order)."""
        parts = [np.arange(self.offsets[r], self.offsets[r + 1]) for r in rows]
        idx = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        counts = [p.size for p in parts]
        return Events(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                      self.times[idx], self.amounts[idx],
                      np.ascontiguousarray(self.slots[idx]))


@dataclass
class Solution:
    """Outputs of a batch solve (rows in the order of the flattened times).

    ``values``: (rows, n_outputs) — the states then the observables (``names``);
    ``sens``: (rows, n_outputs, q) derivatives with respect to ``wrt`` or None;
    ``status``: (N,) solver status per subject (0 ok; see :mod:`ctkinetics.modeling.status`);
    ``steps``: (N, 3) per subject: steps (accepted and rejected), steps rejected by the
    error test, Newton failures.
    """

    values: np.ndarray
    sens: np.ndarray | None
    status: np.ndarray
    steps: np.ndarray
    names: tuple
    wrt: tuple


def default_threads() -> int:
    """Threads the engine uses for a large stack: ``$CTK_THREADS``, else the cores this
    process may use (a Dask worker process or a test sets ``CTK_THREADS=1``)."""
    env = os.environ.get("CTK_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


#: Subjects per thread below which a stack is solved on the calling thread.
MIN_PER_THREAD = 32


def _in_threads(run, N, threads):
    """run(i0, i1) over slices of the N subjects, on up to ``threads`` threads."""
    k = 1 if N < 2 * MIN_PER_THREAD else min(threads or default_threads(), N // MIN_PER_THREAD)
    if k <= 1:
        run(0, N)
        return
    from concurrent.futures import ThreadPoolExecutor

    cuts = [N * i // k for i in range(k + 1)]
    with ThreadPoolExecutor(k) as pool:
        for f in [pool.submit(run, a, b) for a, b in zip(cuts, cuts[1:])]:
            f.result()


class CompiledModel:
    """Native kernels and the integrator of one model (use :func:`compiled`)."""

    def __init__(self, model):
        self.model = model
        self.graph = model_graph(model)
        self.source = kernel_source(self.graph)
        self.param_names = self.graph.params
        self.covariate_names = self.graph.covariates
        self.output_names = self.graph.output_names
        self.n_states = len(self.graph.states)
        #: 1 for the states the model file declares positive (log coordinates), the solver's
        #: ``positive`` argument
        self.positive = np.array([int(st.positive) for st in model.states], dtype=np.int64)
        self.n_phases = len(model.phases)
        #: the integrator is compiled for this model's state count (radau.specialisation:
        #: ~30 % faster without sensitivities, a compile of ~1 min per state count, once per
        #: machine) when it is a mechanistic model (states declared positive), the kind whose
        #: fits, population estimation and simulations run the integrator most; the exposure
        #: models augmented with quadrature states and the small models share the integrator
        #: of any size
        self.specialised = bool(self.positive.any()) and not any(
            st.name.startswith(QUADRATURE_PREFIX) for st in model.states)
        self._kernels = None
        self._lists = None

    @property
    def kernels(self):
        if self._kernels is None:
            with _LOCK:
                if self._kernels is None:
                    self._kernels = _load_module(self.source)
        return self._kernels

    @property
    def kernel(self):
        """The kernel as the integrator's argument (:data:`~ctkinetics.modeling.radau.KERNELS_T`)."""
        return self._kernel_lists()[0]

    @property
    def closed_kernel(self):
        """The closed-form kernel as :func:`~ctkinetics.modeling.radau.closed_batch`'s argument."""
        return self._kernel_lists()[1]

    def _kernel_lists(self):
        if self._lists is None:
            module = self.kernels
            radau = _radau()
            with _LOCK:
                if self._lists is None:
                    self._lists = (radau.kernel_list(module.kernel), radau.closed_list(module.closed))
        return self._lists

    def pc_matrix(self, params: dict, covariates: dict, n: int, slopes: dict | None = None) -> np.ndarray:
        """(n, P + C + L) matrix: parameters, covariates (values at t = 0; for a linearly
        interpolated covariate the intercept of its first segment) and the L slopes of the
        linearly interpolated covariates (``slopes``, default 0)."""
        cols = [params[p] for p in self.param_names]
        cols += [covariates[c] for c in self.covariate_names]
        cols += [(slopes or {}).get(c, 0.0) for c in self.graph.linear]
        out = np.empty((n, len(cols)))
        for j, v in enumerate(cols):   # each a scalar or (n,) (broadcast, as numpy does)
            out[:, j] = np.asarray(v, float)
        return out

    @property
    def n_slots(self) -> int:
        """Covariate slots after the parameters (covariates, then linear slopes)."""
        return len(self.covariate_names) + len(self.graph.linear)

    def _layout(self, pc, times, offsets, wrt, sens):
        """The solvers' arrays: contiguous inputs, the parameters differentiated (names and
        their columns in ``pc``) and the output arrays (values (M, outputs), derivatives
        (M, outputs, q) or an empty placeholder)."""
        pc = np.ascontiguousarray(pc, dtype=float)
        times = np.ascontiguousarray(times, dtype=float)
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        names = self.param_names if wrt is None else tuple(wrt)
        index = np.array([self.param_names.index(w) for w in names], dtype=np.int64) if sens \
            else np.zeros(0, dtype=np.int64)
        nout = len(self.output_names)
        out = np.empty((times.shape[0], nout))
        sarr = np.empty((times.shape[0], nout, index.size)) if sens else np.empty((0, nout, 0))
        return pc, times, offsets, names, index, out, sarr

    def solve(self, pc, times, offsets, wrt=None, sens=False, rtol=None, atol=None,
              max_steps=100_000, errcon=False, dense_above=DENSE_ABOVE,
              threads=None, events=None, log_states=None, max_step=None) -> Solution:
        """Integrate N subjects.

        Parameters
        ----------
        pc : (N, P + C) array
            Parameters (model order) then covariates, one row per subject.
        times : (M,) array
            Every subject's times, concatenated; ``offsets`` (N + 1,) delimit them.
        wrt : sequence of parameter names, optional
            Parameters of the sensitivities (default all, if ``sens``).
        sens : bool
            Also compute d output / d parameter.
        rtol, atol : float, optional
            Tolerances (default the model file's).
        max_steps : int
            Steps allowed per subject (a chattering model stops there with a status).
        dense_above : int
            A subject with more output times than this (a plotting grid) is solved with
            dense output (interpolation error of the order of the tolerance) instead of
            landing on every time (the accuracy of a step end).
        events : Events, optional
            Doses after the first and covariate changes, per subject.
        threads : int, optional
            Threads for a large stack (default :func:`default_threads`); the compiled
            solver releases the GIL, so slices of the stack run in parallel.
        errcon : bool
            Include the sensitivities in the error test (CVODES' ``errconS``; off by
            default, as in CVODES: the sensitivities are then the exact derivatives of the
            computed solution, which is what an optimiser needs).
        log_states : bool, optional
            Integrate the states the model file declares ``positive`` in log coordinates
            once established (default the model's ``log_states``, True; False: every state
            in its own units, for comparison).
        max_step : float, optional
            The longest step (default the model's ``max_step``, no bound unless its file's
            [solver] sets one).
        """
        radau = _radau()

        kernel = self.kernel
        pc, times, offsets, names, index, out, sarr = self._layout(pc, times, offsets, wrt, sens)
        N = pc.shape[0]
        status = np.zeros(N, dtype=np.int64)
        steps = np.zeros((N, 3), dtype=np.int64)
        rtol = float(rtol if rtol is not None else self.model.rtol)
        atol = float(atol if atol is not None else self.model.atol)

        if events is None:
            events = Events.none(N, self.n_slots)
        if log_states is None:
            log_states = self.model.log_states
        max_step = float(self.model.max_step if max_step is None else max_step)
        positive = self.positive if log_states else np.zeros_like(self.positive)

        nt = radau.specialisation(self.n_states) if self.specialised else ()
        advances = radau.advance_list(nt)

        def run(i0, i1):
            o0, o1 = offsets[i0], offsets[i1]
            e0, e1 = events.offsets[i0], events.offsets[i1]
            radau.solve_batch(kernel, advances, self.n_states, self.n_phases, pc[i0:i1],
                              times[o0:o1], offsets[i0:i1 + 1] - o0, index, bool(sens),
                              bool(errcon), rtol, atol, int(max_steps), int(dense_above),
                              events.offsets[i0:i1 + 1] - e0, events.times[e0:e1],
                              events.amounts[e0:e1], events.slots[e0:e1], out[o0:o1],
                              sarr[o0:o1] if sens else sarr,
                              status[i0:i1], steps[i0:i1], positive, max_step, nt)

        _in_threads(run, N, threads)
        return Solution(out, sarr if sens else None, status, steps, self.output_names,
                        tuple(names) if sens else ())


    def solve_closed(self, pc, times, offsets, wrt=None, sens=False) -> Solution:
        """The closed-form outputs (and derivatives) laid out as :meth:`solve`."""
        radau = _radau()

        if not self.model.has_closed_form:
            raise ValueError(f"model {self.model.name} has no closed form")
        pc, times, offsets, names, index, out, sarr = self._layout(pc, times, offsets, wrt, sens)
        radau.closed_batch(self.closed_kernel, self.n_phases, pc, times, offsets, index,
                           bool(sens), out, sarr)
        N = pc.shape[0]
        return Solution(out, sarr if sens else None, np.zeros(N, dtype=np.int64),
                        np.zeros((N, 3), dtype=np.int64), self.output_names,
                        tuple(names) if sens else ())


def compiled(model) -> CompiledModel:
    """The compiled engine of ``model`` (one per model content, per process)."""
    cm = getattr(model, "_compiled", None)
    if cm is not None:
        return cm
    cm = CompiledModel(model)  # its kernel module is shared by every model of that source
    try:
        object.__setattr__(model, "_compiled", cm)
    except (AttributeError, TypeError):
        pass
    return cm


#: the names of the quadrature states (no model file can use them: identifiers start with a letter)
QUADRATURE_PREFIX = "_auc_"


class Quadrature:
    """The model augmented with quadrature states Q_k, dQ_k/dt = observable k, Q_k(0) = 0:
    the exact integral of an observable over a window, integrated with the ODE under the
    same error control (no grid, no forced steps)."""

    def __init__(self, model, kinds):
        import ast
        import dataclasses

        from ctkinetics.modeling.expressions import Expression
        from ctkinetics.modeling.parts import Phase, State

        self.kinds = tuple(kinds)
        # names that no model file can use (identifiers start with a letter), never emitted
        self.names = tuple(f"{QUADRATURE_PREFIX}{k}" for k in self.kinds)
        zero = Expression("0", frozenset(), lambda env: 0.0, ast.Constant(0.0))
        # an integral of an observable that cannot be negative (the model's positive states
        # and parameters bounded below by 0, in sums, products, ...) is positive too, and
        # grows like the cells it integrates: integrated in log coordinates as they are
        states = model.states + tuple(
            State(s, zero, "", "", _nonnegative_observable(model, k))
            for s, k in zip(self.names, self.kinds))
        phases = tuple(
            Phase(ph.name, ph.end, {**dict(ph.ode), **{s: model.observable_exprs[k]
                                                       for s, k in zip(self.names, self.kinds)}},
                  None)
            for ph in model.phases)
        self.model = dataclasses.replace(model, states=states, phases=phases)
        self.base = model

    def auc(self, params, covariates, a, b, n):
        """kind -> (n,) ∫_a^b observable dt."""
        cm = compiled(self.model)
        # the quadrature states are outputs (states come first): read them from a solve
        pc = cm.pc_matrix(*_env_parts(self.model, params, covariates, cm), n)
        raw = cm.solve(pc, np.tile([a, b], n), np.arange(n + 1, dtype=np.int64) * 2)
        out = {}
        for k, s in zip(self.kinds, self.names):
            j = cm.output_names.index(s)
            q = raw.values[:, j].reshape(n, 2)
            v = q[:, 1] - q[:, 0]
            v[raw.status != 0] = np.nan
            out[k] = v
        return out


def _nonnegative_observable(model, kind) -> bool:
    """Whether observable ``kind`` is >= 0 for every parameter inside its bounds: built from
    states declared positive, parameters with lower bound >= 0 and definitions that are
    (covariates have no bounds: unknown)."""
    from ctkinetics.modeling.expressions import nonnegative

    names = {s.name for s in model.states if s.positive}
    names |= {p.name for p in model.parameters if p.lower >= 0}
    for name, expr in model.definitions:           # in order: each may use the ones before
        if nonnegative(expr.tree, names):
            names.add(name)
    return nonnegative(model.observable_exprs[kind].tree, names)


def _env_parts(model, params, covariates, cm):
    env, _ = model.environment(params, covariates)
    return ({p: env[p] for p in cm.param_names}, {c: env[c] for c in cm.covariate_names})


_QUAD: dict = {}


def compiled_quadrature(model, kinds) -> Quadrature:
    """The :class:`Quadrature` of a model for some observables (one per process)."""
    key = (id(model), tuple(kinds))
    q = _QUAD.get(key)
    if q is None or q.base is not model:
        q = _QUAD[key] = Quadrature(model, kinds)
    return q
