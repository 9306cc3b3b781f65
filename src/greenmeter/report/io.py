"""Reading and writing report files: bounded, validated, atomic.

Reading dispatches on ``schema_version`` through a registry, so files written under
an older schema keep loading after a new version is added (register the old model
under its version; :func:`load_report` returns an instance of that model).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from greenmeter.files import write_file
from greenmeter.report.errors import ReportError
from greenmeter.report.limits import MAX_REPORT_BYTES
from greenmeter.report.models import SCHEMA_VERSIONS, UPGRADES, Report
from greenmeter.report.reader import load_document, parse_document, read_bounded

__all__ = [
    "MAX_REPORT_BYTES",
    "SCHEMA_VERSIONS",
    "UPGRADES",
    "load_report",
    "parse_report",
    "read_report_bytes",
    "register_schema",
    "save_report",
    "validate_files",
]


def register_schema(version: str, model: type[BaseModel]) -> None:
    """Make files with ``schema_version == version`` load as ``model``."""
    SCHEMA_VERSIONS[str(version)] = model


def parse_report(data: bytes | str, *, source: str | None = None) -> Report:
    """Validate report JSON text.

    Raises:
        ReportError: the text is not JSON, has no or an unknown ``schema_version``, or
            does not match the schema; the message lists each problem's field path.
    """
    return parse_document(data, SCHEMA_VERSIONS, UPGRADES, source=source)  # type: ignore[return-value]


def load_report(
    path: str | Path, *, max_bytes: int | None = None, timeout_s: float | None = None
) -> Report:
    """Read, check the size of, and validate a report file (see :mod:`.reader`).

    Args:
        path: The JSON file, or a pipe or FIFO that delivers one.
        max_bytes: Refuse larger files (default :data:`MAX_REPORT_BYTES`, 64 MiB).
        timeout_s: Longest a pipe or FIFO may take to deliver the whole report (default
            :data:`~greenmeter.report.reader.READ_TIMEOUT_S`, 10 s).

    Raises:
        ReportError: unreadable, not a file (a directory, a device), too large, too slow,
            too large a structure, not JSON, unknown version or invalid.
    """
    return load_document(  # type: ignore[return-value]
        path, SCHEMA_VERSIONS, UPGRADES, max_bytes=max_bytes, timeout_s=timeout_s
    )


def read_report_bytes(path: str | Path, *, max_bytes: int | None = None) -> bytes:
    """The bytes of a report file, read within the size and time limits, not parsed.

    Raises:
        ReportError: missing, unreadable, too large, too slow, or not a file.
    """
    return read_bounded(path, max_bytes=max_bytes)


def save_report(report: BaseModel, path: str | Path) -> Path:
    """Write ``report`` as JSON, atomically: a reader sees the old file or the new one.

    Uses :func:`greenmeter.files.write_file`: a temporary file in the same directory,
    flushed to disk and renamed over ``path``; a symbolic link's target is written and a
    device or FIFO is written through, never replaced. Returns the path written.

    Raises:
        greenmeter.files.OutputError: the file cannot be written (an ``OSError``).
    """
    if isinstance(report, Report):
        return report.save(path)
    return write_file(path, report.model_dump_json(indent=2) + "\n")


def validate_files(paths: Iterable[str | Path]) -> list[tuple[str, bool, str]]:
    """Check report files; one ``(path, ok, message)`` per file, never raising.

    The message of a valid file summarises it; that of an invalid one says what is
    wrong (the :class:`ReportError` text).
    """
    out: list[tuple[str, bool, str]] = []
    for path in paths:
        name = str(path)
        try:
            report = load_report(path)
        except ReportError as exc:
            out.append((name, False, str(exc)))
            continue
        phases = sum(1 for _ in report.iter_phases())
        out.append(
            (
                name,
                True,
                f"valid schema {report.schema_version} report: run {report.run_id} "
                f"({report.status}), {len(report.components)} component(s), {phases} "
                f"phase(s), {report.totals.it_energy_kwh:.6g} kWh IT energy",
            )
        )
    return out
