"""The one interval coalescer: fewer (start, end) spans, keeping the largest gaps.

Phase records, checkpointed segments and reports all keep a bounded number of active
spans per phase. When there are too many, the spans separated by the smallest gaps are
joined first, so the idle stretches that matter for plots and for time-varying carbon
intensity survive longest.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["coalesce"]


def coalesce(intervals: Iterable[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    """At most ``limit`` spans covering ``intervals``, sorted by start.

    Overlapping spans are merged first; then neighbours separated by the smallest gaps
    are joined until at most ``limit`` remain. Every instant inside an input span stays
    inside an output span. Times are seconds (any common origin).

    Args:
        intervals: ``(start, end)`` pairs, any order; ``end >= start``.
        limit: Most spans to return (at least 1).

    Raises:
        ValueError: ``limit`` is below 1.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit!r}")
    items = list(intervals)
    if any(items[k][0] < items[k - 1][0] for k in range(1, len(items))):
        items.sort()  # the meter appends in time order: usually sorted already
    spans: list[tuple[float, float]] = []
    for start, end in items:
        if spans and start <= spans[-1][1]:
            if end > spans[-1][1]:
                spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    excess = len(spans) - limit
    if excess <= 0:
        return spans
    # join across the `excess` smallest gaps (ties: the earlier gap first; sort is stable)
    gaps = [spans[k + 1][0] - spans[k][1] for k in range(len(spans) - 1)]
    joined = set(sorted(range(len(gaps)), key=gaps.__getitem__)[:excess])
    out = [spans[0]]
    for k in range(1, len(spans)):
        if k - 1 in joined:
            out[-1] = (out[-1][0], spans[k][1])
        else:
            out.append(spans[k])
    return out
