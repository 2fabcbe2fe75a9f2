"""Can the data inform the parameters? A check from the sensitivity matrix at the start values,
before any fitting (issue 12.4).

For each subject, the Jacobian J of the pseudo-residuals (the weighted sensitivities
∂r/∂θ: from the model's forward sensitivities, or finite differences for a model without)
at the start values is evaluated over the kinetic parameters and assay scales (the residual
SDs excluded). With each column scaled to unit length (the check is about directions, not
units), and S = that scaled J:

* a parameter is **not informed** when its column norm is below :data:`NOT_INFORMED` times
  the largest (changing it barely changes any prediction at the samples);
* two parameters are **near-collinear** when the cosine of their columns exceeds
  :data:`COLLINEAR` in absolute value (a change of one is compensated by the other);
* **sloppy directions**: the right singular vectors of S whose singular value is below
  :data:`SLOPPY` times the largest name the parameters loading on them (|v_j| >
  :data:`LOADING` = 0.4).

The result is a table (subject, check, parameters, value, advice), recorded in the fit's
result (``FitResult.identifiability``, ``identifiability.csv``) and summarised on the command
line; a cohort row counts the subjects each finding holds for.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: column norm / largest below which a parameter is not informed
NOT_INFORMED = 1e-3
#: |cosine| of two sensitivity columns above which they are near-collinear
COLLINEAR = 0.995
#: singular value / largest below which a direction is sloppy
SLOPPY = 1e-3
#: |component| of a unit direction above which a parameter is named as loading on it
LOADING = 0.4
COLUMNS = ["subject", "check", "parameters", "value", "advice"]


def check_group(group, theta) -> pd.DataFrame:
    """The checks for every subject of a :class:`~.objective.Group` at ``theta`` (G, p)."""
    specs = group.layout.specs
    cols = np.flatnonzero(~group.is_sigma)
    names = [specs[j].name for j in cols]
    if cols.size == 0:
        return pd.DataFrame(columns=COLUMNS)
    vary = np.zeros(len(specs), bool)
    vary[cols] = True
    with np.errstate(all="ignore"):
        J = group.jacobian_blocks(np.atleast_2d(theta), vary)       # (G, m, q)
    rows = []
    for g, subj in enumerate(group.subjects):
        rows += _subject_rows(subj.subject, J[g], names)
    return pd.DataFrame(rows, columns=COLUMNS)


def _subject_rows(subject, J, names):
    J = np.where(np.isfinite(J), J, 0.0)
    norm = np.linalg.norm(J, axis=0)
    top = norm.max() if norm.size else 0.0
    rows = []
    if top <= 0:
        return [(subject, "not_informed", ",".join(names), 0.0,
                 "no prediction at the samples depends on the parameters")]
    for name, v in zip(names, norm / top):
        if v < NOT_INFORMED:
            rows.append((subject, "not_informed", name, float(v),
                         f"the samples do not inform {name}: fix it (--fix {name}=VALUE)"))
    ok = norm / top >= NOT_INFORMED
    S = J[:, ok] / norm[ok]
    kept = [n for n, o in zip(names, ok) if o]
    C = S.T @ S
    for i in range(len(kept)):
        for j in range(i + 1, len(kept)):
            if abs(C[i, j]) > COLLINEAR:
                rows.append((subject, "collinear", f"{kept[i]},{kept[j]}", float(C[i, j]),
                             f"{kept[i]} and {kept[j]} change the predictions alike: fix one"))
    if len(kept) > 1:
        _, sv, vt = np.linalg.svd(S, full_matrices=False)
        for s, v in zip(sv, vt):
            if s < SLOPPY * sv[0]:
                load = [kept[k] for k in np.flatnonzero(np.abs(v) > LOADING)]
                rows.append((subject, "sloppy", ",".join(load), float(s / sv[0]),
                             "a combination of these parameters is not determined: fix one "
                             "of them or add samples that separate them"))
    return rows


def summarise(table: pd.DataFrame, n_subjects: int) -> pd.DataFrame:
    """Cohort rows: each finding with the number of subjects it holds for (subject '*')."""
    if table.empty:
        return table
    found = table[table["subject"] != "*"]
    agg = (found.groupby(["check", "parameters"], sort=False)
           .agg(n=("subject", "size"), value=("value", "median"), advice=("advice", "first"))
           .reset_index())
    agg["subject"] = "*"
    agg["advice"] = [f"{a} ({n} of {n_subjects} subjects)" for a, n in
                     zip(agg["advice"], agg["n"])]
    return pd.concat([found, agg[COLUMNS]], ignore_index=True)


__all__ = ["check_group", "summarise", "COLUMNS", "NOT_INFORMED", "COLLINEAR", "SLOPPY"]
