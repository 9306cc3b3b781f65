"""In-memory sensors driven by power traces, for testing code that uses a meter.

:class:`TraceSensor` behaves like a perfect hardware counter: its cumulative energy is
the exact integral of a :class:`~greenmeter.testing.trace.PowerTrace`. Use it to test
phase attribution without any files or libraries; use
:class:`~greenmeter.testing.EmulatedPowercap` or :class:`~greenmeter.testing.FakeNvml`
to exercise the real sensor code paths.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping

from greenmeter.sensors.base import ComponentInfo, ComponentKind, Method, Scope, Sensor
from greenmeter.testing.trace import PowerTrace

__all__ = ["TraceSensor"]


class TraceSensor(Sensor):
    """A counter-method sensor whose components follow power traces exactly.

    Args:
        traces: Component id -> trace (e.g. ``{"trace:cpu": PowerTrace(...)}``).
        kind: Component kind for all components.
        scope: Component scope for all components.
        resolution_s: Reported resolution of the "counter".
        fail_after: Optional ``now -> bool``; while it returns True every read raises,
            to test how callers cope with a failing sensor.
        delay_s: Optional ``now -> seconds``: each read first sleeps that long (a hung
            driver, when large).
        may_block: Declare the sensor as one whose calls can block, so meters put it
            behind their read time bound.
    """

    name = "trace"

    def __init__(
        self,
        traces: Mapping[str, PowerTrace],
        *,
        kind: ComponentKind = ComponentKind.CPU,
        scope: Scope = Scope.CPU_PACKAGE,
        resolution_s: float = 0.001,
        fail_after: Callable[[float], bool] | None = None,
        delay_s: Callable[[float], float] | None = None,
        may_block: bool = False,
    ) -> None:
        super().__init__()
        self._delay = delay_s
        self.may_block = may_block
        self.traces = dict(traces)
        self._fail = fail_after
        host = socket.gethostname()
        self._components = [
            ComponentInfo(
                id=cid,
                kind=kind,
                scope=scope,
                method=Method.COUNTER,
                sensor=self.name,
                label=f"trace {cid}",
                host=host,
                resolution_s=resolution_s,
            )
            for cid in self.traces
        ]

    def components(self) -> list[ComponentInfo]:
        return list(self._components)

    def read(self, now: float) -> dict[str, float]:
        if self._delay is not None:
            pause = self._delay(now)
            if pause > 0:
                time.sleep(pause)
        if self._fail is not None and self._fail(now):
            raise OSError("injected read failure")
        return {cid: trace.cumulative_j(now) for cid, trace in self.traces.items()}
