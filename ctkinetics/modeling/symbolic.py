"""Symbolic form of model expressions: a hash-consed DAG, differentiation, evaluation.

The compiled engine (:mod:`ctkinetics.modeling.compiled`) needs the right-hand side of a
model's ODE, its Jacobian ∂f/∂y, the parameter derivatives ∂f/∂θ, the derivatives of the
initial states, switch times and observables — all from the *validated* syntax tree of each
expression (:attr:`Expression.tree <ctkinetics.modeling.expressions.Expression>`), never from
text. A :class:`Graph` holds every expression of a model as nodes; identical sub-expressions
are one node (hash-consing), so derivatives share their common parts (common-subexpression
elimination for free) and node ids are a topological order (a node's children always have
smaller ids), which is what code generation walks.

Nodes
-----
``('const', value)``, ``('sym', name)`` and operations on child ids: ``add sub mul div pow
neg``, the comparisons ``lt le gt ge`` (1.0 or 0.0), ``where(c, a, b)`` (``a`` where
``c != 0``), the whitelisted functions of the expression language, and four internal
functions that only differentiation creates (``sign``, ``exprel_d``, ``hill_dx``,
``hill_dn``, ``hill_dk``). ``bateman(a, b, t)`` is lowered to
``t·exp(−a t)·exprel((a − b) t)`` when read, so it is differentiated through ``exprel``.

Differentiation rules are the textbook ones; derivatives of piecewise functions are the
derivative of the branch taken (``min``, ``max``, ``where``; ``step`` and comparisons have
derivative 0 away from their jump). ``x·0`` simplifies to 0, as in every symbolic or
algorithmic differentiation tool.

Examples
--------
>>> from ctkinetics.modeling.expressions import compile_expression
>>> g = Graph()
>>> e = g.from_tree(compile_expression("a * exp(-k * t)", {"a", "k", "t"}).tree)
>>> d = g.diff(e, "k")
>>> round(float(g.evaluate(d, {"a": 2.0, "k": 0.5, "t": 1.0})), 6)   # -a t exp(-k t)
-1.213061
"""
from __future__ import annotations

import ast
import math

import numpy as np
from scipy import special

from ctkinetics.errors import ModelFileError
from ctkinetics.modeling.expressions import CONSTANTS

#: Functions of the expression language and their arity (``bateman`` is lowered).
LANGUAGE = {"exp": 1, "expm1": 1, "log": 1, "log1p": 1, "log10": 1, "sqrt": 1, "abs": 1,
            "min": 2, "max": 2, "where": 3, "step": 1, "hill": 3, "exprel": 1}
#: Functions only differentiation creates (never differentiated again).
INTERNAL = {"sign": 1, "exprel_d": 1, "hill_dx": 3, "hill_dn": 3, "hill_dk": 3}
_BINARY = {"add", "sub", "mul", "div", "pow", "lt", "le", "gt", "ge"}
_CMP = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge"}
_BIN = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}


class Graph:
    """A hash-consed expression DAG (see the module docstring).

    Node ids are ints; ``op(i)`` and ``args(i)`` describe node ``i``.
    """

    def __init__(self):
        self._ops: list[str] = []
        self._args: list[tuple] = []
        self._index: dict = {}
        self._dcache: dict = {}
        # id 0 is a placeholder, so that every real node id is truthy (``fold(...) or node``)
        self._ops.append("nil")
        self._args.append(())
        self.zero = self.const(0.0)
        self.one = self.const(1.0)

    # ---- structure ---------------------------------------------------------------------
    def __len__(self):
        return len(self._ops)

    def op(self, i: int) -> str:
        return self._ops[i]

    def args(self, i: int) -> tuple:
        return self._args[i]

    def _node(self, op, args):
        key = (op, args)
        i = self._index.get(key)
        if i is None:
            i = len(self._ops)
            self._ops.append(op)
            self._args.append(args)
            self._index[key] = i
        return i

    def const(self, value) -> int:
        v = float(value)
        if v == 0.0:
            v = 0.0  # one zero (not -0.0 beside 0.0)
        return self._node("const", (v,))

    def sym(self, name: str) -> int:
        return self._node("sym", (str(name),))

    def value(self, i):
        """The number of a constant node, else None."""
        return self._args[i][0] if self._ops[i] == "const" else None

    def symbols(self, i) -> set:
        """Names of the symbols node ``i`` depends on."""
        seen, out, stack = set(), set(), [i]
        while stack:
            j = stack.pop()
            if j in seen:
                continue
            seen.add(j)
            if self._ops[j] == "sym":
                out.add(self._args[j][0])
            elif self._ops[j] != "const":
                stack.extend(self._args[j])
        return out

    def ancestors(self, roots) -> list:
        """All nodes the roots depend on (themselves included), in increasing id order."""
        seen, stack = set(), list(roots)
        while stack:
            j = stack.pop()
            if j in seen:
                continue
            seen.add(j)
            if self._ops[j] not in ("const", "sym"):
                stack.extend(self._args[j])
        return sorted(seen)

    # ---- construction with simplification ---------------------------------------------
    def _fold(self, op, args):
        """Constant folding (only to a finite number, so runtime semantics stay as they are)."""
        vals = [self.value(a) for a in args]
        if any(v is None for v in vals):
            return None
        with np.errstate(all="ignore"):
            r = _NUMERIC[op](*[np.float64(v) for v in vals])
        r = float(r)
        return self.const(r) if math.isfinite(r) else None

    def add(self, a, b):
        if a == self.zero:
            return b
        if b == self.zero:
            return a
        return self._fold("add", (a, b)) or self._node("add", tuple(sorted((a, b))))

    def sub(self, a, b):
        if b == self.zero:
            return a
        if a == b:
            return self.zero
        if a == self.zero:
            return self.neg(b)
        return self._fold("sub", (a, b)) or self._node("sub", (a, b))

    def mul(self, a, b):
        if a == self.zero or b == self.zero:
            return self.zero
        if a == self.one:
            return b
        if b == self.one:
            return a
        if self.value(a) == -1.0:
            return self.neg(b)
        if self.value(b) == -1.0:
            return self.neg(a)
        return self._fold("mul", (a, b)) or self._node("mul", tuple(sorted((a, b))))

    def div(self, a, b):
        if a == self.zero:
            return self.zero
        if b == self.one:
            return a
        return self._fold("div", (a, b)) or self._node("div", (a, b))

    def pow(self, a, b):
        if b == self.one:
            return a
        if b == self.zero:
            return self.one
        return self._fold("pow", (a, b)) or self._node("pow", (a, b))

    def neg(self, a):
        if self._ops[a] == "neg":
            return self._args[a][0]
        v = self.value(a)
        if v is not None:
            return self.const(-v)
        return self._node("neg", (a,))

    def cmp(self, op, a, b):
        return self._fold(op, (a, b)) or self._node(op, (a, b))

    def where(self, c, a, b):
        if a == b:
            return a
        v = self.value(c)
        if v is not None:
            return a if v != 0.0 else b
        return self._node("where", (c, a, b))

    def call(self, name, *args):
        arity = LANGUAGE.get(name, INTERNAL.get(name))
        if arity is None or arity != len(args):
            raise ValueError(f"unknown function {name}/{len(args)}")
        if name == "where":
            return self.where(*args)
        return self._fold(name, args) or self._node(name, tuple(args))

    # ---- from a validated syntax tree -------------------------------------------------
    def from_tree(self, tree, bindings=None) -> int:
        """The node of a validated expression tree.

        ``bindings`` maps names to nodes (definitions are inlined this way); other names
        become symbols; ``pi``/``ln2`` not bound are the constants of the language.
        """
        bindings = bindings or {}

        def walk(n):
            if isinstance(n, ast.Constant):
                return self.const(float(n.value))
            if isinstance(n, ast.Name):
                if n.id in bindings:
                    return bindings[n.id]
                if n.id in CONSTANTS:
                    return self.const(CONSTANTS[n.id])
                return self.sym(n.id)
            if isinstance(n, ast.BinOp):
                a, b = walk(n.left), walk(n.right)
                return getattr(self, _BIN[type(n.op)])(a, b)
            if isinstance(n, ast.UnaryOp):
                a = walk(n.operand)
                return self.neg(a) if isinstance(n.op, ast.USub) else a
            if isinstance(n, ast.Compare):
                return self.cmp(_CMP[type(n.ops[0])], walk(n.left), walk(n.comparators[0]))
            if isinstance(n, ast.IfExp):
                return self.where(walk(n.test), walk(n.body), walk(n.orelse))
            if isinstance(n, ast.Call):
                name = n.func.id
                args = [walk(a) for a in n.args]
                if name == "bateman":  # t·exp(−a t)·exprel((a − b) t), exact also when a = b
                    a, b, t = args
                    return self.mul(self.mul(t, self.call("exp", self.neg(self.mul(a, t)))),
                                    self.call("exprel", self.mul(self.sub(a, b), t)))
                return self.call(name, *args)
            # cannot happen for a validated tree; refuse rather than guess
            raise ModelFileError(None, f"cannot compile {type(n).__name__} in a model expression")

        return walk(tree)

    # ---- differentiation --------------------------------------------------------------
    def diff(self, i: int, var: str) -> int:
        """∂(node i)/∂var, a node."""
        key = (i, var)
        hit = self._dcache.get(key)
        if hit is not None:
            return hit
        op, args = self._ops[i], self._args[i]
        if op == "const":
            d = self.zero
        elif op == "sym":
            d = self.one if args[0] == var else self.zero
        else:
            ds = [self.diff(a, var) for a in args]
            if all(x == self.zero for x in ds):
                d = self.zero
            else:
                d = self._rule(op, args, ds, i)
        self._dcache[key] = d
        return d

    def _rule(self, op, args, ds, node):
        z = self.zero
        if op == "add":
            return self.add(*ds)
        if op == "sub":
            return self.sub(*ds)
        if op == "neg":
            return self.neg(ds[0])
        if op == "mul":
            (a, b), (da, db) = args, ds
            return self.add(self.mul(da, b), self.mul(a, db))
        if op == "div":
            (a, b), (da, db) = args, ds
            # (da·b − a·db)/b² written as da/b − (a/b)·db/b
            return self.sub(self.div(da, b), self.mul(node, self.div(db, b)))
        if op == "pow":
            (a, b), (da, db) = args, ds
            if db == z:  # b·a^(b−1)·da, valid also for a <= 0
                return self.mul(self.mul(b, self.pow(a, self.sub(b, self.one))), da)
            return self.mul(node, self.add(self.mul(db, self.call("log", a)),
                                           self.div(self.mul(b, da), a)))
        if op in ("lt", "le", "gt", "ge", "step", "sign"):
            return z
        if op == "where":
            c, _, _ = args
            return self.where(c, ds[1], ds[2])
        if op in ("min", "max"):
            a, b = args
            cond = self.cmp("le" if op == "min" else "ge", a, b)
            return self.where(cond, ds[0], ds[1])
        (a, *_), da = args, ds[0]
        if op == "exp":
            return self.mul(node, da)
        if op == "expm1":
            return self.mul(self.call("exp", a), da)
        if op == "log":
            return self.div(da, a)
        if op == "log1p":
            return self.div(da, self.add(self.one, a))
        if op == "log10":
            return self.div(da, self.mul(a, self.const(math.log(10.0))))
        if op == "sqrt":
            return self.div(da, self.mul(self.const(2.0), node))
        if op == "abs":
            return self.mul(self.call("sign", a), da)
        if op == "exprel":
            return self.mul(self.call("exprel_d", a), da)
        if op == "hill":
            x, n, k = args
            dx, dn, dk = ds
            parts = [self.mul(self.call(f, x, n, k), dv)
                     for f, dv in (("hill_dx", dx), ("hill_dn", dn), ("hill_dk", dk)) if dv != z]
            total = parts[0]
            for p in parts[1:]:
                total = self.add(total, p)
            return total
        raise ValueError(f"cannot differentiate '{op}' (internal functions are first derivatives only)")

    # ---- numeric evaluation (tests, and the reference for the generated code) ---------
    def evaluate(self, i, env):
        """Value of node ``i`` with numpy semantics; ``env`` maps symbol names to numbers
        or arrays (broadcast together)."""
        vals = {}
        with np.errstate(all="ignore"):
            for j in self.ancestors([i]):
                op, args = self._ops[j], self._args[j]
                if op == "const":
                    vals[j] = np.float64(args[0])
                elif op == "sym":
                    vals[j] = np.asarray(env[args[0]], dtype=float)
                else:
                    vals[j] = _NUMERIC[op](*[vals[a] for a in args])
        return vals[i]


# --------------------------------------------------------------------------------------
# numeric semantics (numpy), shared with the generated code's helpers
# --------------------------------------------------------------------------------------
def hill(x, n, k):
    """x^n/(k^n + x^n) = 1/(1 + (k/x)^n) for x > 0, else 0 (as the expression language)."""
    x = np.asarray(x, float)
    with np.errstate(all="ignore"):
        r = np.power(k / x, n)
        return np.where(x > 0, 1.0 / (1.0 + r), np.where(np.isnan(x), np.nan, 0.0))


def _hill_parts(x, n, k):
    x = np.asarray(x, float)
    with np.errstate(all="ignore"):
        r = np.power(k / x, n)
        hh = r / ((1.0 + r) * (1.0 + r))           # H(1 − H), 0 when r overflows
        hh = np.where(np.isfinite(r), hh, 0.0)
    return x, hh


def hill_dx(x, n, k):
    """∂H/∂x = n·H(1−H)/x for x > 0, else 0."""
    x, hh = _hill_parts(x, n, k)
    with np.errstate(all="ignore"):
        return np.where(x > 0, n * hh / x, 0.0)


def hill_dn(x, n, k):
    """∂H/∂n = −H(1−H)·ln(k/x) for x > 0, else 0."""
    x, hh = _hill_parts(x, n, k)
    with np.errstate(all="ignore"):
        return np.where(x > 0, np.where(hh == 0, 0.0, -hh * np.log(k / x)), 0.0)


def hill_dk(x, n, k):
    """∂H/∂k = −n·H(1−H)/k for x > 0, else 0."""
    x, hh = _hill_parts(x, n, k)
    with np.errstate(all="ignore"):
        return np.where(x > 0, -n * hh / k, 0.0)


def exprel_d(x):
    """d/dx (e^x − 1)/x = (x e^x − e^x + 1)/x², = 1/2 + x/3 + x²/8 + ... near 0."""
    x = np.asarray(x, float)
    with np.errstate(all="ignore"):
        small = np.abs(x) < 1e-3
        xs = np.where(small, 1.0, x)
        big = (xs * np.exp(xs) - np.expm1(xs)) / (xs * xs)
        series = 0.5 + x / 3.0 + x * x / 8.0 + x ** 3 / 30.0
        return np.where(small, series, big)


def _where(c, a, b):
    return np.where(np.asarray(c) != 0, a, b)


_NUMERIC = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "pow": np.power, "neg": np.negative,
    "lt": lambda a, b: np.asarray(a < b, float), "le": lambda a, b: np.asarray(a <= b, float),
    "gt": lambda a, b: np.asarray(a > b, float), "ge": lambda a, b: np.asarray(a >= b, float),
    "where": _where,
    "exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "log10": np.log10,
    "sqrt": np.sqrt, "abs": np.abs, "min": np.minimum, "max": np.maximum,
    "step": lambda x: np.where(np.asarray(x) >= 0, 1.0, 0.0),
    "hill": hill, "exprel": special.exprel, "sign": np.sign,
    "exprel_d": exprel_d, "hill_dx": hill_dx, "hill_dn": hill_dn, "hill_dk": hill_dk,
}
