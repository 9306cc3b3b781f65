"""Readable errors for reports that cannot be read, built or validated."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "MAX_LINE_CHARS",
    "ReportError",
    "format_error_items",
    "format_location",
    "format_validation_error",
    "short_repr",
]

#: How many individual problems one error message lists before summarising the rest.
MAX_LISTED_PROBLEMS = 12
#: Longest line of an error message (characters): values echoed from a file are cut.
MAX_LINE_CHARS = 400
_MAX_INPUT_CHARS = 60
_MAX_KEY_CHARS = 60


def short_repr(value: Any, limit: int = _MAX_INPUT_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters (a file's values are echoed this way).

    A long string is cut before ``repr`` runs, so a 10 MB value costs nothing.
    """
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} characters)"
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _cut(line: str) -> str:
    """A line of at most MAX_LINE_CHARS: its middle cut out (where a long field path or
    value sits; the end says what is wrong)."""
    if len(line) <= MAX_LINE_CHARS:
        return line
    keep = (MAX_LINE_CHARS - 40) // 2
    return f"{line[:keep]} ... ({len(line) - 2 * keep} characters) ... {line[-keep:]}"


class ReportError(ValueError):
    """A report file or report input is not valid.

    The message names what is wrong and where (the field's path in the report, such as
    ``phases[0].energy_j['rapl:package-0@host']``), what was found and what was expected.
    It never carries a raw traceback.

    Attributes:
        path: The file concerned, when there is one.
        problems: One line per problem found (field path, what is wrong).
    """

    def __init__(
        self, summary: str, problems: Sequence[str] = (), *, path: str | None = None
    ) -> None:
        self.summary = summary
        self.problems = list(problems)
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        head = _cut(f"{self.path}: {self.summary}" if self.path else self.summary)
        if not self.problems:
            return head
        shown = self.problems[:MAX_LISTED_PROBLEMS]
        lines = [head, *(_cut(f"  - {p}") for p in shown)]
        hidden = len(self.problems) - len(shown)
        if hidden > 0:
            lines.append(f"  ... and {hidden} more problem(s)")
        return "\n".join(lines)


def format_location(loc: Iterable[Any]) -> str:
    """Render a pydantic error location as a readable field path.

    ``("phases", 0, "children", 1, "duration_s")`` becomes
    ``phases[0].children[1].duration_s``; dictionary keys that are not plain
    identifiers are quoted: ``energy_j['nvml:GPU-1@node']``.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier() and len(part) <= _MAX_KEY_CHARS:
            out += f".{part}" if out else part
        else:
            out += f"[{short_repr(str(part), _MAX_KEY_CHARS)}]"
    return out or "(top level)"


def format_validation_error(error: Any) -> list[str]:
    """One readable line per problem of a pydantic ``ValidationError``.

    Each line says where (the field path), what is wrong and what was expected
    (pydantic's message states the constraint, e.g. "Input should be greater than or
    equal to 0"), and what was found (the offending value, shortened).
    """
    return format_error_items(error.errors(include_url=False))


def format_error_items(items: Iterable[Mapping[str, Any]]) -> list[str]:
    """:func:`format_validation_error` for the items of ``ValidationError.errors()``."""
    lines: list[str] = []
    for item in items:
        where = format_location(item.get("loc", ()))
        kind = item.get("type", "")
        msg = item.get("msg", "invalid value")
        if kind == "missing":
            lines.append(f"{where}: required field is missing")
            continue
        if kind == "extra_forbidden":
            lines.append(f"{where}: unknown field (not part of the report schema)")
            continue
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if "input" in item and not isinstance(item["input"], (dict, list)):
            lines.append(f"{where}: {msg} (found {short_repr(item['input'])})")
        else:
            lines.append(f"{where}: {msg}")
    return lines
