"""Per-phase confidence: how far a phase's energy can be trusted.

The rule, applied per component and then to the phase:

* ``r = mean entry duration / resolution_s``, where the mean entry duration is the
  phase's active time divided by how often it was entered (each entry has two boundary
  reads, each uncertain by about one ``resolution_s``), and ``resolution_s`` is the
  component's counter step or a few sampling periods.
* A measured component (``counter`` or ``sampled``) is **high** when ``r >= 100``
  (boundary error about 1% or less), **medium** when ``r >= 10``, **low** below.
* An ``estimated`` component is at most **low** and marks the phase ``estimated``.
* A degraded component (stopped reading part way) is at most **low**.
* The phase takes the worst level among the components carrying at least 5% of its IT
  energy (all components when it has no energy); smaller ones cannot move the total
  by more than that share. The reason names the limiting component.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from greenmeter.report.models import CONFIDENCE_LEVELS, Confidence

__all__ = ["HIGH_RATIO", "MATERIAL_SHARE", "MEDIUM_RATIO", "ComponentFacts", "phase_confidence"]

#: Entry duration / resolution at or above which a measured component is "high".
HIGH_RATIO = 100.0
#: Entry duration / resolution at or above which a measured component is "medium".
MEDIUM_RATIO = 10.0
#: Share of a phase's energy below which a component does not limit its confidence.
MATERIAL_SHARE = 0.05


@dataclass(frozen=True)
class ComponentFacts:
    """What the rule needs to know about a component."""

    key: str
    method: str
    resolution_s: float
    degraded: bool = False


def _rank(level: str) -> int:
    return CONFIDENCE_LEVELS.index(level)


def _one(facts: ComponentFacts, entry_s: float) -> tuple[str, str]:
    if facts.method == "estimated":
        return "low", f"{facts.key} is a model estimate, not a measurement"
    if facts.degraded:
        return "low", f"{facts.key} stopped reading during the run (degraded)"
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
) -> Confidence:
    """Confidence of one phase by the rule in this module's docstring.

    Args:
        duration_s: The phase's active time (seconds).
        count: How many times it was entered (at least 1 is assumed).
        energy_j: Its energy per component key (joules).
        components: Facts per component key.
    """
    entry_s = duration_s / max(count, 1)
    total = sum(energy_j.values())
    keys = [k for k in energy_j if k in components]
    if total > 0:
        material = [k for k in keys if energy_j[k] >= MATERIAL_SHARE * total]
    else:
        material = keys
    estimated = any(components[k].method == "estimated" for k in material)
    if not material:
        return Confidence(level="low", estimated=False, reason="no component measured it")
    worst_level, worst_reason, worst_key = "high", "", None
    for key in material:
        level, reason = _one(components[key], entry_s)
        if worst_key is None or _rank(level) > _rank(worst_level):
            worst_level, worst_reason, worst_key = level, reason, key
    return Confidence(
        level=worst_level,  # type: ignore[arg-type]
        estimated=estimated,
        reason=worst_reason,
        component=worst_key,
    )
