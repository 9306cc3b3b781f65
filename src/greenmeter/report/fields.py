"""Field types and the strict base model every report model shares.

Kept apart from :mod:`greenmeter.report.models` so that the modules which compute parts
of a report (:mod:`greenmeter.report.efficiency`) can define their models without
importing the whole schema.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["NonNegFloat", "NonNegInt", "StrictModel"]

NonNegFloat = Annotated[float, Field(ge=0)]
NonNegInt = Annotated[int, Field(ge=0)]


class StrictModel(BaseModel):
    """Unknown fields, NaN and infinities are rejected; defaults are validated."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)
