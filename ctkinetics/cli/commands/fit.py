"""ctk fit STUDY --model NAME --out DIR: individual maximum-likelihood kinetic fits.

Writes DIR/parameters.csv (subject, parameter, estimate, se, rse_pct, ci_low, ci_high, unit,
flags, ...), DIR/fits.csv (subject, model, blq_method, success, failed, n_obs, n_blq, ofv,
aic, bic, n_starts_at_best, ofv_second, flags, message, ...), DIR/predictions.csv (subject,
analyte, time, observed, blq, ipred, iwres, p_blq, status, reason, flags), DIR/derived.csv
(model-based Cmax, Tmax, AUC0-28 and the model's derived quantities), DIR/summary.csv
(two-stage summary per dose level), DIR/excluded.csv (every sample left out of the
likelihood, with its reason), DIR/covariance.csv, DIR/starts.csv and DIR/fit.json, from which
``FitResult.read(DIR)`` gives back the result (:mod:`ctkinetics.estimation.results_io`).
"""
from __future__ import annotations

import sys

from ctkinetics.cli.commands._output import add_allow_failures
from ctkinetics.cli.commands._study import add_model_fit_arguments, load_from_args

NAME = "fit"
HELP = "Individual maximum-likelihood fits of a kinetic model (lmfit; BLQ M1/M3/M5/M6/M7)."

# literal so `ctk --help` does not import numpy
CI_CHOICES = ("wald-t", "wald", "profile")
ENGINE_CHOICES = ("auto", "lmfit", "batched")


def add_arguments(parser) -> None:
    add_model_fit_arguments(parser)
    add_allow_failures(parser)
    parser.add_argument("--subjects", default=None, metavar="S1,S2", help="subset of subjects")
    parser.add_argument("--starts", type=int, default=4,
                        help="starts per subject: defaults + seeded draws (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start draws")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--profile", action="store_true",
                        help="deprecated: use --ci profile")
    parser.add_argument("--ci", default="wald-t", choices=CI_CHOICES,
                        help="95%% CI method (default wald-t: t(n-p) quantile and n/(n-p) "
                             "small-sample factor as R's nls; wald: 1.96*SE as NONMEM)")
    parser.add_argument("--prior", default=None, metavar="model|DIR",
                        help="MAP fits (empirical Bayes for sparse participants): log-normal "
                             "priors from the model file's typical values and omega2 ('model') "
                             "or from a ctk popfit output folder (theta, Omega, covariate "
                             "effects); prior.csv reports the shrinkage. The residual SDs are "
                             "then held at the popfit's estimates or the model file's "
                             "[residual_error] (POSTHOC; fit.json says which)")
    parser.add_argument("--estimate-sigma", action="store_true",
                        help="with --prior: estimate each participant's residual SDs instead "
                             "of holding them at the prior's")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                        help="wall-clock limit per fit; a participant still being fitted "
                             "then is reported as failed (default: none)")
    parser.add_argument("--engine", default="auto", choices=ENGINE_CHOICES,
                        help="optimiser (default auto: the batched Levenberg-Marquardt engine "
                             "for stacks of subjects sampled alike, lmfit otherwise)")
    parser.add_argument("--exposure-ci", action="store_true",
                        help="95 %% intervals on model-based Cmax, Tmax, AUC0-28 per participant "
                             "and dose level (draws from each fit's covariance): "
                             "exposure_ci.csv, exposure_ci_dose_levels.csv, exposure_ci.json")
    parser.add_argument("--draws", type=int, default=500, metavar="N",
                        help="--exposure-ci: parameter draws (default 500; seeded by --seed)")


class _Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, width=30):
        self.width = width

    def __call__(self, done, total):
        self.stream = sys.stderr  # looked up per call: tests and wrappers replace stderr
        n = int(self.width * done / max(total, 1))
        self.stream.write(f"\rfitting [{'#' * n}{'.' * (self.width - n)}] {done}/{total}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def run(args) -> int:
    from pathlib import Path

    from ctkinetics.cli.commands._output import command_line, finish
    from ctkinetics.errors import SettingsError
    from ctkinetics.estimation import fit
    from ctkinetics.estimation.results_io import write_fit
    from ctkinetics.outputs import OutputFolder

    if args.starts < 1 or args.jobs < 1:
        raise SettingsError("--starts and --jobs must be at least 1")
    # checked before anything is read or fitted
    folder = OutputFolder(args.out, inputs=[args.study, args.study_toml], command=command_line(args))
    ci = args.ci
    if args.profile:
        print("ctk fit: --profile is deprecated, use --ci profile", file=sys.stderr)
        ci = "profile"
    if args.exposure_ci and args.draws < 20:
        from ctkinetics.errors import SettingsError

        raise SettingsError(f"--draws must be at least 20 (got {args.draws})")
    dataset = load_from_args(args)
    subjects = [s.strip() for s in args.subjects.split(",")] if args.subjects else None
    res = fit(dataset, args.model, analytes=args.analytes, subjects=subjects, blq=args.blq,
              error=args.error, starts=args.starts, seed=args.seed, jobs=args.jobs,
              progress=_Progress(), ci=ci, engine=args.engine, estimate=args.estimate,
              fixed=args.fix, time_limit=args.time_limit, prior=args.prior,
              estimate_sigma=args.estimate_sigma)
    out = Path(args.out)
    failures = [f"{f.subject}: {f.message}" for f in res.fits if not f.success]
    with folder:  # atomic, spreadsheet-safe CSVs, manifest.json last
        # the tables and fit.json, as FitResult.read(out) reads them back
        write_fit(res, folder, study=str(args.study))
        if args.exposure_ci:   # issue 16: intervals on the model-based exposure
            from ctkinetics.estimation.exposure_ci import exposure_intervals

            exposure_intervals(res, dataset, args.model, n_draws=args.draws,
                               seed=args.seed).write(folder)
        folder.commit(failures=failures)
    print("\n".join(summary_lines(res, ci)) + f"\n-> {out}")
    return finish(args, failures, "fit(s) failed or did not converge (see fits.csv)")


def summary_lines(res, ci) -> list[str]:
    """What ``ctk fit`` prints: fitted / failed / flagged counts, then per flag who and why."""
    from ctkinetics.estimation.flags import summary_lines as flag_lines

    n = len(res)
    failed = res.failed
    unconverged = [f.subject for f in res.fits if not f.success and not f.failed]
    flagged = {s: fl for s, fl in res.flagged().items() if s not in failed}
    lines = [f"{res.model}: {n - len(failed) - len(unconverged)}/{n} subjects fitted "
             f"(BLQ {res.blq_method}, {res.error_model} error, {ci} CIs); "
             f"{len(failed)} failed, {len(unconverged)} not converged, {len(flagged)} flagged"]
    for f in res.fits:
        if f.failed:
            lines.append(f"  FAILED {f.subject}: {f.message}")
    if flagged:
        lines.append("flags (fits.csv, parameters.csv):")
        lines += flag_lines(flagged, detail=_parameter_detail(res))
    note = res.settings.get("sigma_note", "")
    if note and note != "residual SDs estimated":
        lines.append(note[:1].upper() + note[1:] + " (fit.json; 'fixed' in parameters.csv)")
    if res.prior is not None:
        sh = ", ".join(f"{p} {v:.0f} %" for p, v in zip(res.prior["parameter"],
                                                        res.prior["shrinkage_pct"]))
        lines.append(f"MAP fits, prior {res.settings.get('prior')}: eta-shrinkage {sh} "
                     "(prior.csv)")
    checks = res.identifiability
    if checks is not None and len(checks):
        cohort = checks[checks["subject"] == "*"]
        lines.append(f"identifiability at the start values ({len(cohort)} finding(s), "
                     "identifiability.csv):")
        lines += [f"  {c} {p}: {a}" for c, p, a in
                  zip(cohort["check"], cohort["parameters"], cohort["advice"])][:8]
        if len(cohort) > 8:
            lines.append(f"  ... and {len(cohort) - 8} more")
    return lines


def _parameter_detail(res) -> dict:
    """(subject, flag id) -> the parameters carrying that flag, e.g. 'beta, FB'."""
    from ctkinetics.estimation.flags import flag_id, split

    t = res.to_frame()
    out = {}
    for subject, parameter, cell in zip(t["subject"], t["parameter"], t["flags"]):
        for f in split(cell):
            key = (subject, flag_id(f))
            out[key] = f"{out[key]}, {parameter}" if key in out else str(parameter)
    return out
