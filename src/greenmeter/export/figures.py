"""The running figures of one run, kept for live exporters (Prometheus, OpenTelemetry).

:class:`LiveFigures` is fed from two sides and read from a third, each on its own thread:

* the meter's sampler hands it every periodic reading (cumulative joules per component
  since the start, with the reading's ``time.monotonic()`` instant) through
  :meth:`LiveFigures.on_reading`;
* the meter's phase listeners hand it phase entries and exits
  (:meth:`LiveFigures.phase_entered`, :meth:`LiveFigures.phase_exited`);
* an exporter asks for a :class:`LiveSnapshot` when it is scraped or pushes.

Every method takes one short lock and does a few dictionary operations, so neither the
training thread (phase events) nor the sampler ever waits on an exporter; the network
work happens on the exporter's own thread.

Live figures have the sampler's resolution: a phase's live energy is the difference of
the readings nearest its boundaries (one sampling period, 0.1 s by default). The report
remains the exact record; the live figures are for dashboards and alerts.

Label cardinality is bounded: phase paths are exported with their numbers folded
(``fit/train/epoch-12`` is ``fit/train/epoch-N``), and past ``max_phases`` distinct
labels the rest are added to ``other``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["OTHER_PHASE", "ComponentLabel", "LiveFigures", "LiveSnapshot", "phase_label"]

#: The phase label that collects every phase past the cardinality bound.
OTHER_PHASE = "other"
_NUMBER = re.compile(r"\d+")


def phase_label(path: Sequence[str]) -> str:
    """A phase path as a bounded-cardinality label: names joined by ``/``, numbers as N."""
    return "/".join(_NUMBER.sub("N", name) for name in path)


@dataclass(frozen=True)
class ComponentLabel:
    """What an exporter says about a component: its id, kind, method and host."""

    id: str
    kind: str
    method: str
    host: str


@dataclass(frozen=True)
class LiveSnapshot:
    """The figures at one instant (plain data, safe to read on any thread).

    Attributes:
        t_mono: Instant of the newest reading (``time.monotonic()``), None before one.
        energy_j: Cumulative energy per component id since the run started (joules).
        power_w: Mean power per component id over the last sampling interval (watts).
        phase_energy_j: Cumulative energy per phase label, closed and open time together
            (joules, all components).
        phase_open: Number of open instances per phase label.
        co2e_g: Cumulative operational CO2e (grams), None without a carbon factor.
        components: The labels of every component.
        run: The run label (its name, else the first 8 hex digits of its id).
    """

    t_mono: float | None
    energy_j: dict[str, float]
    power_w: dict[str, float]
    phase_energy_j: dict[str, float]
    phase_open: dict[str, int]
    co2e_g: float | None
    components: tuple[ComponentLabel, ...]
    run: str

    @property
    def total_energy_j(self) -> float:
        """Sum over components (joules)."""
        return sum(self.energy_j.values())

    @property
    def total_power_w(self) -> float:
        """Sum over components (watts)."""
        return sum(self.power_w.values())


@dataclass
class _Phase:
    closed_j: float = 0.0
    open_count: int = 0
    opened_at_j: float = 0.0  # total energy at the reading nearest the first open
    paths: set[tuple[str, ...]] = field(default_factory=set)


class LiveFigures:
    """Thread-safe running figures of one run.

    Args:
        components: The measured components (``greenmeter.sensors.base.ComponentInfo``
            or anything with ``id``, ``kind``, ``method`` and ``host``).
        run: The run label exporters attach to every series.
        g_per_j: Operational CO2e per joule of IT energy (grid intensity x PUE / 3.6e6),
            None when carbon is not accounted.
        max_phases: Most distinct phase labels exported; the rest go to ``other``.
    """

    def __init__(
        self,
        components: Sequence[object],
        *,
        run: str,
        g_per_j: float | None = None,
        max_phases: int = 32,
    ) -> None:
        if max_phases < 1:
            raise ValueError(f"max_phases must be at least 1, got {max_phases!r}")
        self.run = run
        self.g_per_j = g_per_j
        self.max_phases = int(max_phases)
        self._components = tuple(
            ComponentLabel(
                str(c.id),  # type: ignore[attr-defined]
                str(getattr(c.kind, "value", c.kind)),  # type: ignore[attr-defined]
                str(getattr(c.method, "value", c.method)),  # type: ignore[attr-defined]
                str(c.host),  # type: ignore[attr-defined]
            )
            for c in components
        )
        self._lock = threading.Lock()
        self._t: float | None = None
        self._energy: dict[str, float] = {c.id: 0.0 for c in self._components}
        self._power: dict[str, float] = {c.id: 0.0 for c in self._components}
        self._phases: dict[str, _Phase] = {}

    # -- feeding ------------------------------------------------------------------------

    def on_reading(self, t_mono: float, energy_j: Mapping[str, float]) -> None:
        """Take a periodic reading: cumulative joules per component id at ``t_mono``."""
        with self._lock:
            prev_t = self._t
            if prev_t is not None and t_mono <= prev_t:
                return  # an older reading arriving late: the newer one stands
            for cid, value in energy_j.items():
                before = self._energy.get(cid, 0.0)
                now = max(before, float(value))  # cumulative figures never go back
                if prev_t is not None:
                    self._power[cid] = (now - before) / (t_mono - prev_t)
                self._energy[cid] = now
            self._t = t_mono

    def _label(self, path: tuple[str, ...]) -> str:
        label = phase_label(path)
        if label not in self._phases and len(self._phases) >= self.max_phases:
            return OTHER_PHASE
        return label

    def phase_entered(self, path: tuple[str, ...], kind: str, t_mono: float) -> None:
        """A phase instance opened (a :class:`greenmeter.meter.PhaseListener` method)."""
        with self._lock:
            label = self._label(path)
            phase = self._phases.setdefault(label, _Phase())
            if phase.open_count == 0:
                phase.opened_at_j = sum(self._energy.values())
            phase.open_count += 1
            phase.paths.add(path)

    def phase_exited(self, path: tuple[str, ...], t_mono: float) -> None:
        """A phase instance closed."""
        with self._lock:
            label = phase_label(path)
            phase = self._phases.get(label)
            if phase is None or path not in phase.paths:
                phase = self._phases.get(OTHER_PHASE)
            if phase is None or phase.open_count == 0:
                return
            phase.open_count -= 1
            if phase.open_count == 0:
                phase.closed_j += max(0.0, sum(self._energy.values()) - phase.opened_at_j)

    def items_added(
        self, path: tuple[str, ...], samples: int | None, tokens: int | None, steps: int | None
    ) -> None:
        """Work items are not exported (a listener method, accepted and ignored)."""

    # -- reading ------------------------------------------------------------------------

    def snapshot(self) -> LiveSnapshot:
        """The current figures as plain data."""
        with self._lock:
            total = sum(self._energy.values())
            phase_energy = {
                label: p.closed_j + (max(0.0, total - p.opened_at_j) if p.open_count else 0.0)
                for label, p in self._phases.items()
            }
            return LiveSnapshot(
                t_mono=self._t,
                energy_j=dict(self._energy),
                power_w=dict(self._power),
                phase_energy_j=phase_energy,
                phase_open={label: p.open_count for label, p in self._phases.items()},
                co2e_g=None if self.g_per_j is None else total * self.g_per_j,
                components=self._components,
                run=self.run,
            )
