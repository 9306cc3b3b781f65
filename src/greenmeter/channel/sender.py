"""The child's end of the phase channel: a phase listener that forwards every event.

Each phase entry, exit and item count becomes one datagram sent to the parent's socket
with a *blocking* send: when the parent's receive queue is full, the kernel makes the
send wait until the parent has read some, so a slow parent slows this process a
little and never loses an event. The wait is bounded by :data:`STALL_TIMEOUT_S` (a
parent that reads nothing for that long is stuck); after such a stall later events
are tried for :data:`RECOVER_TIMEOUT_S` each until one gets through. Nothing here
raises into the measured program.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any

from greenmeter.channel.wire import (
    ENV_VAR,
    MAX_EVENT_BYTES,
    METER_ID,
    PROTOCOL_VERSION,
    encode_event,
    log,
)

__all__ = ["RECOVER_TIMEOUT_S", "STALL_TIMEOUT_S", "ChannelSender", "attach_from_env"]

#: Longest wait (seconds) for room in the parent's receive queue before an event is
#: given up as undeliverable (the parent is stuck).
STALL_TIMEOUT_S = 30.0
#: Wait (seconds) per event after a stall, until one event gets through again.
RECOVER_TIMEOUT_S = 0.05


def _timeval(seconds: float) -> bytes:
    """``struct timeval`` for ``SO_SNDTIMEO`` (0 would mean "wait forever")."""
    sec = int(seconds)
    usec = int((seconds - sec) * 1e6)
    return struct.pack("@ll", sec, max(usec, 1) if sec == 0 else usec)


class ChannelSender:
    """A phase listener that forwards a meter's phase events to the parent.

    Sends block while the parent's queue is full (back-pressure), at most
    ``stall_timeout_s`` per event; they never raise. An event that cannot be delivered
    (the parent is gone, or stuck past the timeout) is counted in :attr:`dropped` and
    the first one is reported once (``on_drop`` callback and the ``greenmeter.channel``
    logger).

    Args:
        path: The parent's socket path.
        meter_id: Identifies this meter among the process's meters.
        on_drop: Called once, with a message, at the first dropped event.
        stall_timeout_s: Longest wait for the parent to make room, in seconds.

    Attributes:
        sent: Events delivered to the parent's queue.
        dropped: Events given up.
        waited_s: Total time spent waiting for the parent to make room, in seconds
            (only the sends that had to wait are timed).
    """

    def __init__(
        self,
        path: str,
        meter_id: str | None = None,
        on_drop: Callable[[str], None] | None = None,
        *,
        stall_timeout_s: float = STALL_TIMEOUT_S,
    ) -> None:
        if not stall_timeout_s > 0:
            raise ValueError(f"stall_timeout_s must be positive, got {stall_timeout_s!r}")
        self.path = path
        self.meter_id = meter_id or os.urandom(4).hex()
        if not METER_ID.match(self.meter_id):
            raise ValueError(f"meter_id must be 1-32 characters of [0-9a-z], got {meter_id!r}")
        self.sent = 0
        self.dropped = 0
        self.waited_s = 0.0
        self.stall_timeout_s = float(stall_timeout_s)
        self._seq = 0
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._stalled = False
        self._set_timeout(self.stall_timeout_s)

    def _set_timeout(self, seconds: float) -> None:
        """Kernel-side send timeout on a blocking socket: the send sleeps, never spins."""
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(seconds))

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
                self._deliver(data)
        except Exception as exc:  # never reach the measured program
            self.dropped += 1
            log().debug("channel send failed: %r", exc)

    def _deliver(self, data: bytes) -> None:
        try:
            self._sock.sendto(data, socket.MSG_DONTWAIT, self.path)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ENOBUFS):
                self._drop(f"the parent `greenmeter run` is not reachable ({exc.strerror})")
                return
        else:
            self.sent += 1
            return
        # the parent's queue is full: wait for room (the kernel wakes us when it reads)
        import time

        t0 = time.perf_counter()
        try:
            self._sock.sendto(data, self.path)
        except OSError as exc:
            self.waited_s += time.perf_counter() - t0
            if exc.errno in (errno.EAGAIN, errno.ENOBUFS):
                if not self._stalled:
                    self._stalled = True
                    self._set_timeout(RECOVER_TIMEOUT_S)
                self._drop(
                    f"the parent `greenmeter run` read nothing for {self.stall_timeout_s:g} s"
                )
            else:
                self._drop(f"the parent `greenmeter run` is not reachable ({exc.strerror})")
            return
        self.waited_s += time.perf_counter() - t0
        self.sent += 1
        if self._stalled:
            self._stalled = False
            self._set_timeout(self.stall_timeout_s)

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if self.dropped == 1:
            message = (
                f"phase events for `greenmeter run` are being dropped: {why}; the parent's "
                "report may miss some of this process's phases (this process is unaffected)"
            )
            log().warning(message)
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
        log().warning("ignoring %s=%r: not an absolute socket path", ENV_VAR, path)
        return None
    note = getattr(meter, "add_warning", None)

    def on_drop(message: str) -> None:
        if note is not None:
            note("channel.dropped", message)

    try:
        sender = ChannelSender(path, on_drop=on_drop)
    except OSError as exc:
        log().warning("cannot open the greenmeter channel %r: %s", path, exc)
        return None
    meter.add_listener(sender)
    return sender
