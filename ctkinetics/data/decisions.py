"""``decisions.csv``: the committee's dated record, beside ``safety.csv`` (optional).

The protocol leaves the dose review to investigators and sponsor: they decide escalate / stay
/ de-escalate, may open a new level inside the explored range, retire levels, release a held
sentinel gate and confirm that a participant's cells did not expand. The design's
recommendation is advice; this file is the record of what was decided, when and why — shown
on the report's timeline and read by the replays (an entry counts from its day on).

==========  ==========================================================================
day         study day of the decision (required)
action      insert_level | retire_level | committee_decision | release_sentinel_hold |
            confirm_no_expansion (required)
level       the level inserted / retired / released, or chosen for the next participant
subject     the participant concerned (confirm_no_expansion)
decision    committee_decision: escalate | stay | de-escalate | stop | suspend
rationale   free text (expected whenever the committee departs from the design)
==========  ==========================================================================

``insert_level``: the level (declared in study.toml [dose_levels]) exists from that day; a
replay of an earlier day does not know it. ``retire_level``: no new participant at that level
or above from that day. The rules that read the file live in :mod:`ctkinetics.escalation`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.data.csvfile import ROW_COL
from ctkinetics.data.problems import ProblemCollector
from ctkinetics.data.safety import open_table

ACTIONS = ("insert_level", "retire_level", "committee_decision", "release_sentinel_hold",
           "confirm_no_expansion")
COMMITTEE_DECISIONS = ("escalate", "stay", "de-escalate", "stop", "suspend")
DECISION_COLUMNS = ("day", "action", "level", "subject", "decision", "rationale")
_NEEDS_LEVEL = ("insert_level", "retire_level", "release_sentinel_hold")


def read_decisions_csv(path, study, subjects: pd.DataFrame | None, pc: ProblemCollector,
                       notes: list | None = None) -> pd.DataFrame | None:
    """``decisions.csv`` (module doc), sorted by day (stable), with ``_row``."""
    t = open_table(path, ["day", "action"], DECISION_COLUMNS, pc, notes)
    if t is None:
        return None
    f = t.frame
    text = lambda c: (f[c].astype(str).str.strip() if c in f.columns  # noqa: E731
                      else pd.Series([""] * len(f), index=f.index, dtype=object))
    out = pd.DataFrame({"day": t.numbers("day", pc, what="a study day", required=True),
                        "action": text("action").str.lower(), "level": text("level"),
                        "subject": text("subject"), "decision": text("decision").str.lower(),
                        "rationale": text("rationale")})
    rows = t.rows
    levels = list(study.dose_levels) if study is not None else None
    known = set(subjects["subject"].astype(str)) if subjects is not None else None
    for i, r in enumerate(out.itertuples(index=False)):
        row = int(rows[i])
        if r.action not in ACTIONS:
            pc.add(t.name, row, "action", f"expected one of {', '.join(ACTIONS)}, got '{r.action}'")
            continue
        if r.action in _NEEDS_LEVEL and not r.level:
            pc.add(t.name, row, "level", f"action '{r.action}' needs the dose level")
        if r.level and levels is not None and r.level not in levels:
            pc.add(t.name, row, "level", f"dose level '{r.level}' is not in study.toml [dose_levels] "
                                         f"(known: {', '.join(levels)})")
        if r.action == "committee_decision":
            if r.decision not in COMMITTEE_DECISIONS:
                pc.add(t.name, row, "decision", f"expected one of {', '.join(COMMITTEE_DECISIONS)}, "
                                                f"got '{r.decision}'")
            elif r.decision not in ("stop", "suspend") and not r.level:
                pc.add(t.name, row, "level", f"decision '{r.decision}' needs the level of the next participant")
        elif r.decision:
            pc.add(t.name, row, "decision", f"a decision is only given with action 'committee_decision', "
                                            f"not '{r.action}'")
        if r.action == "confirm_no_expansion":
            if not r.subject:
                pc.add(t.name, row, "subject", "confirm_no_expansion needs the participant (subject)")
            elif known is not None and r.subject not in known:
                pc.add(t.name, row, "subject", f"subject '{r.subject}' is not in subjects.csv")
    dup = out.loc[out["action"] == "insert_level", "level"]
    for i in np.flatnonzero(dup.duplicated().to_numpy()):
        idx = dup.index[i]
        pc.add(t.name, int(rows[idx]), "level", f"level '{dup.iat[i]}' is inserted twice")
    out[ROW_COL] = rows
    return out.sort_values("day", kind="stable").reset_index(drop=True)


def check_decisions(decisions: pd.DataFrame, study, subjects: pd.DataFrame, safety: pd.DataFrame | None,
                    *, file: str, safety_file: str, pc: ProblemCollector, warnings: list) -> None:
    """Across files: nobody infused at a level before it was inserted; an inserted level lies
    inside the range explored by that day (a warning otherwise, the protocol's wording)."""
    if safety is None or not len(decisions):
        return
    level_of = dict(zip(subjects["subject"].astype(str), subjects["dose_level"].astype(str)))
    inf = dict(zip(safety["subject"].astype(str), safety["infusion_day"].astype(float)))
    srow = dict(zip(safety["subject"].astype(str), safety["_row"]))
    doses = dict(study.dose_levels)
    d = decisions.rename(columns={ROW_COL: "row"})
    for r in d.loc[d["action"] == "insert_level"].itertuples(index=False):
        early = [s for s, lv in level_of.items() if lv == r.level and inf.get(s, np.inf) < r.day]
        for s in early:
            pc.add(safety_file, srow[s], "infusion_day",
                   f"'{s}' was infused at level {r.level} on day {inf[s]:g}, before the level was inserted "
                   f"(day {r.day:g}, {file} row {r.row})")
        explored = [doses[lv] for s, lv in level_of.items() if inf.get(s, np.inf) <= r.day and lv in doses]
        if explored and not (min(explored) < doses.get(r.level, np.nan) < max(explored)):
            warnings.append(f"{file} row {r.row}: level {r.level} inserted on day {r.day:g} lies outside the "
                            f"dose range explored by then ({min(explored):.3g} to {max(explored):.3g} cells)")
    for r in d.loc[d["action"] == "confirm_no_expansion"].itertuples(index=False):
        if safety is not None and r.subject in srow:
            reason = safety.loc[safety["subject"].astype(str) == r.subject, "window_end_reason"].iat[0]
            if reason != "no_expansion":
                pc.add(file, r.row, "subject", f"the committee confirms no expansion for '{r.subject}', but "
                                              f"{safety_file} gives window_end_reason '{reason}', not 'no_expansion'")
