"""Parsing the format-independent tables: subjects and safety (CSV, strings -> typed).

The readers live in their own modules (:mod:`ctkinetics.data.subjects`,
:mod:`ctkinetics.data.safety`); the names stay importable from here.
"""
from __future__ import annotations

import numpy as np

from ctkinetics.data.csvfile import CsvTable
from ctkinetics.data.problems import ProblemCollector
from ctkinetics.data.safety import PHASES, read_safety_csv  # noqa: F401 (moved there)
from ctkinetics.data.subjects import covariate_value_column, read_subjects_csv  # noqa: F401 (moved there)


def numeric_column(table: CsvTable, column: str, pc: ProblemCollector, *, what="a number",
                   allow_missing=True, minimum=None) -> np.ndarray:
    """Parse one column to floats, recording a problem for every unreadable cell (one
    vectorised pass: :meth:`CsvTable.numbers`)."""
    return table.numbers(column, pc, what=what, required=not allow_missing, minimum=minimum)
