"""Small pieces of the Lightning callback: its warning, an open phase slot, hook guarding.

Nothing here imports Lightning or a meter; the callback modules build on these.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from greenmeter.meter import PhaseHandle

__all__ = [
    "STATE_VERSION",
    "STATUS_RANK",
    "TRAIN_SLOTS",
    "CallbackBase",
    "GreenMeterWarning",
    "Slot",
    "add_opt",
    "as_count",
    "distributed_ready",
    "guarded",
]

#: Version of the plain data the callback keeps in checkpoints.
STATE_VERSION = 1
#: Report statuses from best to worst.
STATUS_RANK = {"complete": 0, "running": 1, "interrupted": 2, "failed": 3}
#: The training slots, innermost first.
TRAIN_SLOTS = ("window", "epoch", "train")


class GreenMeterWarning(RuntimeWarning):
    """A measurement problem the callback noticed; training is never interrupted by it."""


def as_count(value: Any) -> int | None:
    """``value`` as a non-negative int, else None."""
    try:
        if hasattr(value, "item"):
            value = value.item()
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n >= 0 and n == value else None


def add_opt(a: int | None, b: int | None) -> int | None:
    """``a + b`` where None means "not counted"."""
    return b if a is None else a if b is None else a + b


class Slot:
    """One open phase instance plus the items counted since it last flushed.

    ``steps`` are optimizer steps (only training slots get any); ``samples`` and
    ``tokens`` are this rank's.
    """

    __slots__ = ("handle", "samples", "steps", "tokens")

    def __init__(self, handle: PhaseHandle) -> None:
        self.handle = handle
        self.samples: int | None = None
        self.tokens: int | None = None
        self.steps = 0

    def flush(self) -> None:
        """Hand the counted items to the meter."""
        if self.samples is not None or self.tokens is not None or self.steps:
            self.handle.add(samples=self.samples, tokens=self.tokens, steps=self.steps or None)
        self.samples = self.tokens = None
        self.steps = 0


def guarded(fn: Callable[..., None]) -> Callable[..., None]:
    """Hooks never raise into training: a failure becomes one warning per hook."""

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            fn(self, *args, **kwargs)
        except Exception as exc:  # a measurement problem must not stop training
            self._warn(f"hook.{fn.__name__}", f"greenmeter: {fn.__name__} failed: {exc!r}")

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def distributed_ready() -> bool:
    """True when ``torch.distributed`` has an initialised process group."""
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return bool(dist.is_available() and dist.is_initialized())


class CallbackBase:
    """Warnings, pickling and the one collective of the callback."""

    _warned: set[str]
    _notes: dict[str, str]

    # -- pickling (ddp_spawn sends callbacks to new processes) ---------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_meter"] = None  # a meter (threads, open files) cannot cross processes
        state["_owns_meter"] = False
        state["last_report"] = None
        state.pop("_accountant", None)
        state["_slots"] = dict.fromkeys(state["_slots"])
        state["_sync_installed"] = False
        state["_train_handle"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # -- warnings ---------------------------------------------------------------------

    def _warn(self, code: str, message: str) -> None:
        if code in self._warned:
            return
        self._warned.add(code)
        self._notes[code] = message
        warnings.warn(message, GreenMeterWarning, stacklevel=3)

    # -- collectives ------------------------------------------------------------------------

    def _broadcast(self, trainer: Any, value: str) -> str:
        try:
            return str(trainer.strategy.broadcast(value, src=0))
        except Exception as exc:
            self._warn("ddp.broadcast", f"greenmeter: could not share the run id: {exc!r}")
            return value
