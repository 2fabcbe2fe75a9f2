"""The uncertainty and model-evaluation options of ``ctk popfit`` (issue 16): bootstrap, SIR,
NPDE, prediction-corrected VPC, stepwise covariate search and intervals on model-based
exposure, where they run (``--workers`` / ``--scheduler``), and the files they write into the
fit's output folder.

=========================  ==================================================================
option                     writes
=========================  ==================================================================
--covariate-search         covariate_search.csv (every fit of every step), covariate_search.json;
                           the fit written is the final model of the search
--bootstrap N              bootstrap_intervals.csv, bootstrap_replicates.csv,
                           bootstrap_estimates.csv, bootstrap.json
--sir                      sir_intervals.csv, sir_iterations.csv, sir_samples.csv, sir_dofv.csv,
                           sir_estimates.csv, sir_proposals.csv, sir_weighted.csv, sir.json
--npde [K]                 npde.csv, npde_tests.csv, npde.json
--pcvpc [R]                pcvpc.csv, pcvpc_observed.csv
--exposure-ci              exposure_ci.csv, exposure_ci_dose_levels.csv, exposure_ci.json
=========================  ==================================================================
"""
from __future__ import annotations

import sys

def written_files(args) -> list:
    """Names of the files the options of ``args`` add to the fit's folder."""
    from ctkinetics.estimation.bootstrap import BootstrapResult
    from ctkinetics.estimation.covsearch import CovariateSearchResult
    from ctkinetics.estimation.exposure_ci import ExposureCI
    from ctkinetics.estimation.population.npde import NPDEResult
    from ctkinetics.estimation.sir import SIRResult

    out = []
    for on, cls in ((args.covariate_search, CovariateSearchResult),
                    (args.bootstrap, BootstrapResult), (args.sir, SIRResult),
                    (args.npde, NPDEResult), (args.exposure_ci, ExposureCI)):
        if on:
            out += [name for _, name in cls.FILES] + [cls.JSON]
    if args.pcvpc:
        out += list(PCVPC_FILES)
    return out


PCVPC_FILES = ("pcvpc.csv", "pcvpc_observed.csv")


def _counts(text):
    return [int(v) for v in str(text).split(",") if v.strip()]


def add_uncertainty_arguments(parser) -> None:
    g = parser.add_argument_group("uncertainty and model evaluation (issue 16)")
    g.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="case-resampling bootstrap with N replicates (stratified by dose level "
                        "and study phase; replicate r seeded from --seed and r)")
    g.add_argument("--no-bca", action="store_true",
                   help="bootstrap: skip the jackknife fits and the BCa limits")
    g.add_argument("--sir", action="store_true",
                   help="sampling importance resampling from the covariance step")
    g.add_argument("--sir-samples", default="1000,1000,1000,2000,2000", metavar="M1,M2,...",
                   help="SIR proposals per iteration (default PsN's 1000,1000,1000,2000,2000)")
    g.add_argument("--sir-resamples", default="200,400,500,1000,1000", metavar="m1,m2,...",
                   help="SIR resamples per iteration (default PsN's 200,400,500,1000,1000)")
    g.add_argument("--sir-inflation", type=float, default=1.0, metavar="F",
                   help="SIR: factor on the covariance step for the first proposal "
                        "(default 1; > 1 widens it when the flag sir_low_ess is raised)")
    g.add_argument("--npde", type=int, nargs="?", const=1000, default=0, metavar="K",
                   help="NPDE with K simulated replicates (default 1000; BLQ imputed as the "
                        "npde package does)")
    g.add_argument("--pcvpc", type=int, nargs="?", const=500, default=0, metavar="R",
                   help="prediction-corrected VPC with R replicates (default 500) and the "
                        "BLQ-fraction panel")
    g.add_argument("--covariate-search", action="store_true",
                   help="stepwise covariate search (forward p < 0.05, backward p < 0.01); the "
                        "fit written is its final model")
    g.add_argument("--search-parameters", default=None, metavar="A,B",
                   help="covariate search: parameters (default: those with a random effect)")
    g.add_argument("--search-covariates", default=None, metavar="a,b",
                   help="covariate search: columns of subjects.csv (default: all)")
    g.add_argument("--exposure-ci", action="store_true",
                   help="95 %% intervals on model-based Cmax, Tmax, AUC0-28 per participant and "
                        "dose level (from the bootstrap when run, else the covariance step)")
    g.add_argument("--draws", type=int, default=500, metavar="N",
                   help="exposure intervals: parameter draws (default 500)")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="W",
                       help="processes of a local Dask cluster for the bootstrap, SIR and "
                            "covariate search (default: one per CPU; 0 = this process)")
    where.add_argument("--scheduler", default=None, metavar="ADDR",
                       help="address of an existing Dask scheduler, e.g. tcp://10.0.0.5:8786")


def requested(args) -> bool:
    return bool(args.bootstrap or args.sir or args.npde or args.pcvpc or args.covariate_search
                or args.exposure_ci)


def check(args) -> None:
    """Option errors before anything is read (exit 2)."""
    from ctkinetics.errors import SettingsError

    if args.bootstrap and args.bootstrap < 2:
        raise SettingsError(f"--bootstrap needs at least 2 replicates (got {args.bootstrap})")
    if args.workers is not None and args.workers < 0:
        raise SettingsError(f"--workers must be >= 0 (got {args.workers})")
    if args.npde and args.npde < 100:
        raise SettingsError(f"--npde needs at least 100 replicates (got {args.npde})")
    if args.pcvpc and args.pcvpc < 100:
        raise SettingsError(f"--pcvpc needs at least 100 replicates (got {args.pcvpc})")
    if args.draws < 20:
        raise SettingsError(f"--draws must be at least 20 (got {args.draws})")
    try:
        s, r = _counts(args.sir_samples), _counts(args.sir_resamples)
    except ValueError:
        raise SettingsError("--sir-samples and --sir-resamples take integers separated by "
                            "commas") from None
    if args.sir and (len(s) != len(r) or not s or any(m < 2 or m > n for n, m in zip(s, r))):
        raise SettingsError(f"--sir-samples {args.sir_samples} / --sir-resamples "
                            f"{args.sir_resamples}: as many of each, 2 <= resamples <= samples")
    if not args.sir_inflation > 0:
        raise SettingsError(f"--sir-inflation must be a number > 0 (got {args.sir_inflation})")
    if args.covariate_search and args.covariate:
        raise SettingsError("--covariate-search builds the covariate model itself: leave out "
                            "--covariate")


def executor_from_args(args):
    """Where the fits of the resampling methods run."""
    from ctkinetics.executors import DaskExecutor, LocalDaskExecutor, SerialExecutor

    if args.scheduler:
        return DaskExecutor(address=args.scheduler)
    if args.workers == 0:
        return SerialExecutor()
    return LocalDaskExecutor(workers=args.workers)


def say(line) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def covariate_search(args, dataset, fit_kwargs):
    """(final PopulationResult, CovariateSearchResult)."""
    from ctkinetics.estimation.covsearch import covariate_search as search

    opts = {k: v for k, v in fit_kwargs.items() if k not in ("covariates", "progress")}
    result = search(dataset, args.model, parameters=args.search_parameters,
                    covariates=args.search_covariates, executor=executor_from_args(args),
                    progress=say, **opts)
    return result.final, result


def run_all(args, dataset, res, fit_kwargs, folder, search=None) -> list:
    """Run what was asked on the fit ``res``, write it into the open output folder; lines to
    print."""
    lines = []
    if search is not None:
        search.write(folder)
        lines.append(f"covariate search: final model {', '.join(search.relations) or '(none)'}"
                     f" ({len(search.log)} log rows)")
    if res.failed:
        return lines + ["the fit failed: no bootstrap, SIR, NPDE, pcVPC or exposure intervals"]
    boot = None
    opts = {k: v for k, v in fit_kwargs.items() if k not in ("progress", "covariance")}
    if search is not None:       # the final model: its effects, its indicator columns
        opts["covariates"] = list(res.spec.effects) or None
        dataset = search.data_for(dataset)
    if args.bootstrap:
        from ctkinetics.estimation.bootstrap import bootstrap

        boot = bootstrap(dataset, args.model, args.bootstrap, seed=args.seed, original=res,
                         bca=not args.no_bca, executor=executor_from_args(args), progress=say,
                         **opts)
        boot.write(folder)
        lines.append(f"bootstrap: {args.bootstrap} replicates, {boot.shares['n_used']} used "
                     f"(failed {boot.shares['failed_pct']:.0f} %, not converged "
                     f"{boot.shares['not_converged_pct']:.0f} %, at a bound "
                     f"{boot.shares['at_bound_pct']:.0f} %)" + _flags(boot.flags))
        lines.append(boot.intervals[["parameter", "estimate", "pct_low", "pct_high", "bca_low",
                                     "bca_high"]].to_string(index=False,
                                                            float_format=lambda v: f"{v:.4g}"))
    if args.sir:
        from ctkinetics.estimation.sir import sir

        s = sir(dataset, args.model, res, samples=_counts(args.sir_samples),
                resamples=_counts(args.sir_resamples), inflation=args.sir_inflation,
                seed=args.seed,
                executor=executor_from_args(args), progress=say)
        s.write(folder)
        last = s.iterations.iloc[-1]
        lines.append(f"SIR: {len(s.iterations)} iterations, last ESS "
                     f"{last['effective_sample_size']:.0f}, mean dOFV of the resamples "
                     f"{last['mean_dofv_resamples']:.2f} (chi-square df {int(last['df'])})"
                     + _flags(s.flags))
        lines.append(s.intervals[["parameter", "estimate", "sir_low", "sir_high"]].to_string(
            index=False, float_format=lambda v: f"{v:.4g}"))
        low = s.settings.get("lowest_proposal")
        if "sir_negative_dofv" in s.flags and low:
            from ctkinetics.cli.commands.popfit import init_options

            opts, rest = init_options(res.spec, low["estimates"])
            lines.append(f"SIR's lowest OFV is {-low['dofv']:.3f} below the fit's (iteration "
                         f"{low['iteration']}, proposal {low['sample']}; sir.json "
                         f"lowest_proposal): refit from it with {opts}"
                         + (f" ({', '.join(rest)} start at 0)" if rest else ""))
    if args.bootstrap or args.sir:
        from ctkinetics.estimation.interval_choice import interval_to_read

        advice = interval_to_read(boot, s if args.sir else None, res)
        if advice:
            lines.append(f"which interval to read: {advice}")
    if args.npde:
        from ctkinetics.estimation.population.npde import npde

        n = npde(res, dataset, args.model, n_simulations=args.npde, seed=args.seed)
        n.write(folder)
        t = n.test("npde")
        lines.append(f"NPDE ({args.npde} replicates): mean {t['mean']:.3f}, variance "
                     f"{t['variance']:.3f}; p (adjusted) mean {t['p_mean']:.3g}, variance "
                     f"{t['p_variance']:.3g}, normality {t['p_normality']:.3g}, global "
                     f"{t['p_global']:.3g}")
    if args.pcvpc:
        from ctkinetics.estimation.population.pcvpc import pcvpc

        v = pcvpc(res, dataset, args.model, n_replicates=args.pcvpc, seed=args.seed)
        for name, table in zip(PCVPC_FILES, (v.table, v.observed)):
            folder.write_csv(name, table)
        lines.append(f"pcVPC: {args.pcvpc} replicates, BLQ imputed; pcvpc.csv")
    if args.exposure_ci:
        from ctkinetics.estimation.exposure_ci import exposure_intervals

        e = exposure_intervals(res, dataset, args.model, source=boot, n_draws=args.draws,
                               seed=args.seed)
        e.write(folder)
        lines.append(f"exposure intervals ({e.settings['method']}): exposure_ci.csv, "
                     "exposure_ci_dose_levels.csv")
    return lines


def _flags(flags) -> str:
    if not flags:
        return ""
    from ctkinetics.estimation.flags import get

    return "\n  " + "\n  ".join(f"{f}: {get(f).meaning.split(':')[0]}" for f in flags)


__all__ = ["add_uncertainty_arguments", "requested", "check", "executor_from_args",
           "covariate_search", "run_all", "written_files"]
