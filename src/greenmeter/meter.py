"""EnergyMeter: phases, boundary reads and the one background thread.

The meter reads every sensor's cumulative energy at phase boundaries and keeps, per
phase path, the energy and time spent inside it. It never integrates power itself:
sensors that need periodic work (sampling, wrap guards) get it from a single background
thread, which also keeps a bounded power timeline for plots and peak power.

Phases nest per thread (a ``with meter.phase()`` inside another becomes its child).
Several threads may open phases at once; instances of the same path that overlap are
counted over the union of their time, so concurrency never counts a joule twice within
one phase. Different phases that overlap in time each see the whole machine's energy
during their span: attribution is by time, which is what a counter can tell.

Example:
    >>> from greenmeter import EnergyMeter
    >>> with EnergyMeter() as meter:                      # doctest: +SKIP
    ...     with meter.phase("train", kind="train") as ph:
    ...         for batch in loader:
    ...             step(batch)
    ...             ph.add(samples=len(batch))
    >>> meter.snapshot().phases[0].energy_j               # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
import random
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from greenmeter.records import PHASE_KINDS, MeterSnapshot, PhaseRecord, TimelinePoint
from greenmeter.sensors.base import (
    ComponentInfo,
    ComponentStatus,
    Sensor,
    SensorWarning,
    Unavailable,
)
from greenmeter.sensors.bounded import BoundedSensor

if TYPE_CHECKING:
    from greenmeter.report import Report

__all__ = ["EnergyMeter", "MeterError", "PhaseHandle", "PhaseListener"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: Most per-call latencies kept per phase (reservoir sampling beyond that).
LATENCY_RESERVOIR = 10_000
#: Most warnings kept per run (the rest are counted, so memory stays bounded).
MAX_WARNINGS = 1000
#: Most (start, end) intervals kept per phase; beyond that neighbours are coalesced.
MAX_INTERVALS = 512

_LIVE_METERS: weakref.WeakSet[EnergyMeter] = weakref.WeakSet()


class MeterError(RuntimeError):
    """A usage error of the meter (not a measurement problem), with what to do."""


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        return None


class PhaseListener(Protocol):
    """Receives phase events (used to forward a child process's phases to a parent).

    Methods are called outside the meter's lock, after the boundary was recorded; an
    exception is reported once as a warning and never reaches the user's code.
    """

    def phase_entered(self, path: tuple[str, ...], kind: str, t_mono: float) -> None: ...

    def phase_exited(self, path: tuple[str, ...], t_mono: float) -> None: ...

    def items_added(
        self, path: tuple[str, ...], samples: int | None, tokens: int | None, steps: int | None
    ) -> None: ...


class PhaseHandle:
    """One open instance of a phase; returned by :meth:`EnergyMeter.enter`.

    Use it to attribute work to the phase (:meth:`add`), record per-call latencies
    (:meth:`record_latency`) and to close it (:meth:`exit`).
    """

    __slots__ = ("_closed", "_meter", "_state", "path")

    def __init__(self, meter: EnergyMeter, state: _PhaseState) -> None:
        self._meter = meter
        self._state = state
        self.path: tuple[str, ...] = state.record.path
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`exit` has run."""
        return self._closed

    def add(
        self, *, samples: int | None = None, tokens: int | None = None, steps: int | None = None
    ) -> None:
        """Attribute work items to this phase (counts add up over repetitions)."""
        self._meter._add_items(self._state, samples, tokens, steps)

    def record_latency(self, latency_s: float) -> None:
        """Record one call's latency in seconds (kept in a bounded reservoir)."""
        self._meter._record_latency(self._state, latency_s)

    def set_attr(self, key: str, value: object) -> None:
        """Attach a string fact to the phase (e.g. the batch size or repeat count)."""
        with self._meter._lock:
            self._state.record.attrs[str(key)] = str(value)

    def exit(self) -> None:
        """Close this instance of the phase. Closing twice is a no-op."""
        self._meter.exit(self)

    def __enter__(self) -> PhaseHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.exit()

    def __repr__(self) -> str:
        return f"PhaseHandle({'/'.join(self.path)!r}, closed={self._closed})"


class _PhaseState:
    """Mutable accounting for one phase path (guarded by the meter's lock)."""

    __slots__ = ("active", "open_energy", "open_since", "record", "seen_latencies")

    def __init__(self, record: PhaseRecord) -> None:
        self.record = record
        self.active = 0
        self.open_since = 0.0
        self.open_energy: dict[str, float] = {}
        self.seen_latencies = 0


class _Timeline:
    """Cumulative-energy points with fixed memory: halves its resolution when full."""

    def __init__(self, capacity: int, period_s: float) -> None:
        if capacity < 4:
            raise ValueError("timeline_points must be at least 4")
        self.capacity = capacity
        self.period_s = period_s
        self.points: list[TimelinePoint] = []
        self._next_t = 0.0

    def due(self, now: float) -> bool:
        return now >= self._next_t

    def add(self, point: TimelinePoint) -> None:
        self.points.append(point)
        if len(self.points) >= self.capacity:
            last = self.points[-1]
            self.points = [*self.points[:-1:2], last]
            self.period_s *= 2
        self._next_t = point.t_mono + self.period_s


class EnergyMeter:
    """Measures energy per phase from the host's counters.

    Args:
        sensors: Sensors to read; None discovers the best source per component
            (:func:`greenmeter.sensors.discover.discover`).
        powercap_root: Root of the powercap sysfs tree (else ``GREENMETER_POWERCAP_ROOT``,
            else ``/sys/class/powercap``).
        gpus: GPUs to measure: None for those this process can see (honouring
            ``CUDA_VISIBLE_DEVICES``), else indices or UUIDs.
        cpu: Discover CPU and memory sources.
        gpu: Discover GPU sources.
        sample_interval_s: Background sampler period in seconds (default 0.1 s, 10 Hz).
        timeline_points: Most points kept in the power timeline (memory is fixed).
        rank: Global rank (default ``$RANK`` or 0).
        local_rank: Rank on this host (default ``$LOCAL_RANK`` or 0).
        world_size: Number of ranks (default ``$WORLD_SIZE`` or 1).
        count_host: Measure this host's CPU and memory on this rank; default
            ``local_rank == 0`` so a host is counted once however many ranks it runs.
        carbon: A :class:`greenmeter.carbon.CarbonConfig` used when building reports.
        report_path: Where :meth:`stop` writes the final report, and where periodic
            checkpoints go.
        checkpoint_interval_s: Write an in-progress report (status ``running``) this
            often; None disables checkpoints.
        run_name: A name for the run, carried into the report.
        read_timeout_s: Longest wait for a sensor that may block (NVML); past it the
            last values are used and a warning is recorded.
        handle_signals: With ``report_path``, also write the final report on SIGTERM
            (chaining any handler already installed) and at interpreter exit.
    """

    def __init__(
        self,
        sensors: Sequence[Sensor] | None = None,
        *,
        powercap_root: str | os.PathLike[str] | None = None,
        gpus: Sequence[int | str] | None = None,
        cpu: bool = True,
        gpu: bool = True,
        sample_interval_s: float = 0.1,
        timeline_points: int = 2048,
        rank: int | None = None,
        local_rank: int | None = None,
        world_size: int | None = None,
        count_host: bool | None = None,
        carbon: Any = None,
        report_path: str | os.PathLike[str] | None = None,
        checkpoint_interval_s: float | None = None,
        run_name: str | None = None,
        read_timeout_s: float = 2.0,
        handle_signals: bool = True,
    ) -> None:
        if not (sample_interval_s > 0):
            raise ValueError(
                f"sample_interval_s must be a positive number of seconds, got {sample_interval_s!r}"
            )
        if checkpoint_interval_s is not None and not (checkpoint_interval_s > 0):
            raise ValueError(
                "checkpoint_interval_s must be a positive number of seconds or None, "
                f"got {checkpoint_interval_s!r}"
            )
        self.rank = rank if rank is not None else (_env_int("RANK") or 0)
        self.local_rank = local_rank if local_rank is not None else (_env_int("LOCAL_RANK") or 0)
        self.world_size = world_size if world_size is not None else (_env_int("WORLD_SIZE") or 1)
        self.count_host = (self.local_rank == 0) if count_host is None else bool(count_host)
        self.host = socket.gethostname()
        self.sample_interval_s = float(sample_interval_s)
        self.carbon = carbon
        self.report_path = Path(report_path) if report_path is not None else None
        self.checkpoint_interval_s = checkpoint_interval_s
        self.run_name = run_name
        self.run_id = uuid.uuid4().hex
        self._carbon_accountant: Any = None
        self.read_timeout_s = float(read_timeout_s)
        self.handle_signals = bool(handle_signals)
        self.report_kwargs: dict[str, Any] = {}

        self._discover_args = {
            "powercap_root": powercap_root,
            "gpus": gpus,
            "cpu": cpu,
            "gpu": gpu,
        }
        self._given_sensors = list(sensors) if sensors is not None else None
        self._sensors: list[Sensor] = []
        self._components: list[ComponentInfo] = []
        self._unavailable: list[Unavailable] = []
        self._warnings: list[SensorWarning] = []
        self._warned_codes: set[str] = set()
        self._dropped_warnings = 0

        self._lock = threading.RLock()
        self._tls = threading.local()
        self._phases: dict[tuple[str, ...], _PhaseState] = {}
        self._sync_hooks: list[Callable[[], None]] = []
        self._listeners: list[PhaseListener] = []
        self._last: dict[str, float] = {}
        self._timeline = _Timeline(timeline_points, self.sample_interval_s)
        self._rng = random.Random(0x6E)

        self._started = False
        self._stopped = False
        self._inert = False  # a forked child: phases are no-ops
        self._pid = os.getpid()
        self.started_mono = 0.0
        self.started_utc = datetime.now(timezone.utc)
        self.ended_mono: float | None = None
        self._final: MeterSnapshot | None = None

        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._prev_power_point: tuple[float, float] | None = None
        self._power_period_s = self.sample_interval_s
        self._next_power = 0.0
        self._next_poll: dict[int, float] = {}
        self._next_checkpoint: float | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> EnergyMeter:
        """Open the sensors, take the first reading and start the background thread.

        Returns the meter, so ``meter = EnergyMeter().start()`` works.
        """
        if self._started:
            if self._stopped:
                raise MeterError(
                    "this EnergyMeter was stopped; create a new one for a new measurement"
                )
            return self
        from greenmeter.carbon.check import warn_configuration

        warn_configuration(self.carbon)  # mistakes are loud at the start; never raises
        if self._given_sensors is not None:
            self._sensors = list(self._given_sensors)
        else:
            from greenmeter.sensors.discover import discover

            found = discover(
                powercap_root=self._discover_args["powercap_root"],
                gpus=self._discover_args["gpus"],
                cpu=bool(self._discover_args["cpu"]),
                gpu=bool(self._discover_args["gpu"]),
                sample_interval_s=self.sample_interval_s,
                count_host=self.count_host,
                host=self.host,
            )
            self._sensors = list(found.sensors)
            self._unavailable = list(found.unavailable)
        self._sensors = [
            BoundedSensor(s, self.read_timeout_s) if s.may_block else s for s in self._sensors
        ]
        self._components = [c for s in self._sensors for c in s.components()]
        ids = [c.id for c in self._components]
        if len(set(ids)) != len(ids):
            raise MeterError(f"two sensors report the same component id: {sorted(ids)}")

        self.started_utc = datetime.now(timezone.utc)
        self.started_mono = time.monotonic()
        self._last = {cid: 0.0 for cid in ids}
        self._baseline: dict[str, float] = {}
        for sensor in self._sensors:
            self._baseline.update(self._safe_read(sensor, self.started_mono))
        self._last = {cid: 0.0 for cid in ids}
        self._started = True
        self._timeline.add(TimelinePoint(self.started_mono, dict(self._last)))
        self._prev_power_point = (self.started_mono, 0.0)
        # Power for peaks and the timeline is taken over windows of several counter steps:
        # a 100 ms NVML counter read every 100 ms would alias to 0 or 2x the true power.
        coarsest = max((c.resolution_s for c in self._components), default=0.0)
        self._power_period_s = min(10.0, max(self.sample_interval_s, 5.0 * coarsest))
        self._timeline.period_s = max(self._timeline.period_s, self._power_period_s)
        now = self.started_mono
        self._next_power = now + self._power_period_s
        for i, sensor in enumerate(self._sensors):
            if sensor.poll_interval_s:
                self._next_poll[i] = now + sensor.poll_interval_s
        if self.report_path is not None and self.checkpoint_interval_s:
            self._next_checkpoint = now + self.checkpoint_interval_s
        _LIVE_METERS.add(self)
        if os.environ.get("GREENMETER_CHANNEL"):
            self._attach_parent_channel()
        if self.report_path is not None and self.handle_signals:
            from greenmeter import lifecycle

            lifecycle.watch(self)
        self._thread = threading.Thread(
            target=self._run_background, name="greenmeter-sampler", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> MeterSnapshot:
        """Close open phases, stop the thread, take the final reading.

        Idempotent: later calls return the same snapshot. When ``report_path`` was
        given, the final report is written there (atomically).
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
            reading = self._read_all(now)
            still_open = [s for s in self._phases.values() if s.active > 0]
            for state in still_open:
                self._close_state(state, now, reading)
                state.active = 0
                self._note(
                    "meter.phase_open_at_stop",
                    f"phase '{'/'.join(state.record.path)}' was still open when the meter "
                    "stopped; it was closed at the stop instant",
                )
            self._stopped = True
            self.ended_mono = now
        if self._listeners:
            for state in still_open:
                self._notify("phase_exited", state.record.path, now)
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        with self._lock:
            self._timeline.add(TimelinePoint(now, dict(reading)))
            self._final = self._snapshot_locked(now, running=False)
        for sensor in self._sensors:
            try:
                sensor.close()
            except Exception as exc:  # a close problem must not lose the numbers
                self._note("sensor.close_error", f"closing sensor {sensor.name!r} failed: {exc}")
        if self.report_path is not None:
            self._write_report(self.report_path, status=self.report_kwargs.get("status"))
            if self.handle_signals:
                from greenmeter import lifecycle

                lifecycle.unwatch(self)
        return self._final

    def __enter__(self) -> EnergyMeter:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        if exc_type is not None and self.report_path is not None:
            status = "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed"
            self.report_kwargs.setdefault("status", status)
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
            name: The phase's name (no ``/``).
            kind: One of :data:`greenmeter.records.PHASE_KINDS`; default: the name when
                it is a known kind, else ``"custom"``.
            parent: The enclosing phase, as a handle or as a path of names (``()`` for
                the top level); default the innermost phase open in this thread (none: a
                top-level phase).
        """
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"phase name must be a non-empty string without '/', got {name!r}")
        if kind is None:
            kind = name if name in PHASE_KINDS else "custom"
        elif kind not in PHASE_KINDS:
            raise ValueError(f"unknown phase kind {kind!r}; expected one of {list(PHASE_KINDS)}")
        if not self._started or (self._stopped and not self._inert):
            self._check_running()  # raises the right error
        stack = self._stack()
        if isinstance(parent, tuple):
            if not all(isinstance(p, str) and p and "/" not in p for p in parent):
                raise ValueError(f"parent path must be a tuple of phase names, got {parent!r}")
            parent_path: tuple[str, ...] = parent
        else:
            if parent is None and stack:
                parent = stack[-1]  # exit() takes closed handles off the stack
            parent_path = parent.path if parent is not None else ()
        path = (*parent_path, name)
        if self._inert:
            return _InertHandle(self, path)
        if self._sync_hooks:
            self._run_sync_hooks()
        with self._lock:
            now = time.monotonic()  # inside the lock: boundaries are ordered in time
            state = self._phases.get(path)
            if state is None:
                state = _PhaseState(PhaseRecord(path=path, kind=kind))
                self._phases[path] = state
            record = state.record
            record.count += 1
            if record.first_start_mono is None:
                record.first_start_mono = now
            if state.active == 0:
                state.open_since = now
                state.open_energy = self._read_all(now)
                record.open = True
            state.active += 1
        handle = PhaseHandle(self, state)
        stack.append(handle)
        if self._listeners:
            self._notify("phase_entered", path, kind, now)
        return handle

    def exit(self, handle: PhaseHandle) -> None:
        """Close a phase instance opened by :meth:`enter` (idempotent; any order)."""
        if handle._closed:
            return
        handle._closed = True
        stack = self._stack()
        if handle in stack:
            stack.remove(handle)
        if self._inert or isinstance(handle, _InertHandle):
            return
        state = handle._state
        if self._sync_hooks:
            self._run_sync_hooks()
        with self._lock:
            now = time.monotonic()
            if self._stopped or state.active == 0:
                return  # closed by stop() already
            state.active -= 1
            if state.active == 0:
                self._close_state(state, now, self._read_all(now))
        if self._listeners:
            self._notify("phase_exited", handle.path, now)

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

        ``name`` defaults to the function's name.
        """

        def decorate(fn: F) -> F:
            phase_name = name or fn.__name__

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with self.phase(phase_name, kind):
                    return fn(*args, **kwargs)

            return wrapper  # type: ignore[return-value]

        return decorate

    def track(
        self, iterable: Iterable[T], phase: str, kind: str | None = None, **options: Any
    ) -> Iterator[T]:
        """Iterate ``iterable`` inside phase ``phase``, counting steps and samples.

        ``for batch in meter.track(loader, "train"):`` is the plain-loop way in; see
        :func:`greenmeter.loops.track` for the options (sample counting, windows every
        N steps, epochs).
        """
        from greenmeter.loops import track

        return track(self, iterable, phase, kind, **options)

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

        For adapters and tools that notice a measurement problem of their own.
        """
        with self._lock:
            self._note(str(code), str(message), component_id)

    def add_listener(self, listener: PhaseListener) -> None:
        """Send every phase entry, exit and item count to ``listener`` as well."""
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def current_phase(self) -> PhaseHandle | None:
        """The innermost phase open in the calling thread, if any."""
        stack = self._stack()
        return stack[-1] if stack else None

    # -- results ----------------------------------------------------------------------

    @property
    def components(self) -> list[ComponentInfo]:
        """The measured components (known after :meth:`start`)."""
        return list(self._components)

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
            return sum(self._read_all(time.monotonic()).values())

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._started and not self._stopped

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

    def report(self, **kwargs: Any) -> Report:
        """Build the validated :class:`greenmeter.report.Report` from :meth:`snapshot`.

        Keyword arguments go to :func:`greenmeter.report.build_report` (``model=``,
        ``status=``, ``include_command=``...); ``carbon`` and ``run_name`` default to
        the meter's.
        """
        from greenmeter.report import build_report

        merged: dict[str, Any] = {**self.report_kwargs, **kwargs}
        if "carbon" not in merged:
            merged["carbon"] = self._accountant()
        merged.setdefault("run_name", self.run_name)
        merged.setdefault("run_id", self.run_id)
        if merged.get("status") is None:
            merged.pop("status", None)
        return build_report(self.snapshot(), **merged)

    def _accountant(self) -> Any:
        """Resolve the carbon settings once per run (a live provider is asked once)."""
        if self.carbon is False:
            return False
        if self._carbon_accountant is None:
            try:
                from greenmeter.carbon import resolve

                self._carbon_accountant = resolve(self.carbon)
            except Exception:
                return self.carbon  # build_report records why carbon is missing
        return self._carbon_accountant

    def save(self, path: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Build the report and write it to ``path`` atomically; returns the path."""
        target = Path(path)
        self.report(**kwargs).save(target)
        return target

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

    def _run_sync_hooks(self) -> None:
        for hook in self._sync_hooks:
            try:
                hook()
            except Exception as exc:
                self._note("meter.sync_failed", f"a phase-boundary sync hook failed: {exc!r}")

    def _safe_read(self, sensor: Sensor, now: float) -> dict[str, float]:
        try:
            return sensor.read(now)
        except Exception as exc:  # a sensor bug must not reach the user's code
            for comp in sensor.components():
                sensor.degrade(
                    comp.id, f"reading {sensor.name} failed: {exc!r}", "sensor.read_error", now
                )
            return {}

    def _raw_read(self, now: float) -> dict[str, float]:
        """Every sensor's cumulative joules (no lock needed: sensors are thread-safe)."""
        raw: dict[str, float] = {}
        for sensor in self._sensors:
            raw.update(self._safe_read(sensor, now))
        return raw

    def _absorb(self, raw: Mapping[str, float]) -> dict[str, float]:
        """Fold raw readings into the per-component totals since start (caller holds the lock).

        Totals never decrease: a value below the last one (a degraded or racing read) is
        ignored.
        """
        last = self._last
        base = self._baseline
        for cid, value in raw.items():
            v = value - base.get(cid, 0.0)
            if v >= last.get(cid, 0.0):
                last[cid] = v
        return dict(last)

    def _read_all(self, now: float) -> dict[str, float]:
        """Cumulative joules per component since start (caller holds the lock)."""
        return self._absorb(self._raw_read(now))

    def _close_state(self, state: _PhaseState, now: float, reading: Mapping[str, float]) -> None:
        record = state.record
        opened = state.open_energy
        energy = record.energy_j
        for cid, value in reading.items():
            energy[cid] = energy.get(cid, 0.0) + max(0.0, value - opened.get(cid, 0.0))
        record.duration_s += now - state.open_since
        record.last_end_mono = now
        record.open = False
        intervals = record.intervals_mono
        intervals.append((state.open_since, now))
        if len(intervals) > MAX_INTERVALS:
            record.intervals_mono = [
                (intervals[i][0], intervals[min(i + 1, len(intervals) - 1)][1])
                for i in range(0, len(intervals), 2)
            ]

    def _add_items(
        self, state: _PhaseState, samples: int | None, tokens: int | None, steps: int | None
    ) -> None:
        for label, value in (("samples", samples), ("tokens", tokens), ("steps", steps)):
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 0):
                raise ValueError(f"{label} must be a non-negative integer, got {value!r}")
        if self._inert:
            return
        with self._lock:
            record = state.record
            if samples is not None:
                record.samples = (record.samples or 0) + int(samples)
            if tokens is not None:
                record.tokens = (record.tokens or 0) + int(tokens)
            if steps is not None:
                record.steps = (record.steps or 0) + int(steps)
        if self._listeners:
            self._notify("items_added", state.record.path, samples, tokens, steps)

    def _record_latency(self, state: _PhaseState, latency_s: float) -> None:
        latency_s = float(latency_s)
        if not (latency_s >= 0 and latency_s != float("inf")):
            raise ValueError(f"latency must be a non-negative number of seconds, got {latency_s!r}")
        if self._inert:
            return
        with self._lock:
            state.seen_latencies += 1
            lat = state.record.latencies_s
            if len(lat) < LATENCY_RESERVOIR:
                lat.append(latency_s)
            else:
                j = self._rng.randrange(state.seen_latencies)
                if j < LATENCY_RESERVOIR:
                    lat[j] = latency_s

    def _attach_parent_channel(self) -> None:
        """Under ``greenmeter run``, forward this process's phases to the parent."""
        try:
            from greenmeter.channel import attach_from_env

            attach_from_env(self)
        except Exception as exc:
            self._note(
                "meter.channel_failed",
                f"could not forward phases to the parent `greenmeter run`: {exc!r}",
            )

    def _notify(self, method: str, *args: Any) -> None:
        for listener in list(self._listeners):
            try:
                getattr(listener, method)(*args)
            except Exception as exc:
                self._note("meter.listener_failed", f"a phase listener failed: {exc!r}")

    def _note(self, code: str, message: str, component_id: str | None = None) -> None:
        """Record a meter-level warning once per code."""
        if code in self._warned_codes:
            return
        self._warned_codes.add(code)
        self._warnings.append(SensorWarning(code, message, component_id, time.monotonic()))

    def _collect_warnings(self) -> None:
        for sensor in self._sensors:
            try:
                drained = sensor.drain_warnings()
            except Exception:  # pragma: no cover - defensive
                continue
            room = MAX_WARNINGS - len(self._warnings)
            if len(drained) > room:
                self._dropped_warnings += len(drained) - max(room, 0)
                drained = drained[: max(room, 0)]
            self._warnings.extend(drained)
        if self._dropped_warnings and "meter.warnings_truncated" not in self._warned_codes:
            self._warned_codes.add("meter.warnings_truncated")
            self._warnings.append(
                SensorWarning(
                    "meter.warnings_truncated",
                    f"more than {MAX_WARNINGS} warnings were raised; later ones were counted "
                    "but not kept. The first ones usually name the cause.",
                    None,
                    time.monotonic(),
                )
            )

    def _snapshot_locked(self, now: float, running: bool) -> MeterSnapshot:
        reading = dict(self._last) if not running else self._read_all(now)
        self._collect_warnings()
        phases: list[PhaseRecord] = []
        for state in self._phases.values():
            rec = state.record
            copy = replace(
                rec,
                energy_j=dict(rec.energy_j),
                latencies_s=list(rec.latencies_s),
                intervals_mono=list(rec.intervals_mono),
                attrs=dict(rec.attrs),
            )
            if running and state.active > 0:
                for cid, value in reading.items():
                    copy.energy_j[cid] = copy.energy_j.get(cid, 0.0) + max(
                        0.0, value - state.open_energy.get(cid, 0.0)
                    )
                copy.duration_s += now - state.open_since
                copy.intervals_mono.append((state.open_since, now))
                copy.open = True
            phases.append(copy)
        status: dict[str, ComponentStatus] = {}
        for sensor in self._sensors:
            status.update(sensor.status())
        timeline = list(self._timeline.points)
        if running:
            timeline.append(TimelinePoint(now, dict(reading)))
        end = self.ended_mono if self.ended_mono is not None else now
        return MeterSnapshot(
            host=self.host,
            started_mono=self.started_mono,
            started_utc=self.started_utc,
            components=list(self._components),
            energy_j=dict(reading),
            phases=phases,
            timeline=timeline,
            warnings=list(self._warnings),
            status=status,
            unavailable=list(self._unavailable),
            ended_mono=self.ended_mono,
            ended_utc=self.utc(self.ended_mono) if self.ended_mono is not None else None,
            duration_s=end - self.started_mono,
            rank=self.rank,
            local_rank=self.local_rank,
            world_size=self.world_size,
            running=running,
        )

    def _write_report(self, path: Path, status: str | None) -> None:
        try:
            kwargs: dict[str, Any] = {}
            if status is not None:
                kwargs["status"] = status
            self.save(path, **kwargs)
        except Exception as exc:
            self._note("report.write_failed", f"writing the report to {path} failed: {exc!r}")

    def _run_background(self) -> None:
        """The one background thread: polls, timeline, peak power, checkpoints."""
        while not self._stopped:
            now = time.monotonic()
            try:
                self._tick(now)
            except Exception as exc:  # never let the thread die silently
                self._note("meter.sampler_error", f"background sampler error: {exc!r}")
            next_t = self._next_power
            for t in self._next_poll.values():
                next_t = min(next_t, t)
            if self._next_checkpoint is not None:
                next_t = min(next_t, self._next_checkpoint)
            self._wake.wait(max(0.0, next_t - time.monotonic()))

    def _tick(self, now: float) -> None:
        for i, sensor in enumerate(self._sensors):
            due = self._next_poll.get(i)
            if due is not None and now >= due:
                try:
                    sensor.poll(now)
                except Exception as exc:
                    self._note("sensor.poll_error", f"polling {sensor.name!r} failed: {exc!r}")
                self._next_poll[i] = now + float(sensor.poll_interval_s or self.sample_interval_s)
        if now >= self._next_power:
            self._next_power = now + self._power_period_s
            # Read outside the lock, so a slow sensor never holds up the user's boundaries.
            t = time.monotonic()
            raw = self._raw_read(t)
            with self._lock:
                if self._stopped:
                    return
                reading = self._absorb(raw)
                total = sum(reading.values())
                prev = self._prev_power_point
                if prev is not None and t > prev[0]:
                    power_w = (total - prev[1]) / (t - prev[0])
                    for state in self._phases.values():
                        if state.active > 0 and t - state.open_since > 0:
                            rec = state.record
                            if rec.peak_power_w is None or power_w > rec.peak_power_w:
                                rec.peak_power_w = power_w
                self._prev_power_point = (t, total)
                if self._timeline.due(t):
                    self._timeline.add(TimelinePoint(t, reading))
        if self._next_checkpoint is not None and now >= self._next_checkpoint:
            assert self.report_path is not None and self.checkpoint_interval_s is not None
            self._next_checkpoint = now + self.checkpoint_interval_s
            self._write_report(self.report_path, status="running")

    def _after_fork_in_child(self) -> None:
        self._inert = True
        self._thread = None
        self._lock = threading.RLock()
        self._tls = threading.local()


class _InertHandle(PhaseHandle):
    """A handle in a forked child process: records nothing, so nothing is counted twice."""

    def __init__(self, meter: EnergyMeter, path: tuple[str, ...]) -> None:
        self._meter = meter
        self._state = None  # type: ignore[assignment]
        self.path = path
        self._closed = False

    def add(self, **_: int | None) -> None:  # type: ignore[override]
        return None

    def record_latency(self, latency_s: float) -> None:
        return None

    def set_attr(self, key: str, value: object) -> None:
        return None


def _mark_children_inert() -> None:
    for meter in list(_LIVE_METERS):
        meter._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_children_inert)
