"""How large a report may be: the caps on its lists, its nesting and its file size."""

from __future__ import annotations

__all__ = [
    "MAX_LATENCY_SAMPLES",
    "MAX_PHASES",
    "MAX_PHASE_DEPTH",
    "MAX_PHASE_INTERVALS",
    "MAX_REPORT_BYTES",
    "MAX_TIMELINE_POINTS",
]

#: Largest report file accepted (bytes). A bounded report is far smaller than this.
MAX_REPORT_BYTES = 64 * 1024 * 1024
#: Most points of one power-timeline series.
MAX_TIMELINE_POINTS = 4096
#: Most active intervals one phase keeps.
MAX_PHASE_INTERVALS = 1024
#: Most latency samples one phase keeps.
MAX_LATENCY_SAMPLES = 4096
#: Deepest phase nesting a report holds (a phase path has at most this many names).
MAX_PHASE_DEPTH = 32
#: Most distinct phase paths a report holds.
MAX_PHASES = 10_000
