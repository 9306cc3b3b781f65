"""The meter: phases, boundary reads and the background sampler. It only measures.

:class:`Meter` reads every sensor's cumulative energy at phase boundaries and keeps, per
phase path, the energy and time spent inside it (:mod:`greenmeter.core.phases`). It
never integrates power itself: sensors that need periodic work (sampling, wrap guards)
get it from one background thread (:mod:`greenmeter.core.sampler`), which also keeps a
bounded power timeline and the peak power of each phase from consecutive readings.

Phases nest per thread (a ``with meter.phase()`` inside another becomes its child).
Several threads may open phases at once; instances of the same path that overlap are
counted over the union of their time, so concurrency never counts a joule twice within
one phase. Different phases that overlap in time each see the whole machine's energy
during their span: attribution is by time, which is what a counter can tell.

The meter knows nothing of files, signals, environment variables or carbon: the run
owner (:mod:`greenmeter.run`) and :class:`greenmeter.EnergyMeter` add those.

Size: about 700 lines, most of them the documented public API of one class (start and
stop, the four ways to open a phase, hooks, listeners, observers, results). The work is
in the sibling modules: :mod:`~greenmeter.core.counters` (reads),
:mod:`~greenmeter.core.phases` (accounting), :mod:`~greenmeter.core.sampler`,
:mod:`~greenmeter.core.timeline`, :mod:`~greenmeter.core.observers`,
:mod:`~greenmeter.core.notes` and :mod:`~greenmeter.core.handles`.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from greenmeter.core.counters import Counters, Totals
from greenmeter.core.handles import (
    GreenMeterWarning,
    InertHandle,
    MeterError,
    PhaseHandle,
    PhaseListener,
    measured,
)
from greenmeter.core.limits import MAX_NAME_CHARS, shorten_name
from greenmeter.core.notes import Notes, clean_code, clean_message
from greenmeter.core.observers import Observers
from greenmeter.core.phases import Boundary, PhaseBook, PhaseState
from greenmeter.core.records import PHASE_KINDS, MeterSnapshot, Reading, TimelinePoint
from greenmeter.core.sampler import Sampler
from greenmeter.core.timeline import PowerWindow, Timeline
from greenmeter.sensors.base import ComponentInfo, Sensor, Unavailable

__all__ = [
    "GreenMeterWarning",
    "Meter",
    "MeterError",
    "PhaseHandle",
    "PhaseListener",
    "shorten_name",
]

F = TypeVar("F", bound=Callable[..., Any])

_LIVE: weakref.WeakSet[Meter] = weakref.WeakSet()

#: The phase kinds as a set: one hash lookup per boundary instead of a scan.
_KIND_SET: frozenset[str] = frozenset(PHASE_KINDS)


Discover = Callable[[], tuple[Sequence[Sensor], Sequence[Unavailable]]]


class Meter:
    """Measures energy per phase from the host's counters.

    Args:
        sensors: Sensors to read; None calls ``discover`` at :meth:`start`.
        discover: Returns ``(sensors, unavailable)`` for this host (required when
            ``sensors`` is None).
        host: Hostname recorded in snapshots.
        rank / local_rank / world_size: Distributed position, recorded in snapshots.
        sample_interval_s: Background sampler period in seconds.
        timeline_points: Most points kept in the power timeline (memory is fixed).
        read_timeout_s: Longest wait for a sensor that may block (NVML); past it the
            last values are used and the component is marked degraded.
    """

    def __init__(
        self,
        sensors: Sequence[Sensor] | None = None,
        *,
        discover: Discover | None = None,
        host: str = "localhost",
        rank: int = 0,
        local_rank: int = 0,
        world_size: int = 1,
        sample_interval_s: float = 0.1,
        timeline_points: int = 2048,
        read_timeout_s: float = 2.0,
    ) -> None:
        if not (sample_interval_s > 0):
            raise ValueError(
                f"sample_interval_s must be a positive number of seconds, got {sample_interval_s!r}"
            )
        if not (read_timeout_s > 0):
            raise ValueError(
                f"read_timeout_s must be a positive number of seconds, got {read_timeout_s!r}"
            )
        if sensors is None and discover is None:
            raise ValueError("give sensors or a discover function")
        self.host = host
        self.rank = int(rank)
        self.local_rank = int(local_rank)
        self.world_size = int(world_size)
        self.sample_interval_s = float(sample_interval_s)
        self.read_timeout_s = float(read_timeout_s)
        self._given_sensors = list(sensors) if sensors is not None else None
        self._discover = discover
        self._counters: Counters | None = None
        self._totals = Totals(())
        self._unavailable: list[Unavailable] = []
        self._notes = Notes()
        #: Set once a measured function ran unmeasured (one warning per meter).
        self.warned_unmeasured = False

        self._lock = threading.RLock()
        self._tls = threading.local()
        self._book = PhaseBook(self._note, self.sample_interval_s)
        self._sync_hooks: list[Callable[[], None]] = []
        self._listeners: list[PhaseListener] = []
        self._observers = Observers(self._note)
        self._timeline = Timeline(timeline_points, self.sample_interval_s)
        self._window = PowerWindow()
        self._sampler: Sampler | None = None

        self._after_boundary: Callable[[], None] | None = None
        self._started = False
        self._stopped = False
        self._inert = False  # a forked child: phases are no-ops
        self.started_mono = 0.0
        self.started_utc = datetime.now(timezone.utc)
        self.ended_mono: float | None = None
        self._final: MeterSnapshot | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> Meter:
        """Open the sensors, take the first reading and start the background thread.

        Returns the meter. Starting a running meter does nothing.

        Raises:
            MeterError: the meter was stopped, or two sensors report one component id.
        """
        if self._started:
            if self._stopped:
                raise MeterError(
                    "this EnergyMeter was stopped; create a new one for a new measurement"
                )
            return self
        if self._given_sensors is not None:
            sensors: Sequence[Sensor] = self._given_sensors
        else:
            assert self._discover is not None
            sensors, unavailable = self._discover()
            self._unavailable = list(unavailable)
        try:
            counters = Counters(sensors, self.read_timeout_s, on_error=self._note)
        except ValueError as exc:
            raise MeterError(str(exc)) from None
        self._counters = counters
        self._totals = Totals(counters.immediate_ids)
        if counters.trackers:
            self._book.figures = counters.deferred_figures
            self._book.ready = counters.deferred_ready
        self.started_utc = datetime.now(timezone.utc)
        self.started_mono = time.monotonic()
        counters.open(self.started_mono)
        self._timeline.add(TimelinePoint(self.started_mono, self._totals.current()))
        self._window.reset(Reading(self.started_mono, self._totals.current()))
        # Power for peaks and the timeline is taken over windows of several counter steps:
        # a 100 ms NVML counter read every 100 ms would alias to 0 or 2x the true power.
        coarsest = max((c.resolution_s for c in counters.components), default=0.0)
        period = min(10.0, max(self.sample_interval_s, 5.0 * coarsest))
        self._timeline.period_s = max(self._timeline.period_s, period)
        self._book.min_power_window_s = period
        self._started = True
        _LIVE.add(self)
        self._sampler = Sampler(
            counters,
            sample_interval_s=self.sample_interval_s,
            period_s=period,
            on_reading=self._on_reading,
            on_error=self._note,
        )
        self._sampler.start(self.started_mono)
        return self

    def stop(self) -> MeterSnapshot:
        """Close open phases, stop the thread, take the final reading.

        Idempotent: later calls return the same snapshot.

        Raises:
            MeterError: never started, or a forked child's copy.
        """
        if self._final is not None:
            return self._final
        if not self._started:
            raise MeterError("stop() called on an EnergyMeter that was never started")
        if self._inert:
            raise MeterError("this EnergyMeter belongs to the parent process of a fork")
        self._run_sync_hooks()
        with self._lock:
            now = time.monotonic()
            energy, fresh = self._boundary(now)
            still_open = self._book.close_all(now, energy, fresh)
            for state in still_open:
                self._note(
                    "meter.phase_open_at_stop",
                    f"phase '{'/'.join(state.record.path)}' was still open when the meter "
                    "stopped; it was closed at the stop instant",
                )
            self._stopped = True
            self.ended_mono = now
        for state in still_open:
            self._tell("phase_exited", state.record.path, now)
        if self._sampler is not None:
            self._sampler.stop()
        assert self._counters is not None
        if self._counters.trackers:
            # GPU figures at the stop instant are final once the next counter update is seen
            if not self._counters.wait_deferred(now, self._settle_timeout_s()):
                self._note(
                    "meter.gpu_unsettled",
                    "no GPU counter update was seen after the meter stopped; the last GPU "
                    "figures are provisional (counter plus instant power, not rescaled)",
                )
        with self._lock:
            self._book.resolve(force=True)
            self._timeline.add(TimelinePoint(now, self._energy_at(now)))
            self._final = self._snapshot_locked(now, running=False)
        assert self._counters is not None
        problems = self._counters.close()
        for problem in problems:
            self._note("sensor.close_error", problem)
        if problems:
            self._final.warnings = self._notes.items()
        self._observers.close()
        return self._final

    def __enter__(self) -> Meter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if not self._inert:
            self.stop()

    # -- phases -----------------------------------------------------------------------

    def enter(
        self,
        name: str,
        kind: str | None = None,
        *,
        parent: PhaseHandle | tuple[str, ...] | None = None,
    ) -> PhaseHandle:
        """Open an instance of a phase and return its handle.

        Args:
            name: The phase's name (no ``/``); longer than 512 characters is shortened
                (:func:`shorten_name`) with a warning.
            kind: One of :data:`greenmeter.core.records.PHASE_KINDS`; default: the name
                when it is a known kind, else ``"custom"``.
            parent: The enclosing phase, as a handle or as a path of names (``()`` for
                the top level); default the innermost phase open in this thread (none: a
                top-level phase).

        Raises:
            ValueError: the name or kind is not valid.
            MeterError: the meter is not running.
        """
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"phase name must be a non-empty string without '/', got {name!r}")
        if len(name) > MAX_NAME_CHARS:
            name = self._shortened(name)
        if kind is None:
            kind = name if name in _KIND_SET else "custom"
        elif kind not in _KIND_SET:
            raise ValueError(f"unknown phase kind {kind!r}; expected one of {list(PHASE_KINDS)}")
        if not self._started or (self._stopped and not self._inert):
            self._check_running()  # raises the right error
        stack = getattr(self._tls, "stack", None)  # inline: this path runs per boundary
        if stack is None:
            stack = self._stack()
        if isinstance(parent, tuple):
            if not all(isinstance(p, str) and p and "/" not in p for p in parent):
                raise ValueError(f"parent path must be a tuple of phase names, got {parent!r}")
            parent_path: tuple[str, ...] = parent
        else:
            if parent is None and stack:
                parent = stack[-1]  # exit() takes closed handles off the stack
            parent_path = parent.path if parent is not None else ()
        if self._inert:
            return InertHandle(self, (*parent_path, name))
        if self._sync_hooks:
            self._run_sync_hooks()
        book = self._book
        path = (*parent_path, name)
        with self._lock:
            now = time.monotonic()  # inside the lock: boundaries are ordered in time
            if path not in book.states:
                path = book.path_for(parent_path, name)  # a new path: bounds apply
            state = book.open(path, kind, now, self._boundary)
        handle = PhaseHandle(self, state)
        stack.append(handle)
        if self._listeners or self._observers.active:
            self._tell("phase_entered", path, state.record.kind, now)
        if self._after_boundary is not None:
            self._run_after_boundary()
        return handle

    def exit(self, handle: PhaseHandle) -> None:
        """Close a phase instance opened by :meth:`enter` (idempotent; any order)."""
        if handle._closed:
            return
        handle._closed = True
        stack = getattr(self._tls, "stack", None)
        if stack is None:
            stack = self._stack()
        if stack and stack[-1] is handle:
            stack.pop()
        elif handle in stack:
            stack.remove(handle)
        if self._inert or isinstance(handle, InertHandle):
            return
        if self._sync_hooks:
            self._run_sync_hooks()
        with self._lock:
            now = time.monotonic()
            closed = not self._stopped and self._book.close(handle._state, now, self._boundary)
        if closed and (self._listeners or self._observers.active):
            self._tell("phase_exited", handle.path, now)
        if self._after_boundary is not None:
            self._run_after_boundary()

    def phase(
        self,
        name: str,
        kind: str | None = None,
        *,
        samples: int | None = None,
        tokens: int | None = None,
        steps: int | None = None,
    ) -> PhaseHandle:
        """Measure the enclosed block as phase ``name`` (a child of the enclosing phase).

        Use it in a ``with`` statement: the phase opens when ``phase()`` is called and
        closes when the block ends, however it ends. ``samples``, ``tokens`` and
        ``steps`` attribute work done inside the block; more can be added through the
        handle's :meth:`PhaseHandle.add`.
        """
        handle = self.enter(name, kind)
        if samples is not None or tokens is not None or steps is not None:
            try:
                handle.add(samples=samples, tokens=tokens, steps=steps)
            except BaseException:
                self.exit(handle)
                raise
        return handle

    def measure(self, name: str | None = None, kind: str | None = None) -> Callable[[F], F]:
        """Decorator: every call of the function is one entry of phase ``name``.

        ``name`` defaults to the function's name. Each call adds one to the phase's
        ``count`` and records its latency (seconds, wall clock). Called while the meter
        is not running (before start, after stop), the function runs unmeasured and one
        :class:`GreenMeterWarning` says so.
        """

        return lambda fn: measured(self, fn, name or fn.__name__, kind)

    def add_sync_hook(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` at every phase boundary before the counters are read.

        Adapters use it to wait for asynchronous accelerator work (``torch.cuda.synchronize``)
        so that work is attributed to the phase that launched it. A hook that raises is
        reported once as a warning and the boundary is read anyway.
        """
        if not callable(hook):
            raise TypeError(f"sync hook must be callable, got {hook!r}")
        with self._lock:
            if hook not in self._sync_hooks:
                self._sync_hooks.append(hook)

    def add_warning(self, code: str, message: str, component_id: str | None = None) -> None:
        """Record a structured warning in the run's report (once per ``code``).

        For adapters and tools that notice a measurement problem of their own. An empty
        code becomes ``"user.warning"``; a code over 512 characters or a message over
        4096 characters is shortened.
        """
        self._notes.once(clean_code(code), clean_message(message), component_id)

    def add_listener(self, listener: PhaseListener) -> None:
        """Send every phase entry, exit and item count to ``listener`` as well."""
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def add_observer(self, observer: Any) -> None:
        """Send phase events and periodic readings to ``observer`` on a thread of its own.

        See :mod:`greenmeter.core.observers` for the methods an observer may have. The
        training thread only appends to a bounded queue: a slow observer never slows
        it down (the oldest events are dropped instead, and counted).

        Raises:
            TypeError: ``observer`` has none of the observer methods.
        """
        self._observers.add(observer)

    def current_phase(self) -> PhaseHandle | None:
        """The innermost phase open in the calling thread, if any."""
        stack = self._stack()
        return stack[-1] if stack else None

    # -- results ----------------------------------------------------------------------

    @property
    def components(self) -> list[ComponentInfo]:
        """The measured components (known after :meth:`start`)."""
        return list(self._counters.components) if self._counters is not None else []

    @property
    def sensors(self) -> list[Sensor]:
        """The sensors read (blocking ones behind their time bound), after :meth:`start`."""
        return list(self._counters.sensors) if self._counters is not None else []

    @property
    def unavailable(self) -> list[Unavailable]:
        """Sources that were considered and not used, with reasons."""
        return list(self._unavailable)

    @property
    def total_energy_j(self) -> float:
        """Energy in joules since start, summed over components (reads the counters)."""
        if self._final is not None:
            return sum(self._final.energy_j.values())
        self._check_running()
        with self._lock:
            now = time.monotonic()
            self._boundary(now)
            return sum(self._energy_at(now).values())

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._started and not self._stopped

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` has run."""
        return self._stopped

    @property
    def inert(self) -> bool:
        """True in a forked child process (its phases are not measured)."""
        return self._inert

    def utc(self, t_mono: float) -> datetime:
        """Convert a ``time.monotonic()`` instant to an aware UTC datetime."""
        return self.started_utc + timedelta(seconds=t_mono - self.started_mono)

    def snapshot(self) -> MeterSnapshot:
        """The meter's state as plain data (``running=True`` before :meth:`stop`)."""
        if self._final is not None:
            return self._final
        self._check_running()
        with self._lock:
            return self._snapshot_locked(time.monotonic(), running=True)

    def settle(self, timeout_s: float | None = None) -> bool:
        """Wait until every figure up to now is exact, at most ``timeout_s`` seconds.

        GPU energy counters are read off the training thread and each boundary is placed
        once the counter's next update has been seen (100 ms on H100/H200). Call this
        before a :meth:`snapshot` that must hold final GPU figures (``measure_inference``
        does). Returns True when they are final; False on timeout (the snapshot then
        marks the figures ``provisional``). Without such counters it returns at once.
        """
        self._check_running()
        assert self._counters is not None
        if not self._counters.trackers:
            return True
        now = time.monotonic()
        wait = self._settle_timeout_s() if timeout_s is None else float(timeout_s)
        ok = self._counters.wait_deferred(now, wait)
        with self._lock:
            self._book.resolve()
        return ok

    def _settle_timeout_s(self) -> float:
        assert self._counters is not None
        coarsest = max(
            (
                c.resolution_s
                for c in self._counters.components
                if c.id in self._counters.deferred_ids
            ),
            default=0.1,
        )
        return min(self.read_timeout_s, 0.25 + 3.0 * coarsest)

    def _energy_at(self, now: float) -> dict[str, float]:
        """Every component's energy at ``now``: totals plus deferred figures (joules).

        The caller holds the lock.
        """
        assert self._counters is not None
        energy = self._totals.current()
        for cid, fig in self._counters.deferred_figures(now).items():
            energy[cid] = fig.energy_j
        return energy

    def owns_lock(self) -> bool:
        """True when the calling thread is inside the meter's bookkeeping right now."""
        is_owned = getattr(self._lock, "_is_owned", None)
        return bool(is_owned()) if is_owned is not None else False

    def after_boundary_in_main(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` once, in the main thread, when its current phase boundary is done.

        For work that must not interrupt the bookkeeping (the run owner uses it to end
        the process on SIGTERM); ``fn`` may raise into the main thread's code.
        """
        self._after_boundary = fn

    def _run_after_boundary(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        fn, self._after_boundary = self._after_boundary, None
        if fn is not None:
            fn()

    # -- internals --------------------------------------------------------------------

    def _stack(self) -> list[PhaseHandle]:
        stack = getattr(self._tls, "stack", None)
        if stack is None:
            stack = self._tls.stack = []
        return stack

    def _check_running(self) -> None:
        if not self._started:
            raise MeterError(
                "this EnergyMeter is not started: use `with EnergyMeter() as meter:` "
                "or call meter.start() first"
            )
        if self._stopped and not self._inert:
            raise MeterError(
                "this EnergyMeter is stopped; phases can only be measured between "
                "start() and stop()"
            )

    def _shortened(self, name: str) -> str:
        short = shorten_name(name)
        self._note(
            "meter.name_too_long",
            f"a phase name of {len(name)} characters was shortened to {MAX_NAME_CHARS} "
            f"({short[:60]!r}...)",
        )
        return short

    def _run_sync_hooks(self) -> None:
        for hook in self._sync_hooks:
            try:
                hook()
            except Exception as exc:
                self._note("meter.sync_failed", f"a phase-boundary sync hook failed: {exc!r}")

    def _boundary(self, now: float) -> Boundary:
        """The run's cumulative energy at ``now`` and whether it was read afresh.

        The caller holds the lock.
        """
        counters = self._counters
        assert counters is not None
        if counters.marks_only:  # every sensor is deferred (GPUs), or there is none
            counters.mark(now)
            return {}, True
        reading = counters.read(now, boundary=True)
        return self._totals.resolve(reading), not reading.stale

    def _on_reading(self, reading: Reading) -> None:
        """The sampler's periodic reading: timeline, peak power, observers."""
        with self._lock:
            if self._stopped:
                return
            totals = self._totals.resolve(reading)
            if self._book.figures is not None:
                need = self._book.resolve()
                keep = reading.t_mono - 2.0 if need is None else min(need, reading.t_mono - 2.0)
                assert self._counters is not None
                self._counters.trim_deferred(keep)
            power = self._window.power_w(reading)
            if power is not None:
                self._book.saw_power(power, reading.t_mono)
            if self._timeline.due(reading.t_mono):
                # each fresh value with its own instant; a stale one at its last known total
                point = dict(totals)
                for cid, value in reading.energy_j.items():
                    if cid not in reading.stale:
                        point[cid] = value
                self._timeline.add(TimelinePoint(reading.t_mono, point))
        if self._observers.active:
            self._observers.put("reading_taken", reading)

    def _add_items(
        self, state: PhaseState, samples: int | None, tokens: int | None, steps: int | None
    ) -> None:
        for label, value in (("samples", samples), ("tokens", tokens), ("steps", steps)):
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 0):
                raise ValueError(f"{label} must be a non-negative integer, got {value!r}")
        if self._inert:
            return
        with self._lock:
            self._book.add_items(state, samples, tokens, steps)
        if self._listeners or self._observers.active:
            self._tell("items_added", state.record.path, samples, tokens, steps)

    def _record_latency(self, state: PhaseState, latency_s: float) -> None:
        latency_s = float(latency_s)
        if not (latency_s >= 0 and latency_s != float("inf")):
            raise ValueError(f"latency must be a non-negative number of seconds, got {latency_s!r}")
        if self._inert or state is None:
            return
        with self._lock:
            self._book.add_latency(state, latency_s)

    def _tell(self, method: str, *args: Any) -> None:
        """Send a phase event to listeners (here, in order) and observers (queued)."""
        for listener in list(self._listeners):
            try:
                getattr(listener, method)(*args)
            except Exception as exc:
                self._note("meter.listener_failed", f"a phase listener failed: {exc!r}")
        if self._observers.active:
            self._observers.put(method, *args)

    def _note(self, code: str, message: str, component_id: str | None = None) -> None:
        """Record a meter-level warning once per code (any thread)."""
        self._notes.once(code, message, component_id)

    def _collect_warnings(self) -> None:
        if self._counters is not None:
            self._notes.extend(self._counters.drain_warnings())
        if self._observers.dropped and not self._notes.seen("meter.observer_lagging"):
            self._note(
                "meter.observer_lagging",
                f"observers fell behind; {self._observers.dropped} event(s) were dropped",
            )

    def _snapshot_locked(self, now: float, running: bool) -> MeterSnapshot:
        assert self._counters is not None
        if running:
            immediate = self._counters.read(now, boundary=True, mark=False)
            reading = self._totals.resolve(immediate)
            self._book.resolve()
        else:
            reading = self._totals.current()
        energy = dict(reading)
        if self._counters.trackers:
            end = now if running else (self.ended_mono or now)
            energy.update(
                (cid, f.energy_j) for cid, f in self._counters.deferred_figures(end).items()
            )
        self._collect_warnings()
        timeline = list(self._timeline.points)
        if running:
            timeline.append(TimelinePoint(now, dict(energy)))
        end = self.ended_mono if self.ended_mono is not None else now
        return MeterSnapshot(
            host=self.host,
            started_mono=self.started_mono,
            started_utc=self.started_utc,
            components=list(self._counters.components),
            energy_j=energy,
            phases=self._book.records(now, reading if running else None),
            timeline=timeline,
            warnings=self._notes.items(),
            status=self._counters.status(),
            unavailable=list(self._unavailable),
            ended_mono=self.ended_mono,
            ended_utc=self.utc(self.ended_mono) if self.ended_mono is not None else None,
            duration_s=end - self.started_mono,
            rank=self.rank,
            local_rank=self.local_rank,
            world_size=self.world_size,
            running=running,
        )

    def _after_fork_in_child(self) -> None:
        self._inert = True
        self._lock = threading.RLock()
        self._tls = threading.local()
        if self._sampler is not None:
            self._sampler.forget_thread()
        self._observers.forget_thread()


def _mark_children_inert() -> None:
    for meter in list(_LIVE):
        meter._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_children_inert)
