"""The bounded power timeline and the power between consecutive readings.

Both are built from :class:`~greenmeter.core.records.Reading` objects only: a reading
carries its own instant, so a power is always an energy difference divided by the span
it was measured over.
"""

from __future__ import annotations

from greenmeter.core.records import Reading, TimelinePoint

__all__ = ["PowerWindow", "Timeline"]


class Timeline:
    """Cumulative-energy points with fixed memory: halves its resolution when full.

    Args:
        capacity: Most points kept (at least 4).
        period_s: Initial spacing of points, seconds (doubles at every halving).
    """

    def __init__(self, capacity: int, period_s: float) -> None:
        if capacity < 4:
            raise ValueError("timeline_points must be at least 4")
        self.capacity = capacity
        self.period_s = period_s
        self.points: list[TimelinePoint] = []
        self._next_t = 0.0

    def due(self, now: float) -> bool:
        """True when a point at ``now`` is wanted."""
        return now >= self._next_t

    def add(self, point: TimelinePoint) -> None:
        """Append a point (instants must increase)."""
        self.points.append(point)
        if len(self.points) >= self.capacity:
            last = self.points[-1]
            self.points = [*self.points[:-1:2], last]
            self.period_s *= 2
        self._next_t = point.t_mono + self.period_s


class PowerWindow:
    """Mean whole-system power between consecutive readings of the sampler.

    Only components read afresh at both ends count, so a sensor that stalled and then
    catches up never shows as a spike.
    """

    def __init__(self) -> None:
        self._prev: Reading | None = None

    def reset(self, reading: Reading) -> None:
        """Start the next window at ``reading``."""
        self._prev = reading

    def power_w(self, reading: Reading) -> float | None:
        """Mean power (W) from the previous reading to ``reading``; None for the first one.

        ``reading`` becomes the start of the next window.
        """
        prev, self._prev = self._prev, reading
        if prev is None or reading.t_mono <= prev.t_mono:
            return None
        skip = prev.stale | reading.stale
        before = prev.energy_j
        joules = 0.0
        for cid, value in reading.energy_j.items():
            if cid in skip or cid not in before:
                continue
            joules += max(0.0, value - before[cid])
        return joules / (reading.t_mono - prev.t_mono)
