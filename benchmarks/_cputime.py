"""CPU seconds of a benchmark run that uses local Dask workers: the machine is shared, so
benchmarks quote CPU seconds beside wall-clock seconds."""
from __future__ import annotations


def tree_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and all its live descendants (a local
    Dask cluster's nannies and workers), for differences around a timed block.

    >>> c0 = tree_cpu_seconds()                                   # doctest: +SKIP
    >>> run(); used = tree_cpu_seconds() - c0
    """
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me] + me.children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:    # a process that ended between listing and reading
            pass
    return total
