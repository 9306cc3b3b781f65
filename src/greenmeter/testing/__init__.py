"""Emulated hardware, so code that measures energy can be tested without it.

* :class:`PowerTrace`: a piecewise-constant power trace, the ground truth.
* :class:`EmulatedPowercap`: a live Linux powercap (RAPL) sysfs tree driven by traces.
* :class:`FakeNvml`: a fake ``libnvidia-ml.so.1`` that the real ``pynvml`` loads,
  serving energy counters and power from traces.

All three share ``time.monotonic()`` as their time base, so the exact energy between any
two instants is known and accuracy can be asserted, not assumed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greenmeter.testing.trace import PowerTrace

if TYPE_CHECKING:
    from greenmeter.testing.fake_nvml import FakeNvml
    from greenmeter.testing.powercap import EmulatedPowercap

__all__ = ["EmulatedPowercap", "FakeNvml", "PowerTrace"]

_LAZY = {
    "EmulatedPowercap": "greenmeter.testing.powercap",
    "FakeNvml": "greenmeter.testing.fake_nvml",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'greenmeter.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
