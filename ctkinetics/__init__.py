"""ctkinetics: cellular kinetics of CAR-T cell therapies.

The public API is re-exported here lazily, so that ``import ctkinetics`` and the CLI start
fast (scipy, lmfit and plotly are imported only when used).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

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
}


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ctkinetics' has no attribute {name!r}")
    mod = importlib.import_module(module)
    # an export named like its own subpackage is the subpackage (ctkinetics.nca), the same
    # object before and after any import of its submodules; run_nca is the NCA function
    return mod if module == f"{__name__}.{name}" else getattr(mod, name)


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = ["__version__", *_EXPORTS]
