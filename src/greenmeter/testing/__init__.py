"""Emulated hardware, so code that measures energy can be tested without it.

* :class:`PowerTrace`: a piecewise-constant power trace, the ground truth.
* :class:`EmulatedPowercap`: a live Linux powercap (RAPL) sysfs tree driven by traces.
* :class:`FakeNvml`: a fake ``libnvidia-ml.so.1`` that the real ``pynvml`` loads,
  serving energy counters and power from traces.
* :class:`FakeAmdSmi`: a fake ``libamd_smi.so`` that the real ``amdsmi`` package loads,
  serving AMD energy accumulators, socket power and compute partitions from traces.

All of them share ``time.monotonic()`` as their time base, so the exact energy between any
two instants is known and accuracy can be asserted, not assumed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greenmeter.testing.trace import PowerTrace

if TYPE_CHECKING:
    from greenmeter.testing.fake_amdsmi import FakeAmdSmi
    from greenmeter.testing.fake_nvml import FakeNvml
    from greenmeter.testing.powercap import EmulatedPowercap

__all__ = ["EmulatedPowercap", "FakeAmdSmi", "FakeNvml", "PowerTrace"]

_LAZY = {
    "EmulatedPowercap": "greenmeter.testing.powercap",
    "FakeNvml": "greenmeter.testing.fake_nvml",
    "FakeAmdSmi": "greenmeter.testing.fake_amdsmi",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'greenmeter.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
