"""``efficacy.csv``: preliminary efficacy per participant, beside ``safety.csv`` (optional).

==========  ===================================================================
subject     as in subjects.csv
day         day after infusion of the assessment
endpoint    e.g. SLEDAI-2K reduction, DORIS remission, B-cell aplasia
value       the measured value (optional when ``response`` is given)
response    1 responder, 0 not (optional when ``value`` and a threshold are given)
==========  ===================================================================

Which endpoint is the efficacy outcome of the utility design (BOIN12), when it is known and
how a value becomes a response are set in ``study.toml`` ``[efficacy]``
(:class:`ctkinetics.data.protocol.EfficacySettings`); the outcome itself is computed in
:mod:`ctkinetics.escalation.efficacy`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctkinetics.data.cells import parse_flags
from ctkinetics.data.csvfile import ROW_COL
from ctkinetics.data.problems import ProblemCollector
from ctkinetics.data.safety import open_table

EFFICACY_COLUMNS = ("subject", "day", "endpoint", "value", "response")


def read_efficacy_csv(path, study, subjects: pd.DataFrame | None, pc: ProblemCollector,
                      notes: list | None = None) -> pd.DataFrame | None:
    """``efficacy.csv`` (module doc) with ``_row``."""
    t = open_table(path, ["subject", "day", "endpoint"], EFFICACY_COLUMNS, pc, notes)
    if t is None:
        return None
    f = t.frame
    n = len(f)
    out = pd.DataFrame({"subject": f["subject"].astype(str).str.strip(),
                        "day": t.numbers("day", pc, what="a day after infusion", required=True),
                        "endpoint": f["endpoint"].astype(str).str.strip()})
    out["value"] = t.numbers("value", pc, what="a number") if "value" in f.columns else np.full(n, np.nan)
    response = np.full(n, np.nan)
    if "response" in f.columns:
        flag, stated, bad = parse_flags(t.text("response"))
        response[stated] = flag[stated].astype(float)
        for i in np.flatnonzero(bad):
            pc.add(t.name, int(t.rows[i]), "response", f"expected 1 (responder), 0 or empty, got '{t.text('response').iat[i]}'")
    out["response"] = response
    rows = t.rows
    known = set(subjects["subject"].astype(str)) if subjects is not None else None
    eff = study.protocol.efficacy if study is not None else None
    for i, r in enumerate(out.itertuples(index=False)):
        if not r.endpoint:
            pc.add(t.name, int(rows[i]), "endpoint", "expected an endpoint name, got an empty cell")
        if known is not None and r.subject not in known:
            pc.add(t.name, int(rows[i]), "subject", f"subject '{r.subject}' is not in subjects.csv")
        if np.isnan(r.value) and np.isnan(r.response):
            pc.add(t.name, int(rows[i]), "value", "give a value or a response (1/0)")
        elif (np.isnan(r.response) and eff is not None and r.endpoint == eff.endpoint
              and eff.threshold is None):
            pc.add(t.name, int(rows[i]), "response",
                   f"no response for the efficacy endpoint '{r.endpoint}' and no [efficacy] threshold to "
                   "turn its value into one")
    dup = out.duplicated(["subject", "endpoint", "day"]).to_numpy()
    for i in np.flatnonzero(dup):
        pc.add(t.name, int(rows[i]), "day", f"'{out['subject'].iat[i]}' has two '{out['endpoint'].iat[i]}' "
                                            f"assessments on day {out['day'].iat[i]:g}")
    if eff is not None and eff.endpoint is not None and not (out["endpoint"] == eff.endpoint).any():
        pc.add(t.name, None, "endpoint", f"study.toml [efficacy] endpoint '{eff.endpoint}' has no row here "
                                         f"(endpoints: {', '.join(sorted(set(out['endpoint'])))})")
    out[ROW_COL] = rows
    return out
