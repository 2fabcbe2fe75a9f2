"""Runtime failures of a trial-sim run (not bad input): the CLI reports them in one message and
exits 1, and no output of the run is presented as complete."""
from __future__ import annotations

from ctkinetics.errors import CtkError
from ctkinetics.executors import ClusterError as _ExecutorClusterError


class SimulationError(CtkError):
    """A virtual-trial run could not be completed."""


class ClusterError(SimulationError, _ExecutorClusterError):
    """The Dask cluster failed during a run (lost scheduler, no workers, workers dying).

    The executors (:mod:`ctkinetics.executors`) raise their layer-0 ``ClusterError``;
    :func:`ctkinetics.trialsim.simulate_trials` re-raises it as this one, so that it is
    both a :class:`SimulationError` (as before) and a ``ctkinetics.executors.ClusterError``."""


class ExposureError(SimulationError):
    """A simulated exposure is not a positive finite number (the kinetics failed)."""
