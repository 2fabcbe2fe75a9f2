"""From a group's optimum to each subject's :class:`~.results.SubjectFit`: parameter rows with
SEs, CIs and flags, prediction rows with sample flags, fit-level flags, failure reasons.

Flags come from the one registry :mod:`ctkinetics.estimation.flags` (ids, thresholds).
A subject *fails* (``failed=True``, the reason in ``message``) when its fit raised, hit the
time limit, or ended on a non-finite estimate, objective or prediction; a failed subject
has no estimates.
"""
from __future__ import annotations

import numpy as np

from ctkinetics.estimation import uncertainty as unc
from ctkinetics.estimation.flags import FLAGS
from ctkinetics.estimation.likelihood import EXCLUDED, QUANTIFIED
from ctkinetics.estimation.objective import Group
from ctkinetics.estimation.optimize import minimize
from ctkinetics.estimation.results import PREDICTION_COLUMNS, SubjectFit, empty_parameters
from ctkinetics.estimation.starts import start_values


def failed_fit(subj, layout, opts, message) -> SubjectFit:
    """The row of a subject whose fit gave no usable estimates."""
    return SubjectFit(
        subject=subj.subject, model=opts["model_name"], blq_method=opts["blq"],
        error_model=opts["error"], success=False, message=message, ofv=np.nan,
        n_obs=subj.n_obs, n_blq=subj.n_blq, n_params=len(layout.specs), aic=np.nan,
        bic=np.nan, n_starts=opts["starts"], n_starts_at_best=0, flags=("failed",),
        param_columns=with_fixed(empty_parameters(subj.subject, layout.specs, "failed"),
                                 subj.subject, layout),
        pred_columns=prediction_rows(subj, None), engine="", ci_method=opts["ci"].name,
        failed=True)


def failure_reason(group, g, opt, diag, opts) -> str:
    """Why subject ``g`` has no usable estimates ('' when it has)."""
    if opt.timed_out is not None and opt.timed_out[g]:
        return f"failed: time limit of {opts['time_limit']:g} s per fit reached"
    if np.all(np.isfinite(opt.theta[g])):
        bad = _non_finite(group.subjects[g], [f[g] for f, _, _ in diag])
        if bad:
            return (f"failed: the model gives a non-finite prediction of {bad} at the "
                    "estimates (solver failure or a switch time that is not a number)")
        if np.isfinite(opt.ofv[g]):
            return ""
    one = group.take(np.array([g]))
    bad = _non_finite(group.subjects[g], [f[0] for f in one.predict(start_values(one, 1, 0)[0])])
    if bad:
        return (f"failed: the model gives a non-finite prediction of {bad} at the model's "
                "defaults and at every start (solver failure or a switch time that is not a "
                "number)")
    return "failed: no start reached finite estimates and a finite objective"


def _non_finite(subj, preds) -> str:
    """The first analyte with a non-finite prediction of a sample used ('' if none)."""
    for f, a in zip(preds, subj.analytes):
        used = a.mode != EXCLUDED
        if not np.all(np.isfinite(np.asarray(f)[:len(a.times)][used])):
            return a.analyte
    return ""


def subject_fit(group: Group, g, opt, uncertainty, diag, opts, derived=None) -> SubjectFit:
    """The fit of subject ``g`` of ``group`` (``uncertainty``: bound, cov, singular, se,
    corr of that subject; ``diag``: per analyte (ipred, iwres, p_blq) of the group)."""
    subj = group.subjects[g]
    reason = failure_reason(group, g, opt, diag, opts)
    if reason:
        return failed_fit(subj, group.layout, opts, reason)
    specs = group.layout.specs
    ok = bool(opt.success[g])
    params, df, kinks = _parameter_columns(group, g, opt, uncertainty, opts, ok)
    preds = prediction_rows(subj, [(f[g, :len(a.times)], w[g, :len(a.times)],
                                    p[g, :len(a.times)])
                                   for (f, w, p), a in zip(diag, subj.analytes)])
    ofv = float(opt.ofv[g])
    second = float(opt.second_ofv[g]) if opt.second_ofv is not None else np.nan
    flags = _fit_flags(ok, uncertainty, params, kinks, ofv, second, preds)
    n_obs, k = subj.n_obs, len(specs)
    return SubjectFit(
        subject=subj.subject, model=opts["model_name"], blq_method=opts["blq"],
        error_model=opts["error"], success=ok,
        message=("converged" if ok else "not converged") + (f" ({opt.message[g]})"
                                                           if opt.message[g] else ""),
        ofv=ofv, n_obs=n_obs, n_blq=subj.n_blq, n_params=k, aic=ofv + 2 * k,
        bic=ofv + k * np.log(max(n_obs, 1)), n_starts=len(opt.starts[g]),
        n_starts_at_best=int(opt.n_starts_at_best[g]), flags=tuple(flags),
        param_columns=with_fixed(params, subj.subject, group.layout), cov=uncertainty[1],
        pred_columns=preds,
        derived_rows=derived if ok else None, start_history=tuple(opt.starts[g]),
        ci_method=opts["ci"].name, ci_df=float(df) if opts["ci"].wald != "wald" else np.inf,
        engine=opt.engine[g] if opt.engine else "lmfit", ofv_second=second)


def _parameter_columns(group, g, opt, uncertainty, opts, ok):
    """Parameter rows (columns of PARAMETER_COLUMNS), the wald-t df and the indices of
    switch times on a sampling time."""
    subj, specs = group.subjects[g], group.layout.specs
    names = [s.name for s in specs]
    theta = opt.theta[g]
    bound, cov, singular, se, corr = uncertainty
    struct = np.array([sp.role != "sigma" for sp in specs])
    mult, df = unc.small_sample_quantile(subj.n_obs, int(struct.sum()))
    ci = opts["ci"]
    ci_method = np.array(["wald"] * len(specs), dtype=object)
    quantile = np.full(len(specs), unc.Z95)
    if ci.wald != "wald" and np.isfinite(df):
        quantile[struct] = mult
        ci_method[struct] = "wald-t"
    est, se_nat, rse, ci_lo, ci_hi = unc.wald(theta, se, group.is_log, quantile)
    if ci.profiled is not None and ok:
        g1 = Group(group.model, group.layout, group.error, [subj])
        for j, name in enumerate(names):
            if not ci.profiles(name):
                continue
            try:
                a, b = unc.profile_ci(g1, theta, j, opt.ofv[g], se[j], _fixed_refit(g1))
            except Exception:  # noqa: BLE001 - keep the Wald interval
                continue
            ci_lo[j], ci_hi[j] = (np.exp(a), np.exp(b)) if specs[j].log else (a, b)
            ci_method[j] = "profile"
    lower = np.array([s.lower for s in specs], float)
    upper = np.array([s.upper for s in specs], float)
    blank = unc.not_estimable(bound, se_nat, ci_lo, ci_hi, lower, upper)
    se_t = np.where(blank, np.nan, se)
    se_nat, rse, ci_lo, ci_hi = (np.where(blank, np.nan, v) for v in (se_nat, rse, ci_lo, ci_hi))
    ci_method[blank] = "none"
    flags = unc.parameter_flags(names, rse, corr, bound, singular, ok)
    kinks = switch_at_sample(group.model, specs, est, subj)
    for j in list(np.flatnonzero(blank)) + kinks:
        extra = "not_estimable" if j in np.flatnonzero(blank) else "at_sample_time"
        flags[j] = ";".join([f for f in (flags[j], extra) if f])
    k = len(specs)
    cols = {
        "subject": np.full(k, subj.subject, dtype=object),
        "parameter": np.array(names, dtype=object), "estimate": est, "se": se_nat,
        "rse_pct": rse, "ci_low": ci_lo, "ci_high": ci_hi,
        "unit": np.array([s.unit for s in specs], dtype=object),
        "flags": np.array(flags, dtype=object),
        "scale": np.array(["log" if s.log else "linear" for s in specs], dtype=object),
        "estimate_transformed": np.asarray(theta, float), "se_transformed": se_t,
        "ci_method": ci_method, "role": np.array([s.role for s in specs], dtype=object)}
    return cols, df, kinks


def with_fixed(cols, subject, layout) -> dict:
    """The parameter columns with a row per residual SD held fixed (``layout.fixed_sigmas``):
    its value, no SE or CI, ``ci_method`` ``fixed``; after the estimated rows, which keep
    the order of the covariance."""
    held = getattr(layout, "fixed_sigmas", ())
    if not held:
        return cols
    k = len(held)
    v = np.array([s.default for s in held], float)
    nan = np.full(k, np.nan)
    extra = {"parameter": np.array([s.name for s in held], object), "estimate": v,
             "unit": np.array([s.unit for s in held], object),
             "estimate_transformed": np.log(v), "subject": subject, "flags": "",
             "scale": "log", "ci_method": "fixed", "role": "sigma"}
    extra = {c: (np.full(k, x, dtype=object) if isinstance(x, str) else x)
             for c, x in extra.items()}
    extra.update({c: nan for c in ("se", "rse_pct", "ci_low", "ci_high", "se_transformed")})
    return {c: np.concatenate([np.asarray(cols[c]), extra[c]]) if c in extra else cols[c]
            for c in cols}


def _fit_flags(ok, uncertainty, params, kinks, ofv, second, preds) -> list:
    """Fit-level flags (registry ids, in registry order)."""
    bound, cov, singular, se, corr = uncertainty
    rse = params["rse_pct"]
    pflags = " ".join(params["flags"])
    out = {
        "not_converged": not ok,
        "non_identifiable": singular,
        "at_bound": bool(np.any(bound)),
        "not_estimable": "not_estimable" in pflags,
        "rse>50%": bool(np.any(np.nan_to_num(rse) > FLAGS["rse>50%"].limit)),
        "corr>0.95": "corr>0.95" in pflags,
        "at_sample_time": bool(kinks),
        "second_optimum": bool(np.isfinite(second)
                               and second - ofv <= FLAGS["second_optimum"].limit),
        "exact_fit": bool(np.any(preds["flags"] == "exact_fit")),
    }
    order = list(FLAGS)
    return sorted((f for f, on in out.items() if on), key=order.index)  # unregistered: error


def switch_at_sample(model, specs, est, subj):
    """Indices of estimated switch times (e.g. stein2019's Tmax, the end of expansion) that
    sit on a sampling time: the −2LL has a kink there (that sample changes phase), so its
    Hessian — and the Wald SE and CI — mean little; the profile CI is the one to use."""
    switches = set(getattr(model, "switch_names", ()) or ())
    if not switches:
        return []
    times = np.concatenate([a.times for a in subj.analytes]) if subj.analytes else []
    tol = FLAGS["at_sample_time"].limit
    out = []
    for j, sp in enumerate(specs):
        if sp.role == "model" and sp.model_name in switches and np.isfinite(est[j]):
            if np.any(np.abs(np.asarray(times) - est[j]) <= tol * max(abs(est[j]), 1e-12)):
                out.append(j)
    return out


def _fixed_refit(group1):
    def refit(theta_start, j):
        vary = np.ones(theta_start.size, bool)
        vary[j] = False
        theta, ok, _, _ = minimize(group1, theta_start[None, :], vary=vary, tol=1e-8)
        return theta[0], float(group1.ofv(theta)[0])
    return refit


def prediction_rows(subj, diag) -> dict:
    """Columns of the predictions table (:data:`PREDICTION_COLUMNS`) of one subject; a
    quantified sample the model passes through exactly is flagged ``exact_fit``."""
    c = subj.columns
    n = len(c["time"])
    out = {k: c[k] for k in ("subject", "analyte", "time", "observed", "blq", "lloq",
                             "status", "reason")}
    ipred, iwres, p_blq = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    if diag is not None:
        for a, (f, w, p) in zip(subj.analytes, diag):
            ipred[a.rows], iwres[a.rows], p_blq[a.rows] = f, w, p
    flags = np.full(n, "", dtype=object)
    with np.errstate(invalid="ignore"):
        flags[(np.abs(iwres) < FLAGS["exact_fit"].limit)
              & (np.asarray(c["status"]) != "censored")] = "exact_fit"
    out.update(ipred=ipred, iwres=iwres, p_blq=p_blq, flags=flags)
    return {k: out[k] for k in PREDICTION_COLUMNS}


__all__ = ["subject_fit", "failed_fit", "with_fixed", "failure_reason", "prediction_rows",
           "switch_at_sample", "QUANTIFIED"]
