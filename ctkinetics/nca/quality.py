"""NCA quality rules: PKNCA's exclusion options, applied through the ``exclude`` column.

A λz regression can be computed and still be unusable: a window that fits badly, one that
spans less than two half-lives, or an AUC∞ that is mostly extrapolated. PKNCA keeps such
values and marks them with ``exclude(..., FUN = exclude_nca_*())``; so does ctkinetics, by
default, with PKNCA's thresholds:

==========================  ==========  =========  ======================================
option (NCAOptions)         default     tests      excludes (this and every dependent)
==========================  ==========  =========  ======================================
``min_hl_adj_r_squared``    0.9         R2ADJ      LAMZ (λz, t½, AUCIFO, AUCPEO, CLFO, …)
``min_hl_r_squared``        None (off)  R2         LAMZ
``min_span_ratio``          2           LAMZSPN    LAMZ
``max_aucinf_pext``         20 (%)      AUCPEO     AUCIFO (AUCPEO, AUCIFOD, CLFO, VZFO)
``max_aucinf_pext``         20 (%)      AUCPEP     AUCIFP (AUCPEP)
==========================  ==========  =========  ======================================

PKNCA's names: ``exclude_nca_min.hl.adj.r.squared(0.9)``, ``exclude_nca_min.hl.r.squared()``
(option ``min.hl.r.squared``, 0.9), ``exclude_nca_span.ratio()`` (``min.span.ratio``, 2),
``exclude_nca_max.aucinf.pext()`` (``max.aucinf.pext``, 20). The R² rule is off by default
because the adjusted-R² rule at the same threshold is stricter (adjusted R² ≤ R²); set
``min_hl_r_squared=0.9`` for PKNCA's option as such. ``None`` switches a rule off.

An excluded value keeps its number in ``value`` and gets the reason in ``exclude`` (e.g.
``"R2ADJ < 0.9 (poor λz regression)"``); summaries, dose proportionality and figures leave
it out. Several failing rules give their reasons joined by "; ". One difference from PKNCA:
an interval AUC of type 'inf' (AUCINT_INF) is excluded only where its interval ends after
Tlast, i.e. where it actually uses λz (PKNCA excludes it whenever λz is excluded).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ExclusionRule:
    """One quality rule: ``parameter`` compared with the threshold in option ``option``."""

    option: str  # NCAOptions field holding the threshold (None: rule off)
    parameter: str  # registry parameter tested
    bound: str  # "min": excluded when value < threshold; "max": when value > threshold
    root: str  # this parameter and every parameter computed from it are excluded
    meaning: str
    pknca: str
    unit: str = ""

    def reason(self, threshold: float) -> str:
        op = "<" if self.bound == "min" else ">"
        return f"{self.parameter} {op} {threshold:g}{self.unit} ({self.meaning})"

    def fails(self, values, threshold: float):
        with np.errstate(invalid="ignore"):
            return (values < threshold) if self.bound == "min" else (values > threshold)


#: The quality rules, in the order their reasons are written.
RULES: tuple[ExclusionRule, ...] = (
    ExclusionRule("min_hl_adj_r_squared", "R2ADJ", "min", "LAMZ", "poor λz regression",
                  "exclude_nca_min.hl.adj.r.squared(0.9)"),
    ExclusionRule("min_hl_r_squared", "R2", "min", "LAMZ", "poor λz regression",
                  "exclude_nca_min.hl.r.squared(), min.hl.r.squared = 0.9"),
    ExclusionRule("min_span_ratio", "LAMZSPN", "min", "LAMZ",
                  "λz window spans too few half-lives", "exclude_nca_span.ratio(), min.span.ratio = 2"),
    ExclusionRule("max_aucinf_pext", "AUCPEO", "max", "AUCIFO", "AUC∞ mostly extrapolated",
                  "exclude_nca_max.aucinf.pext(), max.aucinf.pext = 20", " %"),
    ExclusionRule("max_aucinf_pext", "AUCPEP", "max", "AUCIFP", "AUC∞ mostly extrapolated",
                  "exclude_nca_max.aucinf.pext(), max.aucinf.pext = 20", " %"),
)


def active_rules(options):
    """(rule, threshold) of every rule switched on in ``options``."""
    return [(r, getattr(options, r.option)) for r in RULES if getattr(options, r.option) is not None]


def describe(options) -> str:
    """The rules in force, as one line for the outputs (``"R2ADJ >= 0.9, ..."``)."""
    by_option: dict[str, list] = {}
    for rule, threshold in active_rules(options):
        by_option.setdefault(rule.option, []).append((rule, threshold))
    parts = []
    for rules in by_option.values():
        rule, threshold = rules[0]
        names = "/".join(r.parameter for r, _ in rules)
        parts.append(f"{names} {'>=' if rule.bound == 'min' else '<='} {threshold:g}{rule.unit}")
    return ", ".join(parts) if parts else "none"


def exclusion_reasons(profiles, start: float, end: float, names) -> dict:
    """Reasons, per requested parameter name, that the quality rules exclude its values.

    Parameters
    ----------
    profiles : ctkinetics.nca.engine.Profiles
        The profiles of one interval (their ``options`` hold the thresholds).
    start, end : float
        The interval.
    names : iterable of str
        Parameters requested for this interval.

    Returns
    -------
    dict
        name -> object array of '' or the reason(s), for the names some rule applies to.
    """
    from ctkinetics.nca.parameters import PARAMETERS, dependents

    failing = []  # (rule's dependents, its failed mask, its reason) of rules that fail somewhere
    for rule, threshold in active_rules(profiles.options):
        values, _ = PARAMETERS[rule.parameter].compute(profiles, start, end)
        failed = rule.fails(np.asarray(values, float), threshold)
        if failed.any():
            failing.append((dependents(rule.root), failed, rule.reason(threshold)))
    out: dict[str, np.ndarray] = {}
    combined: dict[tuple, np.ndarray] = {}  # one reason array per combination of rules
    for name in names:
        which = tuple(i for i, (deps, _, _) in enumerate(failing) if name in deps)
        if not which:
            continue
        if which not in combined:
            text = np.full(profiles.n, "", dtype=object)
            for i in which:
                _, failed, reason = failing[i]
                text[failed] = [f"{t}; {reason}" if t else reason for t in text[failed]]
            combined[which] = text
        text = combined[which]
        if PARAMETERS[name].interval:  # an interval AUC uses λz only past Tlast
            with np.errstate(invalid="ignore"):
                text = np.where(end > profiles.tlast, text, "")
        out[name] = text
    return out
