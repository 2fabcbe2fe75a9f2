"""Settings files: a TOML document + a schema -> a validated, immutable object (layer 0).

The one home of how ctkinetics reads its TOML files (``study.toml``, model files, report
settings, trial specs). A file's *schema* is a tree of frozen pydantic models (subclasses of
:class:`Schema`, which refuse unknown keys and never coerce text into numbers) whose fields
carry their range and, as ``description``, what is expected in words. :func:`validate` checks
the whole document and reports **every** problem of the file at once, each naming the file,
the line, the dotted key and what was expected::

    study.toml, line 14, key 'design.cohort_sise': unknown key in [design] (did you mean
    'cohort_size'?) (known: target_dlt_rate, ...)
    study.toml, line 21, key 'analytes.car_flow.kind': expected one of qpcr, flow, bcell, conc,
    got 'cells'

Consistency between keys of one table is checked in the table's ``@model_validator(mode=
"after")``, which raises :class:`KeyProblems` to name the keys at fault. Expressions (model
files) are never evaluated here: a schema checks structure and types only.

pydantic is imported lazily (``ctk --help`` and ``import ctkinetics`` stay free of it): this
module itself imports nothing heavy; the schemas live in modules imported by the readers
when a file is read.
"""
from __future__ import annotations

import difflib
import re
import tomllib
import types as types_module
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ctkinetics.errors import SettingProblem, SettingsError

MAX_PROBLEMS = 50


def suggest(name, known) -> str:
    """``" (did you mean 'design'?)"`` when ``name`` is close to one of ``known``, else ``""``.

    >>> suggest("desing", ["study", "design"])
    " (did you mean 'design'?)"
    """
    close = difflib.get_close_matches(str(name).lower(), [str(k).lower() for k in known], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class KeyProblems(ValueError):
    """Raised by a schema's model validator to name the keys (relative to its table) at fault.

    >>> KeyProblems(("utilities", "u(efficacy, no DLT) must be the largest")).items[0][0]
    'utilities'
    """

    def __init__(self, *items):
        self.items = [(k if isinstance(k, tuple) else tuple(str(k).split(".")) if k else (), m) for k, m in items]
        super().__init__("; ".join(m for _, m in self.items))


def schema_base():
    """The base class of every settings schema: frozen, unknown keys refused, strict types
    (no text read as a number, no number as a flag). Built on first use (imports pydantic)."""
    global _SCHEMA_BASE
    if _SCHEMA_BASE is None:
        from pydantic import BaseModel, ConfigDict

        class Schema(BaseModel):
            model_config = ConfigDict(extra="forbid", frozen=True, strict=True,
                                      allow_inf_nan=False, populate_by_name=True)

        _SCHEMA_BASE = Schema
    return _SCHEMA_BASE


_SCHEMA_BASE = None


def types():
    """The TOML value types shared by every schema (imports pydantic; call from a schema
    module). ``Integer`` accepts ``3`` and ``3.0`` (never ``3.5``, ``"3"`` or ``true``);
    ``Number`` a finite int or float; ``Text`` a string; ``Flag`` true/false; ``Day`` text of
    a TOML date (``2026-01-01`` or ``"2026-01-01"``)."""
    global _TYPES
    if _TYPES is None:
        import datetime

        from pydantic import BeforeValidator, Field

        def integral(v):
            return int(v) if isinstance(v, float) and v.is_integer() else v

        def day(v):
            return v.isoformat() if isinstance(v, (datetime.date, datetime.datetime)) else v

        _TYPES = _Types(
            Integer=typing.Annotated[int, BeforeValidator(integral)],
            Number=typing.Annotated[float, Field(allow_inf_nan=False)],
            Text=str, Flag=bool, Day=typing.Annotated[str, BeforeValidator(day)])
    return _TYPES


@dataclass(frozen=True)
class _Types:
    Integer: object
    Number: object
    Text: object
    Flag: object
    Day: object


_TYPES = None


# ---------------------------------------------------------------------------------------------
# The document: parsed data and the line of every table and key
# ---------------------------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)(.*?)\]\]?\s*(#.*)?$")
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _split_key(text: str) -> tuple | None:
    """The parts of a (dotted, possibly quoted) TOML key, or None when it is not one."""
    parts, i, text = [], 0, text.strip()
    while i < len(text):
        c = text[i]
        if c in "\"'":
            j = text.find(c, i + 1)
            if j < 0:
                return None
            parts.append(text[i + 1:j])
            i = j + 1
        else:
            m = _BARE.match(text, i)
            if not m:
                return None
            parts.append(m.group())
            i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text):
            if text[i] != ".":
                return None
            i += 1
            while i < len(text) and text[i] in " \t":
                i += 1
    return tuple(parts) or None


def _key_and_rest(line: str):
    """``(key parts, value text)`` of a ``key = value`` line, else None."""
    in_quote = None
    for i, c in enumerate(line):
        if in_quote:
            if c == in_quote:
                in_quote = None
        elif c in "\"'":
            in_quote = c
        elif c == "=":
            key = _split_key(line[:i])
            return (key, line[i + 1:]) if key else None
        elif c == "#":
            return None
    return None


def _bracket_depth(value: str, depth: int) -> tuple[int, str | None]:
    """Bracket depth after ``value`` (outside strings) and an unclosed multi-line string."""
    i = 0
    while i < len(value):
        if value.startswith('"""', i) or value.startswith("'''", i):
            delim = value[i:i + 3]
            j = value.find(delim, i + 3)
            if j < 0:
                return depth, delim
            i = j + 3
            continue
        c = value[i]
        if c in "\"'":
            j = i + 1
            while j < len(value) and value[j] != c:
                j += 2 if c == '"' and value[j] == "\\" else 1
            i = j + 1
            continue
        if c == "#":
            break
        depth += (c in "[{") - (c in "]}")
        i += 1
    return depth, None


def index_lines(text: str) -> dict:
    """The line (1-based) of every table header and key of a TOML text, by key path (array
    of tables as integer positions): ``{("design",): 5, ("design", "cohort_size"): 9, ...}``.

    >>> index_lines('a = 1\\n[t.u]\\nb = "x"\\n[[p]]\\nc = 2\\n[[p]]\\nc = 3\\n')[("p", 1, "c")]
    7
    """
    index: dict = {}
    arrays: dict = {}
    table: tuple = ()
    depth, open_string = 0, None
    for number, line in enumerate(text.splitlines(), start=1):
        if open_string:
            if open_string in line:
                depth, open_string = _bracket_depth(line.split(open_string, 1)[1], depth)
            continue
        if depth > 0:
            depth, open_string = _bracket_depth(line, depth)
            continue
        header = _HEADER.match(line)
        if header and (key := _split_key(header.group(2))):
            table = _with_positions(key, arrays)
            if header.group(1) == "[[":
                arrays[key] = arrays.get(key, -1) + 1
                table = _with_positions(key, arrays)
            index.setdefault(table, number)
            continue
        found = _key_and_rest(line)
        if found:
            key, rest = found
            index.setdefault(table + key, number)
            depth, open_string = _bracket_depth(rest, 0)
    return index


def _with_positions(key: tuple, arrays: dict) -> tuple:
    """A header's path with the current position of every array of tables on it."""
    out = []
    for i in range(len(key)):
        out.append(key[i])
        if key[: i + 1] in arrays:
            out.append(arrays[key[: i + 1]])
    return tuple(out)


@dataclass(frozen=True)
class TomlDocument:
    """A parsed TOML file: its data and the line of each table and key (None without text)."""

    file: str
    data: dict
    lines: dict = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, text: str, file: str = "<settings>") -> "TomlDocument":
        """Parse TOML text; a syntax error is a :class:`TomlSyntaxError` naming the line."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            raise TomlSyntaxError(SettingProblem(file, int(m.group(1)) if m else None, None,
                                                 f"not valid TOML: {exc}")) from None
        except RecursionError:
            raise TomlSyntaxError(SettingProblem(file, None, None, "not valid TOML: nested too deeply")) from None
        return cls(file, data, index_lines(text))

    def line(self, loc) -> int | None:
        """The line of a key path: its own line, else the first line of the table it opens,
        else the line of the nearest enclosing key or table."""
        loc = tuple(loc)
        if loc in self.lines:
            return self.lines[loc]
        inside = [n for k, n in self.lines.items() if k[: len(loc)] == loc]
        if inside and loc:
            return min(inside)
        for n in range(len(loc) - 1, 0, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return None


def as_document(doc, file: str = "<settings>") -> TomlDocument:
    """``doc`` itself when it is a :class:`TomlDocument`, else a parsed mapping without lines."""
    return doc if isinstance(doc, TomlDocument) else TomlDocument(str(file), doc if doc is not None else {})


class TomlSyntaxError(Exception):
    """A file that is not TOML (carries its one :class:`SettingProblem`)."""

    def __init__(self, problem: SettingProblem):
        self.problem = problem
        super().__init__(str(problem))


def read_toml(path, what: str = "settings file", max_bytes: int | None = None) -> TomlDocument:
    """Read a UTF-8 TOML file. Raises :class:`TomlSyntaxError` (unreadable, too large, not
    UTF-8, not TOML) with the problem named; the reader turns it into its own error type."""
    path = Path(path)
    file = str(path)

    def fail(message, line=None):
        return TomlSyntaxError(SettingProblem(file, line, None, message))

    if path.is_dir():
        raise fail(f"is a folder; expected a {what} (TOML)")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise fail(f"file not found (expected a {what})") from None
    except OSError as exc:
        raise fail(f"cannot read the {what}: {exc.strerror or exc}") from None
    if max_bytes is not None and len(raw) > max_bytes:
        raise fail(f"{what} larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(f"{what} is not UTF-8 text", raw[: exc.start].count(b"\n") + 1) from None
    return TomlDocument.parse(text, file)


# ---------------------------------------------------------------------------------------------
# Problems: all of a file's, with file, line, key and what was expected
# ---------------------------------------------------------------------------------------------

class Problems:
    """The problems of one settings file, each a :class:`SettingProblem` (file, line, key,
    message). ``add`` takes a key path relative to ``prefix``; ``raise_if_any(error)`` raises
    them together as ``error.from_problems(...)`` (SettingsError, ModelFileError or
    DataValidationError: each reader keeps its error type).

    >>> doc = TomlDocument.parse("[design]\\ncohort_size = 0\\n", "study.toml")
    >>> p = Problems(doc)
    >>> p.add(("design", "cohort_size"), "expected an integer >= 1, got 0")
    >>> print(p.problems[0])
    study.toml, line 2, key 'design.cohort_size': expected an integer >= 1, got 0
    """

    def __init__(self, doc: TomlDocument, prefix: tuple = (), cap: int = MAX_PROBLEMS, sink=None):
        self.doc, self.prefix, self.cap, self.sink = doc, tuple(prefix), cap, sink
        self.problems: list[SettingProblem] = []
        self.truncated = 0

    def add(self, loc, message: str, token: str | None = None) -> None:
        """A problem at a key path (a tuple, or dotted text), relative to ``prefix``."""
        loc = self.prefix + (tuple(loc) if isinstance(loc, (tuple, list)) else
                             tuple(str(loc).split(".")) if loc else ())
        self.add_problem(SettingProblem(self.doc.file, self.doc.line(loc), dotted(loc) or None, message, token))

    def add_problem(self, problem: SettingProblem) -> None:
        """Add a problem as it is (``sink``: a data-layer ProblemCollector that takes it)."""
        if self.sink is not None:
            self.sink.add_problem(problem)
            self.problems.append(problem)
        elif len(self.problems) >= self.cap:
            self.truncated += 1
        else:
            self.problems.append(problem)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self, error=SettingsError) -> None:
        if self.problems:
            in_order = sorted(self.problems, key=lambda p: p.row if p.row is not None else 1 << 30)
            raise error.from_problems(in_order, truncated=self.truncated)


def dotted(loc) -> str:
    """A key path as users write it: ``phases[2].ode.E`` (array positions 1-based)."""
    out = ""
    for part in loc:
        out += f"[{part + 1}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out


def validate(doc: TomlDocument, schema, problems: Problems | None = None, data=None):
    """``schema`` validated on ``doc.data`` (or ``data``, at ``problems.prefix``): the frozen
    object, or None when there are problems; every problem goes to ``problems`` (a new
    :class:`Problems` raising :class:`SettingsError` when None)."""
    from pydantic import ValidationError

    own = problems is None
    problems = Problems(doc) if own else problems
    data = doc.data if data is None else data
    try:
        result = schema.model_validate(data)
    except ValidationError as exc:
        found = [pair for error in exc.errors(include_url=False) for pair in _explain(error, schema, data)]
        for loc, message in sorted(found, key=lambda p: (doc.line(problems.prefix + tuple(p[0])) or 1 << 30)):
            problems.add(loc, message)
        result = None
    if own:
        problems.raise_if_any()
    return result


def salvage(schema, data, rounds: int = 8):
    """Best effort after :func:`validate` reported problems: ``schema`` validated on ``data``
    with every key that has a problem left out (a missing key: the table that lacks it), so
    that a reader can go on checking other files against the rest; None when that fails.

    >>> from pydantic import Field
    >>> class Sec(schema_base()):
    ...     a: int = 1
    ...     b: int = 2
    >>> salvage(Sec, {"a": "x", "b": 3})
    Sec(a=1, b=3)
    """
    import copy

    from pydantic import ValidationError

    data = copy.deepcopy(data)
    for _ in range(rounds):
        try:
            return schema.model_validate(data)
        except ValidationError as exc:
            paths = {_data_path(e["loc"], data) for e in exc.errors(include_url=False)}
            removed = [_remove(data, p) for p in sorted(paths, key=lambda p: (len(p), p), reverse=True)]
            if not any(removed):
                return None
    return None


def _remove(data, path) -> bool:
    """Delete the item at ``path`` (or, when it is missing, the table that should hold it)."""
    for target in (path, path[:-1]):
        if not target:
            return False
        node = data
        try:
            for part in target[:-1]:
                node = node[part]
        except (KeyError, IndexError, TypeError):
            return False  # already left out with the table that held it
        last = target[-1]
        if (isinstance(node, dict) and last in node) or (isinstance(node, list) and isinstance(last, int)
                                                          and 0 <= last < len(node)):
            del node[last]
            return True
    return False


def _data_path(loc, data) -> tuple:
    """The part of a pydantic error location that walks the data (union tags left out)."""
    out, node = [], data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif i == len(loc) - 1 and isinstance(part, str) and (isinstance(node, dict) or node is None):
            pass  # a missing key
        else:
            continue
        out.append(part)
    return tuple(out)


def _explain(error: dict, schema, data):
    """``(key path, message)`` pairs for one pydantic error."""
    loc = _data_path(error["loc"], data)
    kind = error["type"]
    if kind == "value_error" and isinstance(error.get("ctx", {}).get("error"), KeyProblems):
        return [(loc + k, m) for k, m in error["ctx"]["error"].items]
    if kind in ("value_error", "assertion_error"):
        return [(loc, str(error["ctx"]["error"]) if "error" in error.get("ctx", {}) else error["msg"])]
    owner, info = _schema_at(schema, loc)
    if kind == "extra_forbidden":
        known = [f.alias or n for n, f in owner.model_fields.items()] if _is_model(owner) else []
        key = loc[-1] if loc else ""
        where = dotted(loc[:-1])
        value = error.get("input")
        what = (f"unknown table [{dotted(loc)}]" if isinstance(value, dict) and not where
                else f"unknown top-level key '{key}'" if not where
                else f"unknown key '{key}' in [{where}]")
        return [(loc, f"{what}{suggest(key, known)}: its settings would be ignored (known: {', '.join(known)})")]
    expected = (info.description if info is not None and info.description else None) or _expected(error, owner)
    if kind == "missing":
        what = info.description if info is not None and info.description else _expected_of(info)
        return [(loc, f"missing: expected {what}" if what else "missing (required)")]
    return [(loc, f"expected {expected}, got {_shown(error.get('input'))}")]


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_WORDS = {
    "int_type": "an integer", "int_from_float": "an integer", "float_type": "a number",
    "finite_number": "a finite number", "bool_type": "true or false", "string_type": "a string",
    "list_type": "an array", "tuple_type": "an array", "dict_type": "a table",
    "model_type": "a table", "model_attributes_type": "a table", "string_too_short": "a non-empty string",
}


def _expected(error: dict, owner) -> str:
    kind, ctx = error["type"], error.get("ctx", {}) or {}
    if kind in ("model_type", "model_attributes_type", "dict_type") and _is_model(owner):
        return f"a table ({', '.join(owner.model_fields)})"
    if kind in _WORDS:
        return _WORDS[kind]
    if kind == "literal_error":
        return "one of " + ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        value = next(iter(ctx.values()), "")
        return f"a value {bounds[kind]} {value:g}" if isinstance(value, (int, float)) else error["msg"]
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length", ctx.get("max_length"))
        return f"{'at least' if kind == 'too_short' else 'at most'} {n} item(s)"
    return error["msg"][0].lower() + error["msg"][1:]


def _expected_of(info) -> str | None:
    """What a field without a description expects, from its type."""
    tp = _unwrap(info.annotation) if info is not None else None
    if _is_model(tp):
        return f"a table ({', '.join(tp.model_fields)})"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp)


def _is_model(tp) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_fields")


def _schema_at(schema, loc):
    """The schema type that holds the last key of ``loc`` and the FieldInfo of the last field
    on the path (an item of a dict or list field is described by that field), walking
    models, dicts and lists."""
    owner, tp, info = schema, schema, None
    for part in loc:
        tp = _unwrap(tp)
        if _is_model(tp):
            owner = tp
            f = tp.model_fields.get(part) or next((f for f in tp.model_fields.values() if f.alias == part), None)
            if f is None:
                return owner, None
            info, tp = f, f.annotation
        else:
            origin = typing.get_origin(tp)
            args = typing.get_args(tp)
            if origin is dict and len(args) == 2:
                tp = args[1]
            elif origin in (list, tuple) and args:
                tp = args[0]
            else:
                break
            item = _described(tp)
            info = item if item is not None else info
    inner = _unwrap(tp)
    if _is_model(inner):
        owner = inner
    return owner, info


def _described(tp):
    """The FieldInfo with a description in ``Annotated[X, Field(description=...)]``, else None."""
    while typing.get_origin(tp) is typing.Annotated:
        args = typing.get_args(tp)
        found = next((a for a in args[1:] if getattr(a, "description", None)), None)
        if found is not None:
            return found
        tp = args[0]
    return None


def _unwrap(tp):
    """``X | None`` and ``Annotated[X, ...]`` -> X (the first model member of a union)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (typing.Union, types_module.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = next((a for a in members if _is_model(_unwrap(a))), members[0] if members else tp)
            continue
        return tp
