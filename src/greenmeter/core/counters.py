"""The boundary read path: every sensor's cumulative energy at one instant.

Two steps, kept apart on purpose:

* :meth:`Counters.read` is the *log* side: it takes an instant and returns what the
  sensors say at it (joules since the meter started, per component, and which values
  were not fresh). Boundaries and the sampler both call it; it holds no lock of the
  meter's (sensors are thread-safe).
* :class:`Totals` is the *resolution* side: it turns a boundary's reading into the
  run's cumulative energy per component, never decreasing (a stale or racing value
  below an earlier one is ignored). Phase accounting takes differences of these.

Counters that update slowly and cost milliseconds to read (NVML) are *deferred*: their
sensor has a ``tracker`` (:class:`greenmeter.sensors.nvml_tracker.GpuTracker`) that reads
them on threads of its own. A boundary only marks its instant there
(:meth:`Counters.read` with ``boundary=True``); the energy at that instant is resolved
later (:meth:`Counters.deferred_figures`), once the next counter update has been seen.
:class:`Totals` holds the other components only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from greenmeter.core.records import Reading
from greenmeter.sensors.base import ComponentInfo, ComponentStatus, Sensor, SensorWarning
from greenmeter.sensors.bounded import BoundedSensor
from greenmeter.sensors.placement import Figure

__all__ = ["Counters", "Totals"]

_NONE: frozenset[str] = frozenset()


class Counters:
    """The sensors a meter reads, behind one read path.

    Args:
        sensors: The sensors; those that ``may_block`` are wrapped in a
            :class:`~greenmeter.sensors.bounded.BoundedSensor`.
        read_timeout_s: The bound for blocking sensors, seconds.
        on_error: Called with ``(code, message)`` when a sensor's ``poll`` fails.

    Raises:
        ValueError: two sensors report the same component id.
    """

    def __init__(
        self,
        sensors: Sequence[Sensor],
        read_timeout_s: float,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        self.sensors: list[Sensor] = [
            BoundedSensor(s, read_timeout_s) if s.may_block else s for s in sensors
        ]
        self.components: list[ComponentInfo] = [c for s in self.sensors for c in s.components()]
        ids = [c.id for c in self.components]
        if len(set(ids)) != len(ids):
            raise ValueError(f"two sensors report the same component id: {sorted(ids)}")
        self.ids: tuple[str, ...] = tuple(ids)
        self._plan: list[tuple[Sensor, tuple[str, ...], bool]] = [
            (s, tuple(c.id for c in s.components()), isinstance(s, BoundedSensor))
            for s in self.sensors
        ]
        #: Trackers of deferred components, and the ids each covers.
        self.trackers: list[Any] = []
        deferred: list[str] = []
        skip: set[int] = set()  # plan entries a boundary does not read at all
        for i, s in enumerate(self.sensors):
            inner = getattr(s, "inner", s)
            tracker = getattr(inner, "tracker", None)
            if tracker is None:
                continue
            inner.wait_exact = False  # boundaries are resolved here, later
            self.trackers.append(tracker)
            deferred.extend(tracker.ids)
            if set(self._plan[i][1]) <= set(tracker.ids):
                skip.add(i)
        #: What a boundary reads: the plan less the sensors a tracker covers.
        self._boundary_plan = [e for i, e in enumerate(self._plan) if i not in skip]
        #: A boundary reads no sensor: it only marks its instant on the trackers.
        self.marks_only = not self._boundary_plan
        self.deferred_ids: frozenset[str] = frozenset(deferred)
        self.immediate_ids: tuple[str, ...] = tuple(c for c in ids if c not in self.deferred_ids)
        self._baseline: dict[str, float] = {}
        self._on_error = on_error

    def open(self, now: float) -> None:
        """Take the baseline: later readings count from the values at ``now``."""
        for tracker in self.trackers:
            tracker.set_origin(now)
        raw, _stale = self._raw(now, boundary=True)
        self._baseline = raw
        for cid in self.deferred_ids:
            self._baseline[cid] = 0.0  # trackers count from their origin

    def read(self, now: float, *, boundary: bool = False, mark: bool = True) -> Reading:
        """Every component's energy since :meth:`open`, as of ``now`` (joules).

        A component whose sensor failed or timed out is listed in ``stale``, with its
        last known value when it has one (else it is missing from ``energy_j``).

        With ``boundary``, deferred components are left out (they are resolved later
        from their tracker, :meth:`deferred_figures`) and, with ``mark``, their trackers
        note the instant; nothing waits on their driver.
        """
        if boundary and mark:
            self.mark(now)
        raw, stale = self._raw(now, boundary=boundary)
        base = self._baseline
        try:
            energy = {cid: value - base[cid] for cid, value in raw.items()}
        except KeyError:  # could not be read at the start: counts from its first value
            energy = {cid: value - base.setdefault(cid, value) for cid, value in raw.items()}
        return Reading(now, energy, stale)

    def mark(self, now: float) -> None:
        """A boundary at ``now``: every tracker notes the instant (no driver call)."""
        for tracker in self.trackers:
            tracker.mark(now)

    def deferred_figures(self, now: float) -> dict[str, Figure]:
        """Each deferred component's energy since :meth:`open` at ``now``, with how it
        was obtained (exact once a counter update after ``now`` was seen)."""
        out: dict[str, Figure] = {}
        for tracker in self.trackers:
            for cid in tracker.ids:
                out[cid] = tracker.figure(cid, now)
        return out

    def deferred_ready(self, now: float) -> bool:
        """Figures of every deferred component at ``now`` are exact."""
        return all(tracker.ready(now) for tracker in self.trackers)

    def wait_deferred(self, now: float, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` until :meth:`deferred_ready` at ``now``."""
        deadline = time.monotonic() + timeout_s
        ok = True
        for tracker in self.trackers:
            ok = tracker.wait_ready(now, max(0.0, deadline - time.monotonic())) and ok
        return ok

    def trim_deferred(self, before: float) -> None:
        """Trackers may forget their record before ``before``."""
        for tracker in self.trackers:
            tracker.trim(before)

    def _raw(self, now: float, boundary: bool = False) -> tuple[dict[str, float], frozenset[str]]:
        raw: dict[str, float] = {}
        stale: set[str] | None = None
        deferred = self.deferred_ids if boundary else ()
        for sensor, own, bounded in self._boundary_plan if boundary else self._plan:
            try:
                if bounded:
                    values, fresh = sensor.read_fresh(now)  # type: ignore[attr-defined]
                else:
                    values, fresh = sensor.read(now), True
            except Exception as exc:  # a sensor bug must not reach the user's code
                for comp in sensor.components():
                    sensor.degrade(
                        comp.id, f"reading {sensor.name} failed: {exc!r}", "sensor.read_error", now
                    )
                values, fresh = {}, False
            if deferred:
                own = tuple(c for c in own if c not in deferred)
                values = {c: v for c, v in values.items() if c not in deferred}
            raw.update(values)
            if not fresh or len(values) < len(own):
                stale = stale if stale is not None else set()
                stale.update(own if not fresh else (c for c in own if c not in values))
        return raw, frozenset(stale) if stale else _NONE

    def poll(self, index: int, now: float) -> None:
        """Periodic work of sensor ``index`` (wrap guard, sampling); never raises."""
        sensor = self.sensors[index]
        try:
            sensor.poll(now)
        except Exception as exc:
            if self._on_error is not None:
                self._on_error("sensor.poll_error", f"polling {sensor.name!r} failed: {exc!r}")

    def status(self) -> dict[str, ComponentStatus]:
        """Health per component id (missing = healthy)."""
        out: dict[str, ComponentStatus] = {}
        for sensor in self.sensors:
            out.update(sensor.status())
        return out

    def drain_warnings(self) -> list[SensorWarning]:
        """Warnings the sensors queued since the last call."""
        out: list[SensorWarning] = []
        for sensor in self.sensors:
            try:
                out.extend(sensor.drain_warnings())
            except Exception:  # pragma: no cover - defensive
                continue
        return out

    def close(self) -> list[str]:
        """Close every sensor; returns one message per sensor that failed to close."""
        problems: list[str] = []
        for sensor in self.sensors:
            try:
                sensor.close()
            except Exception as exc:  # a close problem must not lose the numbers
                problems.append(f"closing sensor {sensor.name!r} failed: {exc}")
        return problems


class Totals:
    """The run's cumulative energy per component, resolved from readings; never decreasing.

    Not thread-safe: the meter calls it under its lock.
    """

    def __init__(self, ids: Sequence[str]) -> None:
        self._last: dict[str, float] = dict.fromkeys(ids, 0.0)

    def resolve(self, reading: Reading) -> dict[str, float]:
        """Fold ``reading`` in and return the totals (a new dict, joules since start).

        A value below the current total (a stale or racing read) is ignored.
        """
        last = self._last
        for cid, value in reading.energy_j.items():
            if cid in last and value >= last[cid]:
                last[cid] = value
        return dict(last)

    def current(self) -> dict[str, float]:
        """The totals as of the latest resolved reading (a new dict)."""
        return dict(self._last)
