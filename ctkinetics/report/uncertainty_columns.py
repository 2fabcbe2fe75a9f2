"""Column definitions of the uncertainty tables the report writes (``exposure_ci*.csv``,
``population_bootstrap_*.csv``, ``population_sir_*.csv``, ``population_npde*.csv``,
``population_pcvpc.csv``), merged into the data dictionary (:mod:`ctkinetics.report.dictionary`).
Units as the dictionary's convention: a literal unit, "1" (dimensionless) or "@col" (in a unit
column of the same CSV). No imports: the dictionary reads it at import time."""

_1 = "1"
#: column -> (label, unit, definition); columns the dictionary already defines are not repeated.
UNCERTAINTY_COLUMNS = {
    "metric": ("metric", "", "model-based exposure metric (Cmax, Tmax, AUC0-28, aplasia_days: "
                             "the exposure registry ctkinetics.modeling.exposure)"),
    "n_draws": ("draws", _1, "parameter draws behind the interval (0: no interval)"),
    "n_participants": ("participants", _1, "participants of the dose level"),
    "boot_median": ("bootstrap median", "@unit", "median of the bootstrap replicates used"),
    "boot_mean": ("bootstrap mean", "@unit", "mean of the bootstrap replicates used"),
    "boot_se": ("bootstrap SE", "@unit", "standard deviation of the bootstrap replicates used"),
    "bias": ("bootstrap bias", "@unit", "mean of the replicates minus the estimate"),
    "pct_low": ("percentile low", "@unit", "lower limit of the bootstrap percentile interval "
                                           "(quantile of the replicates, estimation scale)"),
    "pct_high": ("percentile high", "@unit", "upper limit of the bootstrap percentile interval"),
    "bca_low": ("BCa low", "@unit", "lower limit of the bias-corrected and accelerated "
                                    "bootstrap interval (Efron 1987; jackknife acceleration)"),
    "bca_high": ("BCa high", "@unit", "upper limit of the BCa interval"),
    "bca_z0": ("BCa z0", _1, "bias correction: normal quantile of the share of replicates "
                             "below the estimate"),
    "bca_acceleration": ("BCa acceleration", _1, "acceleration a from the jackknife "
                                                 "(leave one participant out)"),
    "n_used": ("replicates used", _1, "bootstrap replicates in the intervals (not failed "
                                      "and converged, unless the run excluded more)"),
    "replicate": ("replicate", "", "bootstrap replicate number, or the participant left out "
                                   "(jackknife)"),
    "sample": ("sample", "", "bootstrap (a resampled study) or jackknife (one participant "
                             "left out)"),
    "used": ("used", _1, "the replicate enters the intervals (yes/no)"),
    "subjects": ("participants drawn", "", "participants of the resampled study, in order "
                                           "(';'-separated)"),
    "at_bound": ("at a bound", "", "estimates of the replicate on a bound (';'-separated)"),
    "sir_median": ("SIR median", "@unit", "median of the SIR target: the last iteration's "
                                          "proposals weighted by their importance ratios"),
    "sir_se": ("SIR SE", "@unit", "standard deviation of the last iteration's proposals "
                                  "weighted by their importance ratios"),
    "sir_low": ("SIR low", "@unit", "lower limit of the SIR interval: quantile of the last "
                                    "iteration's proposals weighted by their importance "
                                    "ratios (the distribution its resamples are drawn from)"),
    "sir_high": ("SIR high", "@unit", "upper limit of the SIR interval (as SIR low)"),
    "resample_low": ("resamples low", "@unit", "lower limit of the quantiles of the last "
                                               "iteration's resamples (PsN's SIR interval; "
                                               "narrower when the proposal is narrower than "
                                               "the target)"),
    "resample_high": ("resamples high", "@unit", "upper limit of the quantiles of the last "
                                                 "iteration's resamples (PsN's)"),
    "n_resamples": ("resamples", _1, "SIR resamples of the last iteration"),
    "iteration": ("iteration", _1, "SIR iteration"),
    "resamples": ("resamples", _1, "vectors resampled in the iteration"),
    "resampling_ratio": ("resampling ratio", _1, "proposals / resamples"),
    "effective_sample_size": ("effective sample size", _1, "(Σ IR)² / Σ IR² over the "
                                                           "proposals (IR: importance ratio)"),
    "max_probability": ("largest probability", _1, "largest resampling probability of a "
                                                   "proposal"),
    "mean_dofv_proposal": ("mean dOFV of the proposals", _1, "mean of −2LL − −2LL(estimates) "
                                                             "over the proposals"),
    "mean_dofv_resamples": ("mean dOFV of the resamples", _1, "the same over the resamples "
                                                              "(χ²: as many as df)"),
    "df": ("df", _1, "estimated parameters (degrees of freedom of the χ² reference)"),
    "failed_ofv": ("failed −2LL", _1, "proposals whose −2LL could not be computed"),
    "negative_dofv": ("dOFV < 0", _1, "proposals with a lower −2LL than the estimates (the fit "
                                      "is not at its minimum: flag sir_negative_dofv)"),
    "proposal": ("proposal", "", "where the iteration's proposals come from: the covariance "
                                 "step, or a normal fitted to the previous iteration's "
                                 "resamples (on a per-parameter Yeo–Johnson scale)"),
    "imputed": ("imputed", _1, "BLQ sample whose value was imputed from the predictive "
                               "distribution (yes/no)"),
    "ploq": ("P(BLQ)", _1, "share of the sample's simulations below its LLOQ"),
    "pd": ("pd", _1, "prediction discrepancy: share of simulations below the observation"),
    "npd": ("npd", _1, "Φ⁻¹(pd)"),
    "npde": ("npde", _1, "normalised prediction distribution error (decorrelated), "
                         "N(0, 1) under the model"),
    "se_mean": ("SE of the mean", _1, "SD / √n"),
    "variance": ("variance", _1, "variance (n − 1)"),
    "se_variance": ("SE of the variance", _1, "variance · √(2 / (n − 1))"),
    "skewness": ("skewness", _1, "third standardised moment (Snedecor & Cochran)"),
    "kurtosis": ("excess kurtosis", _1, "fourth standardised moment − 3"),
    "p_mean": ("p (mean = 0)", _1, "Student t test, × 3 (Bonferroni), capped at 1"),
    "p_variance": ("p (variance = 1)", _1, "Fisher test of the variance, × 3, capped at 1"),
    "p_normality": ("p (normality)", _1, "Shapiro–Wilk test, × 3, capped at 1"),
    "p_global": ("p (global)", _1, "smallest of the three adjusted p-values"),
}

_LEVEL = ("CI level", _1, "coverage of the interval (0.95: 95 %)")
#: (table, column) -> entry where a column means something else than elsewhere.
UNCERTAINTY_TABLE_COLUMNS = {
    ("exposure_ci.csv", "ci_level"): _LEVEL,
    ("exposure_ci_dose_levels.csv", "ci_level"): _LEVEL,
    ("exposure_ci_dose_levels.csv", "statistic"): (
        "statistic", "", "geometric mean over the participants (arithmetic mean for the "
                         "aplasia duration)"),
    ("exposure_ci_dose_levels.csv", "estimate"): (
        "estimate", "@unit", "the statistic of the participants' point estimates"),
    ("population_bootstrap_intervals.csv", "ci_level"): _LEVEL,
    ("population_sir_intervals.csv", "ci_level"): _LEVEL,
    ("population_sir_iterations.csv", "samples"): ("proposals", _1, "vectors drawn from the "
                                                                     "proposal"),
    ("population_sir_proposals.csv", "iteration"): ("iteration", _1, "SIR iteration"),
    ("population_sir_proposals.csv", "parameter"): ("parameter", "", "component of the "
                                                    "estimation vector (named as the fit's)"),
    ("population_sir_proposals.csv", "transform"): ("transform", "", "none (iteration 1: the "
                                                    "covariance step) or yeo-johnson"),
    ("population_sir_proposals.csv", "mean"): ("centre", _1, "centre of the proposal on the "
                                               "estimation scale (ln of the value for a "
                                               "log-scale parameter)"),
    ("population_sir_proposals.csv", "center"): ("transformation centre", _1, "c of "
                                                 "u = (x − c)/s: median of the previous "
                                                 "resamples (estimation scale)"),
    ("population_sir_proposals.csv", "scale"): ("transformation scale", _1, "s of "
                                                "u = (x − c)/s: SD of the previous resamples"),
    ("population_sir_proposals.csv", "lam"): ("λ", _1, "Yeo–Johnson λ (1: no transformation; "
                                              "0: logarithm of 1 + u)"),
    ("population_sir_proposals.csv", "sd_transformed"): ("SD", _1, "SD of the proposal on the "
                                                         "transformed scale"),
    ("population_npde_tests.csv", "statistic"): ("statistic", "", "npde or npd"),
    ("population_npde_tests.csv", "n"): ("n", _1, "observations with a value"),
    ("population_npde_tests.csv", "mean"): ("mean", _1, "mean of the statistic (0 under the "
                                                        "model)"),
}
