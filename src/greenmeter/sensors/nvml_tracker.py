"""GPU energy counters read off the training thread, at a rate set by what is needed.

A boundary only records its instant (:meth:`GpuTracker.mark`, a list append and one
lock release); the energy at that instant is resolved later from each board's
:class:`~greenmeter.sensors.placement.Track` (counter updates and instant-power
samples), see :mod:`greenmeter.sensors.placement`.

Threads and wake-ups (each costs about 30 microseconds of CPU on a virtual machine):

* one *sampler* thread takes the instant power of every board in one wake-up (a cheap
  call): right after each boundary, every ``ACTIVE_POWER_PERIOD_S`` while boundaries
  come, every ``IDLE_POWER_PERIOD_S`` otherwise;
* one *reader* thread per board reads its energy counter (a slow call: 2-6 ms on an
  H200), so a slow board never delays another. While boundaries are pending (a
  boundary in the last ``ACTIVE_HOLD_S``, or someone waiting for exact figures) a reader
  follows the counter's updates: it reads just after each expected update (and, one
  update in four, also just before it, to keep the update grid located). Otherwise it
  reads about once every ``IDLE_READ_PERIOD_S`` (a pair of reads around one update
  every other time, so the grid stays located): enough for run totals and to follow
  wraps. The first boundary after a quiet stretch wakes the readers, which read at once
  when the next update is far enough off, so the value before the boundary is caught.

A read's value is taken as of the middle of the call; a call that took much longer
than usual (the thread was held up) only proves what its ends prove.
"""

from __future__ import annotations

import math
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
#: Boundaries keep the readers following every counter update for this long (s).
ACTIVE_HOLD_S = 1.0
#: Counter read period of a board while no boundary is pending (s).
IDLE_READ_PERIOD_S = 1.0
#: Instant-power period while boundaries come (s).
ACTIVE_POWER_PERIOD_S = 0.05
#: Instant-power period while no boundary is pending (s).
IDLE_POWER_PERIOD_S = 1.0
#: An instant-power call longer than this (s) was held up: its sample is dropped.
_SLOW_POWER_CALL_S = 0.001


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
    """The counter-reading thread of one board."""

    def __init__(
        self,
        nv: Any,
        spec: BoardSpec,
        stop: threading.Event,
        on_fail: Callable[[str, BaseException, str], None],
        marks: list[float],
        lock: threading.Lock,
        active: Callable[[], bool],
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
        self.active = active
        self.dead = False
        self.latency_s = 0.0
        self.calls = 0
        self._last_mj = spec.base_mj
        self._offset_j = 0.0
        self._base_mj = spec.base_mj
        self._seen = threading.Condition()
        #: Set to make the reader recompute its next read now (a boundary after a quiet
        #: stretch, someone waiting, or stop).
        self.kick = threading.Event()
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
        """One counter read; False when the board failed."""
        nv, h = self.nv, self.spec.handle
        t_a = time.monotonic()
        try:
            mj = int(nv.nvmlDeviceGetTotalEnergyConsumption(h))
        except Exception as exc:
            self.dead = True
            self.track.stopped = True
            self.on_fail(self.spec.component_id, exc, "reading the energy counter")
            with self._seen:
                self._seen.notify_all()
            return False
        t_b = time.monotonic()
        self.calls += 1
        lat = t_b - t_a
        held_up = self.calls > 3 and lat > 1.5 * self.latency_s + 0.0005
        if not held_up:
            self.latency_s = lat if self.calls == 1 else 0.9 * self.latency_s + 0.1 * lat
        mid = 0.5 * (t_a + t_b)
        if held_up:  # the value's instant is only known to lie within the call
            self.track.add_read(mid, self.energy_j(mj), t_a, t_b)
        else:
            self.track.add_read(mid, self.energy_j(mj))
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

    def _guard(self, hw: float) -> float:
        return max(0.0005, 0.5 * hw + 0.0003)

    def _next_target(self, state: dict[str, float], now: float) -> float:
        """The instant the next read's value should be taken at."""
        track = self.track
        last = track.latest_read_s()
        step = track.step_s
        if self.continuous:
            return last + max(CONTINUOUS_PERIOD_S, step)
        if state.get("catch"):
            state["catch"] = 0.0
            return state["u"] + 0.5 * step
        nxt = track.next_update(max(last, now) + 1e-4 if state.get("now") else last + 1e-4)
        if nxt is None:  # the grid is not located yet
            moving = track.changes >= 2 and now - track.latest_change_s() < 2 * IDLE_READ_PERIOD_S
            if moving:  # four reads a step locate it within a few updates
                return last + 0.25 * step
            # a counter that does not move (an idle board that draws nothing)
            return last + (step if self.active() else 0.5 * IDLE_READ_PERIOD_S)
        u, hw = nxt
        guard = self._guard(hw)
        if state.pop("now", 0.0):  # woken by a boundary after a quiet stretch
            if u - now > 0.5 * self.latency_s + guard + 0.001:
                state["post"] = 0.0
                return now + 0.5 * self.latency_s  # the value before the next update
        if not self.active():
            # quiet: about one read a second, around one update (a pair every other time)
            if state.get("u", -math.inf) > last:  # after a pre-read: its post-read
                state["post"] = 1.0
                return state["u"] + guard
            far = track.next_update(last + IDLE_READ_PERIOD_S - 0.5 * step)
            if far is not None:
                u, hw = far
                guard = self._guard(hw)
            if u != state.get("u"):
                state["u"] = u
                state["n"] = state.get("n", 0.0) + 1
                state["pre"] = 1.0 if state["n"] % 2 == 0 else 0.0
        elif u != state.get("u"):
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
        kick = self.kick
        while not self.stop.is_set():
            now = time.monotonic()
            target = self._next_target(state, now)
            delay = target - 0.5 * self.latency_s - time.monotonic()
            if delay > 0 and kick.wait(delay):
                kick.clear()
                if self.stop.is_set():
                    return
                state["now"] = 1.0
                continue
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
        self._marks_lock = threading.Lock()
        #: Readers follow every update until this instant (monotonic s).
        self._active_until = 0.0
        self._waiters = 0
        lock = threading.Lock()
        self._readers = {
            b.component_id: _Reader(
                nvml, b, self._stop, on_fail, self._marks, lock, self._is_active
            )
            for b in boards
        }
        self._origin: dict[str, Figure] = {}
        self._origin_s: float | None = None
        # released by a boundary to wake the sampler (the cheapest wake-up in CPython)
        self._marked = threading.Lock()
        self._marked.acquire()
        self._sampler = threading.Thread(target=self._sample_power, name="greenmeter-nvml-power")
        self._sampler.daemon = True
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

    def _is_active(self) -> bool:
        return self._waiters > 0 or time.monotonic() < self._active_until

    def start(self) -> None:
        """Take a first read of every board and start the threads (idempotent)."""
        if self._started:
            return
        self._started = True
        for r in self._readers.values():
            r.read_once()
        self._sample_all()
        for r in self._readers.values():
            if not r.dead:
                r.thread.start()
        self._sampler.start()

    def set_origin(self, t: float) -> None:
        """Energies count from instant ``t`` (the meter's start)."""
        self._origin_s = t
        self._origin = {}
        self.mark(t)

    def mark(self, t: float) -> None:
        """A phase boundary at ``t``: record it; the sampler takes instant power right
        after it (O(1) on the caller's thread: an append and a lock release)."""
        marks = self._marks
        with self._marks_lock:
            if not marks or t > marks[-1]:
                marks.append(t)
        try:
            self._marked.release()
        except RuntimeError:  # already released: a wake-up is pending
            pass

    def _wake_readers(self) -> None:
        for r in self._readers.values():
            r.kick.set()

    def _sample_all(self) -> None:
        nv = self._nv
        for r in self._readers.values():
            if r.dead or not r.spec.has_instant:
                continue
            t_a = time.monotonic()
            try:
                p = _power_w(nv, r.spec.handle)
            except Exception:
                continue
            t_b = time.monotonic()
            if p is not None and t_b - t_a <= _SLOW_POWER_CALL_S:
                r.track.add_power(t_a, p, t_b)

    def _sample_power(self) -> None:
        """The sampler thread: instant power of every board after each boundary and
        periodically; wakes the readers on the first boundary after a quiet stretch."""
        marked, stop = self._marked, self._stop
        due = time.monotonic()
        while not stop.is_set():
            got = marked.acquire(timeout=max(0.0, due - time.monotonic()))
            if stop.is_set():
                return
            now = time.monotonic()
            if got:
                quiet = now >= self._active_until and self._waiters == 0
                self._active_until = now + ACTIVE_HOLD_S
                if quiet:
                    self._wake_readers()
            self._sample_all()
            period = ACTIVE_POWER_PERIOD_S if self._is_active() else IDLE_POWER_PERIOD_S
            due = time.monotonic() + period

    def ready(self, t: float) -> bool:
        """Every live board has seen a counter update after ``t``."""
        return all(r.dead or r.track.ready(t) for r in self._readers.values())

    def wait_ready(self, t: float, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until figures at ``t`` are exact; True when so."""
        if self.ready(t):
            return True
        deadline = time.monotonic() + timeout_s
        self._waiters += 1
        try:
            self._wake_readers()
            for r in self._readers.values():
                r.wait_read_after(t, max(0.0, deadline - time.monotonic()))
        finally:
            self._waiters -= 1
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
        """Stop the threads (waits at most ``timeout_s`` for each)."""
        self._stop.set()
        self._wake_readers()
        try:
            self._marked.release()
        except RuntimeError:
            pass
        deadline = time.monotonic() + timeout_s
        for r in self._readers.values():
            if r.thread.is_alive():
                r.thread.join(max(0.0, deadline - time.monotonic()))
        if self._sampler.is_alive():
            self._sampler.join(max(0.0, deadline - time.monotonic()))
