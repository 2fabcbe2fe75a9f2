"""Dose-transition pathways: every outcome of the next cohort(s) and the decision it leads to.

As the ``escalation`` R package's ``get_dose_paths``: starting from the counts known today, the
next cohort is treated at the recommended level; for each number of DLTs it may show (0 to
the cohort size) the rules of :mod:`ctkinetics.escalation.rules` give the next decision, and so
on for ``n_cohorts`` cohorts. A committee sees in advance what each outcome would mean.

Assumptions (stated in every output): the outcomes of participants still pending today are
taken as no DLT, every outcome of a pathway is known before the next decision (complete
data), and the "next cohort" is what completes the current cohort at that level (a full cohort
when it is complete). A pathway ends when the trial stops.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ctkinetics.escalation.boundaries import BoinDesign
from ctkinetics.escalation.rules import ACTIONS, RULES, eliminated_from, next_step

ASSUMPTIONS = ("pending outcomes taken as no DLT; each cohort's outcomes known before the next "
               "decision; a cohort completes the current cohort at its level")


@dataclass(frozen=True)
class DosePaths:
    """The pathways (one row per complete path) and the start they grow from."""

    table: pd.DataFrame
    start_level: str | None
    n_cohorts: int
    assumptions: str = ASSUMPTIONS

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def lines(self) -> list[str]:
        """One line per path, e.g. ``1: 0/3 DLT at 2 -> escalate to 3 | 2: 1/3 DLT at 3 -> stay at 3``."""
        out = []
        for r in self.table.to_dict("records"):
            steps = []
            for i in range(1, self.n_cohorts + 1):
                if pd.isna(r.get(f"cohort{i}_level")):
                    break
                nxt = r[f"next{i}"]
                to = "stop" if r[f"decision{i}"] == "stop" else f"{r[f'decision{i}']} -> {nxt}"
                steps.append(f"{i}: {int(r[f'cohort{i}_dlt'])}/{int(r[f'cohort{i}_n'])} DLT at "
                             f"{r[f'cohort{i}_level']} -> {to}")
            out.append(" | ".join(steps))
        return out


def dose_paths(design: BoinDesign, levels, n, y, start: int, n_cohorts: int = 2, *,
               eliminated: int | None = None, closed_from: int | None = None) -> DosePaths:
    """Pathways from per-level counts ``n`` (treated, pending included) and ``y`` (DLTs) with
    the next cohort at level index ``start`` (module doc)."""
    levels = [str(x) for x in levels]
    k = len(levels)
    n_cohorts = int(n_cohorts)
    if n_cohorts < 1:
        raise ValueError("n_cohorts must be at least 1")
    rows: list[dict] = []

    def grow(n_now, y_now, level, elim, depth, row):
        cs = design.cohort_size
        size = cs - int(n_now[level]) % cs
        for dlt in range(size + 1):
            n2, y2 = n_now.copy(), y_now.copy()
            n2[level] += size
            y2[level] += dlt
            e = int(eliminated_from(design, n2[None, :], y2[None, :], [elim])[0])
            rule, nxt, _ = next_step(design, k, [level], [n2[level]], [y2[level]], [0], [0.0], [e],
                                     [int(n2.sum())], closed_from=None if closed_from is None else [closed_from])
            r = RULES[int(rule[0])]
            stop = ACTIONS[r.action] == "stop"
            new = dict(row, **{f"cohort{depth}_level": levels[level], f"cohort{depth}_n": size,
                               f"cohort{depth}_dlt": dlt, f"decision{depth}": ACTIONS[r.action],
                               f"rule{depth}": r.name, f"next{depth}": None if stop else levels[int(nxt[0])]})
            if stop or depth == n_cohorts:
                rows.append(new)
            else:
                grow(n2, y2, int(nxt[0]), e, depth + 1, new)

    grow(np.asarray(n, dtype=int).copy(), np.asarray(y, dtype=int).copy(), int(start),
         k if eliminated is None else int(eliminated), 1, {})
    cols = []
    for i in range(1, n_cohorts + 1):
        cols += [f"cohort{i}_level", f"cohort{i}_n", f"cohort{i}_dlt", f"decision{i}", f"rule{i}", f"next{i}"]
    table = pd.DataFrame(rows, columns=cols)
    table.insert(0, "path", np.arange(1, len(table) + 1))
    return DosePaths(table, levels[int(start)], n_cohorts)


def paths_from_decision(decision, design: BoinDesign, n_cohorts: int = 2) -> DosePaths:
    """Pathways from today's decision: its counts (pending as no DLT) and its next level.
    Empty when the trial stops."""
    lv = decision.levels
    levels = list(lv["level"])
    if decision.next_level is None:
        return DosePaths(pd.DataFrame(columns=["path"]), None, n_cohorts)
    closed = levels.index(decision.closed_levels[0]) if decision.closed_levels else None
    return dose_paths(design, levels, (lv["n"] + 0).to_numpy(int), lv["dlt"].to_numpy(int),
                      levels.index(decision.next_level), n_cohorts,
                      eliminated=decision.eliminated_from, closed_from=closed)
