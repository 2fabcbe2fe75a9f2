"""ctkinetics: cellular kinetics of CAR-T cell therapies.

The public API is re-exported here lazily (:func:`ctkinetics._lazy.lazy_exports`, the one
mechanism for it), so that ``import ctkinetics`` and the CLI start fast (scipy, lmfit and
plotly are imported only when used). ``ctkinetics.nca`` is the NCA package (callable, for
scripts that called it); the NCA entry point is the function ``ctkinetics.run_nca``.
"""
from __future__ import annotations

from ctkinetics._lazy import lazy_exports

__version__ = "0.1.0"
__all__ = ["__version__"]

# public name -> module that defines it
_EXPORTS = {
    "load_study": "ctkinetics.data",
    "read_dataset": "ctkinetics.data",
    "Dataset": "ctkinetics.data",
    "load_model": "ctkinetics.modeling",
    "simulate": "ctkinetics.modeling",
    "simulate_population": "ctkinetics.modeling",
    "nca": "ctkinetics.nca",
    "run_nca": "ctkinetics.nca",
    "fit": "ctkinetics.estimation",
    "fit_population": "ctkinetics.estimation",
    "decide_study": "ctkinetics.escalation",
    "boundaries": "ctkinetics.escalation",
    "select_mtd": "ctkinetics.escalation",
    "simulate_trials": "ctkinetics.trialsim",
    "load_spec": "ctkinetics.trialsim",
    "TrialSimResult": "ctkinetics.trialsim",
    "build_review": "ctkinetics.report",
    "write_report": "ctkinetics.report",
    "read_report": "ctkinetics.report",
}

lazy_exports(globals(), _EXPORTS, submodules=("nca",))
