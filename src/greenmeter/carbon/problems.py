"""A configuration mistake as data (:class:`ConfigProblem`), and checking values for them.

Shared by the environment reader (:mod:`greenmeter.carbon.settings`), the config file
reader (:mod:`greenmeter.carbon.config_files`) and the up-front check
(:mod:`greenmeter.carbon.check`), so that each problem is found, worded and attributed
to its source in one way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from greenmeter.carbon.config import CarbonConfig
from greenmeter.carbon.errors import CarbonError

__all__ = ["ConfigProblem", "raise_fatal", "validate_values"]

#: Settings validated together (a range needs its central value; two market figures
#: exclude each other); every other setting is validated alone.
_GROUPS: tuple[tuple[str, ...], ...] = (
    ("intensity_g_per_kwh", "intensity_low_g_per_kwh", "intensity_high_g_per_kwh"),
    ("pue", "pue_low", "pue_high"),
    ("market_factor_g_per_kwh", "renewable_share"),
)


@dataclass(frozen=True)
class ConfigProblem:
    """One configuration mistake, found before any measurement.

    Attributes:
        code: Stable identifier: ``config.unknown_location``,
            ``config.unknown_cloud_region``, ``config.invalid_value``,
            ``config.unknown_key``, ``config.unknown_env``, ``config.refused_in_file``,
            ``config.missing_file``, ``config.unreadable_file``,
            ``config.untrusted_file`` or ``config.check_failed`` (the checker itself
            failed; not fatal).
        message: One line naming the source, the problem and the fix.
        source: Where the setting came from (``environment variable GREENMETER_LOCATION``,
            ``/p/pyproject.toml [tool.greenmeter]``, ``argument config_file``).
        setting: The setting or key concerned, when there is one.
        fatal: True when ``greenmeter run`` refuses to start over it; False for a file
            that was skipped (untrusted), which changes nothing but is worth knowing.
    """

    code: str
    message: str
    source: str
    setting: str | None = None
    fatal: bool = True

    def __str__(self) -> str:
        return self.message


def _value_code(field: str | None, message: str) -> str:
    if field == "location" and "unknown location" in message:
        return "config.unknown_location"
    if field == "cloud" and "unknown cloud" in message:
        return "config.unknown_cloud_region"
    return "config.invalid_value"


def validate_values(
    values: Mapping[str, Any], describe: Callable[[str | None], tuple[str, str]]
) -> list[ConfigProblem]:
    """Problems of ``values`` (CarbonConfig fields), each attributed to its setting.

    Settings that depend on each other (a range and its central value) are checked
    together, every other setting alone, so that every bad value is named, not only
    the first.

    ``describe(field)`` gives ``(prefix, source)`` for a message about ``field``.
    """
    try:
        CarbonConfig(**values)
        return []
    except (CarbonError, TypeError, ValueError) as exc:
        combined = str(exc)
    parts: list[tuple[str, ...]] = [g for g in _GROUPS if any(f in values for f in g)]
    grouped = {f for g in _GROUPS for f in g}
    parts += [(f,) for f in values if f not in grouped]
    problems = []
    for part in parts:
        sub = {f: values[f] for f in part if f in values}
        try:
            CarbonConfig(**sub)
        except (CarbonError, TypeError, ValueError) as exc:
            field = next(iter(sub))
            prefix, source = describe(field)
            problems.append(
                ConfigProblem(
                    _value_code(field, str(exc)), f"{prefix}: {exc}", source, setting=field
                )
            )
    if not problems:
        prefix, source = describe(None)
        problems.append(ConfigProblem("config.invalid_value", f"{prefix}: {combined}", source))
    return problems


def raise_fatal(problems: Iterable[ConfigProblem]) -> None:
    """Raise the fatal problems together as one :class:`CarbonError` (none: return)."""
    fatal = [p.message for p in problems if p.fatal]
    if fatal:
        raise CarbonError("; ".join(fatal))
