"""Native code for a model: the right-hand side, its Jacobian and parameter derivatives,
initial states, switch times and outputs, generated from the model's expression DAG.

The generated source is a small Python module of scalar arithmetic compiled by numba. It
names only local variables (``_v12``), array slots (``y[0]``, ``pc[3]``), finite float
literals and the helpers of :mod:`ctkinetics.modeling.kernel_support` — never a symbol or
any other text of the model file — so the safe-language guarantee of the model files holds
for the compiled code too.

Symbols map to slots: parameters ``pc[0..P-1]`` (model order), covariates ``pc[P..]``,
states ``y[k]``, time ``t`` and ``tau`` (time since the phase began). Definitions are inlined
(the DAG shares them). Outputs are the states followed by the observables.
"""
from __future__ import annotations

from dataclasses import dataclass

from ctkinetics.modeling.symbolic import Graph

#: Bump when the generated code changes meaning (part of the on-disk cache key).
KERNEL_VERSION = 8

_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}
_CMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_MATH = {"exp", "expm1", "log", "log1p", "log10", "sqrt"}
_HELPER = {"min": "kmin", "max": "kmax", "sign": "ksign", "step": "kstep", "hill": "khill",
           "hill_dx": "khill_dx", "hill_dn": "khill_dn", "hill_dk": "khill_dk",
           "exprel": "kexprel", "exprel_d": "kexprel_d"}


@dataclass
class ModelGraph:
    """Every expression of a model as nodes of one :class:`Graph`.

    ``rhs[p][k]``: dy_k/dt in phase p; ``init[k]``; ``switch[p]``: end of phase p;
    ``outputs``: states then observables (``output_names``); ``closed[p][k]``: closed-form
    state k in phase p (None when the model has none).
    """

    graph: Graph
    params: tuple
    covariates: tuple
    states: tuple
    rhs: list
    init: list
    switch: list
    outputs: list
    output_names: tuple
    closed: list | None
    dosing: list | None = None      # per state: the jump at a dose (None: no [dosing])
    linear: tuple = ()              # linearly interpolated covariates (two slots each)
    with_time: bool = True          # whether the kernel being emitted knows t

    def slot(self, name):
        if name in ("t", "tau", "amt"):
            return name
        if name in self.params:
            return f"pc[{self.params.index(name)}]"
        if name in self.covariates:
            i = len(self.params) + self.covariates.index(name)
            if name in self.linear and self.with_time:
                # value = intercept + slope·t on the current segment (slots set per segment)
                j = len(self.params) + len(self.covariates) + self.linear.index(name)
                return f"(pc[{i}] + pc[{j}] * t)"
            return f"pc[{i}]"
        if name in self.states:
            return f"y[{self.states.index(name)}]"
        raise KeyError(name)


def model_graph(model) -> ModelGraph:
    """The DAG of a :class:`~ctkinetics.modeling.model.Model` (definitions inlined)."""
    g = Graph()
    bind = {}
    for name, expr in model.definitions:
        bind[name] = g.from_tree(expr.tree, bind)
    states = tuple(s.name for s in model.states)
    rhs = [[g.from_tree(ph.ode[s].tree, bind) for s in states] for ph in model.phases]
    init = [g.from_tree(s.initial.tree, bind) for s in model.states]
    switch = [g.from_tree(ph.end.tree, bind) for ph in model.phases[:-1]]
    kinds = tuple(model.observable_exprs)
    outputs = [g.sym(s) for s in states] + [g.from_tree(model.observable_exprs[k].tree, bind)
                                            for k in kinds]
    closed = None
    if model.has_closed_form:
        closed = []
        for ph in model.phases:
            sol = [g.from_tree(ph.solution[s].tree, bind) for s in states]
            sb = dict(bind)
            sb.update(zip(states, sol))
            closed.append(sol + [g.from_tree(model.observable_exprs[k].tree, sb) for k in kinds])
    dosing = None
    if model.dosing:
        dosing = [g.from_tree(model.dosing[s].tree, bind) if s in model.dosing else g.zero
                  for s in states]
    linear = tuple(c.name for c in model.covariate_specs
                   if c.time_varying and c.interpolation == "linear")
    return ModelGraph(g, tuple(model.param_names), tuple(model.covariates), states, rhs, init,
                      switch, outputs, states + kinds, closed, dosing, linear)


# --------------------------------------------------------------------------------------
def _expr(g: Graph, mg: ModelGraph, i: int) -> str:
    op, args = g.op(i), g.args(i)
    if op == "const":
        return f"({args[0]!r})"
    if op == "sym":
        return mg.slot(args[0])
    a = [f"_v{j}" if g.op(j) not in ("const", "sym") else _expr(g, mg, j) for j in args]
    if op in _INFIX:
        return f"{a[0]} {_INFIX[op]} {a[1]}"
    if op == "neg":
        return f"-{a[0]}"
    if op in _CMP:
        return f"1.0 if {a[0]} {_CMP[op]} {a[1]} else 0.0"
    if op == "where":
        return f"{a[1]} if {a[0]} != 0.0 else {a[2]}"
    if op in _MATH:
        return f"math.{op}({a[0]})"
    if op == "abs":
        return f"abs({a[0]})"
    if op in _HELPER:
        return f"{_HELPER[op]}({', '.join(a)})"
    raise ValueError(f"no code for node '{op}'")


def emit(mg: ModelGraph, assignments, indent="    ") -> list[str]:
    """Lines computing every node the ``(target, node)`` assignments need, then the
    assignments (targets are code such as ``out[2]``)."""
    g = mg.graph
    lines = []
    for j in g.ancestors([n for _, n in assignments]):
        if g.op(j) not in ("const", "sym"):
            lines.append(f"{indent}_v{j} = {_expr(g, mg, j)}")
    for target, n in assignments:
        value = f"_v{n}" if g.op(n) not in ("const", "sym") else _expr(g, mg, n)
        lines.append(f"{indent}{target} = {value}")
    return lines


def _by_phase(header, blocks, fill=None):
    """A kernel whose body depends on the phase index ``ph``."""
    out = [header]
    if fill:
        out.append(f"    {fill}")
    if len(blocks) == 1:
        out += blocks[0] or ["    pass"]
        return out
    for p, block in enumerate(blocks):
        out.append(f"    {'if' if p == 0 else 'elif'} ph == {p}:")
        out += [("    " + line) for line in block] or ["        pass"]
    return out


def _nonzero(g, assignments):
    return [(t, n) for t, n in assignments if n != g.zero]


def _start_shift(mg: ModelGraph, p: int, fs, col0: int = 0) -> list[str]:
    """Lines of ``rhs_p`` for phase ``p`` whose right-hand side reads τ = t − start(θ):
    the sensitivity equations need ∂f/∂θ at fixed t, i.e.
        ∂f/∂θ|_t = ∂f/∂θ|_τ − ∂f/∂τ · d(start)/dθ,
    the start being the cumulative maximum of the switch times before it (as the
    integrator's ``_switch_times``: a switch at or below 0 or never reached moves nothing).
    Nothing for a phase whose right-hand side does not read τ (every library model).
    ``col0``: the column of the first parameter in ``out``."""
    g = mg.graph
    dtau = [(m, g.diff(f, "tau")) for m, f in enumerate(fs)]
    dtau = [(m, d) for m, d in dtau if d != g.zero]
    if p == 0 or not dtau:
        return []
    L = ["    prev = 0.0", "    src = -1"]
    mg.with_time = False    # switch times read covariates at t = 0, as switches()
    try:
        L += emit(mg, [(f"sw{k}", mg.switch[k]) for k in range(p)])
        for k in range(p):
            L += [f"    v = sw{k}", "    if v != v:", "        v = math.inf",
                  "    if v > prev:", "        prev = v", f"        src = {k}"]
        mg.with_time = True     # ∂f/∂τ where the right-hand side is evaluated
        L += emit(mg, [(f"_dt{m}", d) for m, d in dtau])
        mg.with_time = False
        for k in range(p):
            shift = _nonzero(g, [(f"_ds{j}", g.diff(mg.switch[k], q))
                                 for j, q in enumerate(mg.params)])
            L.append(f"    if src == {k} and math.isfinite(prev):")
            body = emit(mg, shift, indent="        ")
            for target, _ in shift:
                j = target[3:]
                body += [f"        out[{m}, {col0 + int(j)}] -= _dt{m} * _ds{j}" for m, _ in dtau]
            L += body or ["        pass"]
    finally:
        mg.with_time = True
    return L


def kernel_source(mg: ModelGraph) -> str:
    """Source of the kernel module of one model."""
    g = mg.graph
    L = ["import math",
         "from numba import njit",
         "from ctkinetics.modeling.radau import (RHS_SIG, JAC_SIG, VEC_SIG, MAT_SIG, OUT_SIG, OUTD_SIG,",
         "    CLOSED_SIG, DOSE_SIG, DOSED_SIG, KERNEL_SIG, JACF_SIG)",
         "from ctkinetics.modeling.kernel_support import (kmin, kmax, ksign, kstep, khill, khill_dx,",
         "    khill_dn, khill_dk, kexprel, kexprel_d)",
         "",
         "_O = dict(cache=True, error_model='numpy')",
         f"KERNEL_VERSION = {KERNEL_VERSION}",
         ""]

    def kernel(sig, header, blocks, fill=None):
        L.append(f"@njit({sig}, **_O)")
        L.extend(_by_phase(header, blocks, fill))
        L.append("")

    def timeless(make):
        """Blocks of a kernel without ``t`` (initial states, switch times): covariates read
        their value at t = 0."""
        mg.with_time = False
        try:
            return make()
        finally:
            mg.with_time = True

    params = [p for p in mg.params]
    kernel("RHS_SIG", "def rhs(ph, t, tau, y, pc, out):",
           [emit(mg, [(f"out[{k}]", f) for k, f in enumerate(fs)]) for fs in mg.rhs])
    def entries(fs, wrt, col0=0):
        """(target, node) of out[k, col0 + j] = d fs[k] / d wrt[j] (the nonzero entries)."""
        return _nonzero(g, [(f"out[{k}, {col0 + j}]", g.diff(f, v)) for k, f in enumerate(fs)
                            for j, v in enumerate(wrt)])

    def jacobian(fs, wrt):
        """Code of out[k, j] = d fs[k] / d wrt[j] (the nonzero entries only)."""
        return emit(mg, entries(fs, wrt))

    kernel("JAC_SIG", "def jac(ph, t, tau, y, pc, out):",
           [jacobian(fs, mg.states) for fs in mg.rhs], fill="out[:, :] = 0.0")
    kernel("JAC_SIG", "def rhs_p(ph, t, tau, y, pc, out):",
           [jacobian(fs, params) + _start_shift(mg, p, fs) for p, fs in enumerate(mg.rhs)],
           fill="out[:, :] = 0.0")
    # J, ∂f/∂θ and f at once (the sensitivities need the derivatives at every stage, and log
    # coordinates f beside them): one pass over the nodes they share (exp, powers of the Hill
    # terms), the same operations as each alone
    ns = len(mg.states)
    kernel("JACF_SIG", "def jac_p_f(ph, t, tau, y, pc, f, out):",
           [emit(mg, [(f"f[{k}]", fk) for k, fk in enumerate(fs)] + entries(fs, mg.states)
                 + entries(fs, params, ns)) + _start_shift(mg, p, fs, ns)
            for p, fs in enumerate(mg.rhs)], fill="out[:, :] = 0.0")
    kernel("VEC_SIG", "def init(pc, out):",
           timeless(lambda: [emit(mg, [(f"out[{k}]", f) for k, f in enumerate(mg.init)])]))
    kernel("MAT_SIG", "def init_p(pc, out):", timeless(lambda: [jacobian(mg.init, params)]),
           fill="out[:, :] = 0.0")
    kernel("VEC_SIG", "def switches(pc, out):",
           timeless(lambda: [emit(mg, [(f"out[{k}]", f) for k, f in enumerate(mg.switch)])]))
    kernel("MAT_SIG", "def switches_p(pc, out):", timeless(lambda: [jacobian(mg.switch, params)]),
           fill="out[:, :] = 0.0")
    jumps = mg.dosing or [g.zero] * len(mg.states)
    kernel("DOSE_SIG", "def dose(t, pc, amt, y, out):",
           [emit(mg, [(f"out[{k}]", f) for k, f in enumerate(jumps)])])
    kernel("DOSED_SIG", "def dose_y(t, pc, amt, y, out):", [jacobian(jumps, mg.states)],
           fill="out[:, :] = 0.0")
    kernel("DOSED_SIG", "def dose_p(t, pc, amt, y, out):", [jacobian(jumps, params)],
           fill="out[:, :] = 0.0")
    kernel("OUT_SIG", "def outputs(t, y, pc, out):",
           [emit(mg, [(f"out[{m}]", f) for m, f in enumerate(mg.outputs)])])
    kernel("OUTD_SIG", "def outputs_y(t, y, pc, out):", [jacobian(mg.outputs, mg.states)],
           fill="out[:, :] = 0.0")
    kernel("OUTD_SIG", "def outputs_p(t, y, pc, out):", [jacobian(mg.outputs, params)],
           fill="out[:, :] = 0.0")
    L.extend(_closed_kernel(mg))
    L += _multiplexer()
    return "\n".join(L) + "\n"


#: The kernels behind the one first-class function the integrator calls, by op code.
_OPS = ("rhs(ph, t, tau, y, pc, o1)", "jac(ph, t, tau, y, pc, o2)", "rhs_p(ph, t, tau, y, pc, o2)",
        "init(pc, o1)", "init_p(pc, o2)", "switches(pc, o1)", "switches_p(pc, o2)",
        "outputs(t, y, pc, o1)", "outputs_y(t, y, pc, o2)", "outputs_p(t, y, pc, o2)",
        "dose(t, pc, amt, y, o1)", "dose_y(t, pc, amt, y, o2)", "dose_p(t, pc, amt, y, o2)",
        "jac_p_f(ph, t, tau, y, pc, o1, o2)")


def _multiplexer() -> list[str]:
    """``kernel(op, ...)``: every kernel of the model behind one function (numba types each
    function argument at every call from Python: one argument instead of thirteen)."""
    L = ["@njit(KERNEL_SIG, **_O)", "def kernel(op, ph, t, tau, amt, y, pc, o1, o2):"]
    for op, call in enumerate(_OPS):
        L += [f"    {'if' if op == 0 else 'elif'} op == {op}:", f"        {call}"]
    return L + [""]


def _closed_kernel(mg: ModelGraph) -> list[str]:
    """``closed(t, pc, sens, out, dout, work)``: the closed-form outputs at one time and, if
    ``sens``, their total derivatives with respect to every parameter,
        d out/dθ = ∂out/∂θ − ∂out/∂τ · d(phase start)/dθ,
    the phase start being the cumulative maximum of the switch times (NaN: never reached),
    as :func:`ctkinetics.modeling.solvers.switch_times`. ``work`` is (n_phases, P) scratch.
    A model without a closed form gets a kernel that only writes NaN."""
    g = mg.graph
    P = len(mg.params)
    L = ["@njit(CLOSED_SIG, **_O)", "def closed(t, pc, sens, out, dout, work):"]
    if mg.closed is None:
        return L + ["    out[:] = math.nan", "    dout[:, :] = math.nan", ""]
    nph = len(mg.closed)
    L.append("    ph = 0")
    L.append("    start = 0.0")
    if nph > 1:
        L += ["    prev = 0.0", "    src = -1", "    srcph = -1"]
        L += emit(mg, [(f"sw{k}", f) for k, f in enumerate(mg.switch)])
        for k in range(nph - 1):
            L += [f"    v = sw{k}",
                  "    if v != v:",
                  "        v = math.inf",
                  "    if v > prev:",
                  "        prev = v",
                  f"        src = {k}",
                  "    if t >= prev:",
                  f"        ph = {k + 1}",
                  "        start = prev",
                  "        srcph = src"]
        L += ["    if sens:",
              "        work[0, :] = 0.0",
              "        if ph > 0 and srcph >= 0 and math.isfinite(start):"]
        blocks = []
        for k, f in enumerate(mg.switch):
            assign = _nonzero(g, [(f"work[0, {j}]", g.diff(f, p)) for j, p in enumerate(mg.params)])
            blocks.append((k, emit(mg, assign, indent="                ")))
        for k, block in blocks:
            L.append(f"            {'if' if k == 0 else 'elif'} srcph == {k}:")
            L += block or ["                pass"]
    else:
        L += ["    if sens:", "        work[0, :] = 0.0"]
    L.append("    tau = t - start")
    for p, outs in enumerate(mg.closed):
        L.append(f"    {'if' if p == 0 else 'elif'} ph == {p}:")
        L += emit(mg, [(f"out[{m}]", f) for m, f in enumerate(outs)], indent="        ")
        L.append("        if sens:")
        L.append("            dout[:, :] = 0.0")
        assign = []
        for m, f in enumerate(outs):
            dtau = g.diff(f, "tau")
            for j, name in enumerate(mg.params):
                d = g.diff(f, name)
                if d != g.zero:
                    assign.append((f"dout[{m}, {j}]", d))
            if dtau != g.zero:
                assign.append((f"dtau{m}", dtau))
        L += emit(mg, assign, indent="            ")
        for m, f in enumerate(outs):
            if g.diff(f, "tau") != g.zero:
                L += [f"            for j in range({P}):",
                      f"                dout[{m}, j] -= dtau{m} * work[0, j]"]
    L.append("")
    return L
