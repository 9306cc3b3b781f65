"""The phase tree: nesting phases under their parents, and exclusive energy.

**A child never exceeds its parent.** Phases may be closed out of order (a child still
open when its parent ends): the child's records then reach past the parent's time. The
report keeps each phase under its parent, so before the phases are built each child is
fitted into its nearest recorded ancestor (:func:`fit_children`):

* its active time outside the parent's is cut off: the child keeps the spans inside the
  parent, its duration and work items (samples, tokens, steps) in proportion to the time
  kept, and of each component's energy the share the run's energy curve gives that time
  (in proportion to time where the curve is flat). A ``report.phase_outlived_parent``
  warning says how much time and energy were left out, and why;
* its energy per component is then at most the parent's, and its total at most the
  parent's total: rounding differences are evened out silently, anything larger with a
  ``report.child_exceeds_parent`` warning.

The parent is never extended: its figures are what was measured while it was open.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

from greenmeter.report.curve import Curve
from greenmeter.report.inputs import TOL, Warnings, opt_float
from greenmeter.report.models import Phase
from greenmeter.report.spans import Spans, intersect, length, union

__all__ = ["exclusive_energy", "fit_children", "nest", "parent_of"]

#: Relative excess of a child over its parent taken as rounding (evened out silently).
ROUNDING = 1e-3

_TOL = TOL


def exclusive_energy(
    inclusive_j: float, duration_s: float, children: Sequence[tuple[float, float]]
) -> float | None:
    """A phase's own energy: inclusive minus its children's inclusive energy.

    Args:
        inclusive_j: The phase's inclusive energy (joules).
        duration_s: The phase's active time (seconds).
        children: (duration_s, inclusive energy J) of each child.

    Returns:
        None when there are no children, or when the children overlapped in time (their
        total active time exceeds the parent's: concurrent children, whose energies
        cannot be subtracted) or their energy exceeds the parent's by more than
        rounding; otherwise the difference (small rounding negatives become 0).
    """
    if not children:
        return None
    child_time = sum(d for d, _ in children)
    if child_time > duration_s * (1 + _TOL) + _TOL:
        return None
    rest = inclusive_j - sum(e for _, e in children)
    if rest >= 0:
        return rest
    if -rest <= _TOL * max(inclusive_j, 1.0):
        return 0.0
    return None


def parent_of(path: tuple[str, ...], known: Collection[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The nearest ancestor of ``path`` among ``known`` paths, or None."""
    return next((path[:n] for n in range(len(path) - 1, 0, -1) if path[:n] in known), None)


def nest(flat: dict[tuple[str, ...], Phase], warn: Warnings) -> list[Phase]:
    """Nest phases under their nearest recorded ancestor; fill exclusive energy."""
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = {p: [] for p in flat}
    roots: list[tuple[str, ...]] = []
    for path in flat:
        parent = parent_of(path, flat)
        if parent is None:
            roots.append(path)
        else:
            children[parent].append(path)

    def build(path: tuple[str, ...]) -> Phase:
        kids = [build(c) for c in children[path]]
        node = flat[path]
        excl = exclusive_energy(
            node.it_energy_j, node.duration_s, [(k.duration_s, k.it_energy_j) for k in kids]
        )
        if kids and excl is None:
            warn.add(
                "report.exclusive_undefined",
                f"phase {'/'.join(path)}: its children overlapped in time or drew more than "
                "it did, so its exclusive energy is not given",
            )
        return node.model_copy(update={"children": kids, "exclusive_energy_j": excl})

    return [build(r) for r in roots]


# --------------------------------------------------------------------------------------
# fitting children into their parents (meter records, before the phases are built)


def _spans(record: Any, end_mono: float) -> Spans:
    """The union of a record's active intervals (monotonic seconds), sorted."""
    raw = [
        (float(a), float(min(b, end_mono)))
        for a, b in record.intervals_mono
        if math.isfinite(a) and math.isfinite(b) and b >= a
    ]
    if not raw and record.first_start_mono is not None:
        last = record.last_end_mono
        raw = [(float(record.first_start_mono), float(last if last is not None else end_mono))]
    return union(raw)


def _curve_energy(curve: Curve, spans: Spans, component: str) -> float:
    return sum(curve.total_at(b, [component]) - curve.total_at(a, [component]) for a, b in spans)


def fit_children(
    records: Sequence[Any],
    paths: Sequence[tuple[str, ...]],
    curve: Curve,
    end_mono: float,
    warn: Warnings,
) -> list[Any]:
    """The phase records with every child fitted into its parent (this module's rule).

    Args:
        records: The meter's ``PhaseRecord`` objects (left unchanged; fitted ones are
            copies).
        paths: The path each record has in the report.
        curve: The run's cumulative energy curve.
        end_mono: The run's end (monotonic seconds).
        warn: Where the warnings go.
    """
    first: dict[tuple[str, ...], int] = {}
    for k, path in enumerate(paths):
        first.setdefault(path, k)
    out = list(records)
    for k in sorted(first.values(), key=lambda k: len(paths[k])):  # parents first
        parent = parent_of(paths[k], first)
        if parent is not None:
            out[k] = _fit(out[k], out[first[parent]], paths[k], parent, curve, end_mono, warn)
    return out


def _fit(
    child: Any,
    parent: Any,
    path: tuple[str, ...],
    parent_path: tuple[str, ...],
    curve: Curve,
    end_mono: float,
    warn: Warnings,
) -> Any:
    """``child`` fitted into ``parent`` (a copy when anything changes)."""
    name, parent_name = "/".join(path), "/".join(parent_path)
    own = _spans(child, end_mono)
    inside = intersect(own, _spans(parent, end_mono))
    active, kept = length(own), length(inside)
    changes: dict[str, Any] = {}
    energy = {c: opt_float(e) for c, e in child.energy_j.items()}
    if active - kept > TOL * (1 + active):
        share = kept / active if active > 0 else 0.0
        for component, joules in energy.items():
            if joules is not None:
                whole = _curve_energy(curve, own, component)
                part = _curve_energy(curve, inside, component)
                energy[component] = joules * (part / whole if whole > 0 else share)
        duration = opt_float(child.duration_s)
        changes.update(
            intervals_mono=inside,
            first_start_mono=inside[0][0] if inside else child.first_start_mono,
            last_end_mono=inside[-1][1] if inside and child.last_end_mono is not None else None,
            duration_s=duration * share if duration is not None else child.duration_s,
        )
        for item in ("samples", "tokens", "steps"):
            value = getattr(child, item)
            if isinstance(value, int) and value >= 0:
                changes[item] = round(value * share)
        before = sum(opt_float(e) or 0.0 for e in child.energy_j.values())
        after = sum(e or 0.0 for e in energy.values())
        warn.add(
            "report.phase_outlived_parent",
            f"phase {name} was still active after its parent {parent_name} ended (phases "
            f"closed out of order); it is shown within {parent_name}: {kept:.6g} s of its "
            f"{active:.6g} s and {after:.6g} J of its {before:.6g} J; the rest is left out",
        )
    energy = _capped(energy, parent.energy_j, name, parent_name, warn)
    if any(opt_float(child.energy_j.get(c)) != e for c, e in energy.items() if e is not None):
        changes["energy_j"] = {
            c: (e if e is not None else child.energy_j[c]) for c, e in energy.items()
        }
    duration = opt_float(changes.get("duration_s", child.duration_s))
    limit = opt_float(parent.duration_s)
    if duration is not None and limit is not None and duration > limit:
        changes["duration_s"] = limit
    return replace(child, **changes) if changes else child


def _capped(
    energy: dict[str, float | None],
    parent_energy: dict[str, Any],
    name: str,
    parent_name: str,
    warn: Warnings,
) -> dict[str, float | None]:
    """Energy per component at most the parent's, and the total at most the parent's."""
    out = dict(energy)
    for component, joules in energy.items():
        limit = opt_float(parent_energy.get(component))
        if joules is not None and limit is not None and joules > limit:
            out[component] = limit
    total = sum(e or 0.0 for e in out.values())
    limit_total = sum(opt_float(e) or 0.0 for e in parent_energy.values())
    if total > limit_total > 0 or (total > 0 and limit_total == 0 and parent_energy):
        scale = limit_total / total
        out = {c: (e * scale if e is not None else None) for c, e in out.items()}
    excess = sum(e or 0.0 for e in energy.values()) - sum(e or 0.0 for e in out.values())
    if excess > ROUNDING * max(limit_total, TOL):
        warn.add(
            "report.child_exceeds_parent",
            f"phase {name} drew {excess:.6g} J more than its parent {parent_name} could "
            "hold; it is capped at its parent's energy (the meter's readings disagree)",
        )
    return out
