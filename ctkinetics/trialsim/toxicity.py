"""Exposure–outcome links (toxicity and efficacy) and the time of a DLT inside the window
(registries).

Links (:data:`LINKS`), each giving P(DLT) of (participant, dose level) pairs:

- ``fixed``     a true DLT rate per dose level, whatever the kinetics (the classical OC setting)
- ``logistic``  logit P(DLT) = logit(p_ref) + slope · ln(E / E_ref), with E the participant's
  exposure metric (``cmax`` or ``auc0_28``) at that level: P = p_ref at E = E_ref, and each
  e-fold rise of exposure multiplies the odds by exp(slope).

Participant i has a DLT at level j iff ``u_i < P_ij`` with one uniform u_i per participant
(common across levels and rules, so a participant toxic at a dose stays toxic at higher
exposure). Every function works on K pairs at once: uniforms (K,), levels (K,) and the
pairs' exposures (dict metric -> (K,)).

Onsets (:data:`ONSETS`), days after infusion, inside (0, T]:

- ``uniform``  onset = v_i · T with a uniform v_i (Yuan et al. 2018's default)
- ``peak``     onset = Tmax_ij + lag (cytokine release follows expansion), clipped to [0.5, T]

Efficacy (:class:`EfficacySpec`, for BOIN12 rules) uses the same links: participant i responds
at level j iff ``w_i < P_ij`` with its own uniform w_i; the response is known
``assessment_day`` days after infusion (the protocol's ``[efficacy]`` setting).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class ToxicitySpec:
    link: str = "fixed"
    rates: tuple = ()  # fixed: one per level
    metric: str = "cmax"  # logistic
    reference: float = 1.0
    p_at_reference: float = 0.2
    slope: float = 1.0
    onset: str = "uniform"
    onset_lag_days: float = 0.0


def _fixed(spec, expo, levels):
    return np.asarray(spec.rates, dtype=float)[levels]


def _logistic(spec, expo, levels):
    x = expo[spec.metric]
    logit = np.log(spec.p_at_reference / (1 - spec.p_at_reference)) + spec.slope * np.log(x / spec.reference)
    return 1.0 / (1.0 + np.exp(-logit))


@dataclass(frozen=True)
class Link:
    name: str
    needs_kinetics: bool
    description: str
    probability: Callable  # (spec, exposures (dict of (K,)) | None, levels (K,)) -> (K,)


LINKS = {k.name: k for k in (
    Link("fixed", False, "a fixed true DLT rate per dose level", _fixed),
    Link("logistic", True, "logistic in ln(exposure): logit p = logit(p_ref) + slope*ln(E/E_ref)", _logistic),
)}


def _uniform_onset(spec, v, expo, window):
    return np.maximum(v, 1e-9) * window


def _peak_onset(spec, v, expo, window):
    return np.clip(expo["tmax"] + spec.onset_lag_days, 0.5, window)


@dataclass(frozen=True)
class Onset:
    name: str
    needs_kinetics: bool
    description: str
    day: Callable  # (spec, uniforms (K,), exposures (dict of (K,)) | None, window) -> (K,)


ONSETS = {o.name: o for o in (
    Onset("uniform", False, "uniform over the DLT window", _uniform_onset),
    Onset("peak", True, "at the participant's kinetic peak plus a lag", _peak_onset),
)}


@dataclass(frozen=True)
class EfficacySpec:
    """The efficacy outcome model: a link of :data:`LINKS` and its settings (as the toxicity's)."""

    link: str = "fixed"
    rates: tuple = ()
    metric: str = "auc0_28"
    reference: float = 1.0
    p_at_reference: float = 0.3
    slope: float = 1.0


def response(spec: EfficacySpec, u, expo, levels):
    """Efficacy responses (K,) of K (participant, level) pairs from their uniforms ``u``."""
    return np.asarray(u) < LINKS[spec.link].probability(spec, expo, np.asarray(levels, dtype=int))


def dlt_outcomes(spec: ToxicitySpec, tox_u, onset_u, expo, levels, window: float):
    """DLT indicator (K,) and onset day after infusion (K,; meaningful where DLT) of K
    (participant, level) pairs, from their uniforms, exposures (or None) and levels."""
    levels = np.asarray(levels, dtype=int)
    p = LINKS[spec.link].probability(spec, expo, levels)
    dlt = np.asarray(tox_u) < p
    onset = ONSETS[spec.onset].day(spec, np.asarray(onset_u, dtype=float), expo, window)
    return dlt, np.broadcast_to(onset, dlt.shape)
