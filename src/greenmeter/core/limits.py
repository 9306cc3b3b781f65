"""Bounds that keep a run's memory and its report's size fixed, whatever the user does.

The meter enforces them where the input arrives (a phase name, a warning code, a nested
phase), each with one warning, so the report always validates: the report schema
(:mod:`greenmeter.report.models`) accepts exactly these bounds.
"""

from __future__ import annotations

import zlib

__all__ = [
    "LATENCY_RESERVOIR",
    "MAX_INTERVALS",
    "MAX_NAME_CHARS",
    "MAX_PHASES",
    "MAX_PHASE_DEPTH",
    "MAX_WARNINGS",
    "MAX_WARNING_CHARS",
    "OVERFLOW_PHASE",
    "shorten_name",
]

#: Longest phase name or warning code, in characters.
MAX_NAME_CHARS = 512
#: Deepest phase nesting (a phase path has at most this many names).
MAX_PHASE_DEPTH = 32
#: Most distinct phase paths in one run.
MAX_PHASES = 10_000
#: Name of the phase that collects new phase paths once :data:`MAX_PHASES` is reached.
OVERFLOW_PHASE = "(more phases)"
#: Longest warning message kept, in characters.
MAX_WARNING_CHARS = 4096
#: Most warnings kept per run (the rest are counted, so memory stays bounded).
MAX_WARNINGS = 1000
#: Most per-call latencies kept per phase (reservoir sampling beyond that).
LATENCY_RESERVOIR = 10_000
#: Most (start, end) intervals kept per phase; beyond that the closest are coalesced.
MAX_INTERVALS = 512


def shorten_name(name: str) -> str:
    """``name`` cut to :data:`MAX_NAME_CHARS` characters.

    Distinct long names stay distinct: the cut keeps the start and ends with ``~`` and
    eight hex digits of a hash of the whole name.
    """
    if len(name) <= MAX_NAME_CHARS:
        return name
    digest = zlib.crc32(name.encode("utf-8", "surrogatepass")) & 0xFFFFFFFF
    return f"{name[: MAX_NAME_CHARS - 9]}~{digest:08x}"
