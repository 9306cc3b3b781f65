"""Observers: live consumers of a run (metric exporters) that never slow the training.

An observer is any object with some of these methods (all optional):

* ``phase_entered(path, kind, t_mono)`` and ``phase_exited(path, t_mono)``: a phase
  path became active / inactive (``path`` is a tuple of names, ``t_mono`` the boundary's
  ``time.monotonic()`` instant);
* ``items_added(path, samples, tokens, steps)``: work attributed to a phase;
* ``reading_taken(reading)``: the sampler's periodic
  :class:`~greenmeter.core.records.Reading`, cumulative joules per component since the
  meter started together with the instant they hold at (about every sampling period).

Events are queued by the thread that causes them (an append to a bounded queue, no
lock, no wait) and delivered in order on one daemon thread, ``greenmeter-observers``.
When observers fall behind by more than :data:`QUEUE_EVENTS` events the oldest are
dropped and counted (readings are cumulative, so a later one supersedes a lost one). An
observer that raises is reported once as a warning and keeps receiving events.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["EVENTS", "QUEUE_EVENTS", "Observers"]

#: Most events waiting for delivery; older ones are dropped beyond that.
QUEUE_EVENTS = 8192
#: The methods an observer may implement.
EVENTS = ("phase_entered", "phase_exited", "items_added", "reading_taken")
#: Longest wait for the queue to drain when the meter stops (s).
DRAIN_S = 1.0


class Observers:
    """Delivers events to observers on a thread of its own.

    Args:
        on_error: Receives ``(code, message)`` when an observer raises.
    """

    def __init__(self, on_error: Callable[[str, str], None]) -> None:
        self._observers: list[Any] = []
        self._queue: deque[tuple[str, tuple[Any, ...]]] = deque(maxlen=QUEUE_EVENTS)
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._on_error = on_error
        #: Events dropped because observers fell behind.
        self.dropped = 0
        #: True once an observer was added (the meter skips queueing until then).
        self.active = False

    def add(self, observer: Any) -> None:
        """Deliver events to ``observer`` from now on.

        Raises:
            TypeError: ``observer`` implements none of :data:`EVENTS`.
        """
        if not any(callable(getattr(observer, name, None)) for name in EVENTS):
            raise TypeError(
                f"an observer needs at least one of the methods {', '.join(EVENTS)}; "
                f"got {observer!r}"
            )
        if observer in self._observers:
            return
        self._observers = [*self._observers, observer]
        self.active = True
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._run, name="greenmeter-observers", daemon=True
            )
            self._thread.start()

    def put(self, event: str, *args: Any) -> None:
        """Queue one event (never blocks; drops the oldest when full)."""
        queue = self._queue
        if len(queue) == QUEUE_EVENTS:
            self.dropped += 1
        queue.append((event, args))
        self._idle.clear()
        if not self._wake.is_set():
            self._wake.set()

    def close(self) -> None:
        """Deliver what is queued (within :data:`DRAIN_S`) and stop the thread."""
        if self._thread is not None and self._queue:
            self._idle.wait(DRAIN_S)
        self._closed = True
        self._wake.set()

    def forget_thread(self) -> None:
        """After a fork: the thread does not exist in the child."""
        self._thread = None
        self._closed = True
        self._queue.clear()

    def _run(self) -> None:
        failed: set[int] = set()
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._queue:
                try:
                    event, args = self._queue.popleft()
                except IndexError:
                    break
                for observer in self._observers:
                    method = getattr(observer, event, None)
                    if method is None:
                        continue
                    try:
                        method(*args)
                    except Exception as exc:
                        if id(observer) not in failed:
                            failed.add(id(observer))
                            self._on_error("meter.observer_failed", f"an observer failed: {exc!r}")
            self._idle.set()
            if self._closed:
                return
