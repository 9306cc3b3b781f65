"""How large a report may be: the caps on its lists, its nesting and its file size.

The reader (:mod:`greenmeter.report.reader`) refuses files over :data:`MAX_REPORT_BYTES`,
JSON with more than :data:`MAX_JSON_VALUES` values or :data:`MAX_JSON_KEYS` keys, and
phases nested deeper than :data:`MAX_PHASE_DEPTH` or more than :data:`MAX_PHASES` of them.
"""

from __future__ import annotations

__all__ = [
    "MAX_JSON_KEYS",
    "MAX_JSON_VALUES",
    "MAX_LATENCY_SAMPLES",
    "MAX_PHASES",
    "MAX_PHASE_DEPTH",
    "MAX_PHASE_INTERVALS",
    "MAX_REPORT_BYTES",
    "MAX_TIMELINE_POINTS",
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
#: Deepest phase nesting a report holds (a phase path has at most this many names).
MAX_PHASE_DEPTH = 32
#: Most distinct phase paths a report holds.
MAX_PHASES = 10_000
