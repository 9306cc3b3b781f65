"""The parent's end of the phase channel (:mod:`greenmeter.channel`): a private socket,
its reader thread, and the applier that turns child events into phases of the parent's
meter.

Security: the socket lives in a fresh directory of mode 0700 (only the same user can
reach it); where the kernel passes credentials (``SO_PASSCRED``) datagrams from other
users are dropped and the sender's process id is the kernel's; every datagram is parsed
strictly (:mod:`greenmeter.channel.wire`). What children can make the parent hold is
bounded (:data:`MAX_PHASE_PATHS`, :data:`MAX_OPEN_PER_PATH`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from typing import Any, Protocol

from greenmeter.channel.wire import (
    ENV_VAR,
    MAX_EVENT_BYTES,
    ChannelEvent,
    EventError,
    log,
    parse_event,
)

__all__ = [
    "MAX_OPEN_PER_PATH",
    "MAX_PHASE_PATHS",
    "ChannelServer",
    "PhaseApplier",
    "PhaseObserver",
]

#: Most distinct phase paths, and most open instances per (process, meter, path), that
#: the parent accepts from children (bounds its memory whatever they send).
MAX_PHASE_PATHS = 10_000
MAX_OPEN_PER_PATH = 1_000

_CREDS_FORMAT = "3i"  # struct ucred: pid, uid, gid
_CREDS_SIZE = 12


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
                log().debug("phase observer failed: %r", exc)

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
                log().debug("channel receive error: %r", exc)

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
