"""How large a report may be: the caps on its lists, its nesting and its file size.

The reader (:mod:`greenmeter.report.reader`) refuses files over :data:`MAX_REPORT_BYTES`
and JSON with more than :data:`MAX_JSON_VALUES` values or :data:`MAX_JSON_KEYS` keys,
phases nested deeper than
:data:`MAX_PHASE_DEPTH` or more than :data:`MAX_PHASES` of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from greenmeter.core.limits import MAX_PHASE_DEPTH, MAX_PHASES

__all__ = [
    "INDENT_MAX_BYTES",
    "MAX_JSON_KEYS",
    "MAX_JSON_VALUES",
    "MAX_LATENCY_SAMPLES",
    "MAX_PHASES",
    "MAX_PHASE_DEPTH",
    "MAX_PHASE_INTERVALS",
    "MAX_REPORT_BYTES",
    "MAX_TIMELINE_POINTS",
    "MIN_NAME_CHARS",
    "REPORT_INTERVALS",
    "REPORT_LATENCY_SAMPLES",
    "REPORT_NAME_CHARS",
    "REPORT_TIMELINE_VALUES",
    "share_budget",
]

#: Largest report file accepted (bytes). A bounded report is far smaller than this.
MAX_REPORT_BYTES = 64 * 1024 * 1024
#: Most JSON values (numbers, strings, lists, objects...) a report file may hold. A
#: report with 10,000 phases holds about a million.
MAX_JSON_VALUES = 4_000_000
#: Most object keys a report file may hold (a key costs the parser about 220 bytes, a
#: value 40 to 70). A report with 10,000 phases holds about 700,000.
MAX_JSON_KEYS = 1_500_000
#: Most points of one power-timeline series.
MAX_TIMELINE_POINTS = 4096
#: Most active intervals one phase keeps.
MAX_PHASE_INTERVALS = 1024
#: Most latency samples one phase keeps.
MAX_LATENCY_SAMPLES = 4096
# MAX_PHASE_DEPTH (deepest nesting: names in a phase path) and MAX_PHASES (distinct phase
# paths) are the meter's bounds (greenmeter.core.limits): the reader accepts exactly them.
#: Reports whose compact JSON is at most this large are written indented (bytes).
INDENT_MAX_BYTES = 1024 * 1024
#: Intervals all the phases of a report keep together.
REPORT_INTERVALS = 65_536
#: Latency samples all the phases of a report keep together.
REPORT_LATENCY_SAMPLES = 131_072
#: Numbers (times and powers) all the power-timeline series of a report hold together.
REPORT_TIMELINE_VALUES = 262_144
#: Characters all the stored phase names of a report hold together (a phase stores its
#: name and each name of its path).
REPORT_NAME_CHARS = 8 * 1024 * 1024
#: Shortest a phase name is made when names are shortened.
MIN_NAME_CHARS = 24


def share_budget(sizes: Sequence[int], budget: int, cap: int, floor: int = 1) -> int:
    """How many items each of several lists may keep so that all fit a budget.

    Returns the largest level ``n`` (``floor <= n <= cap``) such that
    ``sum(min(size, n) for size in sizes) <= budget``: lists shorter than ``n`` keep
    everything and leave their share to the longer ones. ``floor`` wins over the budget.

    >>> share_budget([10, 10], budget=12, cap=100)
    6
    >>> share_budget([1, 100], budget=12, cap=100)
    11
    """
    cap = max(floor, cap)
    if sum(min(s, cap) for s in sizes) <= budget:
        return cap
    ordered = sorted(sizes)
    used = 0  # items of the lists shorter than the level being tried
    for k, size in enumerate(ordered):
        level = (budget - used) // (len(ordered) - k)
        if level < size:
            return max(floor, min(cap, level))
        used += size
    return cap  # pragma: no cover - the first test returned already
