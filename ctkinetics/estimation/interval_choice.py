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
minimum: no interval around it is to be read until it is refitted.
"""
from __future__ import annotations

#: SIR flags that say its proposal did not settle on the target.
UNSETTLED = ("sir_low_ess", "sir_dofv_above_chi2")


def interval_to_read(bootstrap=None, sir=None) -> str | None:
    """One or two sentences for the reader, or None when there is nothing to choose.

    ``bootstrap``: a BootstrapResult (its ``flags``) or None; ``sir``: a SIRResult (its
    ``flags`` and last row of ``iterations``) or None.
    """
    if sir is None:
        return None
    flags = list(sir.flags)
    out = []
    if "sir_negative_dofv" in flags:
        out.append("The population fit did not reach the minimum of its objective (SIR found "
                   "parameter vectors with a lower OFV, sir_samples.csv): refit it before "
                   "reading any of its intervals.")
    unsettled = [f for f in flags if f in UNSETTLED]
    if unsettled:
        last = sir.iterations.iloc[-1]
        why = (f"SIR's last iteration rests on an effective {last['effective_sample_size']:.0f} "
               f"of its {int(last['samples'])} proposals for {int(last['resamples'])} "
               f"resamples ({', '.join(unsettled)}), so its limits are not settled")
        if bootstrap is None:
            out.append(f"{why}: run the bootstrap (ctk popfit --bootstrap 200; report: "
                       "[uncertainty] bootstrap = 200) and read its intervals.")
        elif list(bootstrap.flags):
            out.append(f"{why}, and the bootstrap is flagged too "
                       f"({', '.join(bootstrap.flags)}): read both as indicative only.")
        else:
            out.append(f"Read the bootstrap intervals: {why}.")
    return " ".join(out) or None
