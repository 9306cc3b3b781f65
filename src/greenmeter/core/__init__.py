"""The measuring core: counters, phases, the sampler and the timeline.

Nothing here writes files, handles signals, reads environment variables or knows about
carbon; :class:`greenmeter.EnergyMeter` composes the :class:`Meter` with the run owner
(:mod:`greenmeter.run`) that does. Modules:

* :mod:`~greenmeter.core.records`: the plain data handed downstream;
* :mod:`~greenmeter.core.counters`: the boundary read path;
* :mod:`~greenmeter.core.phases`: phase accounting over the union of each path's time;
* :mod:`~greenmeter.core.sampler`, :mod:`~greenmeter.core.timeline`: the background
  thread, the bounded timeline and peak power;
* :mod:`~greenmeter.core.observers`: live consumers that never block the training;
* :mod:`~greenmeter.core.intervals`, :mod:`~greenmeter.core.batch`,
  :mod:`~greenmeter.core.limits`: the one coalescer, the one batch-size rule, the bounds.
"""

from __future__ import annotations

from greenmeter.core.batch import batch_size
from greenmeter.core.intervals import coalesce
from greenmeter.core.meter import (
    GreenMeterWarning,
    Meter,
    MeterError,
    PhaseHandle,
    PhaseListener,
)
from greenmeter.core.records import (
    PHASE_KINDS,
    MeterSnapshot,
    PhaseRecord,
    Reading,
    TimelinePoint,
)

__all__ = [
    "PHASE_KINDS",
    "GreenMeterWarning",
    "Meter",
    "MeterError",
    "MeterSnapshot",
    "PhaseHandle",
    "PhaseListener",
    "PhaseRecord",
    "Reading",
    "TimelinePoint",
    "batch_size",
    "coalesce",
]
