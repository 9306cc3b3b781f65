"""GPU energy counters read off the training thread, at a rate set by what is needed.

A boundary only records its instant (:meth:`GpuTracker.mark`, a list append and one
lock release); the energy at that instant is resolved later from each board's
:class:`~greenmeter.sensors.placement.Track` (counter updates and instant-power
samples), see :mod:`greenmeter.sensors.placement`.

Threads and wake-ups (each costs 30-90 microseconds of CPU on a virtual machine):

* one *sampler* thread takes the instant power of every board in one wake-up (a cheap
  call, :mod:`greenmeter.sensors.nvml_power`): right after each boundary, every
  ``ACTIVE_POWER_PERIOD_S`` while boundaries come, every ``IDLE_POWER_PERIOD_S``
  otherwise (the stretch before a boundary that ends a long quiet phase is sampled too),
  and while no board's power moves that idle period doubles at each wake-up up to
  ``STEADY_POWER_PERIOD_S``: steady power needs few samples, and the first one that
  moved brings the period back (a step just before a boundary that no sample saw is
  held in the figure's error bound);
* one *reader* thread per board reads its energy counter (a slow call: 2-6 ms on an
  H200), so a slow board never delays another. While boundaries are pending (a
  boundary in the last ``ACTIVE_HOLD_S``, or someone waiting for exact figures) a reader
  follows the counter's updates: it reads just after each expected update (and, one
  update in four, also just before it, to keep the update grid located; every update
  while the grid is known only within more than ``_LOCATED_HW_S``). Otherwise it
  reads about once every ``IDLE_READ_PERIOD_S`` (a pair of reads around one update
  every other time, so the grid stays located): enough for run totals and to follow
  wraps. The first boundary after a quiet stretch wakes the readers, which read at once
  when the next update is far enough off, so the value before the boundary is caught.

A read's value is taken as of the middle of the call, within half of what the call
took beyond the fastest call seen: the driver takes the value at a fixed point of its
own work, and a thread held up before or after that work (a busy machine, the
interpreter's lock) moves the middle by at most that much.

Faults (:mod:`greenmeter.sensors.nvml_errors`): a read failing with a transient error
(timeout, GPU in use, unknown) is retried after 10, 50 and 250 ms on the reader's
thread; when it still fails the board is *down* from its latest counter update on (its
figures are held at that update, so what it drew after it is not measured). A board
down for a transient error is probed every ``REPROBE_PERIOD_S``; when it answers again
its counter resumes from the held figure, on a fresh record: the energy drawn while it
was down is left out, never estimated. A lost board (``NVML_ERROR_GPU_IS_LOST``) or any
other error stays down.

Size: about 570 lines: the per-board counter readers and the shared instant-power
sampler share one schedule (when a boundary is pending, when to read before an update),
so they are kept together; the arithmetic on what they read is in ``placement``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from greenmeter.sensors import nvml_errors
from greenmeter.sensors.nvml_errors import call_with_retry, is_transient
from greenmeter.sensors.nvml_power import InstantPower
from greenmeter.sensors.placement import Figure, Track

__all__ = ["BoardSpec", "GpuTracker"]

#: Pre-reads (just before an expected update) once every this many updates.
_PRE_READ_EVERY = 4
#: The grid counts as located once update instants are known within this (s, half-width);
#: until then every update gets a pre-read.
_LOCATED_HW_S = 0.001
#: Read period of a counter that changes continuously (s).
CONTINUOUS_PERIOD_S = 0.025
#: A counter whose measured step is below this is continuous (s).
CONTINUOUS_BELOW_S = 0.005
#: Boundaries keep the readers following every counter update for this long (s).
ACTIVE_HOLD_S = 1.0
#: Counter read period of a board while no boundary is pending (s): each read costs
#: 150-250 microseconds of CPU on a virtual machine (wake-up, driver call, record).
IDLE_READ_PERIOD_S = 4.0
#: Instant-power period while boundaries come (s).
ACTIVE_POWER_PERIOD_S = 0.05
#: Instant-power period while no boundary is pending (s): the stretch before any
#: boundary, however long the quiet before it, is sampled; half as often, since each
#: wake-up is most of the tracker's background CPU.
IDLE_POWER_PERIOD_S = 0.1
#: While no boundary is pending and no board's power moves, the idle period doubles at
#: each wake-up up to this (s); the first sample that moved brings it back to
#: ``IDLE_POWER_PERIOD_S``.
STEADY_POWER_PERIOD_S = 0.4
#: A board's power "moved" when a sample differs from its previous one by more than this
#: share of it, or by more than ``_STEADY_W`` watts, whichever is more.
_STEADY_SHARE = 0.05
_STEADY_W = 1.0
#: Uncertainty of the instants taken around a counter read (s): the interpreter's own
#: work between the clock reading and the driver call, on either side.
_READ_STAMP_S = 0.00005
#: An instant-power call longer than this (s) was held up (its instant is uncertain): it is
#: made again at once, and the second sample is kept whatever it took, since a phase
#: whose only sample is dropped would be modelled from its neighbours' power.
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


#: ``on_fail(component_id, exc, what, at_s, transient)``: a board's reads failed; its
#: figures are held from ``at_s`` (its latest counter update seen) on.
FailCallback = Callable[[str, BaseException, str, float, bool], None]
#: ``on_resume(component_id, at_s, gap_j)``: a board answered again at ``at_s``; its
#: counter moved ``gap_j`` joules while it was down (left out).
ResumeCallback = Callable[[str, float, float], None]


class _Reader:
    """The counter-reading thread of one board."""

    def __init__(
        self,
        nv: Any,
        spec: BoardSpec,
        stop: threading.Event,
        on_fail: FailCallback,
        marks: list[float],
        lock: threading.Lock,
        active: Callable[[], bool],
    ) -> None:
        self.nv = nv
        self.spec = spec
        step = spec.step_s
        self.continuous = step is not None and step < CONTINUOUS_BELOW_S
        self._marks, self._lock = marks, lock
        self.track = self._new_track()
        #: (record, from instant s, offset J): figures at or after the instant come from
        #: that record plus the offset (a record per stretch the board answered).
        self._spans: list[tuple[Track, float, float]] = [(self.track, -math.inf, 0.0)]
        self.stop = stop
        self.on_fail = on_fail
        self.on_resume: ResumeCallback | None = None
        self.active = active
        #: Not answering now (down); ``gone``: for good (lost, or a lasting error).
        self.dead = False
        self.gone = False
        self._last_j = 0.0
        self.latency_s = 0.0
        #: The fastest counter read seen (s).
        self.min_latency_s = math.inf
        self.calls = 0
        self._last_mj = spec.base_mj
        self._offset_j = 0.0
        self._base_mj = spec.base_mj
        self._seen = threading.Condition()
        #: Set to make the reader recompute its next read now (a boundary after a quiet
        #: stretch, someone waiting, or stop).
        self.kick = threading.Event()
        self.power = InstantPower(nv, spec.handle) if spec.has_instant else None
        #: The latest instant power taken (W; the sampler's own, to see it move).
        self.last_power_w: float | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"greenmeter-nvml-{spec.component_id[-8:]}", daemon=True
        )

    def _new_track(self) -> Track:
        return Track(
            self.spec.step_s,
            continuous=self.continuous,
            has_power=self.spec.has_instant,
            marks=self._marks,
            lock=self._lock,
        )

    def figure(self, t: float) -> Figure:
        """Energy at ``t`` (J, from the first read), held over the stretches it was down."""
        spans = self._spans
        track, _from_s, offset = spans[0]
        for span in spans[1:]:
            if span[1] > t:
                break
            track, _from_s, offset = span
        f = track.energy_at(t)
        return Figure(f.energy_j + offset, f.method, f.bound_j, f.exact) if offset else f

    def ready(self, t: float) -> bool:
        """Figures at ``t`` are final (or the board is down: none will come)."""
        return self.dead or t < self._spans[-1][1] or self.track.ready(t)

    def energy_j(self, mj: int) -> float:
        if mj < self._last_mj:  # driver reload: keep what was counted
            self._offset_j += (self._last_mj - self._base_mj) / 1000.0
            self._base_mj = mj
        self._last_mj = mj
        return self._offset_j + (mj - self._base_mj) / 1000.0

    def read_once(self) -> bool:
        """One counter read (transient errors retried); False when the board is down."""
        nv, h = self.nv, self.spec.handle
        t_first = t_a = time.monotonic()

        def call() -> Any:
            nonlocal t_a
            t_a = time.monotonic()
            return nv.nvmlDeviceGetTotalEnergyConsumption(h)

        try:  # a board already down is probed once
            mj = int(call_with_retry(call, nv, self.stop, () if self.dead else None))
        except Exception as exc:
            if not self.dead:
                # down from the latest update seen, not from the failed call: its figures
                # are held at that update, so what it drew after it is not measured
                held = self.track.held_from_s()
                self._go_down(exc, held if math.isfinite(held) else t_first)
            return False
        t_b = time.monotonic()
        if self.dead:
            self._resume(mj, 0.5 * (t_a + t_b))
            return True
        self.calls += 1
        lat = t_b - t_a
        held_up = self.calls > 3 and lat > 1.5 * self.latency_s + 0.0005
        if not held_up:
            self.latency_s = lat if self.calls == 1 else 0.9 * self.latency_s + 0.1 * lat
        self.min_latency_s = min(self.min_latency_s, lat)
        mid = 0.5 * (t_a + t_b)
        self._last_j = value = self.energy_j(mj)
        # the value is taken at a fixed point of the driver's own work, which lasts at
        # least the fastest call seen: the rest of this call's time (held up before or
        # after the driver's work) may lie on either side of that point
        slack = 0.5 * (lat - self.min_latency_s) + _READ_STAMP_S
        self.track.add_read(mid, value, mid - slack, mid + slack)
        with self._seen:
            self._seen.notify_all()
        return True

    def _go_down(self, exc: BaseException, at_s: float) -> None:
        transient = is_transient(exc, self.nv)
        self.dead = True
        self.gone = not transient
        self.track.stopped = True
        self.on_fail(self.spec.component_id, exc, "reading the energy counter", at_s, transient)
        with self._seen:
            self._seen.notify_all()

    def _resume(self, mj: int, at_s: float) -> None:
        """The board answers again: a fresh record from ``at_s``, counting on from the
        figure held while it was down (the energy drawn meanwhile is left out)."""
        held = self.figure(at_s).energy_j
        value = self.energy_j(mj)
        gap_j = max(0.0, value - self._last_j)
        self._last_j = value
        track = self._new_track()
        track.add_read(at_s, value)
        self._spans = [*self._spans, (track, at_s, held - value)]
        self.track = track
        self.dead = False
        if self.on_resume is not None:
            self.on_resume(self.spec.component_id, at_s, gap_j)
        with self._seen:
            self._seen.notify_all()

    def wait_read_after(self, t: float, timeout_s: float) -> None:
        """Wait until the track is ready at ``t`` (or the board died, or timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._seen:
            while not self.ready(t) and not self.stop.is_set():
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
            # quiet: a read every IDLE_READ_PERIOD_S, around one update (a pair every other time)
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
            # a pre-read every update while the grid is loosely located: each pair of
            # reads halves the interval the update instants are known within
            locating = hw > _LOCATED_HW_S
            state["pre"] = 1.0 if locating or state["n"] % _PRE_READ_EVERY == 0 else 0.0
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
            if self.dead:  # probe a board that went down for a transient error
                if self.gone or self.stop.wait(nvml_errors.REPROBE_PERIOD_S):
                    return
                if self.read_once():
                    state = {}
                continue
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
                continue
            if state.pop("post", 0.0) and self.track.changes == changes:
                state["catch"] = 1.0  # the update came later than expected: catch its value


class GpuTracker:
    """Tracks the energy of several boards; boundaries only mark instants.

    Args:
        nvml: The initialised ``pynvml`` module.
        boards: The boards with an energy counter.
        on_fail: Called as ``on_fail(component_id, exc, what, at_s, transient)`` when a
            board's reads fail (after the retries): its figures are held from ``at_s``
            (monotonic s: its latest counter update seen) on; ``transient``: it will be
            probed again.
        on_resume: Called as ``on_resume(component_id, at_s, gap_j)`` when a board that
            was down answers again at ``at_s``; ``gap_j``: joules its counter moved
            meanwhile, left out of every figure.
    """

    def __init__(
        self,
        nvml: Any,
        boards: Sequence[BoardSpec],
        on_fail: FailCallback,
        on_resume: ResumeCallback | None = None,
    ) -> None:
        self._nv = nvml
        self._stop = threading.Event()
        self._marks: list[float] = []
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
        for r in self._readers.values():
            r.on_resume = on_resume
        self._origin: dict[str, Figure] = {}
        self._origin_s: float | None = None
        # released by a boundary to wake the sampler (the cheapest wake-up in CPython)
        self._marked = threading.Lock()
        self._marked.acquire()
        self._sampler = threading.Thread(target=self._sample_power, name="greenmeter-nvml-power")
        self._sampler.daemon = True
        self._started = False
        #: Wake-ups of the instant-power sampler so far (each samples every live board).
        self.power_rounds = 0

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
            if not r.gone:
                r.thread.start()
        self._sampler.start()

    def set_origin(self, t: float) -> None:
        """Energies count from instant ``t`` (the meter's start)."""
        self._origin_s = t
        self._origin = {}
        self.mark(t)

    def mark(self, t: float) -> None:
        """A phase boundary at ``t``: record it; the sampler takes instant power right
        after it (O(1) on the caller's thread: an append and a lock release).

        Calls are serialised by the caller (the meter marks under its own lock, in time
        order); the threads here only read the list, and trim its old end."""
        marks = self._marks
        if not marks or t > marks[-1]:
            marks.append(t)
        marked = self._marked
        if marked.locked():  # else a wake-up is pending already
            try:
                marked.release()
            except RuntimeError:  # released meanwhile by close()
                pass

    def _wake_readers(self) -> None:
        for r in self._readers.values():
            r.kick.set()

    def _sample_all(self) -> bool:
        """Instant power of every live board; True when one moved since its last sample
        (or has none)."""
        self.power_rounds += 1
        moved = False
        for r in self._readers.values():
            power = r.power
            if power is None or r.dead:
                continue
            for again in (False, True):
                t_a = time.monotonic()
                try:
                    p = power.read_w()
                except Exception:
                    break
                t_b = time.monotonic()
                if again or t_b - t_a <= _SLOW_POWER_CALL_S:
                    r.track.add_power(t_a, p, t_b)
                    last = r.last_power_w
                    r.last_power_w = p
                    if last is None or abs(p - last) > max(_STEADY_W, _STEADY_SHARE * last):
                        moved = True
                    break
        return moved

    def _sample_power(self) -> None:
        """The sampler thread: instant power of every board after each boundary and
        periodically; wakes the readers on the first boundary after a quiet stretch."""
        marked, stop = self._marked, self._stop
        due = time.monotonic()
        idle_period = IDLE_POWER_PERIOD_S
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
            moved = self._sample_all()
            active = self._is_active()
            if active or moved:
                idle_period = IDLE_POWER_PERIOD_S
            else:
                idle_period = min(2.0 * idle_period, STEADY_POWER_PERIOD_S)
            period = ACTIVE_POWER_PERIOD_S if active else idle_period
            due = time.monotonic() + period

    def ready(self, t: float) -> bool:
        """Every live board has seen a counter update after ``t``."""
        return all(r.ready(t) for r in self._readers.values())

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
        reader = self._readers[component_id]
        at = reader.figure(t)
        origin = self._origin.get(component_id)
        if origin is None and self._origin_s is not None:
            origin = reader.figure(self._origin_s)
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
            for track, _from_s, _offset in r._spans:
                track.trim(before)

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
