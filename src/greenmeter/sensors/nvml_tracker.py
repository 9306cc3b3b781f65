"""GPU energy counters read off the training thread, one reader per board.

A boundary only records its instant (:meth:`GpuTracker.mark`, a few microseconds); the
energy at that instant is resolved later from each board's :class:`~greenmeter.sensors.
placement.Track` (counter updates and instant-power samples), see
:mod:`greenmeter.sensors.placement`.

Readers. Each board has a thread of its own, so boards are read in parallel and a board
whose calls slow down never delays another. A reader times its counter reads to the
updates: once it has located the update grid it reads just after each expected update
(and, one update in four, also just before it, to keep the grid located), so a 100 ms
counter costs about 12 calls a second whatever the call's latency. A read's value is
taken as of the middle of the call. Each wake-up also takes one instant-power sample
(a cheap call). A continuous counter (no visible step) is read every ``period_s``.

Boundaries. :meth:`GpuTracker.mark` wakes one more thread that takes an instant-power
sample of every board right after the boundary, so the power of the new phase is known
from its first milliseconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from greenmeter.sensors.placement import Figure, Track

__all__ = ["BoardSpec", "GpuTracker"]

#: Instant-power field of NVML (mW).
_FI_POWER_INSTANT = 186
#: Pre-reads (just before an expected update) once every this many updates.
_PRE_READ_EVERY = 4
#: Read period of a counter that changes continuously (s).
CONTINUOUS_PERIOD_S = 0.025
#: A counter whose measured step is below this is continuous (s).
CONTINUOUS_BELOW_S = 0.005


@dataclass
class BoardSpec:
    """One board to track.

    Attributes:
        component_id: The component's id.
        handle: Its NVML handle.
        base_mj: The counter value the energy counts from (mJ).
        step_s: Measured update step (s), None when not seen.
        has_instant: The instant-power field answers on this board.
    """

    component_id: str
    handle: Any
    base_mj: int
    step_s: float | None
    has_instant: bool


def _power_w(nv: Any, handle: Any) -> float | None:
    v = nv.nvmlDeviceGetFieldValues(handle, [_FI_POWER_INSTANT])[0]
    if v.nvmlReturn != 0:
        return None
    return float(v.value.uiVal) / 1000.0 if int(v.valueType) == 1 else float(v.value.dVal)


class _Reader:
    """The reading thread of one board."""

    def __init__(
        self,
        nv: Any,
        spec: BoardSpec,
        stop: threading.Event,
        on_fail: Callable[[str, BaseException, str], None],
        marks: list[float],
        lock: threading.Lock,
    ) -> None:
        self.nv = nv
        self.spec = spec
        step = spec.step_s
        self.continuous = step is not None and step < CONTINUOUS_BELOW_S
        self.track = Track(
            step, continuous=self.continuous, has_power=spec.has_instant, marks=marks, lock=lock
        )
        self.stop = stop
        self.on_fail = on_fail
        self.dead = False
        self.latency_s = 0.0
        self.calls = 0
        self._last_mj = spec.base_mj
        self._offset_j = 0.0
        self._base_mj = spec.base_mj
        self._seen = threading.Condition()
        self.thread = threading.Thread(
            target=self._run, name=f"greenmeter-nvml-{spec.component_id[-8:]}", daemon=True
        )

    def energy_j(self, mj: int) -> float:
        if mj < self._last_mj:  # driver reload: keep what was counted
            self._offset_j += (self._last_mj - self._base_mj) / 1000.0
            self._base_mj = mj
        self._last_mj = mj
        return self._offset_j + (mj - self._base_mj) / 1000.0

    def read_once(self) -> bool:
        """One instant-power sample and one counter read; False when the board failed."""
        nv, h = self.nv, self.spec.handle
        if self.spec.has_instant:
            try:
                p = _power_w(nv, h)
            except Exception:
                p = None
            if p is not None:
                self.track.add_power(time.monotonic(), p)
        t_a = time.monotonic()
        try:
            mj = int(nv.nvmlDeviceGetTotalEnergyConsumption(h))
        except Exception as exc:
            self.dead = True
            self.track.stopped = True
            self.on_fail(self.spec.component_id, exc, "reading the energy counter")
            return False
        t_b = time.monotonic()
        self.calls += 1
        lat = t_b - t_a
        self.latency_s = lat if self.calls == 1 else 0.9 * self.latency_s + 0.1 * lat
        self.track.add_read(0.5 * (t_a + t_b), self.energy_j(mj))
        with self._seen:
            self._seen.notify_all()
        return True

    def wait_read_after(self, t: float, timeout_s: float) -> None:
        """Wait until the track is ready at ``t`` (or the board died, or timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._seen:
            while not self.dead and not self.track.ready(t) and not self.stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._seen.wait(min(remaining, 0.05))

    def _next_target(self, state: dict[str, float]) -> float:
        """The instant the next read's value should be taken at."""
        track = self.track
        last = track.latest_read_s()
        step = track.step_s
        if self.continuous:
            return last + max(CONTINUOUS_PERIOD_S, step)
        if state.get("catch"):
            state["catch"] = 0.0
            return state["u"] + 0.5 * step
        nxt = track.next_update(last + 1e-4)
        if nxt is None:
            return last + 0.25 * step
        u, hw = nxt
        guard = max(0.0005, 0.5 * hw + 0.0003)
        if u != state.get("u"):
            state["u"] = u
            state["n"] = state.get("n", 0.0) + 1
            state["pre"] = 1.0 if state["n"] % _PRE_READ_EVERY == 0 else 0.0
        if state.get("pre"):
            state["pre"] = 0.0
            state["post"] = 0.0
            return u - guard
        state["post"] = 1.0
        return u + guard

    def _run(self) -> None:
        state: dict[str, float] = {}
        while not self.stop.is_set():
            target = self._next_target(state)
            start = target - 0.5 * self.latency_s
            delay = start - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                return
            changes = self.track.changes
            if not self.read_once():
                return
            if state.pop("post", 0.0) and self.track.changes == changes:
                state["catch"] = 1.0  # the update came later than expected: catch its value


class GpuTracker:
    """Tracks the energy of several boards; boundaries only mark instants.

    Args:
        nvml: The initialised ``pynvml`` module.
        boards: The boards with an energy counter.
        on_fail: Called as ``on_fail(component_id, exc, what)`` when a board's reads
            fail; the board's track stops there (its figures stay at the last update).
    """

    def __init__(
        self,
        nvml: Any,
        boards: Sequence[BoardSpec],
        on_fail: Callable[[str, BaseException, str], None],
    ) -> None:
        self._nv = nvml
        self._stop = threading.Event()
        self._marks: list[float] = []
        lock = threading.Lock()
        self._readers = {
            b.component_id: _Reader(nvml, b, self._stop, on_fail, self._marks, lock) for b in boards
        }
        self._origin: dict[str, Figure] = {}
        self._origin_s: float | None = None
        # released by a boundary to wake the marker (the cheapest wake-up in CPython)
        self._marked = threading.Lock()
        self._marked.acquire()
        self._marker = threading.Thread(target=self._sample_marks, name="greenmeter-nvml-marks")
        self._marker.daemon = True
        self._started = False

    @property
    def ids(self) -> list[str]:
        """Component ids tracked."""
        return list(self._readers)

    def track(self, component_id: str) -> Track:
        """The record of one board (for tests and benchmarks)."""
        return self._readers[component_id].track

    def reader_latency_s(self, component_id: str) -> float:
        """Mean duration of one counter read of a board (s)."""
        return self._readers[component_id].latency_s

    def start(self) -> None:
        """Take a first read of every board and start the readers (idempotent)."""
        if self._started:
            return
        self._started = True
        for r in self._readers.values():
            r.read_once()
        for r in self._readers.values():
            if not r.dead:
                r.thread.start()
        self._marker.start()

    def set_origin(self, t: float) -> None:
        """Energies count from instant ``t`` (the meter's start)."""
        self._origin_s = t
        self._origin = {}
        self.mark(t)

    def mark(self, t: float) -> None:
        """A phase boundary at ``t``: record it and sample instant power right after."""
        marks = self._marks
        if not marks or t > marks[-1]:
            marks.append(t)
        self._wake()

    def _wake(self) -> None:
        try:
            self._marked.release()
        except RuntimeError:  # already released: a wake-up is pending
            pass

    def _sample_marks(self) -> None:
        readers = [r for r in self._readers.values() if r.spec.has_instant]
        while not self._stop.is_set():
            self._marked.acquire()
            if self._stop.is_set():
                return
            for r in readers:
                if r.dead:
                    continue
                try:
                    p = _power_w(self._nv, r.spec.handle)
                except Exception:
                    continue
                if p is not None:
                    r.track.add_power(time.monotonic(), p)

    def ready(self, t: float) -> bool:
        """Every live board has seen a counter update after ``t``."""
        return all(r.dead or r.track.ready(t) for r in self._readers.values())

    def wait_ready(self, t: float, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until figures at ``t`` are exact; True when so."""
        deadline = time.monotonic() + timeout_s
        for r in self._readers.values():
            r.wait_read_after(t, max(0.0, deadline - time.monotonic()))
        return self.ready(t)

    def figure(self, component_id: str, t: float) -> Figure:
        """Energy of a board from the origin to ``t`` (joules), with method and bound."""
        track = self._readers[component_id].track
        at = track.energy_at(t)
        origin = self._origin.get(component_id)
        if origin is None and self._origin_s is not None:
            origin = track.energy_at(self._origin_s)
            if origin.exact:
                self._origin[component_id] = origin
        if origin is None:
            return at
        return Figure(
            max(0.0, at.energy_j - origin.energy_j),
            at.method,
            at.bound_j,
            at.exact and origin.exact,
        )

    def trim(self, before: float) -> None:
        """Forget the record before instant ``before`` (no figure there is needed)."""
        if self._origin_s is not None and len(self._origin) < len(self._readers):
            before = min(before, self._origin_s)
        for r in self._readers.values():
            r.track.trim(before)

    def calls(self) -> int:
        """Counter reads made so far, all boards."""
        return sum(r.calls for r in self._readers.values())

    def close(self, timeout_s: float = 1.0) -> None:
        """Stop the readers (waits at most ``timeout_s`` for each)."""
        self._stop.set()
        self._wake()
        deadline = time.monotonic() + timeout_s
        for r in self._readers.values():
            if r.thread.is_alive():
                r.thread.join(max(0.0, deadline - time.monotonic()))
        if self._marker.is_alive():
            self._marker.join(max(0.0, deadline - time.monotonic()))
