"""Spans of time: unions, intersections and lengths of (start, end) intervals in seconds."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["Spans", "intersect", "length", "overlap", "union"]

Spans = list[tuple[float, float]]


def union(spans: Iterable[tuple[float, float]]) -> Spans:
    """The spans merged where they touch or overlap, sorted."""
    out: Spans = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def intersect(a: Spans, b: Spans) -> Spans:
    """The time both sorted, disjoint span lists cover."""
    out: Spans = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def length(spans: Iterable[tuple[float, float]]) -> float:
    """Seconds covered by disjoint spans."""
    return sum(b - a for a, b in spans)


def overlap(a: Spans, b: Spans) -> float:
    """Seconds both sorted, disjoint span lists cover."""
    return length(intersect(a, b))
