"""The warnings of one run: once per code, bounded in number.

Codes come from the meter (``meter.*``), from sensors (drained from them) and from the
user (:meth:`greenmeter.core.meter.Meter.add_warning`). Beyond
:data:`~greenmeter.core.limits.MAX_WARNINGS` warnings, later ones are counted and one
``meter.warnings_truncated`` says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from greenmeter.core.limits import MAX_NAME_CHARS, MAX_WARNING_CHARS, MAX_WARNINGS, shorten_name
from greenmeter.sensors.base import SensorWarning

__all__ = ["Notes", "clean_code", "clean_message"]

#: The code of a user warning given an empty code.
DEFAULT_CODE = "user.warning"


def clean_code(code: object) -> str:
    """A valid warning code: stripped, :data:`DEFAULT_CODE` when empty, at most 512 chars."""
    text = str(code).strip() or DEFAULT_CODE
    return shorten_name(text) if len(text) > MAX_NAME_CHARS else text


def clean_message(message: object) -> str:
    """A warning message of at most :data:`~greenmeter.core.limits.MAX_WARNING_CHARS`."""
    text = str(message)
    return text if len(text) <= MAX_WARNING_CHARS else text[: MAX_WARNING_CHARS - 3] + "..."


class Notes:
    """Warnings kept for the report (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[SensorWarning] = []
        self._codes: set[str] = set()
        self._dropped = 0

    def once(self, code: str, message: str, component_id: str | None = None) -> None:
        """Keep a warning unless one with ``code`` was kept already."""
        with self._lock:
            if code in self._codes:
                return
            self._codes.add(code)
            self._keep([SensorWarning(code, message, component_id, time.monotonic())])

    def seen(self, code: str) -> bool:
        """True once a warning with ``code`` was kept."""
        return code in self._codes

    def extend(self, warnings: Iterable[SensorWarning]) -> None:
        """Keep warnings as they come (a sensor's, which repeat on purpose)."""
        with self._lock:
            self._keep(list(warnings))

    def items(self) -> list[SensorWarning]:
        """The warnings kept so far, in order (plus the truncation notice)."""
        with self._lock:
            out = list(self._items)
            if self._dropped:
                out.append(
                    SensorWarning(
                        "meter.warnings_truncated",
                        f"more than {MAX_WARNINGS} warnings were raised; {self._dropped} later "
                        "ones were counted but not kept. The first ones usually name the cause.",
                    )
                )
            return out

    def _keep(self, warnings: list[SensorWarning]) -> None:
        room = MAX_WARNINGS - len(self._items)
        if len(warnings) > room:
            self._dropped += len(warnings) - max(room, 0)
            warnings = warnings[: max(room, 0)]
        self._items.extend(warnings)
