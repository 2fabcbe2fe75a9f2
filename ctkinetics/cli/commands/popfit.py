"""ctk popfit STUDY --model NAME --out DIR: population (nonlinear mixed-effects) fit.

Writes DIR/theta.csv (typical values, covariate effects and residual SDs with SE, RSE %,
95 % CI), DIR/omega.csv (Ω entries with SE, CV %, correlation, η-shrinkage),
DIR/individual.csv (EBEs: subject, parameter, eta, individual and typical value),
DIR/predictions.csv (PRED, IPRED, IWRES, CWRES, P(BLQ) per sample, with exclusion
reasons) and DIR/fit.json (method, −2LL, AIC, BIC, convergence diagnostics, settings).
Progress goes to stderr.
"""
from __future__ import annotations

import sys

from ctkinetics.cli.commands._study import add_model_fit_arguments, load_from_args

NAME = "popfit"
HELP = "Population fit (FOCE-I or SAEM; BLQ M3; covariates) of a kinetic model."

# literal so `ctk --help` does not import numpy
METHOD_CHOICES = ("focei", "saem")


def add_arguments(parser) -> None:
    add_model_fit_arguments(parser)
    parser.add_argument("--method", default="focei", type=str.lower, choices=METHOD_CHOICES,
                        help="estimation method (default focei)")
    parser.add_argument("--random-effects", default=None, metavar="A,B",
                        help="parameters with a random effect (default: all kinetic ones)")
    parser.add_argument("--covariate", action="append", default=None, metavar="PARAM~COV",
                        help="covariate effect, e.g. CL~dose or Cmax~bcell0:exponential "
                             "(power by default, reference the median); repeatable")
    parser.add_argument("--omega", default="diagonal", choices=("diagonal", "block"),
                        help="structure of the random-effect covariance (default diagonal)")
    parser.add_argument("--seed", type=int, default=0, help="seed (SAEM)")
    parser.add_argument("--no-covariance", action="store_true",
                        help="skip the covariance step (no SEs)")


def run(args) -> int:
    import json
    from pathlib import Path

    from ctkinetics.estimation.population import fit_population

    dataset = load_from_args(args)

    def progress(line):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    res = fit_population(dataset, args.model, random_effects=args.random_effects,
                         covariates=args.covariate, method=args.method, blq=args.blq,
                         error=args.error, omega=args.omega, analytes=args.analytes,
                         covariance=not args.no_covariance, seed=args.seed,
                         progress=progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    params = res.to_frame()
    params[params["kind"] != "omega"].to_csv(out / "theta.csv", index=False)
    res.omega.to_csv(out / "omega.csv", index=False)
    res.individual.to_csv(out / "individual.csv", index=False)
    res.predictions.to_csv(out / "predictions.csv", index=False)
    summary = res.summary()
    summary["study"] = str(args.study)
    (out / "fit.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"{res.method.upper()} {res.model}: {res.n_subjects} subjects, {res.n_obs} "
          f"observations ({res.n_censored} censored); -2LL {res.ofv:.3f}, AIC {res.aic:.3f}, "
          f"BIC {res.bic:.3f}; {'converged' if res.converged else 'NOT converged'}")
    print(params[["parameter", "estimate", "se", "rse_pct", "cv_pct",
                  "shrinkage_pct"]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {out}/theta.csv, omega.csv, individual.csv, predictions.csv, fit.json")
    return 0
