"""Non-compartmental analysis (PKNCA / Phoenix WinNonlin semantics).

>>> from ctkinetics.nca import nca, NCAOptions, PARAMETERS
>>> "AUCINT_LAST" in PARAMETERS
True

Modules, one concept each: :mod:`~.auc` (segment rules), :mod:`~.blq` (BLQ rule),
:mod:`~.lambdaz` (terminal slope), :mod:`~.parameters` (registry), :mod:`~.profiles`
(observations to arrays, exclusions), :mod:`~.engine` (vectorised quantities),
:mod:`~.intervals`, :mod:`~.result`, :mod:`~.summary`, :mod:`~.proportionality`.
"""
from ctkinetics.nca.api import nca
from ctkinetics.nca.auc import AUC_METHODS
from ctkinetics.nca.blq import BLQRule
from ctkinetics.nca.intervals import default_intervals
from ctkinetics.nca.options import AUC_TYPES, NCAOptions
from ctkinetics.nca.parameters import PARAMETERS, NCAParameter
from ctkinetics.nca.proportionality import power_model
from ctkinetics.nca.result import NCAResult

__all__ = ["nca", "NCAOptions", "BLQRule", "NCAResult", "PARAMETERS", "NCAParameter",
           "AUC_METHODS", "AUC_TYPES", "default_intervals", "power_model"]
