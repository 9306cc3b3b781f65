"""The sensor interface: every energy source is a small class behind it.

A sensor owns one or more *components* (a CPU package, a DRAM zone, a GPU board, an
estimate of the machine's RAM). For each component it offers a cumulative energy
reading in joules since the sensor was opened. The meter reads these cumulative values
at phase boundaries and takes differences; it never integrates power itself.

Sensors that need periodic work (a wrap guard for RAPL, sampling instant power for GPUs
without an energy counter, a CPU-utilisation estimate) say so through
:attr:`Sensor.poll_interval_s`; the meter's single background thread then calls
:meth:`Sensor.poll` about that often.

Rules every sensor keeps:

* ``read()`` returns, for each live component, a cumulative energy in joules that never
  decreases. Counter wraps, driver reloads and similar oddities are handled inside the
  sensor and reported through :meth:`Sensor.drain_warnings`.
* ``read()`` and ``poll()`` never raise for a measurement problem. A component that
  cannot be read any more is marked degraded (:meth:`Sensor.status`) and keeps its last
  value; the rest keeps measuring.
* Times are ``time.monotonic()`` seconds; energies are joules.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "ComponentInfo",
    "ComponentKind",
    "ComponentStatus",
    "Method",
    "Scope",
    "Sensor",
    "SensorWarning",
    "Unavailable",
]


class Method(str, Enum):
    """How a component's energy is obtained."""

    COUNTER = "counter"
    """A hardware energy counter read at boundaries (RAPL ``energy_uj``, NVML total energy)."""
    SAMPLED = "sampled"
    """Power samples integrated with the trapezoid rule."""
    ESTIMATED = "estimated"
    """A model (rated power x utilisation, W per GB of RAM); no measurement."""


class ComponentKind(str, Enum):
    """What hardware a component stands for."""

    CPU = "cpu"
    DRAM = "dram"
    GPU = "gpu"
    PSYS = "psys"
    RAM = "ram"


class Scope(str, Enum):
    """The physical boundary a reading covers."""

    CPU_PACKAGE = "cpu_package"
    """One CPU socket/package (RAPL ``package-N``; includes cores, uncore, integrated GPU)."""
    DRAM = "dram"
    """Memory attached to one package (RAPL ``dram``)."""
    PLATFORM = "platform"
    """The whole SoC platform (RAPL ``psys``); contains the package, never add both."""
    GPU_BOARD = "gpu_board"
    """A whole GPU board as NVML reports it (chip, memory, VRM losses)."""
    MACHINE = "machine"
    """A machine-wide estimate (for example all of a host's RAM)."""
    PROCESS = "process"
    """An estimate restricted to the measured process tree's share."""


@dataclass(frozen=True)
class ComponentInfo:
    """A thing whose energy is measured, with how and at what boundary.

    Attributes:
        id: Unique on its host and stable across ranks, e.g. ``"rapl:package-0"``,
            ``"rapl:dram-0"``, ``"nvml:GPU-5c1e..."``, ``"estimate:cpu"``.
        kind: The hardware family.
        scope: The physical boundary the reading covers.
        method: Counter, sampled or estimated.
        sensor: The source's name: ``"rapl"``, ``"pyrapl"``, ``"nvml"``, ``"estimate"``.
        label: A human-readable name ("CPU package 0", "NVIDIA H200 (GPU-5c1e...)").
        host: Hostname the component lives on (de-duplication key with ``id``).
        resolution_s: The smallest interval over which a reading is meaningful: the
            counter's update step, or a few sampling periods. Phases shorter than this
            are flagged as low confidence.
        sampling_period_s: The polling period for sampled/estimated components, else None.
        shared: True when other work may draw on the same hardware (a MIG slice's
            parent board, a GPU with other processes).
        detail: Free-form string facts (UUID, socket index, estimate model and constants,
            averaging window) that the report copies verbatim.
    """

    id: str
    kind: ComponentKind
    scope: Scope
    method: Method
    sensor: str
    label: str
    host: str
    resolution_s: float
    sampling_period_s: float | None = None
    shared: bool = False
    detail: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ComponentStatus:
    """Health of one component.

    Attributes:
        degraded: Its readings stopped being trustworthy at some point of the run.
        reason: What happened, in plain words.
        degraded_at: ``time.monotonic()`` instant from which it was not measured (a
            counter held at its latest update: that update's instant).
        recovered_at: ``time.monotonic()`` instant fresh readings came back, when they
            did (a read that timed out and answered again later); the component stays
            degraded, since the energy of the stall is attributed to the phase that read
            the counter next.
    """

    degraded: bool = False
    reason: str | None = None
    degraded_at: float | None = None
    recovered_at: float | None = None


@dataclass(frozen=True)
class SensorWarning:
    """A structured problem noticed while measuring.

    Attributes:
        code: Stable machine-readable code, e.g. ``"rapl.permission"``, ``"rapl.wrap"``,
            ``"rapl.counter_reset"``, ``"nvml.gpu_lost"``, ``"sensor.read_timeout"``.
        message: What happened and, where the user can act, what to do.
        component_id: The component concerned, if any.
        at: ``time.monotonic()`` instant it was noticed.
    """

    code: str
    message: str
    component_id: str | None = None
    at: float | None = None


@dataclass(frozen=True)
class Unavailable:
    """A source that was considered and not used, and why (for ``greenmeter doctor``).

    Attributes:
        sensor: ``"rapl"``, ``"nvml"``, ``"pyrapl"``...
        kind: The component family it would have measured.
        reason: Why it is not used, in plain words.
        fix: The command or setting that would enable it, if any.
    """

    sensor: str
    kind: ComponentKind
    reason: str
    fix: str | None = None


class Sensor(ABC):
    """One source of cumulative energy readings for one or more components."""

    #: Short source name, also used as the prefix of component ids.
    name: str = "sensor"
    #: How often the meter's background thread must call :meth:`poll`; None when the
    #: sensor needs no periodic work.
    poll_interval_s: float | None = None
    #: True when a call can block for long (a driver lock, a hung device): the meter then
    #: runs it behind a time bound (:class:`greenmeter.sensors.bounded.BoundedSensor`).
    #: Read at every call: a sensor whose calls stop touching the driver (they answer
    #: from a record kept by threads of its own) may turn it off, and the bound then
    #: calls it on the caller's thread, without a hand-over.
    may_block: bool = False

    def __init__(self) -> None:
        self._warnings: list[SensorWarning] = []
        self._warn_lock = threading.Lock()
        self._status: dict[str, ComponentStatus] = {}

    @abstractmethod
    def components(self) -> list[ComponentInfo]:
        """The components this sensor measures (fixed after construction)."""

    @abstractmethod
    def read(self, now: float) -> dict[str, float]:
        """Cumulative energy in joules per component id, as of ``now``.

        ``now`` is the ``time.monotonic()`` instant the caller takes as the boundary;
        counter sensors read their hardware, sampled sensors take a fresh sample and
        integrate up to it. Never raises for a measurement problem.
        """

    def poll(self, now: float) -> None:  # noqa: B027 - optional hook
        """Periodic work (wrap guard, sampling). Called from the meter's thread."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release handles. Idempotent."""

    # -- health and warnings -------------------------------------------------------

    def status(self) -> dict[str, ComponentStatus]:
        """Health per component id; components not listed are healthy."""
        return dict(self._status)

    def degrade(
        self, component_id: str, reason: str, code: str, now: float, since: float | None = None
    ) -> None:
        """Mark a component degraded (once) and record a warning at ``now``; ``since``:
        the instant from which it was not measured, when earlier than ``now``."""
        if self._status.get(component_id, ComponentStatus()).degraded:
            return
        self._status[component_id] = ComponentStatus(True, reason, now if since is None else since)
        self.warn(code, reason, component_id, now)

    def warn(
        self, code: str, message: str, component_id: str | None = None, at: float | None = None
    ) -> None:
        """Queue a structured warning for the meter to collect."""
        with self._warn_lock:
            self._warnings.append(SensorWarning(code, message, component_id, at))

    def drain_warnings(self) -> list[SensorWarning]:
        """Return and forget the warnings queued since the last call."""
        with self._warn_lock:
            out, self._warnings = self._warnings, []
        return out
