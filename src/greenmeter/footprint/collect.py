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
from typing import TYPE_CHECKING

from greenmeter.footprint.index import FootprintIndex, IndexEntry
from greenmeter.footprint.record import (
    CarbonSetting,
    RunRecord,
    file_schema_version,
    load_slim,
    record_from_report,
    slim_report,
)
from greenmeter.footprint.scan import FoundFile, scan

if TYPE_CHECKING:  # the report package loads only when a file must be read
    from greenmeter.report.errors import ReportError
    from greenmeter.report.models import Report

__all__ = ["Collected", "collect", "part_report", "read_entry"]

#: Files read before their index entries are written (bounds memory on a cold run).
_STORE_BATCH = 2000


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
        files: Every file found (path, size, modification time).
        stamps: path -> (size, mtime_ns), see :meth:`stamp`.
        slims: Slim reports of the partial reports parsed this time, by path.
    """

    records: list[RunRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    found: int = 0
    read: int = 0
    from_index: int = 0
    files: list[FoundFile] = field(default_factory=list)
    slims: dict[str, bytes] = field(default_factory=dict)
    stamps: dict[str, tuple[int, int]] = field(default_factory=dict)

    def stamp(self, path: str) -> tuple[int, int]:
        """(size, mtime_ns) of a file found, (0, 0) for another path.

        Kept from the start for the parts of larger runs (the files merges need); for
        any other file, looked up among all the files found (once).
        """
        got = self.stamps.get(path)
        if got is None:
            if len(self.stamps) < len(self.files):
                self.stamps = {f.path: (f.size, f.mtime_ns) for f in self.files}
            got = self.stamps.get(path, (0, 0))
        return got

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
    from greenmeter.report import io
    from greenmeter.report.errors import ReportError

    try:
        data = io.read_report_bytes(found.path)
        report = io.parse_report(data, source=found.path)
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
        greenmeter.footprint.index.IndexUnavailable: the index is damaged or cannot be
            used (the caller discards it and calls again, or goes on without one).
    """
    result = scan(inputs)
    out = Collected(missing=list(result.missing), found=len(result.files), files=result.files)
    out.skipped.extend(result.problems)
    known = index.lookup(result.dirs, result.explicit) if index is not None else {}
    fresh: list[IndexEntry] = []
    shared_tags: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    shared_carbon: dict[CarbonSetting, CarbonSetting] = {}
    for found in result.files:
        row = known.pop(found.path, None)
        if (
            row is not None
            and row[0] == found.size
            and row[1] == found.mtime_ns
            and (row[2] is not None or row[3] is not None)
        ):
            out.from_index += 1
            record, problem = row[2], row[3]
        else:
            entry = read_entry(found)
            out.read += 1
            record, problem = entry.record, entry.problem
            if record is not None:  # equal tags and carbon settings: one shared object
                key = tuple(sorted(record.tags.items()))
                carbon = record.carbon
                if carbon is not None:
                    carbon = shared_carbon.setdefault(carbon, carbon)
                record = record._replace(
                    tags=shared_tags.setdefault(key, record.tags), carbon=carbon
                )
            if entry.slim is not None:
                out.slims[found.path] = entry.slim
            if index is not None:
                fresh.append(entry)
                if len(fresh) >= _STORE_BATCH:
                    index.store(fresh)
                    fresh = []
        if record is not None:
            out.records.append(record)
            if record.partial:
                out.stamps[found.path] = (found.size, found.mtime_ns)
        else:
            out.skipped.append((found.path, problem or "not a report"))
    if index is not None:
        index.store(fresh)
        index.forget(known)  # rows under the folders walked whose files are gone
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
    from greenmeter.report.io import load_report

    return load_report(record.path)
