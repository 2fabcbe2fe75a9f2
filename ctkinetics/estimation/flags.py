"""Fit flags: the one registry of every flag a fit can carry.

Individual fits, population fits, the CLI summaries, the CSV files and the report take a
flag's meaning, threshold and severity from here (the report's data dictionary too); the
code that raises a flag reads its numeric limit from here. A flag is written in tables by its
``id`` (``fits.csv``'s ``flags`` column holds ``id;id;...``; a parameter's ``corr>0.95`` flag
names its partners after a colon, ``corr>0.95:CL,ke``).

Severity, from worst:

=========  ==================================================================
failure    no usable result (solver failure, non-finite values, time limit)
error      estimates exist but are unusable (the optimiser did not converge)
warning    estimates usable with caution: read the flagged parameter / fit
note       information for the reader (diagnostics look better than they are)
=========  ==================================================================

>>> from ctkinetics.estimation.flags import FLAGS, describe
>>> FLAGS["rse>50%"].limit
50.0
>>> describe("corr>0.95:CL,ke").startswith("two estimates correlate")
True
"""
from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("failure", "error", "warning", "note")

#: Where a flag can appear: a subject's fit row (``fits.csv``), a parameter row, a sample row
#: of the predictions, a population fit.
SCOPES = ("subject", "parameter", "sample", "population")


@dataclass(frozen=True)
class Flag:
    """One flag.

    Attributes
    ----------
    id : str
        As written in the tables (stable: scripts read it).
    severity : str
        One of :data:`SEVERITIES`.
    scopes : tuple of str
        Where it appears (:data:`SCOPES`).
    meaning : str
        What it means, for a committee member.
    threshold : str
        The rule that raises it, with its number.
    advice : str
        What to do about it.
    limit : float or None
        The numeric threshold the code uses (one home for the number).
    """

    id: str
    severity: str
    scopes: tuple
    meaning: str
    threshold: str
    advice: str = ""
    limit: float | None = None

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"flag {self.id}: severity must be one of {SEVERITIES}")
        if not set(self.scopes) <= set(SCOPES):
            raise ValueError(f"flag {self.id}: scopes must be among {SCOPES}")


_FLAGS = (
    Flag("failed", "failure", ("subject", "population"),
         "the fit could not be completed: the model could not be solved, a parameter or "
         "prediction was not finite, or the time limit was reached (the reason is in the "
         "message)",
         "an exception, a non-finite estimate, objective or prediction at the estimates, or "
         "the wall-clock limit per fit",
         "read the message; check the model file and the data of that participant"),
    Flag("not_converged", "error", ("subject", "parameter", "population"),
         "the optimiser did not converge: the estimates are unusable",
         "the optimiser's own convergence test failed (or the SAEM chains still drift)",
         "try more starts, fix poorly informed parameters (--fix) or a simpler model"),
    Flag("non_identifiable", "warning", ("subject", "parameter", "population"),
         "the information matrix is singular: the data do not determine every parameter "
         "(no standard errors)",
         "Hessian not positive definite, or smallest/largest eigenvalue < 1e-10",
         "fix the parameters the data cannot inform (--fix NAME=VALUE) or use more data",
         1e-10),
    Flag("at_bound", "warning", ("subject", "parameter", "population"),
         "an estimate sits on a bound of its parameter: the data push it to the edge of its "
         "plausible range, and it has no standard error",
         "within 1e-5 of the bound range (at most 1e-3, estimation scale) of a bound",
         "check the parameter's bounds in the model file, or fix it"),
    Flag("not_estimable", "warning", ("parameter",),
         "the data do not determine this parameter: its SE, RSE and 95 % CI are left blank "
         "instead of showing an absurd interval",
         "at a bound, non-finite SE, singular Hessian, or a 95 % CI wider than a factor 1e6",
         "fix it at a value from the literature, or report it as not estimable",
         1e6),
    Flag("rse>50%", "warning", ("subject", "parameter", "population"),
         "a relative standard error is above 50 %: the estimate is imprecise",
         "RSE % = 100·SE/|estimate| > 50", "read the estimate with its CI", 50.0),
    Flag("corr>0.95", "warning", ("subject", "parameter"),
         "two estimates correlate beyond 0.95: the data cannot separate them (the "
         "parameter row names the partner)",
         "|correlation of the estimates| > 0.95", "fix one of the pair", 0.95),
    Flag("at_sample_time", "warning", ("subject", "parameter"),
         "the estimated switch time (e.g. Tmax, the end of expansion) falls exactly on a "
         "sampling time: the likelihood has a kink there (that sample changes phase), so the "
         "Wald standard error and interval mean little",
         "|switch time − a sampling time| ≤ 1e-6 relative",
         "use the profile-likelihood CI (--ci profile)", 1e-6),
    Flag("second_optimum", "warning", ("subject",),
         "another, distinct optimum fits almost as well: the data support two different "
         "sets of estimates (the fits table gives its −2LL difference)",
         "a distinct optimum (estimates differing by > 1 % on the estimation scale) within "
         "3.84 −2LL units (χ²₁ 95 %) of the best",
         "compare the two solutions (start history) before relying on the estimates",
         3.841458820694124),   # χ²₁(0.95) = scipy.special.chdtri(1, 0.05)
    Flag("exact_fit", "note", ("subject", "sample"),
         "the model passes exactly through some samples (residual 0, as many free parameters "
         "as samples in that phase): they carry no information on the residual error, so the "
         "goodness-of-fit plots look better than they are",
         "|IWRES| < 1e-6", "read the residual plots with those samples set aside", 1e-6),
    Flag("covariance_failed", "warning", ("population",),
         "the covariance step failed: some standard errors are missing",
         "Hessian of the objective not invertible or with non-positive variances",
         "simplify the random effects or fix poorly informed parameters"),
    Flag("ebe_not_converged", "warning", ("population",),
         "the empirical Bayes estimates of some participants did not converge",
         "the inner optimisation of a participant stopped without convergence",
         "check those participants' data"),
    Flag("shrinkage>30%", "warning", ("population",),
         "η-shrinkage above 30 %: the individual estimates of that parameter lean on the "
         "population and its ω is poorly informed",
         "η-shrinkage % = 100·(1 − SD(EBE η)/ω) > 30",
         "do not read individual estimates of that parameter as data-driven", 30.0),
    # uncertainty methods (issue 16: ctkinetics.estimation.bootstrap / sir)
    Flag("replicates_failed", "warning", ("population",),
         "more than 10 % of the bootstrap replicates failed or did not converge: the "
         "intervals rest on the replicates that could be fitted, which may be the easier ones",
         "% of replicates failed or not converged > 10",
         "read the failed replicates' messages; simplify the model or fix poorly informed "
         "parameters", 10.0),
    Flag("replicates_at_bound", "warning", ("population",),
         "more than 10 % of the bootstrap replicates put an estimate on a bound (often an ω "
         "collapsing to 0): the data of some resampled studies do not inform that parameter",
         "% of replicates with an estimate at a bound > 10",
         "read the bound parameter's interval with care; consider removing its random effect",
         10.0),
    Flag("replicates_unmoved", "warning", ("population",),
         "a parameter kept its original estimate in nearly every bootstrap replicate (the "
         "flag names it: replicates_unmoved:foldx): resampled data do not move it because "
         "the objective is flat in it — the data do not inform it — so its near-zero-width "
         "bootstrap interval is no measure of its uncertainty",
         "|replicate − original estimate| ≤ 1e-8 × max(1, |estimate|) on the estimation "
         "scale in ≥ 90 % of the replicates used",
         "fix the parameter (--fix NAME=VALUE) or simplify the model; do not read its "
         "interval", 0.9),
    Flag("sir_low_ess", "warning", ("population",),
         "the importance ratios of SIR are dominated by a few proposals (effective sample "
         "size below the number resampled): the proposal does not cover the uncertainty "
         "and the SIR intervals may be too narrow",
         "effective sample size (Σw)²/Σw² of the last iteration < the number of resamples",
         "run more SIR iterations or proposals (--sir-samples / --sir-resamples), or inflate "
         "the first proposal (--sir-inflation; report: [uncertainty] sir_inflation); read the "
         "bootstrap interval meanwhile"),
    Flag("sir_dofv_above_chi2", "warning", ("population",),
         "the dOFV distribution of the SIR resamples lies above the chi-square distribution "
         "with as many degrees of freedom as estimated parameters: the uncertainty may be "
         "underestimated (Dosne et al. 2016)",
         "mean dOFV of the resamples > 1.2 x the number of estimated parameters",
         "run more SIR iterations; compare with the bootstrap", 1.2),
    Flag("sir_negative_dofv", "warning", ("population",),
         "SIR found parameter vectors with a lower objective than the fit's estimates: the fit "
         "did not reach the minimum of its objective, and its estimates, Wald and SIR "
         "intervals are not those of the optimum",
         "a SIR proposal with dOFV < 0 (any iteration)",
         "refit from the SIR proposal with the lowest OFV (sir.json lowest_proposal; "
         "ctk popfit --init NAME=VALUE for each, as the --sir summary prints), then rerun SIR"),
)

#: id -> :class:`Flag`.
FLAGS: dict[str, Flag] = {f.id: f for f in _FLAGS}


def flag_id(text: str) -> str:
    """The registry id of a flag as written in a table (``corr>0.95:CL,ke`` -> ``corr>0.95``)."""
    return str(text).split(":", 1)[0].strip()


def get(text: str) -> Flag:
    """The :class:`Flag` of a written flag (KeyError naming the unknown flag otherwise)."""
    key = flag_id(text)
    try:
        return FLAGS[key]
    except KeyError:
        raise KeyError(f"flag '{key}' is not in the flag registry "
                       "(ctkinetics.estimation.flags.FLAGS)") from None


def limit(text: str) -> float:
    """The numeric threshold of a flag."""
    return get(text).limit


def describe(text: str) -> str:
    """The meaning of a written flag."""
    return get(text).meaning


def split(cell) -> list[str]:
    """Flags of a table cell ``a;b;c`` (empty or missing -> [])."""
    if cell is None or (isinstance(cell, float) and cell != cell):
        return []
    return [f for f in str(cell).split(";") if f]


def worst(flags) -> str:
    """The worst severity among ``flags`` ('' when none)."""
    sev = [get(f).severity for f in flags]
    return min(sev, key=SEVERITIES.index) if sev else ""


def count_by_flag(flagged: dict) -> dict:
    """``{item: [flags]}`` -> ``{flag id: [items]}``, flag ids in registry order."""
    out = {}
    for item, fl in flagged.items():
        for f in dict.fromkeys(flag_id(x) for x in fl):
            out.setdefault(f, []).append(item)
    order = list(FLAGS)
    return {k: out[k] for k in sorted(out, key=lambda k: order.index(k) if k in order else 99)}


def summary_lines(flagged: dict, what: str = "subjects", max_items: int = 6,
                  detail: dict | None = None) -> list[str]:
    """Lines for a CLI summary: per flag, how many items carry it, which, and why.

    ``detail`` maps (item, flag id) to a note shown after the item (e.g. the parameter).

    >>> summary_lines({"S1": ["at_bound"], "S2": []}, detail={("S1", "at_bound"): "beta"})[0]
    '  at_bound (1 subjects: S1 (beta)): an estimate sits on a bound of its parameter'
    """
    detail = detail or {}
    lines = []
    for fid, items in count_by_flag(flagged).items():
        shown = [f"{i} ({detail[(i, fid)]})" if detail.get((i, fid)) else str(i)
                 for i in items[:max_items]]
        names = ", ".join(shown) + (", ..." if len(items) > max_items else "")
        meaning = FLAGS[fid].meaning if fid in FLAGS else "(unregistered flag)"
        lines.append(f"  {fid} ({len(items)} {what}: {names}): {meaning.split(':')[0]}")
    return lines


def dictionary():
    """The registry as a table (id, severity, scopes, meaning, threshold, advice, limit), for
    the report's data dictionary and the docs."""
    import pandas as pd

    return pd.DataFrame([{"id": f.id, "severity": f.severity, "scopes": ",".join(f.scopes),
                          "meaning": f.meaning, "threshold": f.threshold, "advice": f.advice,
                          "limit": f.limit} for f in _FLAGS])


__all__ = ["Flag", "FLAGS", "SEVERITIES", "SCOPES", "flag_id", "get", "limit", "describe",
           "split", "worst", "count_by_flag", "summary_lines", "dictionary"]
