"""The channel's wire format: one compact JSON object per datagram, parsed strictly.

Parsing is plain JSON (never eval or pickle) followed by a schema check: exact key
sets per event, types, bounds, known phase kinds; anything else raises
:class:`EventError` with a short stable reason. See :mod:`greenmeter.channel` for the
format itself.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from greenmeter.records import PHASE_KINDS

__all__ = [
    "ENV_VAR",
    "MAX_EVENT_BYTES",
    "PROTOCOL_VERSION",
    "ChannelEvent",
    "EventError",
    "encode_event",
    "parse_event",
]

#: Environment variable holding the parent's socket path.
ENV_VAR = "GREENMETER_CHANNEL"
#: Wire format version.
PROTOCOL_VERSION = 1
#: Largest datagram accepted (bytes); longer ones are dropped as junk.
MAX_EVENT_BYTES = 4096
#: Most names in a phase path, and most characters per name.
MAX_PATH_DEPTH = 32
MAX_NAME_CHARS = 256
#: Largest item count accepted in one event.
MAX_ITEMS = 2**53


def log() -> Any:
    """The ``greenmeter.channel`` logger (imported lazily: children import this module)."""
    import logging

    return logging.getLogger("greenmeter.channel")


METER_ID = re.compile(r"^[0-9a-z]{1,32}$")
_EVENTS = ("enter", "exit", "items")
_REQUIRED = {
    "enter": {"v", "e", "pid", "m", "n", "p", "k", "t"},
    "exit": {"v", "e", "pid", "m", "n", "p", "t"},
    "items": {"v", "e", "pid", "m", "n", "p", "samples", "tokens", "steps"},
}


class EventError(ValueError):
    """A datagram that is not a valid channel event. ``reason`` is a short stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class ChannelEvent:
    """One validated phase event from a child process.

    Attributes:
        event: ``"enter"``, ``"exit"`` or ``"items"``.
        pid: Sender's process id (from the kernel's credentials when available).
        meter: Sender's meter id (tells apart several meters of one process).
        seq: Per-meter sequence number.
        path: Phase path.
        kind: Phase kind (enter only).
        t_mono: The child's ``time.monotonic()`` instant (enter/exit only).
        samples / tokens / steps: Item counts (items only).
    """

    event: str
    pid: int
    meter: str
    seq: int
    path: tuple[str, ...]
    kind: str | None = None
    t_mono: float | None = None
    samples: int | None = None
    tokens: int | None = None
    steps: int | None = None


def encode_event(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes for one event (no spaces, ASCII only)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ITEMS:
        raise EventError("bad_items", f"{name} must be a non-negative integer or null")
    return value


def parse_event(data: bytes) -> ChannelEvent:
    """Validate one datagram strictly and return the event.

    Raises:
        EventError: the datagram is too long, not UTF-8 JSON, or does not match the
            schema (unknown or missing keys, wrong types, unknown phase kind, bad path).
    """
    if len(data) > MAX_EVENT_BYTES:
        raise EventError("too_large", f"{len(data)} bytes > {MAX_EVENT_BYTES}")
    try:
        obj = _DECODER.decode(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise EventError("not_json", str(exc)[:80]) from None
    if not isinstance(obj, dict):
        raise EventError("not_object", type(obj).__name__)
    name = obj.get("e")
    if name not in _EVENTS:
        raise EventError("unknown_event", repr(name)[:40])
    if set(obj) != _REQUIRED[name]:
        raise EventError("bad_keys", ",".join(sorted(set(obj) ^ _REQUIRED[name]))[:80])
    if obj["v"] != PROTOCOL_VERSION or isinstance(obj["v"], bool):
        raise EventError("bad_version", repr(obj["v"])[:20])
    pid, seq, meter = obj["pid"], obj["n"], obj["m"]
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2**31:
        raise EventError("bad_pid", repr(pid)[:20])
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**63:
        raise EventError("bad_seq", repr(seq)[:20])
    if not isinstance(meter, str) or not METER_ID.match(meter):
        raise EventError("bad_meter", repr(meter)[:40])
    path = obj["p"]
    if (
        not isinstance(path, list)
        or not 1 <= len(path) <= MAX_PATH_DEPTH
        or not all(
            isinstance(p, str) and 0 < len(p) <= MAX_NAME_CHARS and "/" not in p for p in path
        )
    ):
        raise EventError("bad_path", repr(path)[:80])
    kind: str | None = None
    t_mono: float | None = None
    if name in ("enter", "exit"):
        t = obj["t"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise EventError("bad_time", repr(t)[:40])
        t_mono = float(t)
    if name == "enter":
        kind = obj["k"]
        if kind not in PHASE_KINDS:
            raise EventError("bad_kind", repr(kind)[:40])
    samples = tokens = steps = None
    if name == "items":
        samples = _count("samples", obj["samples"])
        tokens = _count("tokens", obj["tokens"])
        steps = _count("steps", obj["steps"])
    return ChannelEvent(name, pid, meter, seq, tuple(path), kind, t_mono, samples, tokens, steps)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


#: One decoder for every datagram (building one per call costs more than the parse).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
