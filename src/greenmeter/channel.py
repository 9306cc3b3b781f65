"""The local phase channel between ``greenmeter run`` and a measured child process.

``greenmeter run -- CMD`` measures the whole command with its own meter. When the
command itself uses greenmeter (an :class:`~greenmeter.EnergyMeter`, the Lightning
callback), its phases should show up in that one report, measured by the parent's
counters. The parent sets this up:

* it creates a Unix datagram socket in a fresh private directory (mode 0700, so only
  the same user can reach it) and puts the socket's path in the child's environment as
  ``GREENMETER_CHANNEL``;
* a child meter that starts with that variable set calls :func:`attach_from_env`,
  which adds a :class:`ChannelSender` as a phase listener. The sender turns every phase
  entry, exit and item count into one compact JSON datagram. It never blocks and never
  raises: when the parent is gone or its buffer is full the event is dropped and
  counted, with one warning;
* the parent's :class:`ChannelServer` receives the datagrams on a thread, validates
  them strictly (size, schema, types; plain JSON, never eval or pickle; junk is dropped
  and counted by reason) and opens and closes the same phase paths on the parent's
  meter (:class:`PhaseApplier`).

Phase paths. The child's paths are kept as they are, at the top level of the parent's
report: a Lightning run under ``greenmeter run`` has the same ``fit/train`` phases as
one measured in-process, so the two reports compare phase by phase. The whole command
is the report's total (the meter runs from just before the child starts to just after
it ends), so it needs no phase of its own.

Several processes. Each (process id, meter) pair keeps its own open handles, so two
DDP ranks that both enter ``train`` never close each other's phase; both map to the
same path, whose energy the meter counts over the union of their time (never twice).
A process that dies with phases open has them closed when the parent notices
(liveness check, or the end of the command). The phase's ``processes`` attr says how
many processes entered it. Where the kernel passes the sender's credentials
(``SO_PASSCRED``, Linux) the process id is the kernel's, not the one claimed in the
datagram, and datagrams from other users are dropped. The number of phase paths and
of open instances accepted from children is bounded.

Timing. The parent opens and closes its phases when a datagram arrives, typically well
under a millisecond after the child's boundary (same host, same ``CLOCK_MONOTONIC``).
The largest delay seen per phase is kept in the phase's ``channel_lag_max_ms`` attr.

Wire format (version 1), one JSON object per datagram, at most
:data:`MAX_EVENT_BYTES` bytes::

    {"v":1,"e":"enter","pid":12,"m":"a1b2","n":0,"p":["fit","train"],"k":"train","t":812.25}
    {"v":1,"e":"exit","pid":12,"m":"a1b2","n":1,"p":["fit","train"],"t":815.5}
    {"v":1,"e":"items","pid":12,"m":"a1b2","n":2,"p":["fit","train"],"samples":32,
     "tokens":null,"steps":1}

``m`` tells apart meters of one process, ``n`` is a per-meter sequence number (gaps are
counted as lost events), ``t`` is the ``time.monotonic()`` instant in the child.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from greenmeter.records import PHASE_KINDS

__all__ = [
    "ENV_VAR",
    "MAX_EVENT_BYTES",
    "PROTOCOL_VERSION",
    "ChannelEvent",
    "ChannelSender",
    "ChannelServer",
    "EventError",
    "PhaseApplier",
    "PhaseObserver",
    "attach_from_env",
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
#: Most distinct phase paths, and most open instances per (process, meter, path), that
#: the parent accepts from children (bounds its memory whatever they send).
MAX_PHASE_PATHS = 10_000
MAX_OPEN_PER_PATH = 1_000


def _log() -> Any:
    """The ``greenmeter.channel`` logger (imported lazily: children import this module)."""
    import logging

    return logging.getLogger("greenmeter.channel")


_METER_ID = re.compile(r"^[0-9a-z]{1,32}$")
_EVENTS = ("enter", "exit", "items")
_REQUIRED = {
    "enter": {"v", "e", "pid", "m", "n", "p", "k", "t"},
    "exit": {"v", "e", "pid", "m", "n", "p", "t"},
    "items": {"v", "e", "pid", "m", "n", "p", "samples", "tokens", "steps"},
}
_CREDS_FORMAT = "3i"  # struct ucred: pid, uid, gid
_CREDS_SIZE = 12


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


# -- encoding and validation -------------------------------------------------------------


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
        obj = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
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
    if not isinstance(meter, str) or not _METER_ID.match(meter):
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


# -- the child side ---------------------------------------------------------------------


class ChannelSender:
    """A phase listener that forwards a meter's phase events to the parent.

    Sending never blocks (``MSG_DONTWAIT``) and never raises: when the parent is gone
    or its receive buffer is full the event is dropped, :attr:`dropped` counts it, and
    the first drop is reported once (``on_drop`` callback and the ``greenmeter.channel``
    logger).

    Args:
        path: The parent's socket path.
        meter_id: Identifies this meter among the process's meters.
        on_drop: Called once, with a message, at the first dropped event.
    """

    def __init__(
        self,
        path: str,
        meter_id: str | None = None,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self.meter_id = meter_id or os.urandom(4).hex()
        if not _METER_ID.match(self.meter_id):
            raise ValueError(f"meter_id must be 1-32 characters of [0-9a-z], got {meter_id!r}")
        self.sent = 0
        self.dropped = 0
        self._seq = 0
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def _send(self, payload: dict[str, Any]) -> None:
        try:
            with self._lock:
                payload["v"] = PROTOCOL_VERSION
                payload["pid"] = os.getpid()
                payload["m"] = self.meter_id
                payload["n"] = self._seq
                self._seq += 1
                data = encode_event(payload)
                if len(data) > MAX_EVENT_BYTES:
                    self._drop(f"an event for phase {payload.get('p')!r} is too long to send")
                    return
                try:
                    self._sock.sendto(data, socket.MSG_DONTWAIT, self.path)
                    self.sent += 1
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN, errno.ENOBUFS):
                        why = "the parent's receive buffer is full"
                    else:
                        why = f"the parent `greenmeter run` is not reachable ({exc.strerror})"
                    self._drop(why)
        except Exception as exc:  # never reach the measured program
            self.dropped += 1
            _log().debug("channel send failed: %r", exc)

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if self.dropped == 1:
            message = (
                f"phase events for `greenmeter run` are being dropped: {why}; the parent's "
                "report may miss some of this process's phases (this process is unaffected)"
            )
            _log().warning(message)
            if self._on_drop is not None:
                try:
                    self._on_drop(message)
                except Exception:
                    pass

    # PhaseListener protocol ------------------------------------------------------------

    def phase_entered(self, path: tuple[str, ...], kind: str, t_mono: float) -> None:
        """Forward a phase entry (``t_mono`` is this process's ``time.monotonic()``)."""
        self._send({"e": "enter", "p": list(path), "k": kind, "t": t_mono})

    def phase_exited(self, path: tuple[str, ...], t_mono: float) -> None:
        """Forward a phase exit."""
        self._send({"e": "exit", "p": list(path), "t": t_mono})

    def items_added(
        self, path: tuple[str, ...], samples: int | None, tokens: int | None, steps: int | None
    ) -> None:
        """Forward work items attributed to a phase."""
        self._send(
            {
                "e": "items",
                "p": list(path),
                "samples": None if samples is None else int(samples),
                "tokens": None if tokens is None else int(tokens),
                "steps": None if steps is None else int(steps),
            }
        )

    def close(self) -> None:
        """Close the socket (later events are dropped silently)."""
        try:
            self._sock.close()
        except OSError:
            pass


def attach_from_env(meter: Any, env: Mapping[str, str] | None = None) -> ChannelSender | None:
    """Forward ``meter``'s phases to a parent ``greenmeter run``, if there is one.

    Reads ``GREENMETER_CHANNEL`` from ``env`` (default ``os.environ``); when it names a
    socket, adds a :class:`ChannelSender` to the meter with ``meter.add_listener`` and
    returns it. Returns None when the variable is unset or empty. A variable that does
    not look like a socket path is ignored with a logged warning: nothing here raises
    into the measured program.
    """
    environ = os.environ if env is None else env
    path = environ.get(ENV_VAR, "")
    if not path:
        return None
    if not os.path.isabs(path) or len(path.encode()) > 107:
        _log().warning("ignoring %s=%r: not an absolute socket path", ENV_VAR, path)
        return None
    note = getattr(meter, "add_warning", None)

    def on_drop(message: str) -> None:
        if note is not None:
            note("channel.dropped", message)

    try:
        sender = ChannelSender(path, on_drop=on_drop)
    except OSError as exc:
        _log().warning("cannot open the greenmeter channel %r: %s", path, exc)
        return None
    meter.add_listener(sender)
    return sender


# -- the parent side --------------------------------------------------------------------


class PhaseObserver(Protocol):
    """Told about every phase event the parent applied (for the live display)."""

    def on_enter(self, pid: int, path: tuple[str, ...], kind: str) -> None: ...

    def on_exit(self, pid: int, path: tuple[str, ...], kind: str) -> None: ...


class PhaseApplier:
    """Applies validated child events to the parent's meter as phases.

    Keeps, per (pid, meter id, path), a stack of open handles, so processes never
    close each other's phases; the meter unions overlapping instances of one path.

    Args:
        meter: The parent's started :class:`~greenmeter.EnergyMeter`.
        observers: Told about each applied entry and exit.
    """

    def __init__(self, meter: Any, observers: list[PhaseObserver] | None = None) -> None:
        self.meter = meter
        self.observers: list[PhaseObserver] = list(observers or [])
        self.applied = 0
        self.ignored = Counter[str]()
        self.lost = 0
        self.closed_at_exit = 0
        self.pids: set[int] = set()
        self._lock = threading.Lock()
        self._open: dict[tuple[int, str, tuple[str, ...]], list[Any]] = {}
        self._last: dict[tuple[int, str, tuple[str, ...]], Any] = {}
        self._kinds: dict[tuple[str, ...], str] = {}
        self._seq: dict[tuple[int, str], int] = {}
        self._lag_ms: dict[tuple[str, ...], float] = {}
        self._path_pids: dict[tuple[str, ...], set[int]] = {}

    def apply(self, ev: ChannelEvent, now: float | None = None) -> bool:
        """Apply one event; returns False (and counts why) when it was ignored."""
        with self._lock:
            return self._apply(ev, time.monotonic() if now is None else now)

    def _apply(self, ev: ChannelEvent, now: float) -> bool:
        source = (ev.pid, ev.meter)
        expected = self._seq.get(source)
        if expected is not None and ev.seq > expected:
            self.lost += ev.seq - expected
        if expected is None or ev.seq >= expected:
            self._seq[source] = ev.seq + 1
        key = (ev.pid, ev.meter, ev.path)
        if ev.event == "enter":
            assert ev.kind is not None
            if ev.path not in self._kinds and len(self._kinds) >= MAX_PHASE_PATHS:
                self.ignored["too_many_phases"] += 1
                return False
            if len(self._open.get(key, ())) >= MAX_OPEN_PER_PATH:
                self.ignored["too_many_open"] += 1
                return False
            kind = self._kinds.setdefault(ev.path, ev.kind)
            try:
                handle = self.meter.enter(ev.path[-1], kind, parent=ev.path[:-1])
            except Exception as exc:
                self.ignored[f"meter_refused:{type(exc).__name__}"] += 1
                return False
            self._open.setdefault(key, []).append(handle)
            self._last[key] = handle
            self.pids.add(ev.pid)
            self._annotate(handle, ev, now)
            self.applied += 1
            self._tell("on_enter", ev.pid, ev.path, kind)
            return True
        if ev.event == "exit":
            stack = self._open.get(key)
            if not stack:
                self.ignored["exit_without_enter"] += 1
                return False
            handle = stack.pop()
            if not stack:
                del self._open[key]
            handle.exit()
            self._annotate(handle, ev, now)
            self.applied += 1
            self._tell("on_exit", ev.pid, ev.path, self._kinds.get(ev.path, "custom"))
            return True
        handle = self._last.get(key)
        if handle is None:
            self.ignored["items_without_enter"] += 1
            return False
        try:
            handle.add(samples=ev.samples, tokens=ev.tokens, steps=ev.steps)
        except Exception as exc:
            self.ignored[f"meter_refused:{type(exc).__name__}"] += 1
            return False
        self.applied += 1
        return True

    def _annotate(self, handle: Any, ev: ChannelEvent, now: float) -> None:
        pids = self._path_pids.setdefault(ev.path, set())
        if ev.pid not in pids:
            pids.add(ev.pid)
            handle.set_attr("processes", len(pids))
        if ev.t_mono is not None and -1.0 <= now - ev.t_mono <= 60.0:
            lag_ms = max(0.0, (now - ev.t_mono) * 1000.0)
            if lag_ms > self._lag_ms.get(ev.path, -1.0):
                self._lag_ms[ev.path] = lag_ms
                handle.set_attr("channel_lag_max_ms", f"{lag_ms:.3f}")

    def _tell(self, method: str, pid: int, path: tuple[str, ...], kind: str) -> None:
        for obs in self.observers:
            try:
                getattr(obs, method)(pid, path, kind)
            except Exception as exc:
                _log().debug("phase observer failed: %r", exc)

    def open_pids(self) -> set[int]:
        """Processes that have phases open."""
        with self._lock:
            return {key[0] for key in self._open}

    def close_pid(self, pid: int) -> int:
        """Close every phase still open for ``pid`` (it exited); returns how many."""
        with self._lock:
            keys = [k for k in self._open if k[0] == pid]
            # innermost first, so parents close after their children
            keys.sort(key=lambda k: len(k[2]), reverse=True)
            closed = 0
            for key in keys:
                for handle in reversed(self._open.pop(key)):
                    handle.exit()
                    closed += 1
                    self._tell("on_exit", pid, key[2], self._kinds.get(key[2], "custom"))
            self.closed_at_exit += closed
            return closed

    def close_all(self) -> int:
        """Close every phase still open (the command ended); returns how many."""
        return sum(self.close_pid(pid) for pid in self.open_pids())


def _short_tmpdir() -> str:
    """A private directory whose socket path fits AF_UNIX's 108-byte limit."""
    import tempfile

    base = tempfile.gettempdir()
    if len(os.path.join(base, "greenmeter-xxxxxxxx", "ch").encode()) > 100:
        base = "/tmp"
    return tempfile.mkdtemp(prefix="greenmeter-", dir=base)  # mode 0700


class ChannelServer:
    """The parent's end: a private datagram socket and the thread that reads it.

    Use as ``with ChannelServer() as server: server.start(meter); env.update(server.env())``.

    Args:
        rcvbuf_bytes: Receive buffer requested from the kernel.
        liveness_period_s: How often the thread checks that processes with open phases
            still exist (phases of a dead process are closed).

    Attributes:
        path: The socket path (the value of ``GREENMETER_CHANNEL``).
        received: Datagrams read.
        junk: Datagrams dropped as invalid, by reason.
        applier: The :class:`PhaseApplier` once :meth:`start` ran.
    """

    def __init__(self, *, rcvbuf_bytes: int = 1 << 20, liveness_period_s: float = 0.5) -> None:
        self._dir = _short_tmpdir()
        self.path = os.path.join(self._dir, "ch")
        self.received = 0
        self.junk = Counter[str]()
        self.applier: PhaseApplier | None = None
        self.liveness_period_s = liveness_period_s
        self._uid = os.getuid()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.bind(self.path)
            os.chmod(self.path, 0o600)
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
            except OSError:
                pass
            self._creds = hasattr(socket, "SO_PASSCRED")
            if self._creds:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        except BaseException:
            import shutil

            self._sock.close()
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self._sock.setblocking(False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def env(self) -> dict[str, str]:
        """The environment entries that connect a child to this server."""
        return {ENV_VAR: self.path}

    def start(self, meter: Any, observers: list[PhaseObserver] | None = None) -> None:
        """Apply incoming events to ``meter`` (started) from a background thread."""
        self.applier = PhaseApplier(meter, observers)
        self._thread = threading.Thread(target=self._run, name="greenmeter-channel", daemon=True)
        self._thread.start()

    def _receive(self) -> bool:
        """Read and handle one waiting datagram; False when none was waiting."""
        import struct

        try:
            if self._creds:
                data, anc, msg_flags, _ = self._sock.recvmsg(
                    MAX_EVENT_BYTES + 1, socket.CMSG_SPACE(_CREDS_SIZE)
                )
            else:
                data, _ = self._sock.recvfrom(MAX_EVENT_BYTES + 1)
                anc, msg_flags = [], 0
        except OSError:  # nothing waiting (EAGAIN), interrupted, or closed
            return False
        self.received += 1
        now = time.monotonic()
        if msg_flags & getattr(socket, "MSG_TRUNC", 0) or len(data) > MAX_EVENT_BYTES:
            self.junk["too_large"] += 1
            return True
        sender_pid: int | None = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == getattr(socket, "SCM_CREDENTIALS", -1):
                if len(cdata) >= _CREDS_SIZE:
                    pid, uid, _gid = struct.unpack(_CREDS_FORMAT, cdata[:_CREDS_SIZE])
                    if uid not in (self._uid, 0):
                        self.junk["foreign_user"] += 1
                        return True
                    sender_pid = pid
        try:
            ev = parse_event(data)
        except EventError as exc:
            self.junk[exc.reason] += 1
            return True
        if sender_pid is not None and sender_pid > 0 and sender_pid != ev.pid:
            ev = ChannelEvent(
                ev.event, sender_pid, ev.meter, ev.seq, ev.path, ev.kind, ev.t_mono,
                ev.samples, ev.tokens, ev.steps,
            )  # fmt: skip
        if self.applier is not None:
            self.applier.apply(ev, now)
        return True

    def _run(self) -> None:
        import select

        next_check = time.monotonic() + self.liveness_period_s
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._sock], [], [], 0.2)
                for _ in range(256 if ready else 0):  # bounded: stop stays responsive
                    if not self._receive():
                        break
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + self.liveness_period_s
                    self._close_dead()
            except Exception as exc:  # keep the thread alive whatever arrives
                _log().debug("channel receive error: %r", exc)

    def _close_dead(self) -> None:
        if self.applier is None:
            return
        for pid in self.applier.open_pids():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                self.applier.close_pid(pid)
            except OSError:
                pass

    def drain(self) -> int:
        """Handle every datagram already waiting; returns how many were read."""
        n = 0
        while self._receive():
            n += 1
        return n

    def finish(self) -> int:
        """Stop the thread, handle what is left and close open phases.

        Call when the command has ended. Returns the number of phases that were still
        open and had to be closed here.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self.drain()
        return self.applier.close_all() if self.applier is not None else 0

    def stats(self) -> dict[str, int]:
        """Counters for the report: events applied, invalid, lost, processes seen."""
        applier = self.applier
        return {
            "channel_events": applier.applied if applier else 0,
            "channel_invalid": sum(self.junk.values()),
            "channel_ignored": sum(applier.ignored.values()) if applier else 0,
            "channel_lost": applier.lost if applier else 0,
            "channel_processes": len(applier.pids) if applier else 0,
            "channel_closed_at_exit": applier.closed_at_exit if applier else 0,
        }

    def close(self) -> None:
        """Stop the thread, close the socket and remove the private directory."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        import shutil

        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ChannelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
