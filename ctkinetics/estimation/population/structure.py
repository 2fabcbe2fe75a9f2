"""The population model evaluated for all subjects at once.

:class:`PopModel` turns individual parameters ``φ`` (estimation scale, shape (n, p), or
(k, n, p) for k stacked candidates such as finite-difference perturbations) into
predictions and per-subject −2·log-likelihood of the data given the parameters — the
"conditional" likelihood, built from the shared terms of
:mod:`ctkinetics.estimation.likelihood` (M3 censored terms included).
"""
from __future__ import annotations

import copy

import numpy as np

from ctkinetics.errors import SettingsError
from ctkinetics.estimation.likelihood import (
    CENSORED, EXCLUDED, QUANTIFIED, ErrorModel, m2ll_terms, pseudo_residual_jacobian,
    pseudo_residuals, weighted_residuals,
)
from ctkinetics.estimation.population.data import PopData
from ctkinetics.estimation.predictor import ModelPredictor
from ctkinetics.estimation.population.omega import resolve_omega
from ctkinetics.estimation.population.spec import (
    COVARIATE_EFFECTS, PopulationSpec, SigmaSpec, ThetaSpec,
)


def make_spec(data: PopData, model, random_effects, effects, omega="diagonal", init=None,
              omega_init=None) -> tuple[PopulationSpec, np.ndarray]:
    """The :class:`PopulationSpec` and starting vector ``x0``.

    ``omega`` is an Ω structure or its name (:mod:`.omega`; ``True`` means a block, as the
    former ``block`` flag); ``init`` maps a θ or σ name to a natural-scale start; ``omega_init`` maps a random-effect
    parameter to a start ω² (default: the model's declared ω² or 0.2).
    """
    init = dict(init or {})
    thetas, sigmas = _fixed_effects(data.layout.specs, init)
    names = [t.name for t in thetas]
    model_params = {p.name: p for p in getattr(model, "parameters", ())}
    random = _random_effects(thetas, model_params, random_effects)
    _check_names(names, random, effects, init, sigmas)
    unknown = sorted(set(omega_init or {}) - set(random))
    if unknown:
        raise SettingsError(f"start variance(s) for parameter(s) without a random effect "
                            f"{unknown}; random effects are on {random}")
    spec = PopulationSpec(tuple(thetas), tuple(random), tuple(effects), tuple(sigmas),
                          resolve_omega("block" if omega is True else
                                        "diagonal" if omega is False else omega),
                          dict(data.layout.fixed))
    w2 = []
    for r in random:
        declared = getattr(model_params.get(r), "omega2", None)
        w2.append(float((omega_init or {}).get(r, declared if declared else 0.2)))
    x0 = spec.join([t.start for t in thetas], np.zeros(len(effects)), np.diag(w2),
                   [s.start for s in sigmas])
    return spec, x0


def _fixed_effects(specs, init):
    """θ (kinetic parameters and assay scales, estimation scale) and σ specs from the fit
    problem's layout, started at ``init`` or the layout's defaults."""
    thetas, sigmas = [], []
    for s in specs:
        start = float(init.get(s.name, s.default))
        if s.role == "sigma":
            sigmas.append(SigmaSpec(s.name, s.analyte, start, s.lower, s.upper, s.unit))
            continue
        lo, hi = s.est_bounds
        lo, hi = (lo if np.isfinite(lo) else -1e6), (hi if np.isfinite(hi) else 1e6)
        est = float(np.log(start)) if s.log else start
        thetas.append(ThetaSpec(s.name, s.role, s.log, float(np.clip(est, lo, hi)), lo, hi,
                                s.unit))
    return thetas, sigmas


def _random_effects(thetas, model_params, random_effects):
    """The parameters with a random effect: those asked for; by default those whose
    between-subject variance the model file declares (omega2), else every kinetic one."""
    if random_effects is not None:
        return list(random_effects)
    kinetic = [t.name for t in thetas if t.role == "model"]
    declared = [n for n in kinetic if getattr(model_params.get(n), "omega2", None)]
    return declared or kinetic


def _check_names(names, random, effects, init, sigmas):
    bad = [r for r in random if r not in names]
    if bad:
        raise SettingsError(f"random effect(s) on unknown parameter(s) {bad}; estimated "
                            f"parameters are {names}")
    if len(set(random)) != len(random):
        raise SettingsError(f"random effects repeated: {random}")
    bad = [e.parameter for e in effects if e.parameter not in names]
    if bad:
        raise SettingsError(f"covariate effect(s) on unknown parameter(s) {bad}; estimated "
                            f"parameters are {names}")
    unknown_init = sorted(set(init) - set(names) - {s.name for s in sigmas})
    if unknown_init:
        raise SettingsError(f"initial value(s) for unknown parameter(s) {unknown_init}")


class PopModel:
    """Predictions and conditional likelihood for all subjects (see module docstring)."""

    def __init__(self, model, data: PopData, spec: PopulationSpec, error: ErrorModel):
        self.model, self.data, self.spec, self.error = model, data, spec, error
        self.n = data.n
        self.is_log = np.array([t.log for t in spec.thetas], bool)
        self.ridx = spec.random_index
        self.model_cols = [(t.name, j) for j, t in enumerate(spec.thetas) if t.role == "model"]
        self.scale_cols = {t.name: j for j, t in enumerate(spec.thetas) if t.role == "scale"}
        self.kinds = sorted({a.kind for a in data.analytes})
        self.predictor = ModelPredictor(model, self.kinds)
        # exact η-derivatives from the model's sensitivities for a smooth model; a model
        # with a switch time keeps the ±1 % secants of .inner (a mode on a kink)
        self.exact = bool(self.predictor.has_sensitivities
                          and not (getattr(model, "switch_names", ()) or ()))
        sig_names = [s.name for s in spec.sigmas]
        self.sigma_cols = [[sig_names.index(f"{nm}_{a.analyte}") for nm in error.sigma_names]
                           for a in data.analytes]
        self.floors = [2.0 * np.log(spec.sigmas[c[-1] if len(c) > 1 else c[0]].lower)
                       for c in self.sigma_cols]
        self.covariate_matrix, self.effect_cols = self._covariate_design()
        # the grid times each subject's samples (and padding) read: an ODE model is solved
        # to each subject's own last sample (ModelPredictor's ``needed``)
        self.needed = np.zeros((self.n, len(data.times)), bool)
        for a in data.analytes:
            np.put_along_axis(self.needed, a.idx, True, axis=1)

    def take(self, rows) -> "PopModel":
        """The model of the subjects ``rows`` only (same spec, error model, predictor and
        covariate references): what an EBE iteration predicts once some subjects have
        converged. Each subject's predictions and likelihood terms are its own, so they
        equal the full stack's rows."""
        rows = np.asarray(rows, int)
        sub = copy.copy(self)
        sub.data = self.data.take(rows)
        sub.n = len(rows)
        sub.needed = self.needed[rows]
        sub.covariate_matrix = self.covariate_matrix[rows]
        return sub

    # ---- covariates ---------------------------------------------------------------------
    def _covariate_design(self):
        table = self.data.subject_table
        names = self.spec.theta_names
        cols, refs = [], []
        for e in self.spec.effects:
            if e.covariate not in table:
                raise SettingsError(f"covariate '{e.covariate}' is not a column of the "
                                    f"subjects table (columns: {list(table.columns)})")
            x = np.asarray(table[e.covariate].to_numpy(), dtype=float)
            if not np.all(np.isfinite(x)):
                bad = list(table["subject"][~np.isfinite(x)])[:10]
                raise SettingsError(f"covariate '{e.covariate}' is missing for {bad}")
            cm = COVARIATE_EFFECTS[e.kind]
            if cm.needs_positive and np.any(x <= 0):
                raise SettingsError(f"a power effect of '{e.covariate}' needs positive values")
            ref = float(np.median(x)) if e.reference is None else float(e.reference)
            refs.append(ref)
            cols.append(cm.transform(x, ref))
        C = np.column_stack(cols) if cols else np.zeros((self.n, 0))
        self.references = tuple(refs)
        return C, np.array([names.index(e.parameter) for e in self.spec.effects], int)

    # ---- parameters ---------------------------------------------------------------------
    def phi_pop(self, theta, beta):
        """Population (η = 0) parameters per subject, (n, p), estimation scale."""
        phi = np.tile(np.asarray(theta, float), (self.n, 1))
        for k, j in enumerate(self.effect_cols):
            phi[:, j] += beta[k] * self.covariate_matrix[:, k]
        return phi

    def with_eta(self, phi_pop, eta):
        """φ with the random effects added; ``eta`` is (..., n, q)."""
        eta = np.asarray(eta, float)
        phi = np.broadcast_to(phi_pop, eta.shape[:-1] + (phi_pop.shape[-1],)).copy()
        phi[..., self.ridx] += eta
        return phi

    def sigmas_of(self, sigma):
        return [tuple(sigma[c] for c in cols) for cols in self.sigma_cols]

    # ---- predictions ----------------------------------------------------------------------
    def _model_inputs(self, phi):
        """(leading shape, natural-scale rows, model parameters, reps, covariates) of a stack
        of φ (…, n, p) for one model call."""
        phi = np.asarray(phi, float)
        flat = phi.reshape(-1, phi.shape[-1])
        nat = np.where(self.is_log, np.exp(np.clip(flat, -700, 700)), flat)
        params = {name: nat[:, j] for name, j in self.model_cols}
        params.update(self.spec.fixed or {})
        reps = flat.shape[0] // self.n
        cov = {c: np.tile(v, reps) for c, v in self.data.model_covariates.items()}
        if self.data.events is not None:  # issue 17: re-infusions and time-varying covariates
            cov = self.data.events.extend(cov, reps)
        return phi.shape[:-2], nat, params, reps, cov

    def predict(self, phi):
        """Predictions per analyte for φ of shape (n, p) or (k, n, p): (…, n, m_k)."""
        lead, nat, params, reps, cov = self._model_inputs(phi)
        with np.errstate(all="ignore"):
            out = self.predictor.predict(params, self.data.times, cov,
                                         needed=np.tile(self.needed, (reps, 1)))
        preds = []
        for a in self.data.analytes:
            full = np.reshape(np.asarray(out[a.kind], float), (reps, self.n, -1))
            f = np.take_along_axis(full, np.broadcast_to(a.idx, (reps,) + a.idx.shape), axis=2)
            if a.scale_param:
                f = f * nat[:, self.scale_cols[a.scale_param]].reshape(reps, self.n, 1)
            preds.append(f.reshape(lead + a.idx.shape))
        return preds

    def predict_with_sensitivities(self, phi):
        """Predictions per analyte (…, n, m_k) and their derivatives (…, n, m_k, q) with
        respect to the random-effect parameters φ (estimation scale), from one sensitivity
        solve of the model (:attr:`exact` models)."""
        lead, nat, params, reps, cov = self._model_inputs(phi)
        rows = nat.shape[0]
        thetas = self.spec.thetas
        wrt = [thetas[j].name for j in self.ridx if thetas[j].role == "model"]
        with np.errstate(all="ignore"):
            values, derivs = self.predictor.sensitivities(params, self.data.times, cov,
                                                          wrt=wrt,
                                                          needed=np.tile(self.needed, (reps, 1)))
        preds, dpreds = [], []
        for a in self.data.analytes:
            full = np.reshape(np.asarray(values[a.kind], float), (rows, -1))
            dfull = np.reshape(np.asarray(derivs[a.kind], float), (rows, full.shape[1], -1))
            idx = np.broadcast_to(a.idx, (reps,) + a.idx.shape).reshape(rows, -1)
            f = np.take_along_axis(full, idx, axis=1)
            dsel = np.take_along_axis(dfull, idx[..., None], axis=1)
            df = np.zeros(f.shape + (len(self.ridx),))
            scale = (nat[:, self.scale_cols[a.scale_param]][:, None] if a.scale_param
                     else np.ones((rows, 1)))
            for k, j in enumerate(self.ridx):
                t = thetas[j]
                if t.role == "model":
                    chain = nat[:, j][:, None] if t.log else 1.0
                    df[..., k] = dsel[..., wrt.index(t.name)] * chain * scale
                elif t.name == a.scale_param:          # ∂(s·g)/∂ln s = s·g
                    df[..., k] = f * scale if t.log else f
            f = f * scale
            preds.append(f.reshape(lead + a.idx.shape))
            dpreds.append(df.reshape(lead + a.idx.shape + (len(self.ridx),)))
        return preds, dpreds

    def pseudo_jacobian(self, sigma, preds, dpreds):
        """Pseudo-residuals (…, n, M) as :meth:`pseudo` and their exact Jacobian
        (…, n, M, q) with respect to the random-effect φ at fixed σ."""
        rs, js = [], []
        for a, f, df, s, floor in zip(self.data.analytes, preds, dpreds, self.sigmas_of(sigma),
                                      self.floors):
            with np.errstate(all="ignore"):
                sd = np.broadcast_to(self.error.sd(f, s), f.shape)
                dsd = self.error.sd_derivatives(f, s, sd)[0][..., None] * df
                ty = self.error.transform(np.where(a.mode == EXCLUDED, 1.0, a.y))
            (r1, r2), (j1, j2) = pseudo_residual_jacobian(
                self.error, ty, f, df, sd, dsd, a.mode == QUANTIFIED, a.mode == CENSORED, floor)
            rs += [r1, r2]
            js += [j1, j2]
        r = np.nan_to_num(np.concatenate(rs, axis=-1), nan=1e6, posinf=1e6, neginf=-1e6)
        J = np.concatenate(js, axis=-2)
        return r, np.where(np.isfinite(J), J, 0.0)

    # ---- likelihood -----------------------------------------------------------------------
    def data_m2ll(self, phi, sigma, preds=None):
        """−2·ln p(y_i | φ_i) per subject, shape (…, n); +inf when not finite."""
        preds = self.predict(phi) if preds is None else preds
        total = 0.0
        for a, f, s in zip(self.data.analytes, preds, self.sigmas_of(sigma)):
            sd = self.error.sd(f, s)
            with np.errstate(all="ignore"):
                t = m2ll_terms(self.error, a.y, f, sd, a.mode)
            t = np.where(a.mode == EXCLUDED, 0.0, t)
            total = total + np.where(np.isfinite(t), t, np.inf).sum(axis=-1)
        return total

    def pseudo(self, phi, sigma, preds=None):
        """Pseudo-residuals r with Σ r² = −2·ln p(y_i | φ_i) − constant, (…, n, M)."""
        preds = self.predict(phi) if preds is None else preds
        parts = []
        for a, f, s, floor in zip(self.data.analytes, preds, self.sigmas_of(sigma),
                                  self.floors):
            sd = self.error.sd(f, s)
            with np.errstate(all="ignore"):
                parts.append(pseudo_residuals(self.error, a.y, f, sd, a.mode, floor))
        r = np.concatenate(parts, axis=-1)
        return np.nan_to_num(r, nan=1e6, posinf=1e6, neginf=-1e6)

    def weighted(self, preds, sigma):
        """Per analyte: (sd, iwres, p_blq), each (n, m)."""
        out = []
        for a, f, s in zip(self.data.analytes, preds, self.sigmas_of(sigma)):
            sd = self.error.sd(f, s)
            with np.errstate(all="ignore"):
                iw, pb = weighted_residuals(self.error, a.y, f, sd, a.mode)
            out.append((sd, iw, pb))
        return out


__all__ = ["PopModel", "make_spec", "QUANTIFIED", "CENSORED", "EXCLUDED"]
