"""Per-phase confidence: how far a phase's energy can be trusted.

The rule, applied per component and then to the phase:

* ``r = mean entry duration / resolution_s``, where the mean entry duration is the
  phase's active time divided by how often it was entered (each entry has two boundary
  reads, each uncertain by about one ``resolution_s``), and ``resolution_s`` is the
  component's counter step or a few sampling periods.
* A measured component (``counter`` or ``sampled``) is **high** when ``r >= 100``
  (boundary error about 1% or less), **medium** when ``r >= 10``, **low** below.
* An ``estimated`` component is at most **low** and marks the phase ``estimated``.
* A degraded component (it stopped reading, or a read hung or timed out, at an instant
  ``degraded_at_s``) makes **low** every phase active at or after that instant: the
  phase misses the component's energy from then on, so it limits the phase whatever
  share of the energy it shows. A phase that ended before the instant is not touched.
  When the instant is unknown, every phase is treated as touched.
* A degraded component that answered again (``recovered_at_s``) touches only the
  phases active between the two instants: its energy over that gap is left out.
* The phase takes the worst level among the components carrying at least 5% of its IT
  energy (all components when it has no energy), and the degraded components that
  touch it; other small ones cannot move the total by more than that share. The reason
  names the limiting component.
* A material GPU figure placed linearly within the counter's step, without instant
  power (``counter_interpolated``), then lowers the phase's level by one (a low phase
  stays low); the reason names the board.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import Field

from greenmeter.report.base import CONFIDENCE_LEVELS, ConfidenceLevel, _Model

__all__ = [
    "HIGH_RATIO",
    "MATERIAL_SHARE",
    "MEDIUM_RATIO",
    "ComponentFacts",
    "Confidence",
    "phase_confidence",
]

#: Entry duration / resolution at or above which a measured component is "high".
HIGH_RATIO = 100.0
#: Entry duration / resolution at or above which a measured component is "medium".
MEDIUM_RATIO = 10.0
#: Share of a phase's energy below which a component does not limit its confidence.
MATERIAL_SHARE = 0.05


class Confidence(_Model):
    """How far a phase's energy can be trusted; see ``greenmeter.report.confidence``."""

    level: ConfidenceLevel
    estimated: bool = Field(False, description="Part of the energy is a model estimate.")
    reason: str
    component: str | None = Field(None, description="The component that limits the level.")


@dataclass(frozen=True)
class ComponentFacts:
    """What the rule needs to know about a component."""

    key: str
    method: str
    resolution_s: float
    degraded: bool = False
    #: When it degraded: seconds since the report's start (None: unknown).
    degraded_at_s: float | None = None
    degraded_reason: str | None = None
    #: When it answered again: seconds since the report's start (None: it did not).
    recovered_at_s: float | None = None

    def touches(self, end_s: float | None, start_s: float | None = None) -> bool:
        """Degraded during or before a phase active from ``start_s`` to ``end_s``
        (seconds since the report's start; None: unknown), and not answering again
        before it started."""
        if not self.degraded:
            return False
        if self.recovered_at_s is not None and start_s is not None:
            if start_s >= self.recovered_at_s:
                return False
        return self.degraded_at_s is None or end_s is None or end_s > self.degraded_at_s


def _rank(level: str) -> int:
    return CONFIDENCE_LEVELS.index(level)


#: Energy method of a GPU figure placed linearly within a counter step.
INTERPOLATED = "counter_interpolated"


def _one(
    facts: ComponentFacts, entry_s: float, span: tuple[float | None, float | None]
) -> tuple[str, str]:
    start_s, end_s = span
    if facts.method == "estimated":
        return "low", f"{facts.key} is a model estimate, not a measurement"
    if facts.touches(end_s, start_s):
        why = f" ({facts.degraded_reason})" if facts.degraded_reason else ""
        if facts.degraded_at_s is None:
            return "low", f"{facts.key} stopped reading during the run (degraded){why}"
        if facts.recovered_at_s is not None:
            return "low", (
                f"{facts.key} was not read from {facts.degraded_at_s:.6g} s to "
                f"{facts.recovered_at_s:.6g} s into the run{why}; this phase misses its "
                "energy over that gap"
            )
        return "low", (
            f"{facts.key} stopped reading {facts.degraded_at_s:.6g} s into the run{why}; "
            "this phase misses its energy from then on"
        )
    if facts.resolution_s <= 0:
        return "high", f"{facts.key} has no stated resolution limit"
    ratio = entry_s / facts.resolution_s
    text = (
        f"mean entry {entry_s:.3g} s is {ratio:.3g}x the {facts.resolution_s:.3g} s "
        f"resolution of {facts.key}"
    )
    if ratio >= HIGH_RATIO:
        return "high", text
    if ratio >= MEDIUM_RATIO:
        return "medium", text
    return "low", text


def phase_confidence(
    *,
    duration_s: float,
    count: int,
    energy_j: Mapping[str, float],
    components: Mapping[str, ComponentFacts],
    end_s: float | None = None,
    start_s: float | None = None,
    methods: Mapping[str, str] | None = None,
) -> Confidence:
    """Confidence of one phase by the rule in this module's docstring.

    Args:
        duration_s: The phase's active time (seconds).
        count: How many times it was entered (at least 1 is assumed).
        energy_j: Its energy per component key (joules).
        components: Facts per component key.
        end_s: When the phase was last active, seconds since the report's start (None:
            still active, or unknown).
        start_s: When it was first active, seconds since the report's start (None:
            unknown).
        methods: How each GPU figure was obtained (``energy_methods``), by key.
    """
    methods = methods or {}
    entry_s = duration_s / max(count, 1)
    total = sum(energy_j.values())
    keys = [k for k in energy_j if k in components]
    if total > 0:
        material = [
            k
            for k in keys
            if energy_j[k] >= MATERIAL_SHARE * total or components[k].touches(end_s, start_s)
        ]
    else:
        material = keys
    estimated = any(components[k].method == "estimated" for k in material)
    if not material:
        return Confidence(level="low", estimated=False, reason="no component measured it")
    worst_level, worst_reason, worst_key = "high", "", None
    for key in material:
        level, reason = _one(components[key], entry_s, (start_s, end_s))
        if worst_key is None or _rank(level) > _rank(worst_level):
            worst_level, worst_reason, worst_key = level, reason, key
    placed = [k for k in material if methods.get(k) == INTERPOLATED]
    if placed and worst_level != "low":
        worst_level = CONFIDENCE_LEVELS[_rank(worst_level) + 1]
        worst_reason = (
            f"{placed[0]} has no instant power: its figure is placed linearly within the "
            f"counter step (counter_interpolated), one level lower; {worst_reason}"
        )
        worst_key = placed[0]
    return Confidence(
        level=worst_level,  # type: ignore[arg-type]
        estimated=estimated,
        reason=worst_reason,
        component=worst_key,
    )
