"""Collecting validation problems: report all of them (up to a cap), not only the first."""
from __future__ import annotations

from ctkinetics.errors import DataValidationError, Problem

MAX_PROBLEMS = 50


class ProblemCollector:
    """Gather :class:`~ctkinetics.errors.Problem` s while reading; raise them all at once.

    >>> pc = ProblemCollector()
    >>> pc.add("obs.csv", 3, "time", "expected a number, got 'x'")
    >>> pc.raise_if_any()
    Traceback (most recent call last):
    ...
    ctkinetics.errors.DataValidationError: obs.csv, row 3, column 'time': expected a number, got 'x'
    """

    def __init__(self, cap: int = MAX_PROBLEMS):
        self.cap = cap
        self.problems: list[Problem] = []
        self.truncated = 0

    def add(self, file, row, column, message) -> None:
        if len(self.problems) >= self.cap:
            self.truncated += 1
            return
        self.problems.append(Problem(str(file) if file is not None else "", row, column, message))

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise DataValidationError(self.problems, truncated=self.truncated)
