"""Turning the meter's raw values into report values: cleaned numbers, warnings, tags.

Bad values from a sensor (NaN, negative energy) become 0 with a warning; building a
report never fails for a measurement problem.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from greenmeter.report.errors import ReportError, format_validation_error
from greenmeter.report.models import ModelInfo, ReportWarning

__all__ = [
    "TOL",
    "Warnings",
    "aware",
    "clean",
    "extra_facts",
    "normalize_models",
    "opt_float",
    "opt_int",
    "tags_of",
    "value_of",
]

#: Rounding tolerance of the builder's checks.
TOL = 1e-6


def value_of(x: Any) -> str:
    """An enum's value, or the string itself."""
    return str(getattr(x, "value", x))


#: Longest warning message a report keeps (characters); longer ones are cut.
MAX_WARNING_CHARS = 4096


class Warnings:
    """The warnings a report collects while it is built, in order.

    A code the schema would refuse (empty, or over 512 characters) is replaced or cut,
    and a message cut to :data:`MAX_WARNING_CHARS`: a warning never stops a report.
    """

    def __init__(self) -> None:
        self.items: list[ReportWarning] = []

    def add(self, code: str, message: str, component: str | None = None, **kw: Any) -> None:
        code = str(code)[:512] or "unnamed"
        message = str(message)
        if len(message) > MAX_WARNING_CHARS:
            message = message[: MAX_WARNING_CHARS - 40] + f"... ({len(message)} characters)"
        self.items.append(ReportWarning(code=code, message=message, component=component, **kw))


def clean(value: Any, what: str, warn: Warnings, component: str | None = None) -> float:
    """A finite, non-negative float; anything else becomes 0 with a warning."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if math.isfinite(out) and out >= 0:
        return out
    if math.isfinite(out) and out > -TOL:
        return 0.0
    warn.add(
        "report.invalid_value",
        f"{what} was {value!r}; recorded as 0. This points at a sensor fault.",
        component,
    )
    return 0.0


def opt_float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) and out >= 0 else None


def opt_int(value: Any) -> int | None:
    try:
        out = int(str(value))
    except (TypeError, ValueError):
        return None
    return out if out >= 0 else None


def aware(value: datetime, warn: Warnings) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        warn.add("report.naive_time", "the meter gave a naive start time; taken as UTC")
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def tags_of(tags: Mapping[str, Any] | None, warn: Warnings) -> dict[str, str]:
    """Valid tags; a malformed one is left out with a warning, never failing the report."""
    from greenmeter.report.tags import MAX_TAGS, TagError, check_tags

    try:
        return check_tags(tags)
    except TagError as exc:
        warn.add("report.tags_invalid", f"tags were left out of the report: {exc}")
    out: dict[str, str] = {}
    for key, value in dict(tags or {}).items():
        try:
            out.update(check_tags({key: value}))
        except TagError:
            continue
        if len(out) >= MAX_TAGS:
            break
    return out


def normalize_models(model: Any) -> list[ModelInfo]:
    """``model`` (a ModelInfo, a dict, or a list of them, or None) as a list of ModelInfo.

    Raises:
        ReportError: a dict does not describe a valid model (the message says which field).
    """
    if model is None:
        return []
    items = list(model) if isinstance(model, (list, tuple)) else [model]
    out: list[ModelInfo] = []
    for i, item in enumerate(items):
        if isinstance(item, ModelInfo):
            out.append(item)
            continue
        if not isinstance(item, Mapping):
            raise ReportError(
                f"model #{i} is a {type(item).__name__}; expected a ModelInfo or a dict with "
                "fields name, parameters_total, parameters_trainable, size_bytes, dtypes"
            )
        try:
            out.append(ModelInfo.model_validate(dict(item)))
        except ValidationError as exc:
            raise ReportError(
                f"model #{i} is not valid model information", format_validation_error(exc)
            ) from None
    return out


def extra_facts(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (extra or {}).items():
        if value is None or isinstance(value, (str, bool, int)):
            out[str(key)] = value
        elif isinstance(value, float) and math.isfinite(value):
            out[str(key)] = value
        else:
            out[str(key)] = str(value)
    return out
