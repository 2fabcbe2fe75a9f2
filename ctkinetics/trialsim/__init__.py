"""Virtual-trial simulation: kinetics + exposure-driven toxicity + BOIN/TITE-BOIN + stagger.

Layer above :mod:`ctkinetics.modeling` and :mod:`ctkinetics.escalation` (it reuses both),
below plots and the report.

- :mod:`.spec`          the TOML trial specification (load_spec, TrialSpec)
- :mod:`.kinetics`      each participant's exposure from the model library (Cmax, AUC0-28)
- :mod:`.toxicity`      exposure–toxicity links and DLT onset (registries)
- :mod:`.guards`        extra conditions on escalation for alternative rules (registry)
- :mod:`.engine`        fast adapter over the escalation engine's decision
- :mod:`.trial`         the calendar of one virtual trial (arrivals, stagger, pending, expansion)
- :mod:`.aggregate`     per-trial rows and streaming summaries
- :mod:`.runner`        simulate_trials: batches, in process or on Dask
- :mod:`.result`        TrialSimResult
- :mod:`.results_io`    load_results: a `ctk trial-sim` output folder back into a TrialSimResult
"""
from ctkinetics.trialsim.result import TrialSimResult
from ctkinetics.trialsim.results_io import load_results
from ctkinetics.trialsim.runner import simulate_trials
from ctkinetics.trialsim.spec import TrialSpec, load_spec, parse_spec

__all__ = ["simulate_trials", "load_results", "load_spec", "parse_spec", "TrialSpec", "TrialSimResult"]
