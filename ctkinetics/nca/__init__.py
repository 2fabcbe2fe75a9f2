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


# ``ctkinetics.nca`` names both this package and the function ``nca`` re-exported by
# ``ctkinetics``. Once any ``ctkinetics.nca.*`` module is imported, Python binds the package
# as the attribute ``ctkinetics.nca`` and the lazy re-export is shadowed; making the package
# callable keeps ``ctkinetics.nca(dataset, ...)`` working in either case.
import sys as _sys  # noqa: E402
import types as _types  # noqa: E402


class _CallableModule(_types.ModuleType):
    def __call__(self, *args, **kwargs):
        return nca(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
