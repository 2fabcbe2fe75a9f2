"""ctk popfit STUDY --model NAME --out DIR: population (nonlinear mixed-effects) fit.

Writes DIR/theta.csv (typical values, covariate effects and residual SDs with SE, RSE %,
95 % CI), DIR/omega.csv (Ω entries with SE, CV %, correlation, η-shrinkage),
DIR/individual.csv (EBEs: subject, parameter, eta, individual and typical value),
DIR/predictions.csv (PRED, IPRED, IWRES, CWRES, P(BLQ) per sample, with exclusion
reasons), DIR/covariance.csv, DIR/history.csv and DIR/fit.json (method, −2LL, AIC, BIC,
convergence diagnostics, flags, settings, every parameter, the estimated vector), from which
``PopulationResult.read(DIR)`` gives back the result. Progress goes to stderr. The summary
names every flag of the fit and why. Bootstrap, SIR, NPDE, pcVPC, a stepwise covariate search
and intervals on model-based exposure add their files to DIR (``--bootstrap N``, ``--sir``,
``--npde``, ``--pcvpc``, ``--covariate-search``, ``--exposure-ci``; see
:mod:`ctkinetics.cli.commands._uncertainty`).
"""
from __future__ import annotations

import sys

from ctkinetics.cli.commands._output import add_allow_failures
from ctkinetics.cli.commands._uncertainty import add_uncertainty_arguments
from ctkinetics.cli.commands._study import add_model_fit_arguments, load_from_args

NAME = "popfit"
HELP = "Population fit (FOCE-I or SAEM; BLQ M3; covariates) of a kinetic model."

# literal so `ctk --help` does not import numpy; a test checks them against the registries
METHOD_CHOICES = ("focei", "saem")
OMEGA_CHOICES = ("diagonal", "block")


def add_arguments(parser) -> None:
    add_model_fit_arguments(parser)
    add_allow_failures(parser)
    parser.add_argument("--method", default="focei", type=str.lower, choices=METHOD_CHOICES,
                        help="estimation method (default focei)")
    parser.add_argument("--random-effects", default=None, metavar="A,B",
                        help="parameters with a random effect (default: those whose omega2 the "
                             "model file declares, else all kinetic ones)")
    parser.add_argument("--covariate", action="append", default=None, metavar="PARAM~COV",
                        help="covariate effect, e.g. CL~dose or Cmax~bcell0:exponential "
                             "(power by default, reference the median); repeatable")
    parser.add_argument("--omega", default="diagonal", choices=OMEGA_CHOICES,
                        help="structure of the random-effect covariance (default diagonal)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the SAEM chains and of the bootstrap, SIR, NPDE and "
                             "pcVPC draws")
    parser.add_argument("--max-iter", type=int, default=300,
                        help="FOCE-I: L-BFGS-B iterations (default 300)")
    parser.add_argument("--saem-burn", type=int, default=150,
                        help="SAEM: burn-in iterations (default 150)")
    parser.add_argument("--saem-iter", type=int, default=100,
                        help="SAEM: smoothing iterations after the burn-in (default 100)")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                        help="wall-clock limit of the estimation; beyond it the run is "
                             "reported as failed")
    parser.add_argument("--init", action="append", default=None, metavar="NAME=VALUE",
                        help="start value (natural scale) of a typical value, a residual SD "
                             "or a variance omega2_NAME, named as in theta.csv; repeatable "
                             "(e.g. to refit from the SIR proposal with the lowest OFV, which "
                             "the --sir summary prints)")
    parser.add_argument("--no-covariance", action="store_true",
                        help="skip the covariance step (no SEs)")
    add_uncertainty_arguments(parser)   # --bootstrap, --sir, --npde, ... (issue 16)


def method_from_args(args):
    """The method object of the command line's options."""
    from ctkinetics.estimation.population.methods import FOCEI, SAEM

    if args.method == "saem":
        return SAEM(n_burn=args.saem_burn, n_iter=args.saem_iter, seed=args.seed)
    return FOCEI(max_iter=args.max_iter)


def start_values(init) -> tuple[dict, dict]:
    """``--init NAME=VALUE`` items -> (θ and σ starts, ω² starts by parameter)."""
    from ctkinetics.errors import SettingsError
    from ctkinetics.estimation.fitproblem import parse_fixed

    values = parse_fixed(init, option="--init", what="start")
    omega = {k[len("omega2_"):]: v for k, v in values.items() if k.startswith("omega2_")}
    if any(v <= 0 for v in omega.values()):
        raise SettingsError(f"--init: a variance must be > 0 (got {omega})")
    return {k: v for k, v in values.items() if not k.startswith("omega2_")}, omega


def init_options(spec, values) -> tuple[str, list]:
    """The ``--init`` options that restart a fit of ``spec`` at ``values`` (parameter-table
    names -> natural values), and the names ``--init`` cannot set (covariate effects and Ω
    covariances, which start at 0)."""
    settable = set(spec.theta_names) | {f"omega2_{r}" for r in spec.random} | \
        {s.name for s in spec.sigmas}
    opts = " ".join(f"--init {k}={v:.6g}" for k, v in values.items() if k in settable)
    return opts, [k for k in values if k not in settable]


def flag_lines(res) -> list[str]:
    """Per flag of a population fit: what carries it and what it means."""
    from ctkinetics.estimation.flags import FLAGS
    from ctkinetics.estimation.population.diagnostics import flag_details

    detail = flag_details(res)
    lines = []
    for f in res.diagnostics.get("flags", ()):
        what = detail.get(f, "")
        meaning = FLAGS[f].meaning.split(":")[0] if f in FLAGS else "(unregistered flag)"
        lines.append(f"  {f}{f' ({what})' if what else ''}: {meaning}")
    return lines


def run(args) -> int:
    from pathlib import Path

    from ctkinetics.cli.commands._output import command_line, finish
    from ctkinetics.estimation.population import fit_population
    from ctkinetics.estimation.results_io import write_population
    from ctkinetics.outputs import OutputFolder

    from ctkinetics.cli.commands import _uncertainty as unc

    # checked before anything is read or fitted
    unc.check(args)
    folder = OutputFolder(args.out, inputs=[args.study, args.study_toml], command=command_line(args))
    dataset = load_from_args(args)

    def progress(line):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    init, omega_init = start_values(args.init)
    fit_kwargs = dict(random_effects=args.random_effects, covariates=args.covariate,
                      init=init or None, omega_init=omega_init or None,
                      method=method_from_args(args), blq=args.blq, error=args.error,
                      omega=args.omega, analytes=args.analytes,
                      covariance=not args.no_covariance, estimate=args.estimate,
                      fixed=args.fix, time_limit=args.time_limit, progress=progress)
    search = None
    if args.covariate_search:   # the fit written is the search's final model
        res, search = unc.covariate_search(args, dataset, fit_kwargs)
    else:
        res = fit_population(dataset, args.model, **fit_kwargs)
    out = Path(args.out)
    params = res.to_frame()
    failures = ([f"population fit ({res.method}): {res.failure}"] if res.failed else
                [f"population fit ({res.method}): not converged: {res.message}"]
                if not res.converged else [])
    with folder:  # atomic, spreadsheet-safe CSVs, manifest.json last
        # the tables and fit.json, as PopulationResult.read(out) reads them back
        write_population(res, folder, study=str(args.study))
        extra = unc.run_all(args, dataset, res, fit_kwargs, folder, search) \
            if unc.requested(args) else []
        folder.commit(failures=failures)
    flags = list(res.diagnostics.get("flags", ()))
    if res.failed:
        state = f"FAILED: {res.failure}"
    elif not res.converged:
        state = "NOT converged"
    else:
        state = "converged" + (f" with {len(flags)} flag(s)" if flags else ", no flags")
    print(f"{res.method.upper()} {res.model}: {res.n_subjects} subjects, {res.n_obs} "
          f"observations ({res.n_censored} censored); -2LL {res.ofv:.3f}, AIC {res.aic:.3f}, "
          f"BIC {res.bic:.3f}; {state}")
    if flags:
        print("flags (see fit.json):")
        print("\n".join(flag_lines(res)))
    if len(params):
        print(params[["parameter", "estimate", "se", "rse_pct", "cv_pct",
                      "shrinkage_pct"]].to_string(index=False,
                                                  float_format=lambda v: f"{v:.4g}"))
    if extra:
        print("\n".join(extra))
    print(f"wrote {out}/theta.csv, omega.csv, individual.csv, predictions.csv, covariance.csv, "
          "history.csv, fit.json" + "".join(f", {name}" for name in unc.written_files(args)))
    return finish(args, failures, "failure(s)")
