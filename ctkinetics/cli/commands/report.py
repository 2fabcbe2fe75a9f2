"""ctk report STUDY --out DIR: the cohort review report (validate → NCA → fits → escalation).

By default a study with flow or B-cell samples gets the mechanistic model (cart_bcell_sle:
population fit first, then the participants' empirical Bayes estimates), a qPCR-only study
stein2019 (``--model``, ``--population``, ``--prior`` change that).
``--population focei|saem [--random-effects a,b]`` adds a population fit with its VPC;
``--trial-sim DIR`` shows the virtual trials of a ``ctk trial-sim`` run; ``--exposure-ci``,
``--bootstrap N``, ``--sir``, ``--npde``, ``--pcvpc`` add the uncertainty section (3c).

Writes DIR/report.html (one self-contained file: plotly.js embedded once, opens offline),
the CSV tables and DIR/summary.json. Options come from --config FILE.toml (every option, see
:mod:`ctkinetics.report.settings`); options given on the command line override the file.
Progress goes to stderr (silenced by --quiet); stdout gets the paths written.
"""
from __future__ import annotations

import sys

from ctkinetics.cli.commands._output import add_allow_failures
from ctkinetics.cli.commands._study import add_study_argument

NAME = "report"
HELP = "Cohort review report: data audit, NCA, fits, B-cell aplasia, safety and the BOIN recommendation."


def add_arguments(parser) -> None:
    add_study_argument(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument("--model", default=None, metavar="NAME",
                        help="model fitted to each participant (name or .toml; default auto: "
                             "cart_bcell_sle when the study has flow or B-cell samples, else "
                             "stein2019)")
    parser.add_argument("--as-of", type=float, default=None, metavar="DAY",
                        help="study day of the escalation decision (default: the latest day in the data)")
    parser.add_argument("--population", default=None, choices=("auto", "none", "focei", "saem"),
                        metavar="auto|none|focei|saem",
                        help="population (mixed-effects) fit of the fitted analytes, with a VPC, "
                             "before the individual fits (default auto: FOCE-I for an ODE model "
                             "such as cart_bcell_sle, none for stein2019)")
    parser.add_argument("--prior", default=None, choices=("auto", "none", "model", "population"),
                        metavar="auto|none|model|population",
                        help="prior of the individual fits: none (maximum likelihood), model "
                             "(the model file's omega2), population (the population fit: "
                             "empirical Bayes estimates); default auto: population when there "
                             "is a population fit, model for an ODE model without one, else none")
    parser.add_argument("--random-effects", default=None, metavar="A,B",
                        help="parameters with a random effect in the population fit "
                             "(default: every kinetic parameter)")
    parser.add_argument("--trial-sim", default=None, metavar="DIR",
                        help="show the virtual trials of a `ctk trial-sim --out DIR` run")
    unc = parser.add_argument_group("uncertainty (section 3c; [uncertainty] in the config)")
    unc.add_argument("--exposure-ci", action="store_const", const=True, default=None,
                     help="95 %% intervals on the fits' model-based Cmax, Tmax, AUC0-28 per "
                          "participant and dose level")
    unc.add_argument("--bootstrap", type=int, default=None, metavar="N",
                     help="bootstrap of the population fit with N replicates (needs --population)")
    unc.add_argument("--sir", action="store_const", const=True, default=None,
                     help="SIR of the population fit (needs --population)")
    unc.add_argument("--npde", type=int, nargs="?", const=1000, default=None, metavar="K",
                     help="NPDE of the population fit, K replicates (default 1000)")
    unc.add_argument("--pcvpc", type=int, nargs="?", const=500, default=None, metavar="R",
                     help="prediction-corrected VPC with the BLQ panel, R replicates (default 500)")
    unc.add_argument("--workers", type=int, default=None, metavar="W",
                     help="local Dask workers for the bootstrap and SIR (0: this process)")
    parser.add_argument("--config", default=None, metavar="FILE.toml",
                        help="TOML file fixing every option ([report], [fit], [nca], [escalation], "
                             "[band], [population], [trial_sim], [uncertainty])")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_allow_failures(parser)


def run(args) -> int:
    import time

    from ctkinetics.cli.commands._output import command_line, finish
    from ctkinetics.cli.commands._study import load_from_args
    from ctkinetics.errors import SettingsError
    from ctkinetics.outputs import OutputFolder
    from ctkinetics.report import ReportSettings, build_review, load_settings, write_report

    t0 = time.perf_counter()

    def say(msg):
        if not args.quiet:
            print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    # the output folder is checked before anything is computed
    folder = OutputFolder(args.out, inputs=[args.study, args.study_toml, args.config,
                                            args.trial_sim], command=command_line(args))
    settings = (load_settings(args.config, population_method=args.population)
                if args.config else ReportSettings())
    random_effects = None
    if args.random_effects is not None:
        random_effects = tuple(x.strip() for x in args.random_effects.split(",") if x.strip())
        if not random_effects:
            raise SettingsError("--random-effects needs parameter names, e.g. Cmax,foldx")
    settings = settings.with_overrides(model=args.model, as_of=args.as_of,
                                       population_method=args.population,
                                       fit_prior=args.prior,
                                       population_random_effects=random_effects,
                                       trial_sim_results=args.trial_sim,
                                       uncertainty_exposure_ci=args.exposure_ci,
                                       uncertainty_bootstrap=args.bootstrap,
                                       uncertainty_sir=args.sir, uncertainty_npde=args.npde,
                                       uncertainty_pcvpc=args.pcvpc,
                                       uncertainty_workers=args.workers)
    if settings.population_random_effects is not None and settings.population_method is None:
        raise SettingsError("--random-effects belongs to a population fit: give --population "
                            "focei|saem (or [population] method in the config)")
    say(f"reading and validating {args.study}")
    dataset = load_from_args(args)
    review = build_review(dataset, settings, progress=say)
    say(f"writing {args.out}: CSV tables, report.html, summary.json, manifest.json")
    files = write_report(review, folder, root=args.study, command=folder.command, progress=say)
    say(f"complete: {len(files.figures)} figures, {len(files.tables)} tables")
    print(files.html)
    print(files.summary)
    return finish(args, review.failures, "failure(s), shown at the top of the report")
