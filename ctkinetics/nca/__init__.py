"""Non-compartmental analysis (PKNCA / Phoenix WinNonlin semantics).

The entry point is the function :func:`run_nca` (also ``ctkinetics.run_nca`` and, by its
historical name, ``ctkinetics.nca.nca``). ``ctkinetics.nca`` itself is always this package;
calling it, ``ctkinetics.nca(data, ...)``, runs :func:`run_nca` (kept for existing scripts).

>>> from ctkinetics.nca import run_nca, NCAOptions, PARAMETERS
>>> "AUCINT_LAST" in PARAMETERS
True

Modules, one concept each: :mod:`~.auc` (segment rules), :mod:`~.blq` (BLQ rule),
:mod:`~.lambdaz` (terminal slope), :mod:`~.quality` (PKNCA's exclusion rules),
:mod:`~.parameters` (registry), :mod:`~.profiles` (observations to arrays, exclusions),
:mod:`~.engine` (vectorised quantities), :mod:`~.intervals`, :mod:`~.result`,
:mod:`~.summary`, :mod:`~.proportionality`. Descriptive statistics come from
:mod:`ctkinetics.stats`.
"""
from ctkinetics.nca.api import nca, run_nca
from ctkinetics.nca.auc import AUC_METHODS
from ctkinetics.nca.blq import BLQRule
from ctkinetics.nca.intervals import default_intervals
from ctkinetics.nca.options import AUC_TYPES, NCAOptions
from ctkinetics.nca.parameters import PARAMETERS, NCAParameter
from ctkinetics.nca.proportionality import power_model
from ctkinetics.nca.result import NCAResult

__all__ = ["run_nca", "nca", "NCAOptions", "BLQRule", "NCAResult", "PARAMETERS", "NCAParameter",
           "AUC_METHODS", "AUC_TYPES", "default_intervals", "power_model"]


# ``ctkinetics.nca`` is this package (Python binds it there once any submodule is imported,
# and ctkinetics' lazy export returns it too). Scripts written when ``ctkinetics.nca`` was
# the function call it: a callable package keeps ``ctkinetics.nca(dataset, ...)`` working.
import sys as _sys  # noqa: E402
import types as _types  # noqa: E402


class _CallableModule(_types.ModuleType):
    def __call__(self, *args, **kwargs):
        """``ctkinetics.nca(data, ...)`` is :func:`run_nca` (``data, ...``)."""
        return run_nca(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
