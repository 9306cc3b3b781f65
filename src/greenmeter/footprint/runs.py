"""One record per run: repeated checkpoints counted once, ranks and nodes merged.

Reports that share a run id are parts of one run. The rules:

* **Repeated checkpoints.** Reports that cover the same members (``host#rank``) are
  copies of one part taken at different times (a checkpoint copied before the final
  report, a synced folder): the latest is kept (latest end, then the most final status,
  then the most energy).
* **Covered parts.** A part whose members are all in another part's (a rank's own file
  beside the report gathered on rank 0), or that started inside an earlier segment of a
  resumed part (whose totals already include it), is left out.
* **Ranks and nodes.** The parts left are merged with
  :func:`greenmeter.report.merge_reports` (each device counted once), so the run counts
  as it would had it been measured as one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from greenmeter.footprint.record import RunRecord, record_from_report

if TYPE_CHECKING:  # the report package loads only when a run must be merged
    from greenmeter.report.models import Report

__all__ = ["Combined", "MergeCache", "combine_runs"]

_FINALITY = {"running": 0, "interrupted": 1, "failed": 1, "complete": 2}
#: Slack (seconds) when matching a part's start with an earlier segment's span.
_SEGMENT_SLACK_S = 1.0


class MergeCache(Protocol):
    """Where merged runs are kept between footprints (the index)."""

    def merged(self, run_id: str, fingerprint: str) -> RunRecord | None: ...

    def store_merged(self, record: RunRecord, fingerprint: str) -> None: ...


@dataclass
class Combined:
    """The runs, and what was done to get them."""

    runs: list[RunRecord] = field(default_factory=list)
    checkpoints_dropped: int = 0
    parts_merged: int = 0
    notes: list[str] = field(default_factory=list)


def _rank(r: RunRecord) -> tuple[float, int, float, float, str]:
    return (r.end_ts, _FINALITY.get(r.status, 0), r.it_energy_j, r.duration_s, r.path)


def _covers(q: RunRecord, p: RunRecord) -> bool:
    """Whether part ``q`` already counts part ``p``."""
    if set(p.part) < set(q.part):
        return True
    return q.end_ts >= p.end_ts and any(
        a - _SEGMENT_SLACK_S <= p.start_ts <= b + _SEGMENT_SLACK_S for a, b in q.segments
    )


def _parts(records: Sequence[RunRecord]) -> tuple[list[RunRecord], int]:
    """The parts that count, and how many copies were dropped."""
    best: dict[tuple[str, ...], RunRecord] = {}
    for r in records:
        have = best.get(r.part)
        if have is None or _rank(r) > _rank(have):
            best[r.part] = r
    parts = sorted(best.values(), key=lambda r: (r.start_ts, r.part))
    kept = [
        p
        for p in parts
        if not any(q is not p and _covers(q, p) and not _covers(p, q) for q in parts)
    ]
    return kept, len(records) - len(best)


def combine_runs(
    records: Sequence[RunRecord],
    load: Callable[[RunRecord], Report],
    *,
    fingerprint: Callable[[Sequence[RunRecord]], str] | None = None,
    cache: MergeCache | None = None,
) -> Combined:
    """One record per run id (runs seen once first, in the order given, then the others).

    Args:
        records: Every report file's record.
        load: Gives the (slim) report of a part, for merging.
        fingerprint: Identifies a set of parts' files (for ``cache``).
        cache: Keeps merged runs, so an unchanged run is not merged again.
    """
    out = Combined()
    first: dict[str, RunRecord] = {}
    more: dict[str, list[RunRecord]] = {}
    for r in records:
        have = first.setdefault(r.run_id, r)
        if have is not r:
            more.setdefault(r.run_id, [have]).append(r)
    out.runs = [r for run_id, r in first.items() if run_id not in more]
    for run_id, group in more.items():
        parts, dropped = _parts(group)
        out.checkpoints_dropped += dropped
        if len(parts) == 1:
            out.runs.append(parts[0])
            continue
        out.parts_merged += len(parts)
        out.runs.append(_merged(run_id, parts, load, fingerprint, cache, out.notes))
    return out


def _merged(
    run_id: str,
    parts: Sequence[RunRecord],
    load: Callable[[RunRecord], Report],
    fingerprint: Callable[[Sequence[RunRecord]], str] | None,
    cache: MergeCache | None,
    notes: list[str],
) -> RunRecord:
    fp = fingerprint(parts) if fingerprint is not None else None
    if cache is not None and fp is not None:
        hit = cache.merged(run_id, fp)
        if hit is not None:
            return hit
    from greenmeter.report import merge
    from greenmeter.report.errors import ReportError

    try:
        merged = merge.merge_reports([load(p) for p in parts])
    except (ReportError, OSError) as exc:
        biggest = max(parts, key=lambda p: p.it_energy_j)
        notes.append(
            f"run {run_id}: its {len(parts)} reports could not be merged ({exc}); only "
            f"{biggest.path} is counted"
        )
        return biggest
    record = record_from_report(
        merged, parts[0].path, schema_version=parts[0].schema_version, files=len(parts)
    )
    if cache is not None and fp is not None:
        cache.store_merged(record, fp)
    return record
