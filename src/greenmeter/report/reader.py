"""Reading report files: bounded in size, time and memory, validated, with clear errors.

Every step is bounded, so no file can hang the reader or exhaust the machine:

1. **The file.** A regular file is read only when it is at most ``max_bytes``
   (:data:`~greenmeter.report.limits.MAX_REPORT_BYTES`, 64 MiB). A pipe or FIFO
   (``<(zcat run.json.gz)``, ``/dev/stdin``) is read up to the same size and for at most
   :data:`READ_TIMEOUT_S` seconds in all, so a FIFO nobody writes to is an error, not a
   hang. A directory, a device (``/dev/zero``, a terminal) or a socket is refused at once.
2. **The text.** Before anything is parsed, its JSON values and object keys are counted
   at C speed (:func:`count_json_values`); more than
   :data:`~greenmeter.report.limits.MAX_JSON_VALUES` values or
   :data:`~greenmeter.report.limits.MAX_JSON_KEYS` keys is refused, which bounds the
   parser's memory (a key costs it about 220 bytes, a value 40 to 70). It must be UTF-8.
3. **The JSON.** Parsed by the standard library; NaN, infinities and numbers too large
   for a float are refused, and a key that appears twice in one object is reported with
   its name (JSON allows it, silently keeping the last value; a report never has one).
4. **The shape.** :func:`greenmeter.report.shape.check_shape` walks the parsed JSON along
   the models and rejects what would make schema validation costly (missing fields,
   arrays where objects belong, bad values in large lists, phases nested or counted
   beyond the limits), with fixed memory.
5. **The schema.** pydantic validates the text (strict mode).

Values echoed in messages are shortened (:func:`greenmeter.report.errors.short_repr`).

Generic over the model: the caller passes the registry of schema versions, so this module
imports no report model (:mod:`greenmeter.report.models` uses it for ``Report.load``;
:mod:`greenmeter.report.io` is the public face).
"""

from __future__ import annotations

import json
import math
import os
import re
import select
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from greenmeter.report.errors import ReportError, format_validation_error, short_repr
from greenmeter.report.limits import (
    MAX_JSON_KEYS,
    MAX_JSON_VALUES,
    MAX_PHASE_DEPTH,
    MAX_PHASES,
    MAX_REPORT_BYTES,
)
from greenmeter.report.shape import Duplicates, check_shape

__all__ = ["READ_TIMEOUT_S", "count_json_values", "load_document", "parse_document", "read_bounded"]

#: Longest a pipe or FIFO may take to deliver a whole report (seconds).
READ_TIMEOUT_S = 10.0

#: A JSON string once its escaped backslashes and quotes are gone, or an unterminated one
#: up to the end of the text: one character class, linear time on any input.
_STRING = re.compile(rb'"[^"]*(?:"|\Z)')
_READ_CHUNK = 1 << 20
_FILE_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _no_constants(token: str) -> Any:
    raise ValueError(f"{token} is not allowed in a report (numbers must be finite)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {short_repr(text)} is too large (numbers must be finite)")
    return value


def _known(versions: Mapping[str, Any], upgrades: Mapping[str, str]) -> str:
    return ", ".join(repr(v) for v in sorted({*versions, *upgrades}))


# --------------------------------------------------------------------------------------
# the file


def read_bounded(
    path: str | Path, *, max_bytes: int | None = None, timeout_s: float | None = None
) -> bytes:
    """The bytes of a report file, read within a size and a time limit.

    Args:
        path: A regular file, or a pipe or FIFO.
        max_bytes: Refuse more than this (default :data:`MAX_REPORT_BYTES`, 64 MiB).
        timeout_s: Longest a pipe or FIFO may take in all (default :data:`READ_TIMEOUT_S`).

    Raises:
        ReportError: missing, unreadable, too large, too slow, or not a file at all
            (a directory, a device, a socket); the message says which and what to give.
    """
    limit = MAX_REPORT_BYTES if max_bytes is None else int(max_bytes)
    timeout = READ_TIMEOUT_S if timeout_s is None else float(timeout_s)
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ReportError(
            f"cannot read the file: {exc.strerror or exc}; give the path of a report's JSON file",
            path=name,
        ) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ReportError(
                "cannot read the file: it is a directory; give the path of a report's JSON file",
                path=name,
            )
        if stat.S_ISREG(info.st_mode):
            if info.st_size > limit:
                raise ReportError(
                    f"file is {info.st_size} bytes, over the {limit}-byte limit for a report; "
                    "it is not a greenmeter report or it is damaged",
                    path=name,
                )
            os.set_blocking(fd, True)
            data = _read_file(fd, limit)
        elif stat.S_ISFIFO(info.st_mode):
            data = _read_pipe(fd, limit, timeout, name)
        else:
            kind = next((k for test, k in _FILE_KINDS if test(info.st_mode)), "not a regular file")
            raise ReportError(
                f"cannot read the file: it is {kind}, not a file; give the path of a report's "
                "JSON file",
                path=name,
            )
    except OSError as exc:
        raise ReportError(f"cannot read the file: {exc.strerror or exc}", path=name) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ReportError(
            f"file is over the {limit}-byte limit for a report; it is not a greenmeter "
            "report or it is damaged",
            path=name,
        )
    return data


def _read_file(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = os.read(fd, min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _read_pipe(fd: int, limit: int, timeout: float, name: str) -> bytes:
    """Read a pipe until its writer closes it, at most ``limit + 1`` bytes, ``timeout`` s."""
    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        left = deadline - time.monotonic()
        if left <= 0:
            what = f"only {total} bytes arrived" if total else "nothing arrived"
            raise ReportError(
                f"cannot read the file: it is a pipe or FIFO and {what} within {timeout:g} s; "
                "write the whole report to it and close it, or give the path of a report file",
                path=name,
            )
        if not poller.poll(max(1, int(left * 1000))):
            continue
        try:
            chunk = os.read(fd, min(_READ_CHUNK, limit + 1 - total))
        except BlockingIOError:
            continue
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------------------
# the text


def count_json_values(data: bytes) -> tuple[int, int]:
    """Upper bounds of the number of JSON values and of object keys in ``data``.

    Every value but the first either follows a comma or is the first item of a non-empty
    list or object, and every key is followed by a colon, so counting those bounds them
    (at C speed). Commas, brackets and colons inside strings count too; only when that
    rough count is over a limit are the ones inside strings found (escaped backslashes and
    quotes removed, then each string matched by one regular expression) and taken off,
    one string at a time so that memory stays flat.
    """
    marks = (b",", b"[", b"{", b":", b"[]", b"{}")

    def totals(counts: list[int]) -> tuple[int, int]:
        comma, square, curly, colon, empty_square, empty_curly = counts
        return 1 + comma + square - empty_square + curly - empty_curly, colon

    counts = [data.count(m) for m in marks]
    values, keys = totals(counts)
    if values > MAX_JSON_VALUES or keys > MAX_JSON_KEYS:
        plain = data.replace(b"\\\\", b"").replace(b'\\"', b"")
        counts = [plain.count(m) for m in marks]
        for match in _STRING.finditer(plain):
            start, end = match.span()
            for k, mark in enumerate(marks):
                counts[k] -= plain.count(mark, start, end)
        values, keys = totals(counts)
    return values, keys


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
        ReportError: the text is not JSON, is too large a structure, has no or an unknown
            ``schema_version``, or does not match the schema; the message lists each
            problem's field path.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogatepass")
    if not data.strip():
        raise ReportError("the file is empty", path=source)
    values, keys = count_json_values(data)
    for count, limit, what in ((values, MAX_JSON_VALUES, "values"), (keys, MAX_JSON_KEYS, "keys")):
        if count > limit:
            raise ReportError(
                f"holds about {count:,} JSON {what}, more than the {limit:,} a report may hold "
                f"(one with {MAX_PHASES:,} phases holds under half that); it is not a "
                "greenmeter report or it is damaged",
                path=source,
            )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportError(
            f"not UTF-8 text (bad byte at offset {exc.start}); a report is a UTF-8 JSON file",
            path=source,
        ) from None
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) == len(items):
            return out
        seen: set[str] = set()
        marked = Duplicates(out)
        for key, _ in items:
            if key in seen:
                marked.key = key
                duplicates.append(key)
                break
            seen.add(key)
        return marked

    try:
        head = json.loads(
            text, parse_constant=_no_constants, parse_float=_finite, object_pairs_hook=pairs
        )
    except RecursionError:
        raise ReportError("JSON is nested too deeply to be a report", path=source) from None
    except ValueError as exc:
        raise ReportError(f"not valid JSON: {exc}", path=source) from None
    del text
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
    upgraded_from = None
    if isinstance(version, str) and version in upgrades and version not in versions:
        upgraded_from, version = version, upgrades[version]
    model = versions.get(version) if isinstance(version, str) else None
    if model is None:
        raise ReportError(
            f"unknown schema_version {short_repr(version)}; this greenmeter reads "
            f"{_known(versions, upgrades)}. A newer greenmeter may read it.",
            path=source,
        )
    shape = check_shape(head, model, max_depth=MAX_PHASE_DEPTH, max_count=MAX_PHASES)
    if len(duplicates) > sum("appears twice" in line for line in shape.lines):
        shape.add_line(f"the key {short_repr(duplicates[0])} appears twice in one object")
    if shape.costly:
        lines = shape.lines
        more = "+" if shape.stopped else ""
        raise ReportError(
            f"not a valid schema {version} report ({len(lines)}{more} problem(s))",
            lines,
            path=source,
        )
    if upgraded_from is not None:
        head["schema_version"] = version
        data = json.dumps(head).encode("utf-8")
    del head
    try:
        return model.model_validate_json(
            data, strict=True, context={"upgraded_from": upgraded_from}
        )
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
    timeout_s: float | None = None,
) -> BaseModel:
    """Read (:func:`read_bounded`) and validate (:func:`parse_document`) a report file.

    Raises:
        ReportError: unreadable, too large, too slow, not JSON, unknown version or invalid.
    """
    name = str(path)
    data = read_bounded(path, max_bytes=max_bytes, timeout_s=timeout_s)
    if not data.strip():
        raise ReportError("the file is empty", path=name)
    return parse_document(data, versions, upgrades, source=name)
