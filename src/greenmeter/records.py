"""The meter's plain data, re-exported from :mod:`greenmeter.core.records` (its home)."""

from __future__ import annotations

from greenmeter.core.records import (
    PHASE_KINDS,
    MeterSnapshot,
    PhaseKind,
    PhaseRecord,
    Reading,
    TimelinePoint,
)

__all__ = ["PHASE_KINDS", "MeterSnapshot", "PhaseKind", "PhaseRecord", "Reading", "TimelinePoint"]
