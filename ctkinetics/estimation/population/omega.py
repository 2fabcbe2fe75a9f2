"""Structures of the random-effect covariance Ω: objects that carry their own algebra.

A structure says how Ω (q × q) is parameterised in the optimiser's vector ``x``, its bounds
and names, which entries are reported, and how SAEM's M-step projects the sufficient
statistics onto it. ``fit_population(omega=...)`` takes a structure or its name
(:data:`OMEGA_STRUCTURES`):

==========  ====================================  ==========================================
name        part of ``x``                          Ω
==========  ====================================  ==========================================
diagonal    ln ω_k (q values)                       diag(exp(2·part))
block       lower Cholesky factor L (q(q+1)/2):     L·Lᵀ (every pair of random effects
            ln of its diagonal, raw off-diagonals   correlated, NONMEM's $OMEGA BLOCK)
==========  ====================================  ==========================================
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctkinetics.errors import SettingsError

#: Bounds of ln ω (diagonal) or of the ln-diagonal of the Cholesky factor (block):
#: ω from e^-7 ≈ 0.001 to e^3 ≈ 20 on the log scale.
LN_OMEGA_BOUNDS = (-7.0, 3.0)
#: Bounds of the off-diagonal Cholesky entries of a block.
OFF_DIAGONAL_BOUNDS = (-20.0, 20.0)


@dataclass(frozen=True)
class Diagonal:
    """Independent random effects: Ω = diag(ω²)."""

    name = "diagonal"

    def size(self, q: int) -> int:
        return q

    def pairs(self, q: int) -> list:
        """(i, j) of the reported entries, in the order of ``x``."""
        return [(i, i) for i in range(q)]

    def labels(self, random) -> list:
        return [f"omega_{r}" for r in random]

    def from_part(self, part, q: int):
        return np.diag(np.exp(2.0 * np.asarray(part, float)))

    def to_part(self, omega):
        return 0.5 * np.log(np.diag(np.asarray(omega, float)))

    def bounds(self, q: int):
        return [LN_OMEGA_BOUNDS[0]] * q, [LN_OMEGA_BOUNDS[1]] * q

    def entries(self, omega):
        """The reported values of Ω (as :meth:`pairs`)."""
        return np.diag(omega)

    def project(self, omega):
        """SAEM's M-step: the closest Ω of this structure to a full estimate."""
        return np.diag(np.diag(omega))

    def anneal(self, new, old):
        """SAEM's annealing in the first half of the burn-in: ω² shrinks ≤ 5 % per step."""
        return np.maximum(new, 0.95 * old)

    def variance_floor(self, q: int):
        return np.full(q, np.exp(2 * LN_OMEGA_BOUNDS[0]))


@dataclass(frozen=True)
class Block(Diagonal):
    """One block of correlated random effects: Ω = L·Lᵀ (NONMEM's $OMEGA BLOCK(q))."""

    name = "block"

    def size(self, q: int) -> int:
        return q * (q + 1) // 2

    def pairs(self, q: int) -> list:
        return [(i, j) for i in range(q) for j in range(i + 1)]

    def labels(self, random) -> list:
        q = len(random)
        return [f"chol_{random[i]}_{random[j]}" for i, j in self.pairs(q)]

    def from_part(self, part, q: int):
        L = np.zeros((q, q))
        L[np.tril_indices(q)] = np.asarray(part, float)
        d = np.diag_indices(q)
        L[d] = np.exp(L[d])
        return L @ L.T

    def to_part(self, omega):
        omega = np.asarray(omega, float)
        q = omega.shape[0]
        L = np.linalg.cholesky(omega)
        d = np.diag_indices(q)
        L[d] = np.log(L[d])
        return L[np.tril_indices(q)]

    def bounds(self, q: int):
        lo, hi = [], []
        for i, j in self.pairs(q):
            a, b = LN_OMEGA_BOUNDS if i == j else OFF_DIAGONAL_BOUNDS
            lo.append(a)
            hi.append(b)
        return lo, hi

    def entries(self, omega):
        return np.asarray(omega)[np.tril_indices(np.shape(omega)[0])]

    def project(self, omega):
        return omega

    def anneal(self, new, old):
        return new + max(0.0, 0.95 * np.trace(old) / np.trace(new) - 1) * new

    def variance_floor(self, q: int):
        return np.full(q, 1e-6)


#: Ω structures by name.
OMEGA_STRUCTURES = {"diagonal": Diagonal(), "block": Block()}


def resolve_omega(omega) -> Diagonal:
    """A structure from itself or its name (SettingsError listing the choices otherwise)."""
    if isinstance(omega, Diagonal):
        return omega
    try:
        return OMEGA_STRUCTURES[str(omega).lower()]
    except KeyError:
        raise SettingsError(f"omega must be one of {', '.join(OMEGA_STRUCTURES)} "
                            f"(got '{omega}')") from None


__all__ = ["Diagonal", "Block", "OMEGA_STRUCTURES", "resolve_omega"]
