"""Energy sources: one module per counter family behind :class:`~greenmeter.sensors.base.Sensor`."""

from greenmeter.sensors.base import (
    ComponentInfo,
    ComponentKind,
    ComponentStatus,
    Method,
    Scope,
    Sensor,
    SensorWarning,
    Unavailable,
)

__all__ = [
    "ComponentInfo",
    "ComponentKind",
    "ComponentStatus",
    "Method",
    "Scope",
    "Sensor",
    "SensorWarning",
    "Unavailable",
]
