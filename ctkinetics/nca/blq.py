"""The one home of the BLQ rule (PKNCA's ``conc.blq``).

A BLQ sample is classified by its position relative to the quantifiable samples of its
profile — ``first`` (before the first quantifiable sample), ``middle`` (between the first
and the last) or ``last`` (after the last) — or, in the Tmax form, ``before_tmax`` /
``after_tmax``. Each position has an action:

- ``"keep"``: keep the sample with concentration 0 (PKNCA's "keep");
- ``"drop"``: leave the sample out of the NCA (it is listed in the exclusions table);
- a number: use that concentration;
- ``"lloq"`` or ``"lloq/2"``: use the sample's LLOQ or half of it.

The default is PKNCA's: first keep, middle drop, last keep.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.errors import SettingsError

_WORDS = ("keep", "drop", "lloq", "lloq/2")


def _check_action(action):
    if isinstance(action, str):
        a = action.strip().lower()
        if a in _WORDS:
            return a
        try:
            action = float(a)
        except ValueError:
            raise SettingsError(
                f"BLQ action {action!r} is not one of {', '.join(_WORDS)} or a number"
            ) from None
    if isinstance(action, (int, float)) and not isinstance(action, bool):
        if not np.isfinite(action) or action < 0:
            raise SettingsError(f"BLQ replacement value must be a finite number >= 0, got {action}")
        return float(action)
    raise SettingsError(f"invalid BLQ action {action!r}")


@dataclass(frozen=True)
class BLQRule:
    """What to do with BLQ samples, by position.

    Either ``first``/``middle``/``last`` (default) or, when ``by_tmax`` is True,
    ``before_tmax``/``after_tmax``.
    """

    first: object = "keep"
    middle: object = "drop"
    last: object = "keep"
    by_tmax: bool = False
    before_tmax: object = "keep"
    after_tmax: object = "drop"

    def __post_init__(self):
        for name in ("first", "middle", "last", "before_tmax", "after_tmax"):
            object.__setattr__(self, name, _check_action(getattr(self, name)))

    @classmethod
    def parse(cls, text: str | None) -> "BLQRule":
        """Parse ``"first=keep,middle=drop,last=0"`` or ``"before_tmax=keep,after_tmax=drop"``."""
        if text is None or not str(text).strip():
            return cls()
        fields = {}
        for part in str(text).split(","):
            if "=" not in part:
                raise SettingsError(
                    f"BLQ rule part {part!r} must look like position=action "
                    "(positions: first, middle, last, before_tmax, after_tmax)"
                )
            k, v = (s.strip().lower().replace("-", "_") for s in part.split("=", 1))
            if k not in ("first", "middle", "last", "before_tmax", "after_tmax"):
                raise SettingsError(f"unknown BLQ position {k!r}")
            fields[k] = v
        by_tmax = any(k.endswith("tmax") for k in fields)
        if by_tmax and any(not k.endswith("tmax") for k in fields):
            raise SettingsError("a BLQ rule uses either first/middle/last or before/after_tmax, not both")
        return cls(by_tmax=by_tmax, **fields)

    def describe(self) -> str:
        if self.by_tmax:
            return f"before_tmax={self.before_tmax},after_tmax={self.after_tmax}"
        return f"first={self.first},middle={self.middle},last={self.last}"


def apply_blq_rule(rule: BLQRule, value, blq, valid, lloq):
    """Apply ``rule`` to padded profile matrices.

    Parameters
    ----------
    value, blq, valid, lloq : ndarray, shape (n_profiles, n_samples)
        Rows are profiles sorted by time; ``valid`` marks real cells (not padding).

    Returns
    -------
    conc : ndarray
        Concentrations to use (BLQ replaced by the rule's value; NaN where dropped).
    dropped : ndarray of bool
        BLQ samples the rule drops.
    position : ndarray of object
        The position name that applied to each BLQ cell ('' elsewhere), for the audit.
    """
    quant = valid & ~blq
    is_blq = valid & blq
    n = value.shape[1]
    cols = np.arange(n)
    anyq = quant.any(axis=1)
    if rule.by_tmax:
        filled = np.where(quant, value, -np.inf)
        itmax = np.argmax(filled, axis=1)
        itmax = np.where(anyq, itmax, n)  # no quantifiable sample: all BLQ are "before"
        positions = {
            "before_tmax": cols[None, :] < itmax[:, None],
            "after_tmax": cols[None, :] > itmax[:, None],
        }
    else:
        first_q = np.where(anyq, np.argmax(quant, axis=1), n)
        last_q = np.where(anyq, n - 1 - np.argmax(quant[:, ::-1], axis=1), n)
        positions = {
            "first": cols[None, :] < first_q[:, None],
            "middle": (cols[None, :] > first_q[:, None]) & (cols[None, :] < last_q[:, None]),
            "last": (cols[None, :] > last_q[:, None]) & anyq[:, None],
        }
    conc = np.where(quant, value, np.nan)
    dropped = np.zeros_like(valid)
    position = np.full(value.shape, "", dtype=object)
    for name, where in positions.items():
        cells = is_blq & where
        if not cells.any():
            continue
        position[cells] = name
        action = getattr(rule, name)
        if action == "drop":
            dropped |= cells
        elif action == "keep":
            conc[cells] = 0.0
        elif action == "lloq":
            conc[cells] = lloq[cells]
        elif action == "lloq/2":
            conc[cells] = lloq[cells] / 2.0
        else:
            conc[cells] = action
    # A BLQ sample whose LLOQ is unknown cannot take an LLOQ-based value: drop it (audited).
    missing = is_blq & ~dropped & np.isnan(conc)
    dropped |= missing
    return conc, dropped, position, missing
