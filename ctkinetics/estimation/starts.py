"""Where the local optimisations of an individual fit start.

Two sources, both reproducible from the seed and the subject's id (never from the batch):

* :func:`start_values` — start 0 is the model's defaults; starts 1..n−1 are drawn
  uniformly within the bounds on the estimation scale (±2 around the default where a bound
  is infinite); residual SDs always start at their data-based default.
* :func:`switch_intervals` — the switch-time screen. A parameter that is a phase switch time
  of the model (stein2019's ``Tmax``, the end of expansion) makes the −2LL piecewise: each
  sampling interval that contains the switch assigns the samples to phases differently, and
  each can hold its own local optimum, with a kink wherever the switch crosses a sample.
  A start drawn at random covers one interval; so the screen runs one local fit per
  interval with the switch time *bounded to that interval* (between two consecutive
  sampling times, and from its lower bound to the first sample and from the last sample to
  its upper bound), all subjects and intervals in one batched run. Their end points are
  candidate optima; the best of them start full (unbounded) fits.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ctkinetics.estimation.likelihood import EXCLUDED


def subject_rng(seed, subject):
    """The random stream of one subject: depends on the seed and its id only."""
    return np.random.default_rng([int(seed), zlib.crc32(str(subject).encode())])


def start_values(group, n_starts: int, seed: int):
    """(n_starts, G, p) starts on the estimation scale (see the module)."""
    specs = group.layout.specs
    lo, hi = group.lower, group.upper
    default = np.array([float(s.to_est(s.default)) for s in specs])
    default = np.clip(default, lo, hi)
    # keep strictly inside: a start on a bound makes the trust region step degenerate
    width = np.where(np.isfinite(hi - lo), hi - lo, 4.0)
    default = np.clip(default, lo + 1e-6 * width, hi - 1e-6 * width)
    starts = np.empty((n_starts, group.G, len(specs)))
    starts[0] = default
    draw = np.array([s.role != "sigma" for s in specs])
    a = np.where(np.isfinite(lo), lo, default - 2.0)
    b = np.where(np.isfinite(hi), hi, default + 2.0)
    for g, subj in enumerate(group.subjects):
        rng = subject_rng(seed, subj.subject)
        for k in range(1, n_starts):
            u = rng.uniform(a + 1e-3 * (b - a), b - 1e-3 * (b - a))
            starts[k, g] = np.where(draw, u, default)
    return starts


def switch_parameters(group) -> list[int]:
    """Indices of estimated parameters that are a phase switch time of the model (a switch
    given by a bare parameter name, e.g. ``end = "Tmax"``)."""
    switches = set(getattr(group.model, "switch_names", ()) or ())
    return [j for j, s in enumerate(group.layout.specs)
            if s.role == "model" and s.model_name in switches]


@dataclass(frozen=True)
class Screen:
    """The rows of a switch-time screen: subject ``rows[i]`` of the group, started at
    ``theta0[i]`` within ``lower[i]``–``upper[i]`` (estimation scale); ``label[i]`` names
    the interval."""

    rows: np.ndarray
    theta0: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    label: list


def switch_intervals(group, default) -> Screen | None:
    """One bounded start per sampling interval of each switch-time parameter (module
    docstring); ``default`` (G, p) are the other parameters' starts. None without a switch
    time parameter."""
    cols = switch_parameters(group)
    if not cols:
        return None
    specs = group.layout.specs
    rows, th0, lows, ups, labels = [], [], [], [], []
    for g, subj in enumerate(group.subjects):
        times = np.unique(np.concatenate(
            [a.times[a.mode != EXCLUDED] for a in subj.analytes] or [np.zeros(0)]))
        for j in cols:
            sp = specs[j]
            lo_nat, hi_nat = float(sp.lower), float(sp.upper)
            inner = times[(times > lo_nat) & (times < hi_nat)]
            edges = np.concatenate([[lo_nat], inner, [hi_nat]])
            for a, b in zip(edges[:-1], edges[1:]):
                ea, eb = float(sp.to_est(a)), float(sp.to_est(b))
                if not (np.isfinite(ea) and np.isfinite(eb)) or eb <= ea:
                    continue
                start = default[g].copy()
                start[j] = 0.5 * (ea + eb)
                lo, hi = group.lower.copy(), group.upper.copy()
                lo[j], hi[j] = ea, eb
                rows.append(g)
                th0.append(start)
                lows.append(lo)
                ups.append(hi)
                labels.append(f"{sp.name} in [{a:g}, {b:g}]")
    if not rows:
        return None
    return Screen(np.array(rows), np.array(th0), np.array(lows), np.array(ups), labels)


__all__ = ["start_values", "switch_parameters", "switch_intervals", "Screen", "subject_rng"]
