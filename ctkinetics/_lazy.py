"""One lazy-export mechanism for the package's public surface (PEP 562).

A package lists its public names and the module defining each; the module is imported on
first access and the value cached in the package, so that ``import ctkinetics`` (and the
CLI) stay fast: numpy, scipy, pandas, lmfit and plotly are imported only when a name that
needs them is used.

>>> # in a package's __init__.py:
>>> # from ctkinetics._lazy import lazy_exports
>>> # lazy_exports(globals(), {"fit": "ctkinetics.estimation"}, submodules=("nca",))
"""
from __future__ import annotations

import importlib


def lazy_exports(namespace: dict, exports: dict, submodules=()) -> None:
    """Give the package whose ``globals()`` is ``namespace`` a ``__getattr__``, ``__dir__`` and
    ``__all__`` for ``exports`` (public name -> module that defines it) and ``submodules``
    (names of its subpackages that are themselves public, e.g. ``nca``; these win over an
    export of the same name)."""
    package = namespace["__name__"]
    subs = frozenset(submodules)

    def __getattr__(name):
        if name in subs:
            value = importlib.import_module(f"{package}.{name}")
        elif name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports) | subs)

    namespace["__getattr__"] = __getattr__
    namespace["__dir__"] = __dir__
    namespace["__all__"] = [n for n in namespace.get("__all__", ()) if n not in exports] \
        + sorted(set(exports) | subs)
