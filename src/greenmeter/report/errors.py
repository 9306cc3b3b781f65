"""Readable errors for reports that cannot be read, built or validated."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["ReportError", "format_location", "format_validation_error"]

#: How many individual problems one error message lists before summarising the rest.
MAX_LISTED_PROBLEMS = 12
_MAX_INPUT_CHARS = 60


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
        head = f"{self.path}: {self.summary}" if self.path else self.summary
        if not self.problems:
            return head
        shown = self.problems[:MAX_LISTED_PROBLEMS]
        lines = [head, *(f"  - {p}" for p in shown)]
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
        elif isinstance(part, str) and part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{str(part)!r}]"
    return out or "(top level)"


def _short_input(value: Any) -> str:
    text = repr(value)
    if len(text) > _MAX_INPUT_CHARS:
        text = text[: _MAX_INPUT_CHARS - 3] + "..."
    return text


def format_validation_error(error: Any) -> list[str]:
    """One readable line per problem of a pydantic ``ValidationError``.

    Each line says where (the field path), what is wrong and what was expected
    (pydantic's message states the constraint, e.g. "Input should be greater than or
    equal to 0"), and what was found (the offending value, shortened).
    """
    lines: list[str] = []
    for item in error.errors(include_url=False):
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
            lines.append(f"{where}: {msg} (found {_short_input(item['input'])})")
        else:
            lines.append(f"{where}: {msg}")
    return lines
