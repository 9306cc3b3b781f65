"""The one interval coalescer: fewer (start, end) spans, keeping the largest gaps.

Phase records, checkpointed segments and reports all keep a bounded number of active
spans per phase. When there are too many, the spans separated by the smallest gaps are
joined first, so the idle stretches that matter for plots and for time-varying carbon
intensity survive longest.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

__all__ = ["coalesce"]


def coalesce(
    intervals: Iterable[tuple[float, float]], limit: int, *, disjoint: bool = False
) -> list[tuple[float, float]]:
    """At most ``limit`` spans covering ``intervals``, sorted by start.

    Overlapping spans are merged first; then neighbours separated by the smallest gaps
    are joined until at most ``limit`` remain. Every instant inside an input span stays
    inside an output span. Times are seconds (any common origin).

    Args:
        intervals: ``(start, end)`` pairs, any order; ``end >= start``.
        limit: Most spans to return (at least 1).
        disjoint: The caller guarantees ``intervals`` are sorted and do not overlap (a
            meter's stretches of one phase): the sorting and merging pass is skipped.

    Raises:
        ValueError: ``limit`` is below 1.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit!r}")
    spans: list[tuple[float, float]] = []
    if disjoint:
        spans = list(intervals)
    else:
        for start, end in sorted(intervals):
            if spans and start <= spans[-1][1]:
                if end > spans[-1][1]:
                    spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
    excess = len(spans) - limit
    if excess <= 0:
        return spans
    # join across the `excess` smallest gaps; among equal gaps, the earlier ones first
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
    threshold = sorted(gaps)[excess - 1]
    ties = excess - sum(1 for g in gaps if g < threshold)
    out = [spans[0]]
    for gap, span in zip(gaps, spans[1:], strict=True):
        if gap < threshold or (gap == threshold and ties > 0):
            if gap == threshold:
                ties -= 1
            out[-1] = (out[-1][0], span[1])
        else:
            out.append(span)
    return out
