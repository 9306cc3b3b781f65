"""Building blocks shared by the report models: the base model, field types, units.

Kept apart from :mod:`greenmeter.report.models` so that every model module (and the
efficiency figures) can use them without importing each other.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from greenmeter.core.limits import MAX_NAME_CHARS
from greenmeter.core.records import PHASE_KINDS
from greenmeter.report.tags import MAX_TAG_VALUE
from greenmeter.units import J_PER_KWH

__all__ = [
    "CONFIDENCE_LEVELS",
    "J_PER_KWH",
    "ComponentKindName",
    "ConfidenceLevel",
    "ExtraValue",
    "MethodName",
    "Name",
    "NonNegFloat",
    "NonNegInt",
    "PhaseKindName",
    "ScopeName",
    "Status",
    "TagKey",
    "TagValue",
    "UtcDatetime",
    "close",
    "component_key",
]


REL_TOL = 1e-6
ABS_TOL = 1e-6


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime, normalised to UTC. Naive datetimes are rejected."""

NonNegFloat = Annotated[float, Field(ge=0)]
NonNegInt = Annotated[int, Field(ge=0)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
#: A tag name: a letter or underscore, then letters, digits, ``_``, ``.`` or ``-``.
TagKey = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")]
TagValue = Annotated[str, Field(max_length=MAX_TAG_VALUE)]

Status = Literal["complete", "interrupted", "failed", "running"]
MethodName = Literal["counter", "sampled", "estimated"]
ComponentKindName = Literal["cpu", "dram", "gpu", "psys", "ram"]
ScopeName = Literal["cpu_package", "dram", "platform", "gpu_board", "machine", "process"]
#: Phase kinds the report knows (the meter's list: one definition).
PhaseKindName = Literal[PHASE_KINDS]  # type: ignore[valid-type]
ConfidenceLevel = Literal["high", "medium", "low"]
#: Confidence levels from best to worst.
CONFIDENCE_LEVELS: tuple[str, ...] = ("high", "medium", "low")
ExtraValue = str | int | float | bool | None


def component_key(component_id: str, host: str) -> str:
    """The key a component has in a report: ``"<id>@<host>"``, unique across hosts."""
    return f"{component_id}@{host}"


def close(a: float, b: float) -> bool:
    """Equal up to rounding (relative 1e-6, absolute 1e-6)."""
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def at_most(a: float, b: float) -> bool:
    """``a <= b`` up to rounding (relative 1e-6, absolute 1e-6)."""
    return a <= b * (1 + REL_TOL) + ABS_TOL


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)
