"""The one interval coalescer (greenmeter.core.intervals), against a brute-force model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenmeter.core.intervals import coalesce


def _model(intervals: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    """Merge overlaps, then join the single smallest gap (earliest on ties) until it fits."""
    spans: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if spans and a <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(b, spans[-1][1]))
        else:
            spans.append((a, b))
    while len(spans) > limit:
        k = min(range(len(spans) - 1), key=lambda k: (spans[k + 1][0] - spans[k][1], k))
        spans[k : k + 2] = [(spans[k][0], spans[k + 1][1])]
    return spans


spans_st = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 8)).map(
        lambda p: (float(p[0]), float(p[0] + p[1]))
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(spans_st, st.integers(1, 12))
def test_matches_the_model_and_covers_every_input(intervals, limit):
    out = coalesce(intervals, limit)
    assert out == _model(intervals, limit)
    assert len(out) <= limit
    for a, b in intervals:
        assert any(x <= a and b <= y for x, y in out)


@settings(max_examples=200, deadline=None)
@given(spans_st, st.integers(1, 12))
def test_the_disjoint_fast_path_gives_the_same(intervals, limit):
    disjoint = _model(intervals, 10**6)  # sorted, overlaps merged
    assert coalesce(disjoint, limit, disjoint=True) == coalesce(disjoint, limit)


def test_the_largest_gaps_survive():
    spans = [(0.0, 1.0), (1.1, 2.0), (10.0, 11.0), (11.05, 12.0), (30.0, 31.0)]
    assert coalesce(spans, 3) == [(0.0, 2.0), (10.0, 12.0), (30.0, 31.0)]
    with pytest.raises(ValueError, match="limit"):
        coalesce(spans, 0)
