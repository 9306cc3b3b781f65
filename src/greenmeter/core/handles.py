"""What user code holds of the meter: phase handles, listeners, and the meter's errors.

A :class:`PhaseHandle` is one open instance of a phase; closing it (``exit``, or leaving
its ``with`` block) is the boundary. The handle forwards everything to its meter, which
does the accounting under its lock.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from greenmeter.core.phases import PhaseState

__all__ = [
    "GreenMeterWarning",
    "InertHandle",
    "MeterError",
    "Owner",
    "PhaseHandle",
    "PhaseListener",
    "measured",
]

F = TypeVar("F", bound=Callable[..., Any])


class MeterError(RuntimeError):
    """A usage error of the meter (not a measurement problem), with what to do."""


class GreenMeterWarning(RuntimeWarning):
    """A measurement problem noticed in the user's process; the program is never stopped."""


class PhaseListener(Protocol):
    """Receives phase events on the thread that caused them, in order, losslessly.

    Used to forward a child process's phases to ``greenmeter run``. Methods are called
    outside the meter's lock, after the boundary was recorded; an exception is reported
    once as a warning and never reaches the user's code. A listener that may be slow
    should be an observer instead (:meth:`greenmeter.core.meter.Meter.add_observer`).
    """

    def phase_entered(self, path: tuple[str, ...], kind: str, t_mono: float) -> None: ...

    def phase_exited(self, path: tuple[str, ...], t_mono: float) -> None: ...

    def items_added(
        self, path: tuple[str, ...], samples: int | None, tokens: int | None, steps: int | None
    ) -> None: ...


class Owner(Protocol):
    """What a handle and :func:`measured` need of their meter
    (:class:`greenmeter.core.meter.Meter`)."""

    _lock: Any
    warned_unmeasured: bool

    @property
    def inert(self) -> bool: ...

    @property
    def stopped(self) -> bool: ...

    def enter(self, name: str, kind: str | None = None) -> PhaseHandle: ...

    def exit(self, handle: PhaseHandle) -> None: ...

    def _add_items(
        self, state: PhaseState, samples: int | None, tokens: int | None, steps: int | None
    ) -> None: ...

    def _record_latency(self, state: PhaseState, latency_s: float) -> None: ...


class PhaseHandle:
    """One open instance of a phase; returned by :meth:`greenmeter.core.meter.Meter.enter`.

    Use it to attribute work to the phase (:meth:`add`), record per-call latencies
    (:meth:`record_latency`) and to close it (:meth:`exit`).
    """

    __slots__ = ("_closed", "_meter", "_state", "path")

    def __init__(self, meter: Owner, state: PhaseState) -> None:
        self._meter = meter
        self._state = state
        self.path: tuple[str, ...] = state.record.path
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`exit` has run."""
        return self._closed

    def add(
        self, *, samples: int | None = None, tokens: int | None = None, steps: int | None = None
    ) -> None:
        """Attribute work items to this phase (counts add up over repetitions)."""
        self._meter._add_items(self._state, samples, tokens, steps)

    def record_latency(self, latency_s: float) -> None:
        """Record one call's latency in seconds (kept in a bounded reservoir)."""
        self._meter._record_latency(self._state, latency_s)

    def set_attr(self, key: str, value: object) -> None:
        """Attach a string fact to the phase (e.g. the batch size or repeat count)."""
        with self._meter._lock:
            self._state.record.attrs[str(key)] = str(value)

    def exit(self) -> None:
        """Close this instance of the phase. Closing twice is a no-op."""
        self._meter.exit(self)

    def __enter__(self) -> PhaseHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.exit()

    def __repr__(self) -> str:
        return f"PhaseHandle({'/'.join(self.path)!r}, closed={self._closed})"


class InertHandle(PhaseHandle):
    """A handle in a forked child process: records nothing, so nothing is counted twice."""

    def __init__(self, meter: Owner, path: tuple[str, ...]) -> None:
        self._meter = meter
        self._state = None  # type: ignore[assignment]
        self.path = path
        self._closed = False

    def add(self, **_: int | None) -> None:  # type: ignore[override]
        return None

    def record_latency(self, latency_s: float) -> None:
        return None

    def set_attr(self, key: str, value: object) -> None:
        return None


def measured(meter: Owner, fn: F, phase_name: str, kind: str | None) -> F:
    """``fn`` with each call measured as one entry of ``phase_name`` on ``meter``.

    Each call adds one to the phase's ``count`` and records its latency (seconds, wall
    clock). While the meter is not running (before start, after stop) ``fn`` runs
    unmeasured and one :class:`GreenMeterWarning` per meter says so.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if meter.inert:
            return fn(*args, **kwargs)
        try:
            handle = meter.enter(phase_name, kind)
        except MeterError:
            if not meter.warned_unmeasured:
                meter.warned_unmeasured = True
                state = "was stopped" if meter.stopped else "is not started"
                warnings.warn(
                    f"greenmeter: {phase_name!r} ran unmeasured because the meter {state}; "
                    "later calls run unmeasured too",
                    GreenMeterWarning,
                    stacklevel=2,
                )
            return fn(*args, **kwargs)
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            try:
                handle.record_latency(time.perf_counter() - t0)
            finally:
                meter.exit(handle)

    return wrapper  # type: ignore[return-value]
