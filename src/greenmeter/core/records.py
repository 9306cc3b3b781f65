"""Plain data the meter hands downstream (to the report builder, adapters, the CLI).

Nothing here knows about hardware or about the report schema: these are the meter's
measurements, in joules and seconds, keyed by component id.

Times come in two forms: ``*_mono`` are ``time.monotonic()`` instants (for arithmetic
and for the emulators' ground truth); ``*_utc`` are timezone-aware datetimes derived
from one anchor taken when the meter started, so a wall-clock jump never changes a
duration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from greenmeter.sensors.base import ComponentInfo, ComponentStatus, SensorWarning, Unavailable

__all__ = ["PHASE_KINDS", "MeterSnapshot", "PhaseKind", "PhaseRecord", "Reading", "TimelinePoint"]

#: Phase kinds the report knows; anything else is ``"custom"``.
PhaseKind = str
PHASE_KINDS: tuple[str, ...] = (
    "fit",
    "train",
    "validate",
    "test",
    "predict",
    "inference",
    "sanity_check",
    "epoch",
    "window",
    "custom",
)


@dataclass
class PhaseRecord:
    """Everything measured for one phase path, accumulated over its repetitions.

    A phase is identified by its ``path`` (names from the root, e.g.
    ``("fit", "train")``). Entering the same path again adds to the same record and
    increments ``count``. When instances of the same path overlap (several threads),
    energy and duration are taken over the union of their time, never twice.

    Attributes:
        path: Names from the outermost phase to this one.
        kind: One of :data:`PHASE_KINDS`.
        count: How many times the phase was entered.
        first_start_mono / last_end_mono: Span of all repetitions (``last_end_mono`` is
            None while the phase is open).
        duration_s: Total time the phase was active (union of its intervals).
        energy_j: Inclusive energy per component id (joules) over that time.
        samples / tokens / steps: Work items attributed to the phase (user- or
            adapter-supplied; None when never given).
        peak_power_w: Highest whole-system power seen by the background sampler while
            the phase was active (None when no sample fell inside it).
        latencies_s: Per-call latencies recorded for the phase (bounded reservoir),
            e.g. by ``measure_inference``; empty when not measured.
        intervals_mono: A bounded list of (start, end) spans, coalesced when long, for
            plots and time-varying carbon intensity.
        open: True while at least one instance is active (checkpoints only).
        attrs: Free-form string facts an adapter attaches (epoch index, batch size,
            repeats).
        energy_methods: For components resolved between counter updates (GPUs), how the
            figure was obtained: ``"counter"``, ``"counter+instant_power"`` or
            ``"counter_interpolated"`` (no instant power: linear within the step); the
            least precise over the phase's boundaries.
        energy_bound_j: For the same components, an error bound of the figure (joules):
            the sum of the bounds at the phase's boundaries.
        provisional: Components whose figure is not final yet (a boundary after the
            latest counter update seen: counter plus instant power, not rescaled).
    """

    path: tuple[str, ...]
    kind: PhaseKind = "custom"
    count: int = 0
    first_start_mono: float | None = None
    last_end_mono: float | None = None
    duration_s: float = 0.0
    energy_j: dict[str, float] = field(default_factory=dict)
    samples: int | None = None
    tokens: int | None = None
    steps: int | None = None
    peak_power_w: float | None = None
    latencies_s: list[float] = field(default_factory=list)
    intervals_mono: list[tuple[float, float]] = field(default_factory=list)
    open: bool = False
    attrs: dict[str, str] = field(default_factory=dict)
    energy_methods: dict[str, str] = field(default_factory=dict)
    energy_bound_j: dict[str, float] = field(default_factory=dict)
    provisional: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The phase's own name (last element of ``path``)."""
        return self.path[-1]

    @property
    def total_energy_j(self) -> float:
        """Sum over components (joules). Components are disjoint by construction."""
        return sum(self.energy_j.values())


@dataclass(frozen=True)
class TimelinePoint:
    """One point of the bounded power timeline.

    Attributes:
        t_mono: ``time.monotonic()`` instant.
        energy_j: Cumulative energy per component id since the meter started.
    """

    t_mono: float
    energy_j: dict[str, float]


class Reading(NamedTuple):
    """Every component's cumulative energy and the one instant it holds at.

    The sampler hands these to reading listeners (live exporters) and builds the
    timeline and peak power from consecutive ones, so an energy is never divided by a
    span it was not measured over.

    Attributes:
        t_mono: ``time.monotonic()`` instant of the read.
        energy_j: Cumulative energy per component id since the meter started (joules).
        stale: Components whose value was not read afresh at ``t_mono`` (a sensor that
            timed out or failed gives its last known value); empty when all are fresh.
    """

    t_mono: float
    energy_j: dict[str, float]
    stale: frozenset[str] = frozenset()

    @property
    def total_energy_j(self) -> float:
        """Sum over components (joules)."""
        return sum(self.energy_j.values())


@dataclass
class MeterSnapshot:
    """The meter's complete state as plain data: what a report is built from.

    Attributes:
        host: Hostname of this process.
        rank / local_rank / world_size: Distributed position (0/0/1 when not distributed).
        started_mono / ended_mono: Meter start and stop (``ended_mono`` None if running).
        started_utc / ended_utc: The same instants as aware UTC datetimes.
        duration_s: ended (or now) minus started, monotonic.
        components: Every measured component.
        status: Health per component id (missing = healthy).
        unavailable: Sources considered and not used, with reasons and fixes.
        energy_j: Total cumulative energy per component since start (joules).
        phases: One record per phase path, in first-entered order.
        timeline: Bounded, downsampled cumulative-energy timeline.
        warnings: Structured warnings collected from sensors and the meter.
        running: True for a checkpoint taken before ``stop()``.
    """

    host: str
    started_mono: float
    started_utc: datetime
    components: list[ComponentInfo]
    energy_j: dict[str, float]
    phases: list[PhaseRecord]
    timeline: list[TimelinePoint]
    warnings: list[SensorWarning]
    status: dict[str, ComponentStatus] = field(default_factory=dict)
    unavailable: list[Unavailable] = field(default_factory=list)
    ended_mono: float | None = None
    ended_utc: datetime | None = None
    duration_s: float = 0.0
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    running: bool = False
