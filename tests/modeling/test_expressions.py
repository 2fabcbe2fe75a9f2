"""The safe expression language: right numbers for allowed text, clear rejection of the rest."""
import math

import numpy as np
import pytest

from ctkinetics.errors import ModelFileError
from ctkinetics.modeling import load_model
from ctkinetics.modeling.expressions import compile_expression


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a * exp(-b * t)", 2.0 * math.exp(-0.5 * 3.0)),
        ("log(a) + sqrt(4) - abs(-1)", math.log(2.0) + 1.0),
        ("min(a, b) + max(a, b)", 2.5),
        ("where(t > 1, a, b)", 2.0),
        ("a if t < 1 else b", 0.5),
        ("hill(t, 2, 3)", 9.0 / 18.0),
        ("bateman(b, b, t)", 3.0 * math.exp(-1.5)),  # limit a == b: t*exp(-a t)
        ("bateman(b, a, t)", (math.exp(-1.5) - math.exp(-6.0)) / 1.5),
        ("exprel(0)", 1.0),
        ("a ** 2 / -b + ln2", -8.0 + math.log(2)),
    ],
)
def test_allowed_expressions_evaluate_to_hand_values(text, expected):
    f = compile_expression(text, {"a", "b", "t"})
    env = {"a": 2.0, "b": 0.5, "t": 3.0}
    assert float(f(env)) == pytest.approx(expected, rel=1e-12)
    # the same expression on arrays gives the scalar result element-wise
    arr = f({k: np.full(3, v) for k, v in env.items()})
    assert np.allclose(arr, expected, rtol=1e-12)


def test_scalar_and_numpy_paths_agree_on_overflow_and_bad_domains():
    f = compile_expression("exp(a) + log(b) + a / b", {"a", "b"})
    with np.errstate(all="ignore"):
        assert f({"a": 1000.0, "b": 1.0}) == math.inf
        assert math.isnan(f({"a": 0.0, "b": -1.0}))
        assert compile_expression("a / b", {"a", "b"})({"a": 1.0, "b": 0.0}) == math.inf
        assert compile_expression("log(b)", {"b"})({"b": 0.0}) == -math.inf


HOSTILE = {
    "attribute access": "a.__class__",
    "dunder import": '__import__("os").system("true")',
    "huge exponent": "10 ** 1000",
    "power tower": "a ** a ** 9",
    "deep nesting": "exp(" * 60 + "a" + ")" * 60,
    "deep unary chain": "-" * 120 + "a",
    "unknown name": "a * kk",
    "other call": 'open("x")',
    "lambda": "(lambda x: x)(a)",
    "subscript": "a[0]",
    "string literal": '"abc"',
    "keyword argument": "exp(x=a)",
    "comprehension": "[A for A in range(9)]",
    "dunder name": "__builtins__",
    "too long": "+".join(["a"] * 1500),
    "method call": "a.conjugate()",
    "walrus": "(z := a)",
    "huge literal": "1e999 * a",
}


def _model_text(ode="a * A", initial="1", observable="A"):
    return f'''name = "hostile"
title = "t"
reference = "r"

[parameters.a]
default = 1.0
lower = 0.1
upper = 2.0
source = "s"

[states.A]
initial = {initial!r}

[[phases]]
ode = {{ A = {ode!r} }}

[observables]
qpcr = {observable!r}
'''.replace("'", '"') if '"' not in ode + initial + observable else _literal_model(ode, initial, observable)


def _literal_model(ode, initial, observable):
    q = lambda s: "'" + s + "'"  # TOML literal strings keep the double quotes inside
    return (
        'name = "hostile"\ntitle = "t"\nreference = "r"\n\n[parameters.a]\ndefault = 1.0\n'
        'lower = 0.1\nupper = 2.0\nsource = "s"\n\n'
        f"[states.A]\ninitial = {q(initial)}\n\n[[phases]]\node = {{ A = {q(ode)} }}\n\n"
        f"[observables]\nqpcr = {q(observable)}\n"
    )


def test_the_template_itself_is_valid(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(_model_text())
    m = load_model(path)
    assert m.predict(None, [1.0], method="ode")["qpcr"][0] == pytest.approx(math.e, rel=1e-6)


@pytest.mark.parametrize("where", ["ode", "initial", "observable"])
@pytest.mark.parametrize("label", sorted(HOSTILE))
def test_hostile_model_files_are_rejected_with_file_line_and_token(tmp_path, label, where):
    expr = HOSTILE[label]
    path = tmp_path / "hostile.toml"
    path.write_text(_model_text(**{where: expr}))
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    err = info.value
    assert err.file == str(path)
    expected_line = {"ode": 15, "initial": 12, "observable": 18}[where]
    assert err.line == expected_line, str(err)
    assert str(path) in str(err) and f"line {expected_line}" in str(err)
    if label not in ("too long", "deep unary chain", "deep nesting", "string literal", "huge literal"):
        assert err.token, str(err)


def test_messages_name_the_offending_token(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(_model_text(ode="a * kk"))
    with pytest.raises(ModelFileError, match="unknown name 'kk'") as info:
        load_model(path)
    assert info.value.token == "kk"
    path.write_text(_model_text(ode="a.__class__"))
    with pytest.raises(ModelFileError, match="attribute access") as info:
        load_model(path)
    assert info.value.token == "a.__class__"


@pytest.mark.parametrize(
    "mutation, message",
    [
        (("default = 1.0", "default = 5.0"), "lower <= default <= upper"),
        (('source = "s"', 'source = ""'), "source"),
        (("qpcr =", "plasma ="), "observable kind 'plasma' unknown"),
        (("[[phases]]", "[[phases]]\nend = \"a\""), "last phase"),
        (('name = "hostile"', 'name = "Bad Name"'), "lower-case identifier"),
        (("[states.A]", "[states.exp]"), "function name"),
        (('title = "t"', 'title = "t"\nshell = "rm"'), "unknown top-level key 'shell'"),
        (("upper = 2.0", "upper = 2.0\nlower = 0.2"), "not valid TOML"),
    ],
)
def test_invalid_model_files_give_model_file_errors(tmp_path, mutation, message):
    path = tmp_path / "bad.toml"
    path.write_text(_model_text().replace(*mutation, 1))
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_unknown_model_name_lists_the_library():
    with pytest.raises(ModelFileError, match="stein2019"):
        load_model("no_such_model")
