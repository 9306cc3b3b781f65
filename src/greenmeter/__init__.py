"""greenmeter: energy and carbon accounting for machine learning.

Measure what a run draws from GPU (NVML) and CPU (RAPL) counters, attribute it to the
phases of the work, convert it to CO2e with sourced grid intensities, and write one
validated JSON report.

    >>> from greenmeter import EnergyMeter
    >>> with EnergyMeter() as meter:            # doctest: +SKIP
    ...     with meter.phase("train"):
    ...         train()

Importing this package is cheap: it imports no ML framework, numpy or pandas; heavier
parts load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greenmeter._version import __version__

if TYPE_CHECKING:
    from greenmeter.meter import EnergyMeter, PhaseHandle

__all__ = ["EnergyMeter", "PhaseHandle", "__version__"]

_LAZY = {
    "EnergyMeter": "greenmeter.meter",
    "PhaseHandle": "greenmeter.meter",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'greenmeter' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
