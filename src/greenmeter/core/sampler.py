"""The meter's one background thread: sensor polls and periodic readings, never I/O.

Each tick does a bounded amount of work: at most one ``poll`` per sensor that asked for
one (wrap guards, power sampling) and at most one reading of all counters, each behind
the read time bound of blocking sensors. The reading goes to the meter's callback, which
updates the timeline and peak power in memory and hands it to observers through a
bounded queue. Reports, checkpoints, host facts and carbon data are never touched here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from greenmeter.core.counters import Counters
from greenmeter.core.records import Reading

__all__ = ["Sampler"]


class Sampler:
    """Polls sensors and takes a reading every ``period_s`` on a daemon thread.

    Args:
        counters: The meter's read path.
        sample_interval_s: Poll period of sensors that do not state their own (s).
        period_s: Period of the readings handed to ``on_reading`` (s).
        on_reading: Receives each reading; must not block (it runs on this thread).
        on_error: Receives ``(code, message)`` when a tick fails; the thread goes on.
    """

    def __init__(
        self,
        counters: Counters,
        *,
        sample_interval_s: float,
        period_s: float,
        on_reading: Callable[[Reading], None],
        on_error: Callable[[str, str], None],
    ) -> None:
        self.counters = counters
        self.sample_interval_s = float(sample_interval_s)
        self.period_s = float(period_s)
        self._on_reading = on_reading
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_reading = 0.0
        self._next_poll: dict[int, float] = {}

    def start(self, now: float) -> None:
        """Schedule the first reading one period after ``now`` and start the thread."""
        self._next_reading = now + self.period_s
        for i, sensor in enumerate(self.counters.sensors):
            if sensor.poll_interval_s:
                self._next_poll[i] = now + sensor.poll_interval_s
        self._thread = threading.Thread(target=self._run, name="greenmeter-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread; waits at most ``timeout_s`` for a tick in progress."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout_s)

    def forget_thread(self) -> None:
        """After a fork: the thread does not exist in the child."""
        self._thread = None
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick(time.monotonic())
            except Exception as exc:  # never let the thread die silently
                self._on_error("meter.sampler_error", f"background sampler error: {exc!r}")
            next_t = self._next_reading
            for t in self._next_poll.values():
                next_t = min(next_t, t)
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def tick(self, now: float) -> None:
        """One round of due work at ``now`` (public for benchmarks with a simulated clock)."""
        for i, due in self._next_poll.items():
            if now >= due:
                self.counters.poll(i, now)
                interval = self.counters.sensors[i].poll_interval_s or self.sample_interval_s
                self._next_poll[i] = now + float(interval)
        if now >= self._next_reading and not self._stop.is_set():
            self._next_reading = now + self.period_s
            self._on_reading(self.counters.read(time.monotonic()))
