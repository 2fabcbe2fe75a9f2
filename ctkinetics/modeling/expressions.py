"""The safe expression language of model files.

Model files are text from anywhere, so their expressions are never handed to ``eval``. An
expression is parsed with :mod:`ast`, checked node by node against a whitelist, and turned
into a tree of small Python closures over numpy ufuncs. The result is vectorised: every name
may be bound to a scalar or an array, and numpy broadcasting does the rest.

Allowed
-------
- numbers (int or float literals), names of parameters, covariates, states, definitions and
  ``t`` (time, days) / ``tau`` (time since the current phase started, days);
- ``+ - * / **`` and unary ``-``/``+``; comparisons ``< <= > >=`` (1.0 or 0.0);
  ``a if cond else b`` (elementwise);
- the functions in :data:`FUNCTIONS` (``exp``, ``log``, ``sqrt``, ``hill``, ``exprel`` ...).

Rejected (:class:`~ctkinetics.errors.ModelFileError` naming file, line and token)
--------------------------------------------------------------------------------
attribute access, subscripts, lambdas, comprehensions, strings, keyword or starred
arguments, calls of anything not whitelisted, names starting with ``_``, unknown names,
constant exponents larger than :data:`MAX_EXPONENT` and power towers, expressions longer than
:data:`MAX_LENGTH` characters, with more than :data:`MAX_NODES` nodes, or nested deeper than
:data:`MAX_DEPTH`.

Examples
--------
>>> f = compile_expression("R0 * exp(rho * t)", {"R0", "rho", "t"})
>>> float(f({"R0": 2.0, "rho": 0.0, "t": 3.0}))
2.0
"""
from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
from scipy import special

from ctkinetics.errors import ModelFileError

MAX_LENGTH = 2000
MAX_NODES = 400
MAX_DEPTH = 40
MAX_EXPONENT = 64.0

#: Names an expression may always use besides the model's own symbols.
TIME_NAMES = ("t", "tau")


def _hill(x, n, x50):
    """Hill function x^n / (x50^n + x^n), written to stay finite for large x."""
    if type(x) is float and type(n) is float and type(x50) is float:
        if x <= 0.0:
            return 0.0
        try:
            return 1.0 / (1.0 + (x50 / x) ** n)
        except (OverflowError, ZeroDivisionError):
            return 0.0
    x = np.maximum(x, 0.0)
    # (x/x50)^n / (1 + (x/x50)^n) = 1 / (1 + (x50/x)^n); the second form avoids inf/inf.
    with np.errstate(divide="ignore", over="ignore"):
        r = np.power(x50 / x, n)
    return 1.0 / (1.0 + r)


def _bateman(a, b, t):
    """(exp(-a t) - exp(-b t)) / (b - a), exact also when a == b (then t exp(-a t)).

    Rewritten as t exp(-a t) * exprel(-(b - a) t) with exprel(x) = (e^x - 1)/x.
    """
    return t * np.exp(-a * t) * special.exprel(-(b - a) * t)


def _where(cond, a, b):
    return np.where(np.asarray(cond) != 0, a, b)


def _step(x):
    """Heaviside step: 1.0 for x >= 0 else 0.0."""
    return np.where(np.asarray(x) >= 0, 1.0, 0.0)


def _fast(math_fn, numpy_fn):
    """Use ``math`` on a plain float (20x faster than a numpy call on a scalar), numpy
    otherwise; fall back to numpy (inf / nan, no exception) where ``math`` raises."""

    def f(x):
        if type(x) is float:
            try:
                return math_fn(x)
            except (OverflowError, ValueError):
                return float(numpy_fn(x))
        return numpy_fn(x)

    f.__name__ = numpy_fn.__name__
    return f


def _fast2(py_fn, numpy_fn):
    def f(a, b):
        if type(a) is float and type(b) is float:
            return py_fn(a, b)
        return numpy_fn(a, b)

    return f


def _div(a, b):
    try:
        return a / b
    except ZeroDivisionError:
        return float(np.divide(a, b))


def _pow(a, b):
    if type(a) is float and type(b) is float:
        if a > 0.0:
            try:
                return a**b
            except OverflowError:
                return math.inf
        return float(np.power(a, b))  # negative base: nan, not a complex number
    return np.power(a, b)


#: Whitelisted functions: name -> (callable, number of arguments).
FUNCTIONS: dict[str, tuple[Callable, int]] = {
    "exp": (_fast(math.exp, np.exp), 1),
    "expm1": (_fast(math.expm1, np.expm1), 1),
    "log": (_fast(math.log, np.log), 1),
    "log1p": (_fast(math.log1p, np.log1p), 1),
    "log10": (_fast(math.log10, np.log10), 1),
    "sqrt": (_fast(math.sqrt, np.sqrt), 1),
    "abs": (_fast(abs, np.abs), 1),
    "min": (_fast2(min, np.minimum), 2),
    "max": (_fast2(max, np.maximum), 2),
    "where": (_where, 3),
    "step": (_step, 1),
    "hill": (_hill, 3),
    "exprel": (special.exprel, 1),
    "bateman": (_bateman, 3),
}

#: Named constants.
CONSTANTS = {"pi": math.pi, "ln2": math.log(2.0)}

# Python operators, not numpy ufuncs: they dispatch to numpy for arrays and are ~20x faster
# on plain floats (the scalar path of individual fits and single-subject ODEs).
_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: _div,
    ast.Pow: _pow,
}
_CMPOPS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}


@dataclass(frozen=True)
class Expression:
    """A compiled, vectorised expression.

    Attributes
    ----------
    text : str
        The source text as written in the model file.
    names : frozenset of str
        The symbols it reads (parameters, states, covariates, definitions, ``t``, ``tau``).
    """

    text: str
    names: frozenset
    _fn: Callable = field(repr=False, compare=False)
    #: The validated syntax tree (only whitelisted nodes): the compiled engine
    #: (:mod:`ctkinetics.modeling.symbolic`) differentiates and generates code from it,
    #: never from the text.
    tree: ast.AST = field(default=None, repr=False, compare=False)

    def __call__(self, env: Mapping[str, object]):
        # No np.errstate here: entering it costs microseconds, and expressions are called in
        # the ODE's inner loop. Callers that may overflow wrap a whole batch in quiet().
        return self._fn(env)


def quiet():
    """Context silencing numpy floating-point warnings (overflow of a discarded branch)."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")


def compile_expression(
    text,
    allowed_names,
    *,
    file: str | None = None,
    line: int | None = None,
) -> Expression:
    """Validate ``text`` and compile it to a vectorised callable ``f(env) -> array``.

    Parameters
    ----------
    text : str or number
        The expression. A bare number (TOML ``0`` or ``1.5``) is accepted as a constant.
    allowed_names : iterable of str
        Symbols the expression may read (besides :data:`CONSTANTS`).
    file, line : optional
        Where the expression comes from, for error messages.

    Raises
    ------
    ModelFileError
        For anything outside the language (see the module docstring).
    """
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ModelFileError(file, f"an expression must be a string or a number, got {type(text).__name__}", line)
    if not isinstance(text, str):
        value = float(text)
        if not math.isfinite(value):
            raise ModelFileError(file, "number out of range", line, str(text)[:30])
        return Expression(str(text), frozenset(), lambda env, v=value: v, ast.Constant(value))
    if len(text) > MAX_LENGTH:
        raise ModelFileError(file, f"expression longer than {MAX_LENGTH} characters", line, text[:30] + "...")
    if not text.strip():
        raise ModelFileError(file, "empty expression", line)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ModelFileError(file, f"not a valid expression: {exc.msg}", line, exc.text.strip() if exc.text else None) from None
    except (RecursionError, MemoryError, ValueError):
        raise ModelFileError(file, "expression too deeply nested", line, text[:30]) from None
    allowed = set(allowed_names)
    checker = _Compiler(allowed, file, line)
    fn = checker.compile(tree.body, depth=1)
    if checker.count > MAX_NODES:
        raise ModelFileError(file, f"expression has more than {MAX_NODES} operations", line, text[:30])
    return Expression(text, frozenset(checker.names), fn, tree.body)


class _Compiler:
    """Walks a parsed expression: checks each node and builds its closure."""

    def __init__(self, allowed, file, line):
        self.allowed = allowed
        self.file = file
        self.line = line
        self.names: set[str] = set()
        self.count = 0

    def fail(self, message, token):
        raise ModelFileError(self.file, message, self.line, token)

    def compile(self, node, depth):
        self.count += 1
        if depth > MAX_DEPTH:
            self.fail(f"expression nested deeper than {MAX_DEPTH} levels", _token(node))
        if self.count > MAX_NODES:
            self.fail(f"expression has more than {MAX_NODES} operations", _token(node))
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            self.fail(f"{_describe(node)} is not allowed in a model expression", _token(node))
        return method(node, depth + 1)

    def _Constant(self, node, depth):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail("only numbers are allowed as literals", repr(v)[:30])
        try:
            value = float(v)  # never Python ints: no unbounded integer arithmetic
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            self.fail("number out of range", repr(v)[:30])
        return lambda env: value

    def _Name(self, node, depth):
        name = node.id
        if name.startswith("_"):
            self.fail("names starting with '_' are not allowed", name)
        if name in CONSTANTS and name not in self.allowed:
            value = CONSTANTS[name]
            return lambda env: value
        if name in FUNCTIONS:
            self.fail(f"'{name}' is a function; call it as {name}(...)", name)
        if name not in self.allowed:
            known = ", ".join(sorted(self.allowed)) or "none"
            self.fail(f"unknown name '{name}' (known here: {known})", name)
        self.names.add(name)
        return lambda env: env[name]

    def _BinOp(self, node, depth):
        op = _BINOPS.get(type(node.op))
        if op is None:
            self.fail(f"operator {type(node.op).__name__} is not allowed", _token(node))
        if isinstance(node.op, ast.Pow):
            self._check_power(node)
        left = self.compile(node.left, depth)
        right = self.compile(node.right, depth)
        return lambda env: op(left(env), right(env))

    def _check_power(self, node):
        exp = node.right
        if isinstance(exp, ast.UnaryOp) and isinstance(exp.op, (ast.USub, ast.UAdd)):
            exp = exp.operand
        if isinstance(exp, ast.Constant) and isinstance(exp.value, (int, float)) and not isinstance(exp.value, bool):
            if abs(float(exp.value)) > MAX_EXPONENT:
                self.fail(f"constant exponent larger than {MAX_EXPONENT:g}", _token(node))
        for sub in ast.walk(node.right):
            if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Pow):
                self.fail("power towers (a ** b ** c) are not allowed", _token(node))

    def _UnaryOp(self, node, depth):
        operand = self.compile(node.operand, depth)
        if isinstance(node.op, ast.USub):
            return lambda env: -operand(env)
        if isinstance(node.op, ast.UAdd):
            return operand
        self.fail(f"operator {type(node.op).__name__} is not allowed", _token(node))

    def _Compare(self, node, depth):
        if len(node.ops) != 1:
            self.fail("chained comparisons are not allowed; use two comparisons", _token(node))
        op = _CMPOPS.get(type(node.ops[0]))
        if op is None:
            self.fail(f"comparison {type(node.ops[0]).__name__} is not allowed (use < <= > >=)", _token(node))
        left = self.compile(node.left, depth)
        right = self.compile(node.comparators[0], depth)
        return lambda env: np.asarray(op(left(env), right(env)), dtype=float)

    def _IfExp(self, node, depth):
        cond = self.compile(node.test, depth)
        a = self.compile(node.body, depth)
        b = self.compile(node.orelse, depth)
        return lambda env: _where(cond(env), a(env), b(env))

    def _Call(self, node, depth):
        if not isinstance(node.func, ast.Name):
            self.fail("only calls of whitelisted functions are allowed", _token(node.func))
        name = node.func.id
        if name not in FUNCTIONS:
            self.fail(f"function '{name}' is not allowed (allowed: {', '.join(sorted(FUNCTIONS))})", name)
        if node.keywords:
            self.fail("keyword arguments are not allowed", name)
        if any(isinstance(a, ast.Starred) for a in node.args):
            self.fail("starred arguments are not allowed", name)
        fn, nargs = FUNCTIONS[name]
        if len(node.args) != nargs:
            self.fail(f"{name}() takes {nargs} argument(s), got {len(node.args)}", name)
        args = [self.compile(a, depth) for a in node.args]
        if nargs == 1:
            (a0,) = args
            return lambda env: fn(a0(env))
        if nargs == 2:
            a0, a1 = args
            return lambda env: fn(a0(env), a1(env))
        return lambda env: fn(*(a(env) for a in args))


#: functions whose value is >= 0 whatever their arguments
_NONNEG_ALWAYS = {"exp", "sqrt", "abs", "step", "exprel"}
#: functions that are >= 0 when every argument is
_NONNEG_IF_ARGS = {"min", "max", "hill", "expm1", "log1p"}


def nonnegative(tree, names) -> bool:
    """True if the expression (a validated tree) is >= 0 (or not a number) whenever every
    symbol in ``names`` is >= 0: a sufficient check on its structure (sums, products,
    quotients and powers of such symbols and of non-negative constants, exp, ...), False
    when unsure. Used to let the solver integrate an observable's integral in log coordinates."""
    if isinstance(tree, ast.Expression):
        return nonnegative(tree.body, names)
    if isinstance(tree, ast.Constant):
        return isinstance(tree.value, (int, float)) and tree.value >= 0
    if isinstance(tree, ast.Name):
        return tree.id in names or (tree.id in CONSTANTS and CONSTANTS[tree.id] >= 0)
    if isinstance(tree, ast.UnaryOp):
        return isinstance(tree.op, ast.UAdd) and nonnegative(tree.operand, names)
    if isinstance(tree, ast.BinOp):
        if isinstance(tree.op, (ast.Add, ast.Mult, ast.Div)):
            return nonnegative(tree.left, names) and nonnegative(tree.right, names)
        if isinstance(tree.op, ast.Pow):
            return nonnegative(tree.left, names)
        return False
    if isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name):
        if tree.func.id in _NONNEG_ALWAYS:
            return True
        if tree.func.id in _NONNEG_IF_ARGS:
            return all(nonnegative(a, names) for a in tree.args)
    return False


def _describe(node) -> str:
    kinds = {
        "Attribute": "attribute access",
        "Subscript": "subscript",
        "Lambda": "lambda",
        "ListComp": "comprehension",
        "GeneratorExp": "generator",
        "BoolOp": "and/or",
        "NamedExpr": "assignment",
        "JoinedStr": "string",
        "List": "list",
        "Tuple": "tuple",
        "Dict": "dict",
        "Set": "set",
    }
    return kinds.get(type(node).__name__, type(node).__name__)


def _token(node) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001 - only for a message
        text = type(node).__name__
    return text if len(text) <= 40 else text[:37] + "..."
