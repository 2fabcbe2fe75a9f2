"""The settings-file home (ctkinetics.schema): lines of keys found by hand, every problem of a
file reported at once with file, line, key and what was expected, pydantic imported lazily."""
import subprocess
import sys
from typing import Annotated, Literal, Optional

import pytest
from pydantic import Field, model_validator

from ctkinetics.errors import SettingsError
from ctkinetics.schema import KeyProblems, Problems, TomlDocument, index_lines, salvage, schema_base, types, validate

TEXT = '''# a comment = 1
name = "x"
notes = """
fake = 1
[not.a.table]
"""
[design]
cohort_size = 3
"quoted key" = 2
doses = [
  1, 2,
  3,
]
after = 4

[analytes.car_flow]
kind = "flow"
limits.low = 1

[[rules]]
name = "a"
[[rules]]
name = "b"
guards = [{kind = "x"}]
'''


def test_line_of_every_key_by_hand():
    lines = index_lines(TEXT)
    assert lines[("name",)] == 2
    assert lines[("notes",)] == 3
    assert ("fake",) not in lines and ("not", "a", "table") not in lines  # inside a multi-line string
    assert lines[("design",)] == 7 and lines[("design", "cohort_size")] == 8
    assert lines[("design", "quoted key")] == 9
    assert lines[("design", "doses")] == 10 and lines[("design", "after")] == 14  # not the array's lines
    assert lines[("analytes", "car_flow", "kind")] == 17
    assert lines[("analytes", "car_flow", "limits", "low")] == 18
    assert lines[("rules", 0, "name")] == 21 and lines[("rules", 1, "name")] == 23
    doc = TomlDocument.parse(TEXT, "f.toml")
    assert doc.line(("analytes",)) == 16            # the first line of a table opened by its child
    assert doc.line(("design", "missing_key")) == 7  # a missing key: its table's line
    assert doc.line(("rules", 1, "guards", 0, "kind")) == 24  # inside an inline array: its key


Schema = schema_base()
T = types()


class Section(Schema):
    size: Annotated[T.Integer, Field(ge=1, description="an integer >= 1")] = None
    rate: Annotated[T.Number, Field(gt=0, lt=1, description="a probability in (0, 1)")] = None
    low: T.Number = None
    high: T.Number = None

    @model_validator(mode="after")
    def _order(self):
        if self.low is not None and self.high is not None and self.low > self.high:
            raise KeyProblems(("low", f"must not exceed high ({self.high:g})"))
        return self


class File(Schema):
    name: T.Text
    kind: Literal["a", "b"] = "a"
    section: Optional[Section] = None
    items: dict[str, Section] = {}


def _problems(text):
    doc = TomlDocument.parse(text, "s.toml")
    with pytest.raises(SettingsError) as info:
        validate(doc, File)
    return [(p.line, p.key, p.message) for p in info.value.problems], str(info.value)


def test_every_problem_at_once_with_line_key_and_expected():
    got, text = _problems('kind = "c"\nextra = 1\n[section]\nsize = "3"\nrate = 1.5\nlow = 2\nhigh = 1\n'
                          '[items.one]\nsise = 2\n[sectoin]\nx = 1\n')
    assert got == [
        (1, "kind", "expected one of a, b, got 'c'"),
        (2, "extra", "unknown top-level key 'extra': its settings would be ignored (known: name, kind, "
                     "section, items)"),
        (4, "section.size", "expected an integer >= 1, got '3'"),
        (5, "section.rate", "expected a probability in (0, 1), got 1.5"),
        (9, "items.one.sise", "unknown key 'sise' in [items.one] (did you mean 'size'?): its settings would "
                              "be ignored (known: size, rate, low, high)"),
        (10, "sectoin", "unknown table [sectoin] (did you mean 'section'?): its settings would be ignored "
                        "(known: name, kind, section, items)"),
        (None, "name", "missing: expected a string"),  # a top-level key has no line to point at
    ]
    assert text.startswith("7 problem(s) in s.toml:\n  - s.toml, line 1, key 'kind': expected one of a, b")


def test_consistency_checked_once_types_are_right():
    got, _ = _problems('name = "x"\n[section]\nlow = 2\nhigh = 1\n')
    assert got == [(3, "section.low", "must not exceed high (1)")]


@pytest.mark.parametrize("value, ok", [("3", True), ("3.0", True), ('"3"', False), ("true", False),
                                       ("3.5", False), ("0", False)])
def test_integers_are_whole_numbers_not_text_or_flags(value, ok):
    doc = TomlDocument.parse(f'name = "x"\n[section]\nsize = {value}\n', "s.toml")
    problems = Problems(doc)
    out = validate(doc, File, problems)
    assert (out is not None) == ok and (not problems) == ok
    if ok:
        assert out.section.size == 3 and isinstance(out.section.size, int)


def test_not_toml_names_the_line():
    from ctkinetics.schema import TomlSyntaxError

    with pytest.raises(TomlSyntaxError) as info:
        TomlDocument.parse('a = 1\n[b\nc = 2\n', "bad.toml")
    assert info.value.problem.line == 2 and "not valid TOML" in info.value.problem.message


def test_salvage_keeps_the_keys_without_problems():
    out = salvage(File, {"name": "x", "section": {"size": 0, "rate": 0.5}, "items": {"a": {"size": "x"}}})
    assert out.section.rate == 0.5 and out.section.size is None and out.items["a"].size is None


def test_frozen():
    out = validate(TomlDocument.parse('name = "x"\n', "s.toml"), File)
    with pytest.raises(Exception):
        out.name = "y"


def test_pydantic_is_imported_only_when_a_file_is_read():
    code = ("import sys, ctkinetics, ctkinetics.schema, ctkinetics.data, ctkinetics.modeling, "
            "ctkinetics.report, ctkinetics.trialsim, ctkinetics.cli.main; "
            "print('pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
