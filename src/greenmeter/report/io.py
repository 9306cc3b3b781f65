"""Reading and writing report files: size-limited, validated, atomic.

Reading dispatches on ``schema_version`` through a registry, so files written under
an older schema keep loading after a new version is added (register the old model
under its version; :func:`load_report` returns an instance of that model).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from greenmeter.files import write_file
from greenmeter.report.errors import ReportError, format_validation_error
from greenmeter.report.models import SCHEMA_VERSION, Report

__all__ = [
    "MAX_REPORT_BYTES",
    "SCHEMA_VERSIONS",
    "load_report",
    "parse_report",
    "read_report_bytes",
    "register_schema",
    "save_report",
    "validate_files",
]

#: Largest report file accepted (bytes). A bounded report is far smaller than this.
MAX_REPORT_BYTES = 64 * 1024 * 1024

#: Known schema versions and the model that validates each.
SCHEMA_VERSIONS: dict[str, type[BaseModel]] = {SCHEMA_VERSION: Report}

#: Older versions whose files load as the current one after a change of their JSON.
#: Version 2 only added fields with defaults (``tags``), so a version 1 file needs only
#: its version renamed.
UPGRADES: dict[str, str] = {"1": SCHEMA_VERSION}


def register_schema(version: str, model: type[BaseModel]) -> None:
    """Make files with ``schema_version == version`` load as ``model``."""
    SCHEMA_VERSIONS[str(version)] = model


def _no_constants(token: str) -> Any:
    raise ValueError(f"{token} is not allowed in a report (numbers must be finite)")


def _known() -> str:
    return ", ".join(repr(v) for v in sorted({*SCHEMA_VERSIONS, *UPGRADES}))


def parse_report(data: bytes | str, *, source: str | None = None) -> Report:
    """Validate report JSON text.

    Raises:
        ReportError: the text is not JSON, has no or an unknown ``schema_version``, or
            does not match the schema; the message lists each problem's field path.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogatepass")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportError(
            f"not UTF-8 text (bad byte at offset {exc.start}); a report is a UTF-8 JSON file",
            path=source,
        ) from None
    try:
        head = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise ReportError("JSON is nested too deeply to be a report", path=source) from None
    except ValueError as exc:
        raise ReportError(f"not valid JSON: {exc}", path=source) from None
    if not isinstance(head, dict):
        raise ReportError(
            f"the top level is a JSON {type(head).__name__}; expected an object", path=source
        )
    version = head.get("schema_version")
    if version is None:
        raise ReportError(
            f"no schema_version field; is this a greenmeter report? (known versions: {_known()})",
            path=source,
        )
    if isinstance(version, str) and version in UPGRADES and version not in SCHEMA_VERSIONS:
        head["schema_version"] = version = UPGRADES[version]
        data = json.dumps(head).encode("utf-8")
    model = SCHEMA_VERSIONS.get(version) if isinstance(version, str) else None
    if model is None:
        raise ReportError(
            f"unknown schema_version {version!r}; this greenmeter reads {_known()}. "
            "A newer greenmeter may read it.",
            path=source,
        )
    try:
        return model.model_validate_json(data, strict=True)  # type: ignore[return-value]
    except ValidationError as exc:
        problems = format_validation_error(exc)
        raise ReportError(
            f"not a valid schema {version} report ({len(problems)} problem(s))",
            problems,
            path=source,
        ) from None
    except (RecursionError, ValueError) as exc:
        raise ReportError(f"could not validate: {exc}", path=source) from None


def load_report(path: str | Path, *, max_bytes: int | None = None) -> Report:
    """Read, check the size of, and validate a report file.

    Args:
        path: The JSON file.
        max_bytes: Refuse larger files (default :data:`MAX_REPORT_BYTES`, 64 MiB).

    Raises:
        ReportError: unreadable, too large, not JSON, unknown version or invalid.
    """
    return parse_report(read_report_bytes(path, max_bytes=max_bytes), source=str(path))


def read_report_bytes(path: str | Path, *, max_bytes: int | None = None) -> bytes:
    """The bytes of a report file, size-checked but not parsed (see :func:`load_report`).

    Raises:
        ReportError: unreadable, too large or empty.
    """
    limit = MAX_REPORT_BYTES if max_bytes is None else int(max_bytes)
    name = str(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > limit:
                raise ReportError(
                    f"file is {size} bytes, over the {limit}-byte limit for a report; "
                    "it is not a greenmeter report or it is damaged",
                    path=name,
                )
            data = fh.read(limit + 1)
    except ReportError:
        raise
    except OSError as exc:
        raise ReportError(f"cannot read the file: {exc.strerror or exc}", path=name) from None
    if len(data) > limit:
        raise ReportError(f"file is over the {limit}-byte limit for a report", path=name)
    if not data.strip():
        raise ReportError("the file is empty", path=name)
    return data


def save_report(report: BaseModel, path: str | Path) -> Path:
    """Write ``report`` as JSON, atomically: a reader sees the old file or the new one.

    Uses :func:`greenmeter.files.write_file`: a temporary file in the same directory,
    flushed to disk and renamed over ``path``; a symbolic link's target is written and a
    device or FIFO is written through, never replaced. Returns the path written.

    Raises:
        greenmeter.files.OutputError: the file cannot be written (an ``OSError``).
    """
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
