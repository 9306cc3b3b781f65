"""Make a footprint: collect the records, combine them into runs, sum them up.

The index is an accelerator, never a requirement: when it is damaged it is moved aside
and rebuilt (with a warning), and when it cannot be used at all (an unwritable cache
directory, a lock held too long by another process) the footprint reads every file.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

from greenmeter.footprint.collect import Collected, collect, part_report
from greenmeter.footprint.index import (
    FootprintIndex,
    IndexDamaged,
    IndexUnavailable,
    default_index_path,
    fingerprint,
)
from greenmeter.footprint.models import FileCounts, FootprintSummary
from greenmeter.footprint.record import RunRecord
from greenmeter.footprint.runs import Combined, combine_runs
from greenmeter.footprint.summarize import Filters, summarize

__all__ = ["DEFAULT_INDEX", "FootprintError", "footprint"]

#: Pass as ``index`` to use the default index (in greenmeter's cache directory).
DEFAULT_INDEX: Literal["default"] = "default"


class FootprintError(ValueError):
    """The footprint cannot be made (an input matches nothing); the message says which."""


def _open(path: Path, warnings: list[str]) -> FootprintIndex | None:
    """The index at ``path``; a damaged one is moved aside and started afresh."""
    try:
        return FootprintIndex(path)
    except IndexDamaged as exc:
        return _rebuild(path, exc, warnings)
    except IndexUnavailable as exc:
        warnings.append(f"footprint index not used ({exc}); every report is read")
        return None


def _rebuild(path: Path, exc: Exception, warnings: list[str]) -> FootprintIndex | None:
    aside = FootprintIndex.discard(path)
    where = f"; the damaged file is kept as {aside}" if aside else ""
    warnings.append(f"footprint index damaged ({exc}); rebuilt from the reports{where}")
    try:
        return FootprintIndex(path)
    except IndexUnavailable as again:
        warnings.append(f"footprint index not used ({again}); every report is read")
        return None


def _gather(
    inputs: Sequence[str | os.PathLike[str]], db: FootprintIndex | None
) -> tuple[Collected, Combined]:
    collected = collect(inputs, db)
    if collected.missing:
        raise FootprintError(
            "no file or directory matches "
            + ", ".join(repr(m) for m in collected.missing)
            + " (give report files, directories or globs such as 'runs/**/*.json')"
        )

    def stamps(parts: Sequence[RunRecord]) -> str:
        return fingerprint((p.path, *collected.stamp(p.path)) for p in parts)

    combined = combine_runs(
        collected.records,
        lambda r: part_report(r, collected, db),
        fingerprint=stamps,
        cache=db,
    )
    return collected, combined


def footprint(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    group_by: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, Sequence[str]] | None = None,
    index: str | os.PathLike[str] | None = DEFAULT_INDEX,
    include_runs: bool = False,
    warnings: list[str] | None = None,
) -> FootprintSummary:
    """Add up every report under ``inputs``: per group of tags and in total.

    Args:
        inputs: Report files, directories (searched recursively for ``*.json``) and globs.
        group_by: Tags to group by (``["experiment", "model"]``); runs without a tag are
            grouped under ``"(none)"``.
        since: Count runs that started at or after this time (timezone-aware).
        until: Count runs that started before this time.
        where: Count runs whose tag has one of the given values, for every tag given.
        index: The index database file; ``"default"`` for ``footprint-index.sqlite3`` in
            greenmeter's cache directory; None to read every file without an index.
        include_runs: List every run counted in the summary.
        warnings: Receives one line per problem with the index (damaged and rebuilt,
            not usable).

    Raises:
        FootprintError: an input matches no file or directory.
    """
    # A footprint makes a few objects per report and frees them together at the end; the
    # cycle collector's passes over 10^5 live records would cost a fifth of a warm run.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _footprint(inputs, group_by, since, until, where, index, include_runs, warnings)
    finally:
        if was_enabled:
            gc.enable()


def _footprint(
    inputs: Sequence[str | os.PathLike[str]],
    group_by: Sequence[str],
    since: datetime | None,
    until: datetime | None,
    where: Mapping[str, Sequence[str]] | None,
    index: str | os.PathLike[str] | None,
    include_runs: bool,
    warnings: list[str] | None,
) -> FootprintSummary:
    notes = warnings if warnings is not None else []
    path = default_index_path() if index == DEFAULT_INDEX else index
    db = _open(Path(path), notes) if path is not None else None
    try:
        try:
            collected, combined = _gather(inputs, db)
        except IndexUnavailable as exc:
            if db is not None:
                db.close()
            if isinstance(exc, IndexDamaged) and path is not None:
                db = _rebuild(Path(path), exc, notes)
            else:
                db = None
                notes.append(f"footprint index not used ({exc}); every report is read")
            collected, combined = _gather(inputs, db)
    finally:
        if db is not None:
            db.close()
    counts = FileCounts(
        found=collected.found,
        reports=len(collected.records),
        read=collected.read,
        from_index=collected.from_index,
        skipped=len(collected.skipped),
        schema_versions=collected.schema_versions,
        checkpoints_dropped=combined.checkpoints_dropped,
        parts_merged=combined.parts_merged,
    )
    return summarize(
        combined.runs,
        inputs=[os.fspath(i) for i in inputs],
        files=counts,
        group_by=list(group_by),
        filters=Filters(since=since, until=until, where=dict(where or {})),
        skipped=sorted(collected.skipped),
        notes=combined.notes,
        include_runs=include_runs,
    )
