"""Keeping a report within what the reader accepts (see :mod:`greenmeter.report.limits`).

Three jobs: the phase paths of a snapshot (refused beyond the nesting and count limits,
names shortened when they would be too many characters in all), the length of the power
timeline, and the last check of a built or merged report against the reader's limits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from greenmeter.report.errors import ReportError, short_repr
from greenmeter.report.inputs import Warnings
from greenmeter.report.limits import (
    MAX_JSON_KEYS,
    MAX_JSON_VALUES,
    MAX_PHASE_DEPTH,
    MAX_PHASES,
    MAX_REPORT_BYTES,
    MAX_TIMELINE_POINTS,
    MIN_NAME_CHARS,
    REPORT_NAME_CHARS,
    REPORT_TIMELINE_VALUES,
    share_budget,
)
from greenmeter.report.reader import count_json_values

__all__ = ["MAX_NAME_CHARS", "check_readable", "phase_paths", "shorten_name", "timeline_points"]

#: Longest phase name the schema accepts.
MAX_NAME_CHARS = 512
_HASH_CHARS = 16


def shorten_name(name: str, limit: int) -> str:
    """``name`` cut to ``limit`` characters: its start, ``~`` and 16 hex digits of its hash.

    The same name always gives the same result, and two names give the same result only
    if their SHA-1 hashes share their first 64 bits.
    """
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    return f"{name[: max(1, limit - _HASH_CHARS - 1)]}~{digest}"


def phase_paths(records: Sequence[Any], warn: Warnings) -> list[tuple[str, ...]]:
    """The path each phase record has in the report.

    Raises:
        ReportError: a phase nested deeper than ``MAX_PHASE_DEPTH``, or more than
            ``MAX_PHASES`` distinct phases.
    """
    paths = [tuple(str(name) for name in rec.path) or ("phase",) for rec in records]
    deepest = max(paths, key=len, default=())
    if len(deepest) > MAX_PHASE_DEPTH:
        raise ReportError(
            f"phase {short_repr('/'.join(deepest))} is nested {len(deepest)} levels deep; a "
            f"report holds phases at most {MAX_PHASE_DEPTH} levels deep: flatten the nesting "
            "(a recursive function under meter.measure nests one level per call)"
        )
    distinct = len(set(paths))
    if distinct > MAX_PHASES:
        raise ReportError(
            f"{distinct} distinct phases; a report holds at most {MAX_PHASES}: reuse phase "
            "names (a name made from a loop counter makes a new phase per iteration; put the "
            "counter in the phase's attributes instead)"
        )
    lengths = [len(name) for path in paths for name in (*path, path[-1])]
    limit = MAX_NAME_CHARS
    if sum(lengths) > REPORT_NAME_CHARS:
        limit = share_budget(lengths, REPORT_NAME_CHARS, MAX_NAME_CHARS, floor=MIN_NAME_CHARS)
    if max(lengths, default=0) <= limit:
        return paths
    warn.add(
        "report.names_shortened",
        f"phase names longer than {limit} characters were shortened to their first "
        f"{limit - _HASH_CHARS - 1} characters, '~' and a hash (a report holds names of at "
        f"most {MAX_NAME_CHARS} characters, and {REPORT_NAME_CHARS} characters of names in all)",
    )
    cache: dict[str, str] = {}
    return [tuple(cache.setdefault(n, shorten_name(n, limit)) for n in path) for path in paths]


def timeline_points(series_width: int, series: int = 1) -> int:
    """Most points each of ``series`` power-timeline series may keep.

    Args:
        series_width: Numbers per point (the time and one power per component).
        series: How many series share the report's budget.
    """
    per_series = REPORT_TIMELINE_VALUES // max(1, series * series_width)
    return max(2, min(MAX_TIMELINE_POINTS, per_series))


def check_readable(report: Any, what: str) -> None:
    """Raise when ``report`` would not load back (too large a file or too many values).

    Raises:
        ReportError: what is over which limit, and what makes the report that large.
    """
    text = report.model_dump_json().encode("utf-8", "surrogatepass")
    values, keys = count_json_values(text)
    problems = []
    if len(text) > MAX_REPORT_BYTES:
        problems.append(f"{len(text):,} bytes (at most {MAX_REPORT_BYTES:,})")
    if values > MAX_JSON_VALUES:
        problems.append(f"{values:,} JSON values (at most {MAX_JSON_VALUES:,})")
    if keys > MAX_JSON_KEYS:
        problems.append(f"{keys:,} JSON keys (at most {MAX_JSON_KEYS:,})")
    if problems:
        phases = sum(1 for _ in report.iter_phases())
        raise ReportError(
            f"{what} would not load back: {' and '.join(problems)}. It has {phases} phases "
            f"and {len(report.components)} components, each phase holding a figure per "
            "component: measure fewer phases (or fewer hosts in one merged report)"
        )
