"""Read what the footprint needs from every file found: from the index when the file is
unchanged, else from the file itself (which then updates the index).

Bad input is never fatal: a file that is not JSON, not a greenmeter report, of an
unknown schema version, invalid or unreadable is listed with the problem and skipped.
"""

from __future__ import annotations

import os
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from greenmeter.footprint.index import FootprintIndex, IndexEntry
from greenmeter.footprint.record import (
    RunRecord,
    file_schema_version,
    load_slim,
    record_from_report,
    slim_report,
)
from greenmeter.footprint.scan import FoundFile, scan
from greenmeter.report.errors import ReportError
from greenmeter.report.io import load_report, parse_report, read_report_bytes
from greenmeter.report.models import Report

__all__ = ["Collected", "collect", "read_entry"]


@dataclass
class Collected:
    """Every report file's record, and what could not be used.

    Attributes:
        records: One per valid report file.
        skipped: ``(path, problem)`` per file that is not a usable report.
        missing: Inputs that matched nothing.
        found: Files considered.
        read: Files parsed this time.
        from_index: Files whose record (or problem) came from the index.
        stamps: path -> (size, mtime_ns) of every file found.
        slims: Slim reports of the partial reports parsed this time, by path.
    """

    records: list[RunRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    found: int = 0
    read: int = 0
    from_index: int = 0
    stamps: dict[str, tuple[int, int]] = field(default_factory=dict)
    slims: dict[str, bytes] = field(default_factory=dict)

    @property
    def schema_versions(self) -> dict[str, int]:
        """Report files per declared schema version."""
        return dict(sorted(Counter(r.schema_version for r in self.records).items()))


def _problem(exc: ReportError) -> str:
    text = exc.summary
    if exc.problems:
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        text += f": {exc.problems[0]}{more}"
    return text


def read_entry(found: FoundFile) -> IndexEntry:
    """Read and validate one file into an index entry (never raises)."""
    try:
        data = read_report_bytes(found.path)
        report = parse_report(data, source=found.path)
    except ReportError as exc:
        return IndexEntry(found.path, found.size, found.mtime_ns, problem=_problem(exc))
    except (RecursionError, MemoryError, ValueError) as exc:
        return IndexEntry(found.path, found.size, found.mtime_ns, problem=f"cannot read: {exc}")
    record = record_from_report(report, found.path, schema_version=file_schema_version(data))
    slim = slim_report(report) if record.partial else None
    return IndexEntry(found.path, found.size, found.mtime_ns, record=record, slim=slim)


def collect(inputs: Sequence[str | os.PathLike[str]], index: FootprintIndex | None) -> Collected:
    """Records of every report file under ``inputs``, using and updating ``index``.

    Raises:
        greenmeter.footprint.index.IndexDamaged: the index is damaged (the caller
            discards it and calls again, or goes on without one).
    """
    result = scan(inputs)
    out = Collected(missing=list(result.missing), found=len(result.files))
    out.skipped.extend(result.problems)
    out.stamps = {f.path: (f.size, f.mtime_ns) for f in result.files}
    known = {}
    if index is not None:
        known = index.lookup(result.dirs, result.explicit)
    fresh: list[IndexEntry] = []
    for found in result.files:
        row = known.get(found.path)
        if row is not None and row[0] == found.size and row[1] == found.mtime_ns:
            out.from_index += 1
            record, problem = row[2], row[3]
        else:
            entry = read_entry(found)
            out.read += 1
            fresh.append(entry)
            record, problem = entry.record, entry.problem
            if entry.slim is not None:
                out.slims[found.path] = entry.slim
        if record is not None:
            out.records.append(record)
        else:
            out.skipped.append((found.path, problem or "not a report"))
    if index is not None:
        index.store(fresh)
        index.purge(result.dirs, set(out.stamps))
    return out


def part_report(record: RunRecord, collected: Collected, index: FootprintIndex | None) -> Report:
    """The (slim) report of one part of a run, for merging: kept, indexed, or read again.

    Raises:
        ReportError: the part's file can no longer be read.
    """
    blob = collected.slims.get(record.path)
    if blob is None and index is not None:
        blob = index.slim(record.path)
    if blob is not None:
        try:
            return load_slim(blob)
        except (ValueError, zlib.error):
            pass
    return load_report(record.path)
