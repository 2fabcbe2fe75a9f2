"""The −2·log-likelihood of a group of subjects, vectorised over the subjects.

Subjects are stacked into one :class:`Group` so that the model is evaluated once for all of
them: parameters of shape (G,) give predictions of shape (G, n_times) by the model's
vectorised ``predict``. Subjects sampled at the same times (a simulated or nominal design)
share those times; subjects with their own times (a ragged stack) are predicted at the union
of their times and each reads its own, the shorter padded with excluded samples that add
nothing to the likelihood. The objective of each subject is separable, so stacking changes
speed, never the objective.
"""
from __future__ import annotations

import numpy as np

from ctkinetics.estimation.likelihood import (
    CENSORED, EXCLUDED, QUANTIFIED, ErrorModel, m2ll_from_z, pseudo_residual_jacobian,
    residuals_from_z, weighted_residuals,
)
from ctkinetics.estimation.events import StackedEvents
from ctkinetics.estimation.predictor import ModelPredictor
from ctkinetics.estimation.problem import ParamLayout

_BIG = 1e6  # stand-in for a non-finite residual, so one bad subject cannot stop a batch


class Group:
    """G subjects with the same analytes (sampling times may differ: see the module).

    Parameters
    ----------
    model : model object (see :mod:`ctkinetics.estimation.problem`)
    layout : ParamLayout
    error : ErrorModel
    subjects : list of SubjectData
    """

    def __init__(self, model, layout: ParamLayout, error: ErrorModel, subjects):
        self.model, self.layout, self.error = model, layout, error
        self.subjects = list(subjects)
        self.G = len(self.subjects)
        n_an = len(self.subjects[0].analytes)
        if any(len(s.analytes) != n_an for s in self.subjects):
            raise ValueError("subjects of a group must have the same analytes")
        self._stack_samples(n_an)
        self.kinds = sorted({m.kind for m in layout.analytes})
        self.predictor = ModelPredictor(model, self.kinds)
        #: exact Jacobians from the model's sensitivities (False: finite differences)
        self.analytic = True
        self._stack_covariates()
        self._parameter_maps()
        self._set_prior(getattr(layout, "prior", None))

    def _stack_samples(self, n_an):
        """The model is evaluated once at the union of the subjects' sampling times; each
        subject's samples index into it (padded with excluded samples when ragged)."""
        all_t = [a.times for s in self.subjects for a in s.analytes]
        self.times = (np.unique(np.concatenate(all_t).astype(float)) if all_t
                      else np.zeros(0))
        self.idx, self.y, self.mode = [], [], []
        self.common = []   # per analyte: the subjects' shared index row, or None if ragged
        for k in range(n_an):
            parts = [s.analytes[k] for s in self.subjects]
            width = max(len(a.times) for a in parts)
            if all(len(a.times) == width for a in parts) and \
                    all(np.array_equal(a.times, parts[0].times) for a in parts[1:]):
                idx = np.broadcast_to(np.searchsorted(self.times, parts[0].times),
                                      (self.G, width))
                y = np.vstack([a.y for a in parts])
                mode = np.vstack([a.mode for a in parts])
                self.common.append(idx[0])
            else:
                self.common.append(None)
                idx = np.zeros((self.G, width), int)
                y = np.ones((self.G, width))
                mode = np.full((self.G, width), EXCLUDED)
                for g, a in enumerate(parts):
                    j = len(a.times)
                    idx[g, :j] = np.searchsorted(self.times, a.times)
                    y[g, :j], mode[g, :j] = a.y, a.mode
            self.idx.append(idx)
            self.y.append(y)
            self.mode.append(mode)

    def _stack_covariates(self):
        """Covariate arrays (G,): a subject without a value gets the model's default, as when
        fitted alone; the re-infusions and time courses of issue 17."""
        cov_names = sorted(set().union(*[s.covariates for s in self.subjects]))
        model_cov = getattr(self.model, "covariates", None)
        defaults = dict(model_cov) if hasattr(model_cov, "items") else {}
        self.covariates = {c: np.array([s.covariates.get(c, defaults.get(c, np.nan))
                                        for s in self.subjects], dtype=float)
                           for c in cov_names}
        self.events = StackedEvents(self.subjects)  # issue 17: re-infusions, time courses

    def _parameter_maps(self):
        """Bounds, scales and the roles of the estimated parameters' columns."""
        specs = self.layout.specs
        self.lower = np.array([sp.est_bounds[0] for sp in specs])
        self.upper = np.array([sp.est_bounds[1] for sp in specs])
        self.is_log = np.array([s.log for s in specs], bool)
        self.model_idx = [(s.model_name, i) for i, s in enumerate(specs) if s.role == "model"]
        self.scale_idx = {s.name: i for i, s in enumerate(specs) if s.role == "scale"}
        self.is_sigma = np.array([s.role == "sigma" for s in specs], bool)
        self._sigma_terms(specs)

    def _sigma_terms(self, specs):
        """Per analyte, its SDs in the error model's order: (column, None) for an estimated
        one, (None, value) for one held fixed (``layout.fixed_sigmas``); the floor of
        ln(sd²), and the estimated SDs' columns (``sigma_idx``)."""
        terms = {}
        for i, s in enumerate(specs):
            if s.role == "sigma":
                terms.setdefault(s.analyte, []).append((s, i))
        for s in getattr(self.layout, "fixed_sigmas", ()):
            terms.setdefault(s.analyte, []).append((s, None))
        order = list(getattr(self.error, "sigma_names", ()))
        self.sigma_terms, self.ln_sd2_floor = {}, {}
        for a, items in terms.items():
            items.sort(key=lambda t: order.index(t[0].model_name)
                       if t[0].model_name in order else 0)
            self.sigma_terms[a] = [(i, s.default if i is None else None) for s, i in items]
            # floor of ln(sd²): keeps the pseudo-residual of the ln(2π sd²) term real
            lows = [s.lower for s, _ in items]
            self.ln_sd2_floor[a] = 2.0 * np.log(lows[-1] if len(lows) > 1 else lows[0])
        self.sigma_idx = {a: [i for i, _ in t if i is not None]
                          for a, t in self.sigma_terms.items()}

    def _sigmas(self, nat, analyte) -> list:
        """The SDs of ``analyte``, each (rows of ``nat``,): estimated or held fixed."""
        rows = nat.shape[0]
        return [nat[:, i] if i is not None else np.full(rows, float(v))
                for i, v in self.sigma_terms[analyte]]

    def _set_prior(self, prior):
        """MAP fits (:mod:`.prior`): the columns with a prior, each subject's mean, L⁻¹ and
        ln|2πΩ| — the prior's pseudo-residuals are L⁻¹(φ − μ_i)."""
        self.prior = prior
        if prior is None:
            return
        names = [s.name for s in self.layout.specs]
        missing = [n for n in prior.names if n not in names]
        if missing:
            raise ValueError(f"prior on parameters not estimated: {missing}")
        self.prior_cols = np.array([names.index(n) for n in prior.names], int)
        self.prior_mu = np.array([prior.mean_of(s.subject) for s in self.subjects], float)
        self.prior_linv = prior.chol_inv
        self.prior_const = prior.log_det

    def prior_residuals(self, theta):
        """(rows, k) pseudo-residuals of the prior (rows of theta: copies of the group)."""
        theta = np.atleast_2d(theta)
        mu = np.tile(self.prior_mu, (self._reps(theta), 1))
        return (theta[:, self.prior_cols] - mu) @ self.prior_linv.T

    def subgroup(self, g):
        """The group of subject ``g`` alone."""
        return Group(self.model, self.layout, self.error, [self.subjects[g]])

    def take(self, rows):
        """The group of the subjects ``rows`` (int array), sharing this group's arrays'
        layout (no re-indexing of the data: cheap enough to call every iteration)."""
        rows = np.asarray(rows, int)
        new = object.__new__(Group)
        new.__dict__.update(self.__dict__)
        new.subjects = [self.subjects[i] for i in rows]
        new.G = len(rows)
        new.idx = [i[rows] for i in self.idx]
        new.y = [y[rows] for y in self.y]
        new.mode = [m[rows] for m in self.mode]
        new.covariates = {c: v[rows] for c, v in self.covariates.items()}
        new.events = self.events.take(rows)
        if self.prior is not None:
            new.prior_mu = self.prior_mu[rows]
        new._terms = {k: tuple(a[rows] for a in v)
                      for k, v in self.__dict__.get("_terms", {}).items()}
        return new

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
        """Predictions per analyte, each (rows of theta, width of that analyte)."""
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
        out = self.predictor.predict(params, self.times, self.events.extend(cov, reps))
        preds = []
        for m, idx, common in zip(self.layout.analytes, self.idx, self.common):
            full = np.reshape(np.asarray(out[m.kind], dtype=float), (G, -1))
            if common is not None:
                f = full[:, common]
            else:
                f = np.take_along_axis(full, np.tile(idx, (reps, 1)), axis=1)
            if m.scale_param:
                f = f * nat[:, self.scale_idx[m.scale_param]][:, None]
            preds.append(f)
        return preds

    def _sd(self, nat, k, f):
        a = self.layout.analytes[k].analyte
        return self.error.sd(f, tuple(self._sigmas(nat, a)))

    def _pieces(self, theta, preds=None):
        nat = self.natural(theta)
        preds = self.predict(theta) if preds is None else preds
        reps = self._reps(nat)
        for k, f in enumerate(preds):
            y, mode = self.y[k], self.mode[k]
            if reps > 1:
                y, mode = np.tile(y, (reps, 1)), np.tile(mode, (reps, 1))
            yield k, y, f, self._sd(nat, k, f), mode

    def _standardised(self, theta, preds):
        """Per analyte: (analyte map, T(y), z, sd, quantified mask, censored mask), with
        z = (T(y) − T(f))/sd of shape (copies of the stencil, subjects, samples). T(y) and the
        masks are cached per group; the copies broadcast against the data instead of tiling it."""
        theta = np.atleast_2d(theta)
        nat = self.natural(theta)
        preds = self.predict(theta) if preds is None else preds
        reps, G = self._reps(nat), self.G
        for k, f in enumerate(preds):
            m = self.layout.analytes[k]
            ty, quant, cens = self._data_terms(k)
            sig = self._sigmas(nat, m.analyte)
            sd = sig[0][:, None] if len(sig) == 1 else self.error.sd(f, tuple(sig))
            sd = sd.reshape(reps, G, -1)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                z = (ty[None] - self.error.transform(f).reshape(reps, G, ty.shape[1])) / sd
            yield m, ty, z, sd, quant, cens

    def ofv(self, theta, preds=None):
        """−2·ln L per subject, shape (rows of theta,), ``theta`` (rows, p) on the estimation
        scale: :func:`likelihood.m2ll_from_z` on cached T(y), ln Φ only for censored samples."""
        rows = np.atleast_2d(theta).shape[0]
        total = np.zeros((rows // self.G, self.G))
        for _, ty, z, sd, quant, cens in self._standardised(theta, preds):
            jac = 2.0 * ty[None] if self.error.log_transform else 0.0  # 2·ln y: T(y) = ln y
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                t = m2ll_from_z(z, sd, jac, quant, cens)
            total += np.where(np.isfinite(t), t, np.inf).sum(axis=2)
        total = total.reshape(rows)
        if self.prior is not None:       # −2 ln p(φ): the MAP objective
            rp = self.prior_residuals(theta)
            total = total + np.einsum("rk,rk->r", rp, rp) + self.prior_const
        return total

    def residuals(self, theta, preds=None):
        """Pseudo-residuals (rows of theta, m) with Σ r² = −2·ln L − constant per subject.

        The same numbers as :func:`likelihood.pseudo_residuals` (tested), computed the way an
        optimiser calls them thousands of times (see :meth:`_standardised`).
        """
        rows = np.atleast_2d(theta).shape[0]
        parts = []
        for m, ty, z, sd, quant, cens in self._standardised(theta, preds):
            w = ty.shape[1]
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                r1, r2 = residuals_from_z(z, sd, quant, cens, self.ln_sd2_floor[m.analyte])
            parts.append(np.concatenate([r1, r2], axis=-1).reshape(rows, 2 * w))
        if self.prior is not None:
            parts.append(self.prior_residuals(theta))
        r = np.concatenate(parts, axis=1) if len(parts) > 1 else (
            parts[0] if parts else np.zeros((rows, 0)))
        if not np.all(np.isfinite(r)):
            r = np.nan_to_num(r, nan=_BIG, posinf=_BIG, neginf=-_BIG)
        return r

    def _data_terms(self, k):
        """T(y), quantified mask, censored mask of analyte ``k`` (cached per group)."""
        cache = self.__dict__.setdefault("_terms", {})
        if k not in cache:
            mode = self.mode[k]
            with np.errstate(invalid="ignore"):
                ty = self.error.transform(np.where(mode == EXCLUDED, 1.0, self.y[k]))
            cache[k] = (ty, mode == QUANTIFIED, mode == CENSORED)
        return cache[k]

    def predict_stencil(self, big):
        """Predictions at a stack of parameter sets (k·G rows, copy-major), calling the
        model once per distinct copy: copies that differ only in residual SDs (which do not
        enter the predictions) share one evaluation — a Jacobian needs p of its p + 1
        copies, a central-difference Hessian 1 + 2q + 2q(q−1) instead of 1 + 2p + 2p(p−1)
        for q kinetic parameters."""
        G = self.G
        reps = self._reps(big)
        if reps == 1:
            return self.predict(big)
        blocks = big.reshape(reps, G, -1)
        kinetic = np.ascontiguousarray(blocks[:, :, ~self.is_sigma])
        seen, first, inverse = {}, [], np.empty(reps, int)
        for k in range(reps):          # exact duplicates, by their bytes (np.unique with
            key = kinetic[k].tobytes()  # axis=0 sorts: a thousand times slower here)
            if key not in seen:
                seen[key] = len(first)
                first.append(k)
            inverse[k] = seen[key]
        if len(first) == reps:
            return self.predict(big)
        first = np.array(first)
        pred_sub = self.predict(blocks[first].reshape(-1, big.shape[1]))
        return [f.reshape(first.size, G, -1)[inverse].reshape(reps * G, -1)
                for f in pred_sub]

    def predict_with_sensitivities(self, theta):
        """Predictions per analyte (G, w) and their derivatives (G, w, p) with respect to
        every estimated parameter on the estimation scale (ln for log parameters; 0 for the
        residual SDs), from the model's forward sensitivities in one call."""
        nat = self.natural(theta)
        G, p = nat.shape
        names = [name for name, _ in self.model_idx]
        params = {name: nat[:, i] for name, i in self.model_idx}
        params.update(self.layout.fixed)
        cov = self.events.extend(dict(self.covariates))
        values, derivs = self.predictor.sensitivities(params, self.times, cov, wrt=names)
        chain = np.where(self.is_log, nat, 1.0)                 # ∂p/∂θ for ln parameters
        cols = [i for _, i in self.model_idx]
        preds, dpreds = [], []
        for m, idx in zip(self.layout.analytes, self.idx):
            v = np.reshape(np.asarray(values[m.kind], float), (G, -1))
            d = np.reshape(np.asarray(derivs[m.kind], float), (G, v.shape[1], len(names)))
            f = np.take_along_axis(v, idx, axis=1)
            df = np.zeros(f.shape + (p,))
            df[..., cols] = np.take_along_axis(d, idx[..., None], axis=1) * chain[:, None, cols]
            if m.scale_param:
                j = self.scale_idx[m.scale_param]
                s = nat[:, j][:, None]
                df *= s[..., None]
                f = f * s
                df[..., j] = f                                   # ∂(s·g)/∂ln s = s·g
            preds.append(f)
            dpreds.append(df)
        return preds, dpreds

    def residuals_and_jacobian(self, theta, cols=None):
        """(:meth:`residuals`, exact Jacobian (G, m, len(cols))) from one call of the model's
        sensitivities (see :meth:`_analytic_jacobian`)."""
        theta = np.atleast_2d(theta)
        cols = np.arange(theta.shape[1]) if cols is None else cols
        return self._analytic_jacobian(theta, cols, with_residuals=True)

    def _analytic_jacobian(self, theta, cols, with_residuals=False):
        """Exact Jacobian of :meth:`residuals`, (G, m, len(cols)), by the chain rule from the
        sensitivities: ∂z/∂θ = −(T'(f)·∂f/∂θ + z·∂sd/∂θ)/sd, and ∂r/∂z, ∂r/∂sd of
        :func:`likelihood.residual_derivatives`."""
        theta = np.atleast_2d(theta)
        nat = self.natural(theta)
        preds, dpreds = self.predict_with_sensitivities(theta)
        blocks, res = [], []
        for k, (f, df) in enumerate(zip(preds, dpreds)):
            m = self.layout.analytes[k]
            ty, quant, cens = self._data_terms(k)
            sig = tuple(v[:, None] for v in self._sigmas(nat, m.analyte))
            with np.errstate(all="ignore"):
                sd = np.broadcast_to(self.error.sd(f, sig), f.shape)
                dsd_df, dsd_dsig = self.error.sd_derivatives(f, sig, sd)
                dsd = dsd_df[..., None] * df
                for (i, _), dsi in zip(self.sigma_terms[m.analyte], dsd_dsig):
                    if i is not None:                              # a held SD has no column
                        dsd[..., i] += dsi * nat[:, i][:, None]  # ∂σ/∂ln σ = σ
            (r1, r2), (j1, j2) = pseudo_residual_jacobian(
                self.error, ty, f, df, sd, dsd, quant, cens, self.ln_sd2_floor[m.analyte])
            blocks += [j1, j2]
            res += [r1, r2]
        if self.prior is not None:
            jp = np.zeros((theta.shape[0], len(self.prior_cols), theta.shape[1]))
            jp[:, :, self.prior_cols] = self.prior_linv
            blocks.append(jp)
            res.append(self.prior_residuals(theta))
        J = np.concatenate(blocks, axis=1)[..., cols]
        J = np.where(np.isfinite(J), J, 0.0)
        if not with_residuals:
            return J
        r = np.concatenate(res, axis=1)
        if not np.all(np.isfinite(r)):
            r = np.nan_to_num(r, nan=_BIG, posinf=_BIG, neginf=-_BIG)
        return r, J

    def jacobian_blocks(self, theta, vary=None, r0=None):
        """Jacobian of :meth:`residuals` per subject, (G, m, q) for the q varied parameters:
        exact from the model's sensitivities when it has them (:meth:`_analytic_jacobian`),
        else by forward differences from one model call on the perturbed sets of every
        subject (perturbations of a residual SD need no model call; step
        h_j = 1.49e-8·max(1, |θ_j|), taken inwards at an upper bound)."""
        theta = np.atleast_2d(theta)
        if self.predictor.has_sensitivities and self.analytic:
            vary = np.ones(theta.shape[1], bool) if vary is None else np.asarray(vary, bool)
            return self._analytic_jacobian(theta, np.flatnonzero(vary))
        G, p = theta.shape
        vary = np.ones(p, bool) if vary is None else np.asarray(vary, bool)
        cols = np.flatnonzero(vary)
        q = len(cols)
        h = 1.49e-8 * np.maximum(1.0, np.abs(theta[:, cols]))          # (G, q)
        hi = self.upper[cols]
        # step inwards at an upper bound so the model is never evaluated outside it
        h = np.where(theta[:, cols] + h > hi, -h, h)
        big = np.tile(theta, (q + 1, 1))
        for k, j in enumerate(cols):
            big[(k + 1) * G:(k + 2) * G, j] += h[:, k]
        r = self.residuals(big, self.predict_stencil(big))     # ((q+1)·G, m)
        base = r[:G] if r0 is None else r0
        blocks = (r[G:].reshape(q, G, -1) - base[None]) / h.T[:, :, None]   # (q, G, m)
        return np.moveaxis(blocks, 0, 2)

    def jacobian(self, theta, vary=None):
        """The Jacobian of :meth:`residuals` for a least-squares solver: block diagonal
        over subjects, dense (G·m, G·q) (see :meth:`jacobian_blocks`)."""
        blocks = self.jacobian_blocks(theta, vary)
        G, m, q = blocks.shape
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
