"""ctk trial-sim: virtual trials of a design (kinetics + toxicity + BOIN/TITE + stagger) on Dask."""
from __future__ import annotations

import sys

NAME = "trial-sim"
HELP = ("Simulate virtual trials from a TOML trial spec (kinetics, exposure-driven DLTs, "
        "BOIN/TITE-BOIN with stagger, expansion) and write trials.csv, summary.csv, summary.json.")


def add_arguments(parser) -> None:
    parser.add_argument("spec", metavar="SPEC.toml", help="trial-simulation spec (see data/sample/trial_sim_seed.toml)")
    parser.add_argument("--trials", type=int, default=1000, help="number of virtual trials (default 1000)")
    parser.add_argument("--seed", type=int, required=True, help="random seed (trial i uses SeedSequence(seed, spawn_key=(i,)))")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="W",
                       help="worker processes of a local Dask cluster (default: one per CPU; 0 = no Dask, "
                            "run in this process)")
    where.add_argument("--scheduler", default=None, metavar="ADDR",
                       help="address of an existing Dask scheduler, e.g. tcp://10.0.0.5:8786")
    parser.add_argument("--batch-size", type=int, default=None, metavar="B",
                        help="trials per task (default: the same number of tasks for every worker, each of "
                             "100 to 2500 trials, as large as that allows)")
    parser.add_argument("--retries", type=int, default=1, metavar="R",
                        help="times a failed Dask task is retried (default 1; a task whose worker died is "
                             "always given to another worker)")
    parser.add_argument("--no-trials-table", action="store_true",
                        help="do not write trials.csv (summaries only)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _executor(args):
    from ctkinetics.errors import SettingsError
    from ctkinetics.trialsim import DaskExecutor, LocalDaskExecutor, SerialExecutor

    if args.workers is not None and args.workers < 0:
        raise SettingsError(f"--workers must be >= 0, got {args.workers}")
    if args.trials < 1:
        raise SettingsError(f"--trials must be >= 1, got {args.trials}")
    for name in ("batch_size", "retries"):
        v = getattr(args, name)
        if v is not None and v < (1 if name == "batch_size" else 0):
            raise SettingsError(f"--{name.replace('_', '-')} must be >= {1 if name == 'batch_size' else 0}, got {v}")
    if args.workers == 0:
        return SerialExecutor(args.batch_size)
    if args.scheduler:
        return DaskExecutor(address=args.scheduler, batch_size=args.batch_size, retries=args.retries)
    return LocalDaskExecutor(workers=args.workers, batch_size=args.batch_size, retries=args.retries)


def _quiet_dask_logs():
    """Dask logs a lost scheduler or worker with tracebacks; the run reports it in one message."""
    import logging

    import distributed  # noqa: F401 - its loggers exist (with their configured levels) after import

    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("distributed", "tornado")]
    for name in ["distributed", "tornado", "asyncio", *names]:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def run(args) -> int:
    from ctkinetics.cli.commands._output import command_line
    from ctkinetics.outputs import OutputFolder
    from ctkinetics.trialsim import SimulationError, load_spec, simulate_trials
    from ctkinetics.trialsim.results_io import write_summaries

    executor = _executor(args)
    spec = load_spec(args.spec)
    out = OutputFolder(args.out, inputs=[args.spec], command=command_line(args))
    if args.workers != 0:
        _quiet_dask_logs()
    try:
        with out:
            result = simulate_trials(spec, args.trials, args.seed, executor, progress=not args.quiet,
                                     keep_trials=False,
                                     trials_path=None if args.no_trials_table else out.path("trials.csv"))
            write_summaries(result, out, spec)
            out.commit()
    except SimulationError as exc:
        print(f"\nctk {args.command}: error: {exc}. The run stopped: {args.out} was not written "
              "(a previous complete run there is left as it was).", file=sys.stderr)
        return 1
    cols = ["rule", "level", "pct_selected", "mean_participants", "mean_dlts", "mean_not_evaluable", "mean_expansion"]
    if spec.efficacy is not None:
        cols.append("mean_efficacy")
    print(result.summary[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    dur = result.durations
    for row in dur.itertuples(index=False):
        print(f"{row.rule}: {row.phase} duration mean {row.mean_days:.0f} d, median {row.q50_days:.0f} d")
    print(f"wrote {args.out}: summary.csv, summary.json" + ("" if args.no_trials_table else ", trials.csv")
          + ", manifest.json", file=sys.stderr)
    return 0
