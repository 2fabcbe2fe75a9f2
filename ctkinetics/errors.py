"""Typed errors and warnings of ctkinetics.

Every error caused by user input derives from :class:`InputError`; the CLI maps it to exit
code 2 and prints its message (never a traceback). Anything else is an internal error
(exit code 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class CtkError(Exception):
    """Base class of all ctkinetics errors."""


class InputError(CtkError):
    """Bad input from the user: a data file, a model file, a setting. CLI exit code 2."""


@dataclass(frozen=True)
class Problem:
    """One problem found in an input file.

    ``row`` is the row number as a spreadsheet shows it (header = row 1, first data row = 2),
    or None when the problem concerns the whole file or a column.
    """

    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file or "<input>"]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}"


@dataclass(frozen=True)
class SettingProblem(Problem):
    """A problem in a settings file (TOML, :mod:`ctkinetics.schema`): ``row`` is the line of
    the file, ``column`` the dotted key (``design.cohort_size``), ``token`` the offending text
    of an expression when there is one."""

    token: str | None = None

    @property
    def line(self) -> int | None:
        return self.row

    @property
    def key(self) -> str | None:
        return self.column

    def __str__(self) -> str:
        where = [self.file or "<input>"]
        if self.row is not None:
            where.append(f"line {self.row}")
        if self.column is not None:
            where.append(f"key '{self.column}'")
        return f"{', '.join(where)}: {self.message}" + (f" (at '{self.token}')" if self.token else "")


def _problem_lines(problems, truncated: int, title: str) -> str:
    lines = [f"{len(problems) + truncated} problem(s) in {title}:"]
    lines += [f"  - {p}" for p in problems]
    if truncated:
        lines.append(f"  ... and {truncated} more")
    return "\n".join(lines)


class DataValidationError(InputError):
    """One or more problems in a data file.

    Attributes
    ----------
    problems : list of Problem
        All problems found (validation collects them up to a cap rather than stopping at the
        first). ``file``, ``row`` and ``column`` of the first problem are also attributes.
    """

    def __init__(self, problems, truncated: int = 0):
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        self.truncated = truncated
        first = self.problems[0] if self.problems else Problem("", None, None, "invalid data")
        self.file, self.row, self.column = first.file, first.row, first.column
        super().__init__(self._format())

    @classmethod
    def at(cls, file, row, column, message) -> "DataValidationError":
        return cls([Problem(str(file) if file is not None else "", row, column, message)])

    @classmethod
    def from_problems(cls, problems, truncated: int = 0) -> "DataValidationError":
        return cls(problems, truncated=truncated)

    def _format(self) -> str:
        if len(self.problems) == 1 and not self.truncated:
            return str(self.problems[0])
        return _problem_lines(self.problems, self.truncated, "the input data")


class ModelFileError(InputError):
    """An invalid or unsafe model file: names the file, the line and the offending token."""

    def __init__(self, file, message: str, line: int | None = None, token: str | None = None):
        self.file = str(file) if file is not None else "<model>"
        self.line = line
        self.token = token
        self.problems = (SettingProblem(self.file, line, None, message, token),)
        where = self.file + (f", line {line}" if line is not None else "")
        tok = f" (at '{token}')" if token else ""
        super().__init__(f"{where}: {message}{tok}")

    @classmethod
    def from_problems(cls, problems, truncated: int = 0) -> "ModelFileError":
        """Every problem of a model file at once; ``line`` and ``token`` are the first's."""
        problems = tuple(problems)
        first = problems[0]
        token = getattr(first, "token", None) or (first.column.split(".")[-1] if first.column else None)
        err = cls(first.file, first.message, first.row, None)
        err.token, err.problems = token, problems
        if len(problems) > 1 or truncated:
            Exception.__init__(err, _problem_lines(problems, truncated, "the model file"))
        else:
            Exception.__init__(err, str(first))
        return err


class SettingsError(InputError):
    """An invalid option or configuration value (``problems``: those of a settings file,
    each naming file, line and key, when it came from one)."""

    problems: tuple = ()

    @classmethod
    def from_problems(cls, problems, truncated: int = 0) -> "SettingsError":
        problems = tuple(problems)
        text = (str(problems[0]) if len(problems) == 1 and not truncated
                else _problem_lines(problems, truncated, problems[0].file or "the settings"))
        err = cls(text)
        err.problems = problems
        return err


class OutputError(InputError):
    """An output path that cannot be used (a file where a folder is expected, a folder that
    cannot be written, an output that is or holds an input, a folder of someone else's files),
    found before any computation. CLI exit code 2."""


class OutputWriteError(CtkError):
    """Writing the outputs failed (a full disk, an I/O error); nothing was replaced. CLI exit
    code 1 with this message (not an internal error)."""


class FitError(CtkError):
    """A fit could not be carried out at all (not: a fit that did not converge)."""


class CtkWarning(UserWarning):
    """Base class of ctkinetics warnings."""


class DataWarning(CtkWarning):
    """Suspicious but legal data (a quantified value below its LLOQ, no pre-infusion sample)."""


class FitWarning(CtkWarning):
    """A fit that needs attention: not converged, at a bound, poorly identifiable."""


def display_path(path) -> str:
    """A path as shown in messages: as given, without resolving symlinks."""
    return str(Path(path))
