"""A time bound around sensors whose reads can block (driver locks, hung devices).

NVML calls take a driver lock and can stall for a long time when a GPU falls off the
bus. :class:`BoundedSensor` runs the wrapped sensor's ``read`` and ``poll`` on a worker
thread of its own and waits at most ``timeout_s``. When the bound is exceeded the caller
gets the last known cumulative values at once (the energy is not lost: the counter
catches up on the next successful read) and a ``sensor.read_timeout`` warning is
recorded; while the stuck call is still running, later calls do not wait at all. A call
that finds another one merely in progress (the sampler's, say) waits for it, within the
bound, so boundaries never get stale values from an ordinary overlap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from greenmeter.sensors.base import ComponentInfo, ComponentStatus, Sensor, SensorWarning

__all__ = ["BoundedSensor"]


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
        self._last: dict[str, float] = {}
        self._busy = threading.Lock()  # held while a call runs on the worker
        self._cond = threading.Condition()
        self._job: tuple[Callable[..., Any], float, list[Any], threading.Event] | None = None
        self._timeouts = 0
        self._stuck = False  # a call outlived the bound and has not returned yet
        self._worker = threading.Thread(
            target=self._serve, name=f"greenmeter-{inner.name}-reader", daemon=True
        )
        self._worker.start()

    def components(self) -> list[ComponentInfo]:
        return self.inner.components()

    def read(self, now: float) -> dict[str, float]:
        result = self._call(self.inner.read, now)
        if isinstance(result, dict):
            self._last.update(result)
        return dict(self._last)

    def poll(self, now: float) -> None:
        self._call(self.inner.poll, now)

    def close(self) -> None:
        if self._busy.acquire(timeout=self.timeout_s):
            try:
                self.inner.close()
            finally:
                self._busy.release()

    def status(self) -> dict[str, ComponentStatus]:
        merged = dict(self.inner.status())
        merged.update(self._status)
        return merged

    def drain_warnings(self) -> list[SensorWarning]:
        return self.inner.drain_warnings() + super().drain_warnings()

    # -- worker -------------------------------------------------------------------------

    def _call(self, fn: Callable[[float], Any], now: float) -> Any:
        if self._stuck:
            return None  # a call is hung: answer at once with the last values
        # Another thread's call (the sampler's, a boundary's) may be running: wait for it
        # rather than answer with stale values, but never past the bound.
        if not self._busy.acquire(timeout=self.timeout_s):
            return None
        done = threading.Event()
        box: list[Any] = []
        with self._cond:
            self._job = (fn, now, box, done)
            self._cond.notify()
        if done.wait(self.timeout_s):
            if box and isinstance(box[0], BaseException):
                raise box[0]
            return box[0] if box else None
        self._timeouts += 1
        self._stuck = True
        if done.is_set():  # it returned just after the bound: not stuck after all
            self._stuck = False
        n = self._timeouts
        if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th... time: a bounded number of warnings
            self.warn(
                "sensor.read_timeout",
                f"a call to the {self.name!r} sensor took longer than {self.timeout_s:g} s "
                f"({n} time{'s' if n > 1 else ''} so far); its last values are used until it "
                "answers again (the energy is attributed when the counter is next read). A "
                "hung GPU driver or device is the usual cause.",
                None,
                now,
            )
        return None

    def _serve(self) -> None:
        while True:
            with self._cond:
                while self._job is None:
                    self._cond.wait()
                fn, now, box, done = self._job
                self._job = None
            try:
                box.append(fn(now))
            except BaseException as exc:  # handed back to the caller
                box.append(exc)
            finally:
                self._stuck = False
                self._busy.release()
                done.set()
