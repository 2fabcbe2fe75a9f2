"""Which interval of a population parameter to read when the bootstrap and SIR disagree
about their own reliability: the one rule the CLI (``ctk popfit --bootstrap --sir``) and the
report's uncertainty section both print.

SIR's limits are quantiles of the last iteration's importance-weighted proposals; when its
flags say the proposal did not settle on the target (``sir_low_ess``: the weights rest on
few proposals; ``sir_dofv_above_chi2``: the resamples sit above χ²) those limits carry a
large Monte-Carlo error and may be too narrow. The bootstrap refits the model to resampled
participants and needs no proposal; on the stein2019 recovery studies (12-30 participants,
``benchmarks/results/uncertainty_coverage.txt``) its percentile intervals covered 0.88-0.92
for every θ while every SIR run there carried ``sir_low_ess``. So a flagged SIR defers to an
unflagged bootstrap, and without a bootstrap the advice is to run one. ``sir_negative_dofv``
(a proposal with a lower objective than the estimates) means the fit itself is not at its
minimum: no interval around it is to be read until it is refitted. When the fit's covariance
step failed, the bootstrap is not recommended either: its replicates start from the estimates
(PsN's convention), so a parameter the data barely inform barely moves and its interval is too
narrow (exactly flat ones are named by the bootstrap's ``replicates_unmoved`` flag; nearly flat
ones are not caught by it).
"""
from __future__ import annotations

#: SIR flags that say its proposal did not settle on the target.
UNSETTLED = ("sir_low_ess", "sir_dofv_above_chi2")


#: Population-fit flags that say its Hessian does not vouch for every parameter.
UNINFORMED = ("covariance_failed", "non_identifiable")


def interval_to_read(bootstrap=None, sir=None, population=None) -> str | None:
    """One to three sentences for the reader, or None when there is nothing to choose.

    ``bootstrap``: a BootstrapResult (its ``flags``) or None; ``sir``: a SIRResult (its
    ``flags`` and last row of ``iterations``) or None; ``population``: the PopulationResult
    both were run on (its ``diagnostics["flags"]``) or None.
    """
    pop_flags = [f for f in (population.diagnostics.get("flags", ()) if population is not None
                             else ()) if f in UNINFORMED]
    out = []
    if pop_flags and bootstrap is not None:
        out.append(f"The fit's covariance step did not vouch for every parameter "
                   f"({', '.join(pop_flags)}): bootstrap replicates start from the estimates, "
                   "so a parameter the data barely inform barely moves and its bootstrap "
                   "interval is too narrow — a narrow interval here is no evidence of "
                   "precision.")
    if sir is None:
        return " ".join(out) or None
    flags = list(sir.flags)
    if "sir_negative_dofv" in flags:
        low = (getattr(sir, "settings", None) or {}).get("lowest_proposal") or {}
        by = f" by {-low['dofv']:.2f}" if low.get("dofv", 0) < 0 else ""
        out.insert(0, "The population fit did not reach the minimum of its objective (SIR "
                      f"found parameter vectors with a lower OFV{by}; sir.json "
                      "lowest_proposal): refit from them (ctk popfit --init) before reading "
                      "any of its intervals.")
    unsettled = [f for f in flags if f in UNSETTLED]
    if unsettled:
        last = sir.iterations.iloc[-1]
        why = (f"SIR's last iteration rests on an effective {last['effective_sample_size']:.0f} "
               f"of its {int(last['samples'])} proposals for {int(last['resamples'])} "
               f"resamples ({', '.join(unsettled)}), so its limits are not settled")
        if bootstrap is None:
            out.append(f"{why}: run the bootstrap (ctk popfit --bootstrap 200; report: "
                       "[uncertainty] bootstrap = 200) and read its intervals.")
        elif list(bootstrap.flags) or pop_flags:
            why_not = ", ".join(list(bootstrap.flags) + pop_flags)
            out.append(f"{why}; the bootstrap intervals carry caveats too ({why_not}): read "
                       "both as indicative only.")
        else:
            out.append(f"Read the bootstrap intervals: {why}.")
    return " ".join(out) or None
