"""Unit constants shared by the report and the footprint (importing this is free)."""

from __future__ import annotations

__all__ = ["J_PER_KWH"]

#: Joules in one kilowatt-hour.
J_PER_KWH = 3_600_000.0
