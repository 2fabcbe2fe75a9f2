"""The −2·log-likelihood of a group of subjects, vectorised over the subjects.

Subjects sampled at the same times (a simulated or nominal design) are stacked into one
:class:`Group` so that the model is evaluated once for all of them: parameters of shape
(G,) give predictions of shape (G, n_times) by the model's vectorised ``predict``. A subject
with its own sampling times is a group of one. The objective of each subject is separable,
so stacking changes speed, never estimates.
"""
from __future__ import annotations

import numpy as np

from ctkinetics.estimation.likelihood import (
    EXCLUDED, QUANTIFIED, ErrorModel, m2ll_terms, pseudo_residuals, weighted_residuals,
)
from ctkinetics.estimation.problem import ParamLayout, SubjectData

_BIG = 1e6  # stand-in for a non-finite residual, so one bad subject cannot stop a batch


class Group:
    """G subjects with identical analytes and sampling times.

    Parameters
    ----------
    model : model object (see :mod:`ctkinetics.estimation.problem`)
    layout : ParamLayout
    error : ErrorModel
    subjects : list of SubjectData (same :meth:`SubjectData.signature`)
    """

    def __init__(self, model, layout: ParamLayout, error: ErrorModel, subjects):
        self.model, self.layout, self.error = model, layout, error
        self.subjects = list(subjects)
        self.G = len(self.subjects)
        first = self.subjects[0]
        all_t = np.concatenate([a.times for a in first.analytes]) if first.analytes else []
        self.times = np.unique(np.asarray(all_t, dtype=float))
        self.idx = [np.searchsorted(self.times, a.times) for a in first.analytes]
        self.y = [np.vstack([s.analytes[k].y for s in self.subjects])
                  for k in range(len(first.analytes))]
        self.mode = [np.vstack([s.analytes[k].mode for s in self.subjects])
                     for k in range(len(first.analytes))]
        self.kinds = sorted({m.kind for m in layout.analytes})
        cov_names = sorted(set().union(*[s.covariates for s in self.subjects]))
        self.covariates = {c: np.array([s.covariates.get(c, np.nan) for s in self.subjects])
                           for c in cov_names}
        specs = layout.specs
        self.lower = np.array([sp.est_bounds[0] for sp in specs])
        self.upper = np.array([sp.est_bounds[1] for sp in specs])
        self.is_log = np.array([s.log for s in specs], bool)
        self.model_idx = [(s.model_name, i) for i, s in enumerate(specs) if s.role == "model"]
        self.scale_idx = {s.name: i for i, s in enumerate(specs) if s.role == "scale"}
        self.sigma_idx = {}
        for i, s in enumerate(specs):
            if s.role == "sigma":
                self.sigma_idx.setdefault(s.analyte, []).append(i)
        # floor of ln(sd²): keeps the pseudo-residual of the ln(2π sd²) term real
        self.ln_sd2_floor = {}
        for m in layout.analytes:
            lows = [specs[i].lower for i in self.sigma_idx[m.analyte]]
            self.ln_sd2_floor[m.analyte] = 2.0 * np.log(lows[-1] if len(lows) > 1 else lows[0])

    def subgroup(self, g):
        """The group of subject ``g`` alone."""
        return Group(self.model, self.layout, self.error, [self.subjects[g]])

    # ----------------------------------------------------------------------------------
    def natural(self, theta):
        theta = np.atleast_2d(theta)
        return np.where(self.is_log, np.exp(np.where(self.is_log, theta, 0.0)), theta)

    def _reps(self, theta):
        """theta may hold several copies of the group (k·G rows, copy-major): the
        finite-difference Jacobian evaluates all its perturbations in one model call."""
        rows = np.shape(theta)[0]
        if rows % self.G:
            raise ValueError(f"theta has {rows} rows for a group of {self.G}")
        return rows // self.G

    def predict(self, theta):
        """Predictions per analyte, each (rows of theta, n_times_of_that_analyte)."""
        nat = self.natural(theta)
        G = nat.shape[0]
        reps = self._reps(nat)
        if G == 1:
            params = {name: float(nat[0, i]) for name, i in self.model_idx}
            cov = {c: float(v[0]) for c, v in self.covariates.items()}
        else:
            params = {name: nat[:, i] for name, i in self.model_idx}
            cov = {c: np.tile(v, reps) for c, v in self.covariates.items()}
        params.update(self.layout.fixed)
        out = self.model.predict(params, self.times, covariates=cov or None,
                                 observables=self.kinds)
        preds = []
        for m, idx in zip(self.layout.analytes, self.idx):
            f = np.reshape(np.asarray(out[m.kind], dtype=float), (G, -1))[:, idx]
            if m.scale_param:
                f = f * nat[:, self.scale_idx[m.scale_param]][:, None]
            preds.append(f)
        return preds

    def _sd(self, nat, k, f):
        a = self.layout.analytes[k].analyte
        sig = tuple(nat[:, i] for i in self.sigma_idx[a])
        return self.error.sd(f, sig)

    def _pieces(self, theta):
        nat = self.natural(theta)
        preds = self.predict(theta)
        reps = self._reps(nat)
        for k, f in enumerate(preds):
            y, mode = self.y[k], self.mode[k]
            if reps > 1:
                y, mode = np.tile(y, (reps, 1)), np.tile(mode, (reps, 1))
            yield k, y, f, self._sd(nat, k, f), mode

    def ofv(self, theta):
        """−2·ln L per subject, shape (G,). ``theta`` is (G, p) on the estimation scale."""
        theta = np.atleast_2d(theta)
        total = np.zeros(theta.shape[0])
        for k, y, f, sd, mode in self._pieces(theta):
            t = m2ll_terms(self.error, y, f, sd, mode)
            total += np.where(np.isfinite(t), t, np.inf).sum(axis=1)
        return total

    def residuals(self, theta):
        """Pseudo-residuals (G, m) with Σ r² = −2·ln L − constant for each subject."""
        theta = np.atleast_2d(theta)
        parts = []
        for k, y, f, sd, mode in self._pieces(theta):
            a = self.layout.analytes[k].analyte
            parts.append(pseudo_residuals(self.error, y, f, sd, mode, self.ln_sd2_floor[a]))
        r = np.concatenate(parts, axis=1) if parts else np.zeros((theta.shape[0], 0))
        return np.nan_to_num(r, nan=_BIG, posinf=_BIG, neginf=-_BIG)

    def jacobian(self, theta, vary=None):
        """Forward-difference Jacobian of :meth:`residuals`, block diagonal over subjects:
        dense (G·m, G·p_vary), from one model call on all p + 1 parameter sets of every
        subject. Step h_j = 1.5e-8·max(1, |θ_j|)."""
        theta = np.atleast_2d(theta)
        G, p = theta.shape
        vary = np.ones(p, bool) if vary is None else np.asarray(vary, bool)
        cols = np.flatnonzero(vary)
        h = 1.49e-8 * np.maximum(1.0, np.abs(theta[:, cols]))          # (G, q)
        hi = self.upper[cols]
        # step inwards at an upper bound so the model is never evaluated outside it
        h = np.where(theta[:, cols] + h > hi, -h, h)
        big = np.tile(theta, (len(cols) + 1, 1))
        for k, j in enumerate(cols):
            big[(k + 1) * G:(k + 2) * G, j] += h[:, k]
        r = self.residuals(big)                     # ((q+1)·G, m)
        r0 = r[:G]
        m = r0.shape[1]
        q = len(cols)
        blocks = np.empty((G, m, q))
        for k in range(q):
            blocks[:, :, k] = (r[(k + 1) * G:(k + 2) * G] - r0) / h[:, [k]]
        if G == 1:
            return blocks[0]
        J = np.zeros((G, m, G, q))
        J[np.arange(G), :, np.arange(G), :] = blocks
        return J.reshape(G * m, G * q)

    def diagnostics(self, theta):
        """Per analyte: (ipred, iwres, p_blq) arrays of shape (G, n)."""
        theta = np.atleast_2d(theta)
        out = []
        for k, y, f, sd, mode in self._pieces(theta):
            iwres, p_blq = weighted_residuals(self.error, y, f, sd, mode)
            out.append((f, iwres, p_blq))
        return out

    def n_obs(self):
        return np.array([s.n_obs for s in self.subjects])


def mode_counts(group: Group):
    """Number of quantified and of non-excluded observations per subject."""
    q = sum((m == QUANTIFIED).sum(axis=1) for m in group.mode)
    n = sum((m != EXCLUDED).sum(axis=1) for m in group.mode)
    return q, n
