"""Model files read through the settings home (ctkinetics.schema): every problem of a file in
one ModelFileError, each with its line (counted by hand in the texts below), its key and, for
an expression, the offending token. Structure and types first (all at once), then the model's
own rules and the expressions (all at once)."""
import pytest

from ctkinetics.errors import ModelFileError
from ctkinetics.modeling import load_model
from ctkinetics.modeling.modelfile import parse_model_text

STRUCTURE = '''name = "Bad"
title = "t"
reference = "r"
horizon = -1

[parameters.k]
default = 1.0
lower = 0.5
upper = 3.0
source = "s"

[parameters.V]
default = "ten"
lower = 1
upper = 100
source = ""

[covariates.dose]
default = 1
interpolaton = "step"

[states.A]
initial = "k"
volume = 3

[[phases]]
ode = { A = "-k * A" }

[observables]
qpcr = "A"
'''


def _problems(text):
    with pytest.raises(ModelFileError) as info:
        parse_model_text(text, "m.toml")
    return info.value, [(p.line, p.key) for p in info.value.problems], [p.message for p in info.value.problems]


def test_structure_problems_all_at_once():
    err, where, messages = _problems(STRUCTURE)
    assert where == [(1, "name"), (4, "horizon"), (13, "parameters.V.default"), (16, "parameters.V.source"),
                     (20, "covariates.dose.interpolaton"), (24, "states.A.volume")]
    assert "lower-case identifier" in messages[0] and "got 'Bad'" in messages[0]
    assert messages[2] == "expected a number, got 'ten'"
    assert "did you mean 'interpolation'?" in messages[4]
    # a key the old reader ignored in a [states.X] table is refused now
    assert messages[5].startswith("unknown key 'volume' in [states.A]")
    assert (err.line, err.file) == (1, "m.toml") and str(err).startswith("6 problem(s) in the model file:")


RULES = '''name = "bad"
title = "t"
reference = "r"

[parameters.k]
default = 1.0
lower = 2.0
upper = 3.0
source = "s"

[states.A]
initial = "k * kk"

[states.exp]
initial = 1

[[phases]]
name = "growth"
ode = { A = "-k * A", B = "1" }

[observables]
qpcr = "A.__class__"
plasma = "A"
'''


def test_rules_and_expressions_all_at_once():
    err, where, messages = _problems(RULES)
    assert where == [(5, "parameters.k"), (12, "states.A.initial"), (14, "states.exp"),
                     (19, "phases[1].ode.B"), (19, "phases[1].ode"), (22, "observables.qpcr"),
                     (23, "observables.plasma")]
    assert "lower <= default <= upper" in messages[0]
    assert messages[1].startswith("unknown name 'kk'")  # k is declared even though its bounds are refused
    assert [p.token for p in err.problems][1:4] == ["kk", "exp", "B"]
    assert "function name" in messages[2] and "no expression for state 'exp'" in messages[4]
    assert "attribute access" in messages[5] and "observable kind 'plasma' unknown" in messages[6]
    assert (err.line, err.token) == (5, "k")


def test_a_library_model_is_read_with_its_solver_settings():
    m = load_model("stein2019_comed")
    assert m.rtol == pytest.approx(1e-8)
