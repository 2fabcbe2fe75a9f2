"""Virtual-trial simulation: kinetics + exposure-driven toxicity + BOIN/TITE-BOIN + stagger.

Layer above :mod:`ctkinetics.modeling` and :mod:`ctkinetics.escalation` (it reuses both),
below plots and the report.

- :mod:`.spec`          the TOML trial specification (load_spec, TrialSpec)
- :mod:`.kinetics`      each participant's exposure from the model library (Cmax, AUC0-28)
- :mod:`.toxicity`      exposure–toxicity links and DLT onset (registries)
- :mod:`.draws`         everything random about a batch of trials (one stream per trial)
- :mod:`.guards`        extra conditions on escalation for alternative rules (registry)
- :mod:`.engine`        the escalation engine's rules on arrays of many trials
- :mod:`.calendar`      the calendar of many trials under one rule, vectorised across trials
- :mod:`.trial`         a batch: draws once, every rule's calendar on them
- :mod:`.aggregate`     per-trial rows and exact streaming summaries
- :mod:`.executors`     where batches run: SerialExecutor, LocalDaskExecutor, DaskExecutor
- :mod:`.failures`      runtime failures of a run (ClusterError, ExposureError)
- :mod:`.runner`        simulate_trials: batches on an executor, consumed in order
- :mod:`.result`        TrialSimResult
- :mod:`.results_io`    write_results / load_results: a `ctk trial-sim` output folder
"""
from ctkinetics.trialsim.executors import DaskExecutor, LocalDaskExecutor, SerialExecutor
from ctkinetics.trialsim.failures import ClusterError, SimulationError
from ctkinetics.trialsim.result import TrialSimResult
from ctkinetics.trialsim.results_io import load_results
from ctkinetics.trialsim.runner import simulate_trials
from ctkinetics.trialsim.spec import TrialSpec, load_spec, parse_spec

__all__ = ["simulate_trials", "load_results", "load_spec", "parse_spec", "TrialSpec", "TrialSimResult",
           "SerialExecutor", "LocalDaskExecutor", "DaskExecutor", "ClusterError", "SimulationError"]
