"""The one home of the terminal-slope (λz) rule, vectorised over profiles.

ln C = b0 − λz·t fitted by ordinary least squares on the chosen points.

Automatic selection (PKNCA ≈ WinNonlin "best fit"): candidate windows are the last k
quantifiable points (k ≥ min_points) after Tmax, ending at Tlast; adjusted
R² = 1 − (1 − R²)(k − 1)/(k − 2). Two rules, :data:`LAMZ_SELECTIONS`:

- ``"best-falling"`` (default): among windows with λz > 0, keep those whose adjusted R² is
  within ``tolerance`` of the best *falling* window, then the one with the most points. A
  profile with at least one falling window always gets a λz; a poor one is then excluded by
  the quality rules (:mod:`ctkinetics.nca.quality`), with the reason.
- ``"pknca"``: PKNCA's ``pk.calc.half.life`` exactly: the tolerance is measured from the best
  window of *any* slope, rising or flat ones included; among the windows with λz > 0 inside
  it, the most points. Where a rising window fits better than every falling one by more
  than the tolerance there is no λz (NA), which PKNCA reports without a reason and this
  module reports as "best-fitting terminal window is not falling (PKNCA rule)".

Both rules agree whenever the best-fitting window falls (every profile with an exponential
decline); they differ on profiles that rise again at the end (a CAR-T re-expansion), where
``"pknca"`` gives no λz and ``"best-falling"`` gives one from the best falling window.

User window: one fit on all eligible points (quantifiable, lo ≤ t ≤ hi).

Sums over the last k points come from cumulative sums of the points packed in reverse time
order, after centring on the last point (which keeps the sums well conditioned).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: λz window selection rules (see the module docstring).
LAMZ_SELECTIONS: dict[str, str] = {
    "best-falling": "adj. R2 within the tolerance of the best window with lambda_z > 0, then most points",
    "pknca": "PKNCA: adj. R2 within the tolerance of the best window of any slope (none when a "
             "rising window fits best), then most points",
}
NOT_FALLING = "best-fitting terminal window is not falling (PKNCA rule)"


@dataclass(frozen=True)
class LambdaZ:
    """Per-profile λz fit; NaN where not estimable, with the reason in ``reason``."""

    lamz: np.ndarray
    intercept: np.ndarray  # b0 of ln C = b0 − λz·t
    r2: np.ndarray
    adj_r2: np.ndarray
    n_points: np.ndarray
    t_lower: np.ndarray
    t_upper: np.ndarray
    reason: np.ndarray  # object array of str ('' when estimated)


def fit_lambda_z(t, c, eligible, min_points=3, tolerance=1e-4, use_all=False,
                 selection="best-falling") -> LambdaZ:
    """Fit λz for every row of the padded matrices ``t``, ``c`` on the ``eligible`` points.

    ``use_all`` fits all eligible points (user window) instead of choosing the best window;
    otherwise ``selection`` is a key of :data:`LAMZ_SELECTIONS`.
    """
    n, m = t.shape
    rows = np.arange(n)
    cols = np.arange(m)
    # pack eligible points with the latest first
    key = np.where(eligible, -cols[None, :], m + cols[None, :])
    order = np.argsort(key, axis=1, kind="stable")
    tp = np.take_along_axis(t, order, axis=1)
    cp = np.take_along_axis(c, order, axis=1)
    ne = eligible.sum(axis=1)
    ok = cols[None, :] < ne[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(ok, tp - tp[:, :1], 0.0)
        y = np.where(ok, np.log(np.where(ok, cp, 1.0)) - np.log(np.where(ne > 0, cp[:, 0], 1.0))[:, None], 0.0)
        k = (cols + 1.0)[None, :]
        sx, sy = np.cumsum(x, 1), np.cumsum(y, 1)
        sxx = np.cumsum(x * x, 1) - sx * sx / k
        sxy = np.cumsum(x * y, 1) - sx * sy / k
        syy = np.cumsum(y * y, 1) - sy * sy / k
        slope = sxy / sxx
        r2 = np.where(syy > 0, sxy * sxy / (sxx * syy), 1.0)
        adj = 1.0 - (1.0 - r2) * (k - 1.0) / (k - 2.0)
    enough = ok & (k >= min_points)
    positive = enough & (slope < 0)
    if use_all:
        pick = np.clip(ne - 1, 0, m - 1)
        chosen = positive[rows, pick]
    else:
        adj_v = np.where(positive, adj, -np.inf)
        if selection == "pknca":
            # every window counts for the best adjusted R² (a flat one has none: 0/0 in R)
            defined = enough & (syy > 0) & np.isfinite(adj)
            best = np.where(defined, adj, -np.inf).max(axis=1, initial=-np.inf)
        else:
            best = adj_v.max(axis=1, initial=-np.inf)
        cand = positive & (adj_v > best[:, None] - tolerance)
        chosen = cand.any(axis=1)
        pick = np.where(chosen, m - 1 - np.argmax(cand[:, ::-1], axis=1), 0)
    reason = np.full(n, "", dtype=object)
    reason[~chosen] = "no fit with lambda_z > 0"
    if not use_all:
        reason[~chosen & positive.any(axis=1)] = NOT_FALLING
    few = ~(enough.any(axis=1)) if not use_all else ~enough[rows, np.clip(ne - 1, 0, m - 1)]
    where = ("in the lambda_z window" if use_all else "after Tmax")
    reason[few] = f"fewer than {min_points} quantifiable points {where}"
    kk = pick + 1.0
    lam = np.where(chosen, -slope[rows, pick], np.nan)
    # intercept of ln C at t = 0, in original coordinates
    icpt_c = (sy[rows, pick] - slope[rows, pick] * sx[rows, pick]) / kk
    with np.errstate(divide="ignore", invalid="ignore"):
        b0 = np.log(cp[:, 0]) + icpt_c + slope[rows, pick] * (0.0 - tp[:, 0])
    return LambdaZ(
        lamz=lam,
        intercept=np.where(chosen, b0, np.nan),
        r2=np.where(chosen, r2[rows, pick], np.nan),
        adj_r2=np.where(chosen, adj[rows, pick], np.nan),
        n_points=np.where(chosen, kk, np.nan),
        t_lower=np.where(chosen, tp[rows, pick], np.nan),
        t_upper=np.where(chosen, tp[:, 0], np.nan),
        reason=reason,
    )
