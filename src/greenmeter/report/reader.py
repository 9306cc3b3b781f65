"""Reading report files: bounded in size, time and memory, validated, with clear errors.

Generic over the model: the caller passes the registry of schema versions, so this module
imports no report model (:mod:`greenmeter.report.models` uses it for ``Report.load``;
:mod:`greenmeter.report.io` is the public face).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from greenmeter.report.errors import ReportError, format_validation_error
from greenmeter.report.limits import MAX_REPORT_BYTES

__all__ = ["load_document", "parse_document", "read_bounded"]


def _no_constants(token: str) -> Any:
    raise ValueError(f"{token} is not allowed in a report (numbers must be finite)")


def _known(versions: Mapping[str, Any], upgrades: Mapping[str, str]) -> str:
    return ", ".join(repr(v) for v in sorted({*versions, *upgrades}))


def read_bounded(path: str | Path, *, max_bytes: int | None = None) -> bytes:
    """The bytes of a report file, refusing one over ``max_bytes`` (default 64 MiB).

    Raises:
        ReportError: unreadable or too large.
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
    return data


def parse_document(
    data: bytes | str,
    versions: Mapping[str, type[BaseModel]],
    upgrades: Mapping[str, str],
    *,
    source: str | None = None,
) -> BaseModel:
    """Validate report JSON text against the model its ``schema_version`` names.

    Args:
        data: The JSON text.
        versions: Schema version -> model.
        upgrades: Older version -> the version its files load as (after renaming).
        source: The file name, for messages.

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
            "no schema_version field; is this a greenmeter report? "
            f"(known versions: {_known(versions, upgrades)})",
            path=source,
        )
    if isinstance(version, str) and version in upgrades and version not in versions:
        head["schema_version"] = version = upgrades[version]
        data = json.dumps(head).encode("utf-8")
    model = versions.get(version) if isinstance(version, str) else None
    if model is None:
        raise ReportError(
            f"unknown schema_version {version!r}; this greenmeter reads "
            f"{_known(versions, upgrades)}. A newer greenmeter may read it.",
            path=source,
        )
    try:
        return model.model_validate_json(data, strict=True)
    except ValidationError as exc:
        problems = format_validation_error(exc)
        raise ReportError(
            f"not a valid schema {version} report ({len(problems)} problem(s))",
            problems,
            path=source,
        ) from None
    except (RecursionError, ValueError) as exc:
        raise ReportError(f"could not validate: {exc}", path=source) from None


def load_document(
    path: str | Path,
    versions: Mapping[str, type[BaseModel]],
    upgrades: Mapping[str, str],
    *,
    max_bytes: int | None = None,
) -> BaseModel:
    """Read, check the size of, and validate a report file (see :func:`parse_document`).

    Raises:
        ReportError: unreadable, too large, not JSON, unknown version or invalid.
    """
    name = str(path)
    data = read_bounded(path, max_bytes=max_bytes)
    if not data.strip():
        raise ReportError("the file is empty", path=name)
    return parse_document(data, versions, upgrades, source=name)
