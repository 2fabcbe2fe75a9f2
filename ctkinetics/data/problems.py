"""Collecting validation problems: report all of them (up to a cap), not only the first.

Every rule of every file adds to one collector, and the reader raises once at the end, so one
run of ``ctk validate`` shows value, structure and cross-file problems together. The cap is
shared fairly: one column full of bad cells keeps at most :data:`PER_COLUMN` of its problems,
so it cannot hide a problem of another kind further down.
"""
from __future__ import annotations

from contextlib import contextmanager

from ctkinetics.errors import DataValidationError, Problem

MAX_PROBLEMS = 50
PER_COLUMN = 10


class ProblemCollector:
    """Gather :class:`~ctkinetics.errors.Problem` s while reading; raise them all at once.

    >>> pc = ProblemCollector()
    >>> pc.add("obs.csv", 3, "time", "expected a number, got 'x'")
    >>> pc.raise_if_any()
    Traceback (most recent call last):
    ...
    ctkinetics.errors.DataValidationError: obs.csv, row 3, column 'time': expected a number, got 'x'
    """

    def __init__(self, cap: int = MAX_PROBLEMS, per_column: int = PER_COLUMN):
        self.cap = cap
        self.per_column = per_column
        self.problems: list[Problem] = []
        self.truncated = 0
        self._per_key: dict = {}

    def add(self, file, row, column, message) -> None:
        self.add_problem(Problem(str(file) if file is not None else "", row, column, message))

    def add_problem(self, problem: Problem) -> None:
        """Add a problem as it is (a settings file's :class:`~ctkinetics.errors.SettingProblem`
        keeps naming its line and key)."""
        key = (problem.file, problem.column)
        n = self._per_key.get(key, 0)
        self._per_key[key] = n + 1
        if len(self.problems) >= self.cap or n >= self.per_column:
            self.truncated += 1
            return
        self.problems.append(problem)

    def extend(self, error: DataValidationError) -> None:
        """Take over the problems of an error raised by a lower-level reader."""
        for p in error.problems:
            self.add_problem(p)
        self.truncated += error.truncated

    @contextmanager
    def collecting(self):
        """Run a block; a :class:`DataValidationError` it raises is collected, not propagated.

        >>> pc = ProblemCollector()
        >>> with pc.collecting():
        ...     raise DataValidationError.at("a.csv", None, None, "the file is empty")
        >>> len(pc.problems)
        1
        """
        try:
            yield self
        except DataValidationError as exc:
            self.extend(exc)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise DataValidationError(self.problems, truncated=self.truncated)
