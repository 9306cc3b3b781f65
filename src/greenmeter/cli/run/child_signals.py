"""The measured command's signals: what ``greenmeter run`` forwards to its child, and how
the child's end reads as an exit code and in words.

Signals that reach ``greenmeter run`` (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2) are
passed on to the command; a terminal's SIGINT/SIGQUIT already went to the whole
foreground process group, the command included, so it is not sent twice. A command
killed by signal N ends ``greenmeter run`` with 128 + N, as a shell reports it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from typing import Any

__all__ = [
    "FORWARDED_SIGNALS",
    "INTERRUPTING_SIGNALS",
    "Forwarder",
    "describe_end",
    "exit_code_of",
    "tty_sent_to_group",
]

FORWARDED_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)
INTERRUPTING_SIGNALS: frozenset[int] = frozenset(
    int(getattr(signal, name))
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
    if hasattr(signal, name)
)
_TTY_SIGNALS = frozenset(int(s) for s in (signal.SIGINT, getattr(signal, "SIGQUIT", None)) if s)


def exit_code_of(returncode: int) -> int:
    """A :class:`subprocess.Popen` return code as a shell exit code (128 + signal)."""
    return returncode if returncode >= 0 else 128 + (-returncode)


class Forwarder:
    """Signal handlers that pass signals on to the child (main thread only)."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.received: list[int] = []
        self._old: dict[int, Any] = {}
        self._skipped_tty: set[int] = set()

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in FORWARDED_SIGNALS:
            try:
                self._old[int(sig)] = signal.signal(sig, self._handle)
            except (OSError, ValueError):
                pass

    def restore(self) -> None:
        for sig, old in self._old.items():
            try:
                signal.signal(sig, old)
            except (OSError, ValueError, TypeError):
                pass
        self._old.clear()

    def _handle(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        if self.child is not None:
            self.forward(signum)

    def forward(self, signum: int) -> None:
        child = self.child
        if child is None or child.returncode is not None:
            return
        if signum in _TTY_SIGNALS and signum not in self._skipped_tty and tty_sent_to_group():
            self._skipped_tty.add(signum)  # the terminal signalled the child already
            return
        try:
            os.kill(child.pid, signum)
        except OSError:
            pass

    @property
    def interrupted(self) -> bool:
        return any(s in INTERRUPTING_SIGNALS for s in self.received)


def tty_sent_to_group() -> bool:
    """True when this process is in its terminal's foreground process group.

    A terminal's SIGINT/SIGQUIT then went to the whole group, the child included
    (the child shares greenmeter's process group).
    """
    group = os.getpgrp()
    for fd in (0, 1, 2):
        try:
            return os.tcgetpgrp(fd) == group
        except OSError:
            continue
    return False


def describe_end(returncode: int) -> str:
    """``"exited with 3"`` or ``"killed by SIGTERM"``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with {returncode}"
