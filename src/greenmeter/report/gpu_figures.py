"""How each GPU figure of a phase was obtained: method, error bound (J), provisional
figures, and the time a component was not read (s).

The meter's phase records carry, for GPUs resolved between counter updates
(:mod:`greenmeter.sensors.placement`), ``energy_methods``, ``energy_bound_j`` and
``provisional`` keyed by component id; the report keys them by component key. A
component that degraded (``degraded_at_s``) and answered again (``recovered_at_s``) was
not read in between: the seconds of the phase inside that gap are ``unmeasured_s``, and
its energy over them is left out, never estimated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from greenmeter.report.confidence import ComponentFacts
from greenmeter.report.inputs import Warnings, clean
from greenmeter.report.spans import overlap, union

__all__ = ["merged_gpu_fields", "phase_gpu_fields"]

_METHODS = ("counter", "counter+instant_power", "counter_interpolated", "sampled")


def phase_gpu_fields(
    rec: Any,
    key_of: Mapping[str, str],
    facts: Mapping[str, ComponentFacts],
    intervals_s: Sequence[tuple[float, float]],
    end_s: float,
    warn: Warnings,
) -> dict[str, Any]:
    """The phase's ``energy_methods``, ``energy_bound_j`` (J), ``provisional`` and
    ``unmeasured_s`` (s) from its record.

    Args:
        rec: The meter's :class:`~greenmeter.core.records.PhaseRecord`.
        key_of: Component id -> report key.
        facts: Facts per report key (degradation and recovery instants).
        intervals_s: The phase's active spans, seconds since the report's start.
        end_s: The report's end, seconds since its start (a gap that did not close ends
            there).
        warn: Where a non-finite bound is reported.
    """
    where = f"phase {'/'.join(rec.path)}"
    methods = {
        key_of[i]: str(m)
        for i, m in dict(getattr(rec, "energy_methods", None) or {}).items()
        if i in key_of and m in _METHODS
    }
    bounds: dict[str, float] = {}
    for i, v in dict(getattr(rec, "energy_bound_j", None) or {}).items():
        if i in key_of:
            bounds[key_of[i]] = clean(v, f"{where} energy bound of {i}", warn, key_of[i])
    provisional = [key_of[i] for i in list(getattr(rec, "provisional", None) or []) if i in key_of]
    spans = union((a, b) for a, b in intervals_s if b > a)
    unmeasured: dict[str, float] = {}
    for i in rec.energy_j:
        key = key_of.get(i)
        f = facts.get(key) if key is not None else None
        if f is None or not f.degraded or f.degraded_at_s is None:
            continue
        gap_end = f.recovered_at_s if f.recovered_at_s is not None else end_s
        if gap_end > f.degraded_at_s:
            seconds = overlap(spans, [(f.degraded_at_s, gap_end)])
            if seconds > 0:
                unmeasured[key] = seconds
    return {
        "energy_methods": methods,
        "energy_bound_j": bounds,
        "provisional": provisional,
        "unmeasured_s": unmeasured,
    }


def merged_gpu_fields(phases: Sequence[Any], keys: Sequence[str]) -> dict[str, Any]:
    """The same fields for a phase merged from parts (ranks, hosts), for the components
    ``keys`` it keeps: the least precise method, the largest bound and unmeasured time
    any part gives, every provisional figure."""
    from greenmeter.sensors.placement import worse

    wanted = set(keys)
    methods: dict[str, str] = {}
    bounds: dict[str, float] = {}
    unmeasured: dict[str, float] = {}
    provisional: list[str] = []
    for p in phases:
        for k, m in p.energy_methods.items():
            if k in wanted:
                methods[k] = worse(m, methods[k]) if k in methods else m
        for k, v in p.energy_bound_j.items():
            if k in wanted:
                bounds[k] = max(v, bounds.get(k, 0.0))
        for k, v in p.unmeasured_s.items():
            if k in wanted:
                unmeasured[k] = max(v, unmeasured.get(k, 0.0))
        provisional += [k for k in p.provisional if k in wanted and k not in provisional]
    return {
        "energy_methods": methods,
        "energy_bound_j": bounds,
        "provisional": provisional,
        "unmeasured_s": unmeasured,
    }
