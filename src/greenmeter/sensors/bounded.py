"""A time bound around sensors whose reads can block (driver locks, hung devices).

NVML calls take a driver lock and can stall for a long time when a GPU falls off the
bus. :class:`BoundedSensor` runs the wrapped sensor's ``read`` and ``poll`` on a worker
thread of its own and waits at most ``timeout_s``. When the bound is exceeded the caller
gets the last known cumulative values at once (the energy is not lost: the counter
catches up on the next successful read).

Health. The first call past the bound marks every component degraded from that instant
(``sensor.read_timeout``), so the report lowers the confidence of the phases it touches;
later timeouts are counted (a warning at the 2nd, 4th, 8th...). When a call answers
again, the status keeps ``degraded`` and gains ``recovered_at`` (``sensor.read_recovered``):
the stall's energy lands in the phase that read the counter next, so that phase is not
exact either.

Waiting. While a call that outlived the bound is still running, later calls do not wait
at all. A call that finds another one merely in progress (the sampler's, say) waits for
it, within the bound, so boundaries never get stale values from an ordinary overlap.
Whether a call is hung is decided from the worker's state under one condition variable,
so a call that ends just as its caller gives up can never leave the sensor marked hung.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from greenmeter.sensors.base import (
    ComponentInfo,
    ComponentStatus,
    Sensor,
    SensorWarning,
)

__all__ = ["BoundedSensor"]


class _Job:
    """One call handed to the worker; its fields change under the sensor's condition."""

    __slots__ = ("done", "error", "fn", "is_read", "now", "result", "started")

    def __init__(self, fn: Callable[[float], Any], now: float, is_read: bool) -> None:
        self.fn = fn
        self.now = now
        self.is_read = is_read
        self.started: float | None = None  # time.monotonic() when the worker began it
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


_STOP = _Job(lambda now: None, 0.0, False)


class BoundedSensor(Sensor):
    """Wraps ``inner`` so that no ``read``/``poll`` blocks the caller past ``timeout_s``.

    Args:
        inner: The sensor to protect.
        timeout_s: Longest wait for one call, in seconds.
    """

    def __init__(self, inner: Sensor, timeout_s: float = 2.0) -> None:
        super().__init__()
        if not (timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        self.inner = inner
        self.name = inner.name
        self.poll_interval_s = inner.poll_interval_s
        self.timeout_s = float(timeout_s)
        self._cond = threading.Condition()
        self._last: dict[str, float] = {}
        self._queued: _Job | None = None  # handed over, not yet taken by the worker
        self._running: _Job | None = None  # the call the worker is making
        self._timeouts = 0
        self._stalled = False  # a timeout happened and no call has answered since
        self._closed = False
        self._worker = threading.Thread(
            target=self._serve, name=f"greenmeter-{inner.name}-reader", daemon=True
        )
        self._worker.start()

    def components(self) -> list[ComponentInfo]:
        return self.inner.components()

    def read(self, now: float) -> dict[str, float]:
        values, _fresh = self.read_fresh(now)
        return values

    def read_fresh(self, now: float) -> tuple[dict[str, float], bool]:
        """Like :meth:`read`, and whether the values were read afresh for ``now``.

        False means the call timed out (or was skipped while a call is hung) and the
        values are the last known ones.
        """
        finished, result = self._call(self.inner.read, now, is_read=True)
        with self._cond:
            if finished and isinstance(result, dict):
                self._last.update(result)
            return dict(self._last), finished

    def poll(self, now: float) -> None:
        self._call(self.inner.poll, now, is_read=False)

    def close(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            while self._running is not None or self._queued is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return  # hung: leave the inner sensor alone
                self._cond.wait(remaining)
            if self._closed:
                return
            self._closed = True
            self._queued = _STOP
            self._cond.notify_all()
        self.inner.close()

    def status(self) -> dict[str, ComponentStatus]:
        merged = dict(self.inner.status())
        merged.update(self._status)
        return merged

    def drain_warnings(self) -> list[SensorWarning]:
        return self.inner.drain_warnings() + super().drain_warnings()

    # -- calls --------------------------------------------------------------------------

    def _hung(self) -> bool:
        """A call has run past the bound and not returned (caller holds the condition)."""
        job = self._running
        return (
            job is not None
            and job.started is not None
            and time.monotonic() - job.started > self.timeout_s
        )

    def _call(self, fn: Callable[[float], Any], now: float, *, is_read: bool) -> tuple[bool, Any]:
        """Run ``fn(now)`` on the worker; ``(finished, result)`` within the bound."""
        with self._cond:
            if self._closed:
                return False, None
            if self._hung():
                return False, None  # answer at once with the last values
            if not self.inner.may_block and self._running is None and self._queued is None:
                # answers from memory: no hand-over to the worker (two thread wake-ups)
                result = fn(now)
                if is_read and isinstance(result, dict):
                    self._last.update(result)
                return True, result
            # another caller's call may be queued or running: wait for it, within the bound
            deadline = time.monotonic() + self.timeout_s
            while self._running is not None or self._queued is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._hung():
                    self._timed_out(now)
                    return False, None
                self._cond.wait(remaining)
            job = _Job(fn, now, is_read)
            self._queued = job
            self._cond.notify_all()
            deadline = time.monotonic() + self.timeout_s
            while not job.done:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if not job.done:
                self._timed_out(now)
                return False, None
            if self._stalled:
                self._recovered(now)
        if job.error is not None:
            raise job.error
        return True, job.result

    def _timed_out(self, now: float) -> None:
        """Count a timeout and degrade every component from ``now`` (holding the condition)."""
        self._timeouts += 1
        self._stalled = True
        n = self._timeouts
        reason = (
            f"a call to the {self.name!r} sensor took longer than {self.timeout_s:g} s; its "
            "last values are used until it answers again (the energy is attributed when the "
            "counter is next read). A hung GPU driver or device is the usual cause."
        )
        if n == 1:
            for comp in self.inner.components():
                self._status[comp.id] = ComponentStatus(True, reason, now)
                self.warn("sensor.read_timeout", reason, comp.id, now)
        elif n & (n - 1) == 0:  # the 2nd, 4th, 8th... time: a bounded number of warnings
            self.warn("sensor.read_timeout", f"{reason} ({n} times so far)", None, now)

    def _recovered(self, now: float) -> None:
        """Fresh values again after a stall: note when (holding the condition)."""
        self._stalled = False
        for comp in self.inner.components():
            old = self._status.get(comp.id)
            if old is not None and old.degraded:
                self._status[comp.id] = ComponentStatus(
                    True, old.reason, old.degraded_at, recovered_at=now
                )
        self.warn(
            "sensor.read_recovered",
            f"the {self.name!r} sensor answers again after {self._timeouts} call(s) past the "
            f"{self.timeout_s:g} s bound; the energy of the stall is attributed to the phase "
            "that read it next",
            None,
            now,
        )

    def _serve(self) -> None:
        while True:
            with self._cond:
                while self._queued is None:
                    self._cond.wait()
                job = self._queued
                self._queued = None
                if job is _STOP:
                    return
                job.started = time.monotonic()
                self._running = job
            result: Any = None
            error: BaseException | None = None
            try:
                result = job.fn(job.now)
            except BaseException as exc:  # handed back to the caller
                error = exc
            with self._cond:
                job.result, job.error, job.done = result, error, True
                if job.is_read and error is None and isinstance(result, dict):
                    self._last.update(result)  # a late answer still moves the values on
                self._running = None
                self._cond.notify_all()
