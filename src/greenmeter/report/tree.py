"""The phase tree: nesting phases under their parents, and exclusive energy."""

from __future__ import annotations

from collections.abc import Sequence

from greenmeter.report.inputs import TOL, Warnings
from greenmeter.report.models import Phase

__all__ = ["exclusive_energy", "nest"]

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


def nest(flat: dict[tuple[str, ...], Phase], warn: Warnings) -> list[Phase]:
    """Nest phases under their nearest recorded ancestor; fill exclusive energy."""
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = {p: [] for p in flat}
    roots: list[tuple[str, ...]] = []
    for path in flat:
        parent = next((path[:n] for n in range(len(path) - 1, 0, -1) if path[:n] in flat), None)
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
