"""Runtime failures of a trial-sim run (not bad input): the CLI reports them in one message and
exits 1, and no output of the run is presented as complete."""
from __future__ import annotations

from ctkinetics.errors import CtkError


class SimulationError(CtkError):
    """A virtual-trial run could not be completed."""


class ClusterError(SimulationError):
    """The Dask cluster failed during a run (lost scheduler, no workers, workers dying)."""


class ExposureError(SimulationError):
    """A simulated exposure is not a positive finite number (the kinetics failed)."""
