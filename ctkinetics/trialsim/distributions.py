"""Delay distributions (manufacturing, vein-to-vein): a registry of named samplers.

Each entry maps settings (days) to a vectorised sampler ``draw(rng, size) -> ndarray`` of
non-negative delays in days. Parameters are checked when the spec is read, so a bad value
names its key before any trial runs.

- ``fixed``      ``days`` (every participant waits exactly that long; 0 = off the shelf)
- ``uniform``    ``low_days``, ``high_days``
- ``lognormal``  ``median_days``, ``sd_log`` (SD of ln delay): delay = median·exp(sd_log·z)
- ``gamma``      ``mean_days``, ``cv`` (shape k = 1/cv², scale = mean·cv²)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class DelayKind:
    name: str
    keys: tuple  # required settings, all non-negative numbers (days or dimensionless)
    description: str
    draw: Callable  # (rng, size, **settings) -> ndarray


def _fixed(rng, size, days):
    return np.full(size, float(days))


def _uniform(rng, size, low_days, high_days):
    return rng.uniform(low_days, high_days, size)


def _lognormal(rng, size, median_days, sd_log):
    return median_days * np.exp(sd_log * rng.standard_normal(size))


def _gamma(rng, size, mean_days, cv):
    if cv == 0:
        return np.full(size, float(mean_days))
    k = 1.0 / cv**2
    return rng.gamma(k, mean_days / k, size)


DELAYS = {d.name: d for d in (
    DelayKind("fixed", ("days",), "the same delay for everyone", _fixed),
    DelayKind("uniform", ("low_days", "high_days"), "uniform between two bounds", _uniform),
    DelayKind("lognormal", ("median_days", "sd_log"), "log-normal around a median", _lognormal),
    DelayKind("gamma", ("mean_days", "cv"), "gamma with a mean and a coefficient of variation", _gamma),
)}


@dataclass(frozen=True)
class Delay:
    """A delay distribution chosen from :data:`DELAYS` with its settings (days)."""

    kind: str = "fixed"
    settings: tuple = (("days", 0.0),)  # ((key, value), ...) to stay hashable and picklable

    def draw(self, rng, size: int) -> np.ndarray:
        return DELAYS[self.kind].draw(rng, size, **dict(self.settings))
