"""Processes a command leaves behind: descendants still alive after it exited.

``greenmeter run`` measures until the command exits. A command that starts processes
in the background (``sh -c "server & exit 0"``) and exits leaves them running: their
energy after that instant is not in the report, and the user should know. On Linux
``greenmeter run`` becomes a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``)
while the command runs, so the command's orphaned descendants are re-parented to it
instead of to init, and the survivors are exactly its own children other than the
command, found in ``/proc``. Elsewhere (or when ``prctl`` is refused) survivors are not
looked for and :meth:`SurvivorWatch.survivors` returns None.

Nothing here waits for, signals or adopts the survivors beyond the kernel's
re-parenting: greenmeter exits as soon as the report is written, and they go on.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["SurvivorWatch", "children_of", "describe_survivors"]

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


def _prctl() -> Any | None:
    """libc's ``prctl`` (Linux only), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


def children_of(pid: int, proc: str = "/proc") -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``, read from ``/proc``."""
    out: list[int] = []
    try:
        names = os.listdir(proc)
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc, name, "stat"), "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 2 and fields[0] != b"Z" and int(fields[1]) == pid:
            out.append(int(name))
    return sorted(out)


class SurvivorWatch:
    """Makes this process the subreaper of a command's descendants while it runs.

    Use as: ``watch = SurvivorWatch(); watch.start()``, spawn and wait for the command,
    then ``watch.survivors()`` and ``watch.stop()`` (which restores the previous
    subreaper setting).
    """

    def __init__(self) -> None:
        self._prctl = _prctl()
        self._previous: int | None = None
        self._before: set[int] = set()
        self.active = False

    def start(self) -> None:
        """Become the subreaper (when the platform allows); note the existing children."""
        if self._prctl is None:
            return
        import ctypes

        value = ctypes.c_int(0)
        try:
            if self._prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0) != 0:
                return
            if self._prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
                return
        except (OSError, ValueError, TypeError):
            return
        self._previous = value.value
        self._before = set(children_of(os.getpid()))
        self.active = True

    def survivors(self, command_pid: int) -> list[int] | None:
        """The command's descendants still alive (process ids), or None when unknown.

        Call after the command (``command_pid``) exited and was reaped.
        """
        if not self.active:
            return None
        mine = set(children_of(os.getpid()))
        return sorted(mine - self._before - {command_pid})

    def stop(self) -> None:
        """Restore the previous subreaper setting (re-parented survivors stay children)."""
        if not self.active or self._prctl is None:
            return
        self.active = False
        try:
            self._prctl(_PR_SET_CHILD_SUBREAPER, self._previous or 0, 0, 0, 0)
        except (OSError, ValueError, TypeError):
            pass


def describe_survivors(pids: list[int]) -> str:
    """One line naming the processes the command left running."""
    shown = ", ".join(str(p) for p in pids[:10]) + (", ..." if len(pids) > 10 else "")
    return (
        f"the command exited but {len(pids)} process(es) it started are still running "
        f"(pid {shown}); their energy after the command's exit is not in the report"
    )
