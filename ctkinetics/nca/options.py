"""Every choice an NCA makes, in one immutable object that is recorded with the result.

>>> NCAOptions().describe()["auc_method"]
'lin-up/log-down'
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ctkinetics.errors import SettingsError
from ctkinetics.nca import quality
from ctkinetics.nca.auc import AUC_METHODS
from ctkinetics.nca.blq import BLQRule
from ctkinetics.nca.lambdaz import LAMZ_SELECTIONS

#: Interval AUC types, as PKNCA's aucint.last / aucint.all / aucint.inf.obs.
AUC_TYPES: dict[str, str] = {
    "last": "concentration 0 after Tlast (PKNCA aucint.last)",
    "all": "trailing BLQ samples kept as 0, concentration 0 after the last sample "
    "(PKNCA aucint.all)",
    "inf": "Clast·exp(−λz·(t − Tlast)) after Tlast (PKNCA aucint.inf.obs)",
}


@dataclass(frozen=True)
class NCAOptions:
    """Choices of an NCA run.

    Parameters
    ----------
    auc_method : str
        Key of :data:`ctkinetics.nca.auc.AUC_METHODS` ('lin-up/log-down', 'linear',
        'lin-log').
    blq : BLQRule or str
        BLQ handling (see :mod:`ctkinetics.nca.blq`); a string is parsed with
        :meth:`BLQRule.parse`.
    auc_type : str
        Default type of interval AUCs (AUCINT) requested without a type: 'last', 'all' or
        'inf'.
    lamz_window : (float, float) or None
        None: automatic λz (log-linear OLS on the last k ≥ ``lamz_min_points`` quantifiable
        points after Tmax; among fits with λz > 0 keep those with adjusted R² within
        ``lamz_adj_r2_tolerance`` of the best, then the most points). A pair (lo, hi): one
        fit on all quantifiable samples with lo ≤ t ≤ hi (e.g. day 14–84).
    lamz_selection : str
        Automatic window rule, a key of :data:`ctkinetics.nca.lambdaz.LAMZ_SELECTIONS`:
        'best-falling' (default; the tolerance is measured from the best window with
        λz > 0) or 'pknca' (PKNCA's exact rule: measured from the best window of any slope,
        so no λz where a rising window fits best).
    min_hl_adj_r_squared, min_hl_r_squared, min_span_ratio, max_aucinf_pext : float or None
        Quality rules (:mod:`ctkinetics.nca.quality`, PKNCA's exclusion options): a
        λz-dependent value is excluded, with the reason in ``exclude``, when adjusted R² <
        0.9, R² < (off by default), span ratio < 2, or the extrapolated share of AUC∞ > 20 %.
        None switches a rule off.
    cmax_exclude_before : float or None
        Samples earlier than this time after infusion (e.g. 0.25 day) may not define Cmax
        and Tmax (a sample minutes after infusion measures the infused cells). None: any
        post-infusion sample may.
    time_unit, dose_unit : str
        Units recorded in the output (concentration units come from the data).
    """

    auc_method: str = "lin-up/log-down"
    blq: BLQRule = field(default_factory=BLQRule)
    auc_type: str = "last"
    lamz_window: tuple | None = None
    lamz_min_points: int = 3
    lamz_adj_r2_tolerance: float = 1e-4
    lamz_selection: str = "best-falling"
    min_hl_adj_r_squared: float | None = 0.9
    min_hl_r_squared: float | None = None
    min_span_ratio: float | None = 2.0
    max_aucinf_pext: float | None = 20.0
    cmax_exclude_before: float | None = None
    time_unit: str = "day"
    dose_unit: str = "cells"

    def __post_init__(self):
        if self.auc_method not in AUC_METHODS:
            raise SettingsError(
                f"unknown AUC method {self.auc_method!r}; choose one of {', '.join(AUC_METHODS)}"
            )
        if isinstance(self.blq, str) or self.blq is None:
            object.__setattr__(self, "blq", BLQRule.parse(self.blq))
        if self.auc_type not in AUC_TYPES:
            raise SettingsError(f"unknown AUC type {self.auc_type!r}; choose one of {', '.join(AUC_TYPES)}")
        if self.lamz_window is not None:
            lo, hi = (float(v) for v in self.lamz_window)
            if not (np.isfinite(lo) and hi > lo):
                raise SettingsError(f"λz window must be (lo, hi) with lo < hi, got {self.lamz_window}")
            object.__setattr__(self, "lamz_window", (lo, hi))
        if int(self.lamz_min_points) < 2:
            raise SettingsError("lamz_min_points must be at least 2")
        if self.lamz_selection not in LAMZ_SELECTIONS:
            raise SettingsError(f"unknown λz selection {self.lamz_selection!r}; choose one of "
                                f"{', '.join(LAMZ_SELECTIONS)}")
        self._check_thresholds()

    def _check_thresholds(self):
        limits = {"min_hl_adj_r_squared": (0.0, 1.0), "min_hl_r_squared": (0.0, 1.0),
                  "min_span_ratio": (0.0, np.inf), "max_aucinf_pext": (0.0, 100.0)}
        for name, (lo, hi) in limits.items():
            value = getattr(self, name)
            if value is None:
                continue
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise SettingsError(f"{name} must be a number or None, got {value!r}") from None
            if not (lo < value < hi or (hi == 100.0 and value == hi)):
                raise SettingsError(f"{name} must lie in ({lo:g}, {hi:g}), got {value:g}")
            object.__setattr__(self, name, value)

    def describe(self) -> dict[str, str]:
        """The choices as text, written into every output."""
        lamz = (
            f"user window {self.lamz_window[0]:g}-{self.lamz_window[1]:g}"
            if self.lamz_window
            else f"auto {self.lamz_selection} (>= {self.lamz_min_points} points after Tmax, "
            f"{LAMZ_SELECTIONS[self.lamz_selection].replace('the tolerance', f'{self.lamz_adj_r2_tolerance:g}')})"
        )
        return {
            "auc_method": self.auc_method,
            "blq_rule": self.blq.describe(),
            "auc_type": self.auc_type,
            "lambda_z": lamz,
            "exclusion_rules": quality.describe(self) + " (a lambda_z-dependent value failing "
            "one keeps its number, with the reason in 'exclude')",
            "pre_infusion": "pre-infusion samples excluded; C(0) = 0 at infusion unless a "
            "post-infusion sample exists at time 0",
            "cmax_exclude_before": "none" if self.cmax_exclude_before is None
            else f"{self.cmax_exclude_before:g} {self.time_unit}",
        }

    def method_label(self) -> str:
        """One-line summary of the choices for a `method` column (on every row of every
        table, so it is short; :meth:`describe` spells each choice out)."""
        d = self.describe()
        if self.lamz_window:
            lamz = d["lambda_z"]
        else:
            lamz = f"auto {self.lamz_selection}"
            if self.lamz_min_points != 3:
                lamz += f" >= {self.lamz_min_points} points"
            if self.lamz_adj_r2_tolerance != 1e-4:
                lamz += f" tol {self.lamz_adj_r2_tolerance:g}"
        return (f"auc={d['auc_method']}; blq={d['blq_rule']}; aucint={d['auc_type']}; "
                f"lambda_z={lamz}; quality={quality.describe(self)}; "
                f"cmax_exclude_before={d['cmax_exclude_before']}")
