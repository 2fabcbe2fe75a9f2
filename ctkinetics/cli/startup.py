"""A command's start-up: its heavy imports without the cyclic garbage collector.

Importing numpy, pandas and pydantic creates ~10^5 long-lived objects (modules, classes,
functions) and next to no cyclic garbage, yet Python's collector examines them again and
again while they are being made: ~170 collections, 0.06-0.2 s of CPU in ``ctk nca`` on
1,000 participants (0.85 s in all, measured with ``gc.callbacks``; more on a loaded machine,
the collector being bound by memory). :func:`imports_without_gc` pauses the collector for a
block of imports and then moves everything they created into the permanent generation
(:func:`gc.freeze`), so later collections do not scan it either. The collector is on again
afterwards, as before: the command's own work is collected as usual.
"""
from __future__ import annotations

import gc
import sys
from contextlib import contextmanager


@contextmanager
def imports_without_gc():
    """Run a block of imports with the cyclic collector paused.

    The objects the block created are frozen (never scanned again) only if it imported new
    modules: a Python session that calls ``ctk``'s ``main()`` again (tests, notebooks),
    with everything imported already, keeps its collector exactly as it was. A collector
    switched off by the caller stays off.

    >>> with imports_without_gc():
    ...     import json
    >>> gc.isenabled()
    True
    """
    if not gc.isenabled():
        yield
        return
    before = len(sys.modules)
    gc.disable()
    try:
        yield
    finally:
        if len(sys.modules) > before:
            gc.freeze()
        gc.enable()
