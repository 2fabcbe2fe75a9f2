"""MTD selection at the end of the trial: isotonic estimates (PAVA), as BOIN's ``select.mtd``.

Over the admissible levels (treated, n > 0, and not eliminated)::

    p̂_j   = (y_j + 0.05) / (n_j + 0.1)
    var_j = (y_j + 0.05)(n_j − y_j + 0.05) / ((n_j + 0.1)² (n_j + 1.1))     (Beta(y+.05, n−y+.05))
    p̃     = weighted isotonic (non-decreasing) regression of p̂ with weights 1/var
    p̃_j  += j · 1e-10   (j = 1, 2, … over admissible levels: tie-break)
    MTD   = argmin_j |p̃_j − φ|   (first on exact ties)

The tie-break makes the highest level win inside a pooled block below φ and the lowest above
φ. Elimination (n ≥ 3 and Pr(p > φ | y, n) > cutoff, that level and above; with ``extrasafe``
the lowest level at cutoff − offset) is recomputed on the final data and combined with any
earlier elimination. No MTD when the lowest level is eliminated or nothing admissible was
treated. With ``bound_mtd`` (R BOIN's ``boundMTD``) only levels whose p̃_j (tie-break
included) is at most λd may be selected; none such: no MTD.

The committee table gives, for every treated level, the isotonic estimate and a 95 % credible
interval: the 2.5 % and 97.5 % quantiles of Beta(y + 0.05, n − y + 0.05), each made monotone
with the same weighted PAVA (as the BOIN package reports them).

"The MTD now" (:func:`estimate_mtd`) is the one home of the MTD a committee reads during the
trial — ``ctk escalate``, the report, ``summary.json`` and ``mtd.csv`` all call it: the same
selection on the evaluable participants of a decision, with the design's ``mtd_pending``
policy for those still inside their DLT window (``exclude``: complete windows only, the
default; ``no_dlt``: counted as no DLT, a provisional estimate), stated in its ``basis``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ctkinetics.escalation.boundaries import BoinDesign
from ctkinetics.escalation.rules import eliminated_from as _eliminated_from

_TIE = 1e-10


def pava(x, w=None) -> np.ndarray:
    """Weighted isotonic (non-decreasing) regression by pooling adjacent violators.

    Pools the first adjacent violation repeatedly, as BOIN's ``pava`` does; the weighted
    least-squares solution is unique, so the order of pooling does not change the result.
    """
    x = np.asarray(x, dtype=float).copy()
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=float)
    blocks = [[x[i], w[i], 1] for i in range(len(x))]  # value, weight, size
    i = 0
    while i < len(blocks) - 1:
        if blocks[i][0] > blocks[i + 1][0]:
            a, b = blocks[i], blocks[i + 1]
            wt = a[1] + b[1]
            blocks[i] = [(a[0] * a[1] + b[0] * b[1]) / wt, wt, a[2] + b[2]]
            del blocks[i + 1]
            i = max(i - 1, 0)
        else:
            i += 1
    return np.concatenate([np.full(size, v) for v, _, size in blocks]) if blocks else x


def isotonic_minmax(x, w):
    """Vectorised weighted isotonic regression along the last axis (min–max formula).

    iso_j = max_{i<=j} min_{k>=j} Σ_{i..k} w x / Σ_{i..k} w. Entries with weight 0 are ignored
    (their output is meaningless). O(D²) per row: meant for a handful of dose levels.
    """
    x = np.asarray(x, dtype=float)
    w = np.asarray(w, dtype=float)
    d = x.shape[-1]
    cw = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(w, axis=-1)], axis=-1)
    cwx = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(w * x, axis=-1)], axis=-1)
    # avg[..., i, k] over block i..k (k >= i)
    i = np.arange(d)[:, None]
    k = np.arange(d)[None, :]
    sw = cw[..., k + 1] - cw[..., i]
    swx = cwx[..., k + 1] - cwx[..., i]
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = swx / sw
    valid = (k >= i) & (sw > 0)
    out = np.empty_like(x)
    for j in range(d):
        # min over k >= j for each i <= j, then max over i <= j
        blk = np.where(valid[..., : j + 1, j:], avg[..., : j + 1, j:], np.inf)
        mins = blk.min(axis=-1)
        mins = np.where(np.isinf(mins), -np.inf, mins)
        out[..., j] = mins.max(axis=-1)
    return out


def _estimates(n, y):
    n = np.asarray(n, dtype=float)
    y = np.asarray(y, dtype=float)
    p = (y + 0.05) / (n + 0.1)
    var = (y + 0.05) * (n - y + 0.05) / ((n + 0.1) ** 2 * (n + 1.1))
    return p, var


def select_mtd_batch(design: BoinDesign, n, y, eliminated_from=None) -> np.ndarray:
    """Selected MTD level for each row of counts (m, D); −1 where no MTD is selected."""
    n = np.atleast_2d(np.asarray(n, dtype=int))
    y = np.atleast_2d(np.asarray(y, dtype=int))
    m, d = n.shape
    elim = _eliminated_from(design, n, y, eliminated_from)
    adm = (n > 0) & (np.arange(d)[None, :] < elim[:, None])
    p, var = _estimates(np.maximum(n, 0), y)
    w = np.where(adm, 1.0 / var, 0.0)
    iso = isotonic_minmax(np.where(adm, p, 0.0), w)
    rank = np.cumsum(adm, axis=1)
    iso = iso + rank * _TIE
    if design.bound_mtd:
        adm = adm & (iso <= design.lambda_d)
    dist = np.where(adm, np.abs(iso - design.target), np.inf)
    sel = dist.argmin(axis=1)
    none = (elim <= 0) | ~adm.any(axis=1)
    return np.where(none, -1, sel)


@dataclass(frozen=True)
class MtdSelection:
    """The MTD selected at the end of a trial.

    Attributes
    ----------
    mtd_level : str or None
        Selected level label; None when no MTD (lowest level eliminated, nothing treated).
    mtd_index : int
        0-based, −1 for none.
    reason : str
    table : pandas.DataFrame
        Per level: n, dlt, raw estimate (y+.05)/(n+.1), isotonic estimate, ci_low, ci_high
        (95 % credible), p_overdose = Pr(p > φ | data) (isotonic), admissible, eliminated,
        selected. Estimates are NaN for untreated levels.
    """

    mtd_level: str | None
    mtd_index: int
    reason: str
    table: object

    def to_frame(self):
        return self.table.copy()


def select_mtd(design: BoinDesign, n, y, levels=None, eliminated_from=None) -> MtdSelection:
    """Select the MTD from per-level counts ``n`` (treated) and ``y`` (DLTs); see module doc.

    Examples
    --------
    >>> from ctkinetics.escalation import BoinDesign, select_mtd
    >>> select_mtd(BoinDesign(target=0.3), [3, 3, 15, 9, 0], [0, 0, 4, 4, 0]).mtd_index
    2
    """
    import pandas as pd
    from scipy.stats import beta

    n = np.asarray(n, dtype=int)
    y = np.asarray(y, dtype=int)
    d = len(n)
    levels = [f"{j + 1}" for j in range(d)] if levels is None else [str(x) for x in levels]
    sel = int(select_mtd_batch(design, n[None, :], y[None, :], eliminated_from)[0])
    elim = int(_eliminated_from(design, n[None, :], y[None, :], eliminated_from)[0])
    adm = (n > 0) & (np.arange(d) < elim)

    treated = n > 0
    p, var = _estimates(n, y)
    iso = np.full(d, np.nan)
    lo = np.full(d, np.nan)
    hi = np.full(d, np.nan)
    pover = np.full(d, np.nan)
    if treated.any():
        nt, yt = n[treated], y[treated]
        wt = 1.0 / var[treated]
        iso[treated] = pava(p[treated], wt)
        lo[treated] = pava(beta.ppf(0.025, yt + 0.05, nt - yt + 0.05), wt)
        hi[treated] = pava(beta.ppf(0.975, yt + 0.05, nt - yt + 0.05), wt)
        pover[treated] = pava(beta.sf(design.target, yt + 0.05, nt - yt + 0.05))
    table = pd.DataFrame({
        "level": levels, "n": n, "dlt": y,
        "estimate_raw": np.where(treated, p, np.nan), "estimate": iso,
        "ci_low": lo, "ci_high": hi, "p_overdose": pover,
        "admissible": adm, "eliminated": np.arange(d) >= elim, "selected": np.arange(d) == sel,
    })
    bound = f" with estimate <= lambda_d = {design.lambda_d:.4f} (boundMTD)" if design.bound_mtd else ""
    if sel >= 0:
        reason = (f"isotonic estimate {iso[sel]:.3f} at {levels[sel]} is closest to the target "
                  f"{design.target:g} among treated, non-eliminated levels{bound}")
    elif elim <= 0:
        reason = f"no MTD: the lowest level {levels[0]} is eliminated"
    elif adm.any() and design.bound_mtd:
        reason = f"no MTD: every admissible level has an isotonic estimate above lambda_d = {design.lambda_d:.4f} (boundMTD)"
    else:
        reason = "no MTD: no admissible level was treated"
    return MtdSelection(levels[sel] if sel >= 0 else None, sel, reason, table)


POLICY_TEXT = {
    "exclude": "complete DLT windows only: participants still in their window are left out",
    "no_dlt": "participants still in their window counted as no DLT (provisional)",
}


@dataclass(frozen=True)
class MtdEstimate:
    """The MTD now, with the policy for pending participants and the basis in words.

    Attributes
    ----------
    selection : MtdSelection
    policy : str
        ``exclude`` or ``no_dlt`` (the design's ``mtd_pending``).
    left_out : tuple
        ``(subject, level)`` of the participants the policy left out or counted as no DLT.
    as_of_day : float
    basis : str
        One sentence: the level, the reason and the policy.
    """

    selection: MtdSelection
    policy: str
    left_out: tuple
    as_of_day: float
    basis: str = field(default="")

    @property
    def mtd_level(self):
        return self.selection.mtd_level

    @property
    def reason(self) -> str:
        return self.selection.reason

    @property
    def provisional(self) -> bool:
        return bool(self.left_out)

    def to_frame(self):
        """The selection table with the day and the pending policy on every row (mtd.csv states
        its basis too)."""
        return self.selection.to_frame().assign(as_of_day=self.as_of_day, mtd_pending_policy=self.policy)

    def to_dict(self) -> dict:
        from ctkinetics.jsonable import jsonable, records

        return {"level": self.mtd_level, "reason": self.reason, "policy": self.policy,
                "policy_text": POLICY_TEXT[self.policy], "basis": self.basis,
                "as_of_day": jsonable(self.as_of_day), "provisional": self.provisional,
                "pending_participants": [{"subject": s, "level": lv} for s, lv in self.left_out],
                "table": records(self.selection.to_frame())}


def estimate_mtd(decision, design: BoinDesign) -> MtdEstimate:
    """The MTD now from a :class:`~ctkinetics.escalation.Decision` (its per-level counts of
    evaluable participants) under ``design.mtd_pending`` (module doc)."""
    lv = decision.levels
    policy = design.mtd_pending
    open_ = (lv["pending"] + lv["partial"]).to_numpy(int)
    n = lv["n"].to_numpy(int) - (open_ if policy == "exclude" else 0)
    sel = select_mtd(design, n, lv["dlt"].to_numpy(int), list(lv["level"]), decision.eliminated_from)
    pp = decision.participants
    waiting = pp[pp["status"].isin(["pending", "partial", "awaiting committee"])]
    left = tuple(zip(waiting["subject"].astype(str), waiting["level"].astype(str)))
    who = ", ".join(f"{s} at {lv_}" for s, lv_ in left)
    if not left:
        note = "all DLT windows of the evaluable participants are complete"
    elif policy == "exclude":
        note = f"{len(left)} participant(s) still in their DLT window left out ({who})"
    else:
        note = f"{len(left)} participant(s) still in their DLT window counted as no DLT ({who}); provisional"
    basis = (f"MTD estimate as of study day {decision.as_of_day:g}: "
             + (f"dose level {sel.mtd_level}" if sel.mtd_level is not None else "none")
             + f" — {sel.reason}; {note}.")
    return MtdEstimate(sel, policy, left, float(decision.as_of_day), basis)
