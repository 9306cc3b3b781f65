"""Carbon accounting: grid intensity, PUE, time-varying intensity, market and embodied.

    >>> from greenmeter.carbon import CarbonConfig, resolve
    >>> acct = resolve(CarbonConfig(location="FR", pue=1.2))  # doctest: +SKIP
    >>> acct.co2e([(start_utc, end_utc, 3.6e6)], {"gpu": 1.0})  # doctest: +SKIP

Resolution order, first match wins: an explicit intensity, an explicit location or cloud
region, environment variables (``GREENMETER_*``), a config file (``[tool.greenmeter]`` in
``pyproject.toml`` or ``greenmeter.toml``), else the world average with a loud warning.
Nothing touches the network unless a live provider is configured.

:func:`check_configuration` lists every configuration mistake up front (unknown location,
region, key or variable; invalid value; untrusted config file), without resolving.

Names load on first use, so that checking the configuration when a meter starts does not
import the report models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from greenmeter.carbon.accountant import CarbonAccountant
    from greenmeter.carbon.check import (
        ConfigurationWarning,
        check_configuration,
        warn_configuration,
    )
    from greenmeter.carbon.config import CarbonConfig
    from greenmeter.carbon.errors import CarbonError
    from greenmeter.carbon.models import CarbonInfo, Co2eBreakdown
    from greenmeter.carbon.problems import ConfigProblem
    from greenmeter.carbon.resolve import resolve

__all__ = [
    "CarbonAccountant",
    "CarbonConfig",
    "CarbonError",
    "CarbonInfo",
    "Co2eBreakdown",
    "ConfigProblem",
    "ConfigurationWarning",
    "check_configuration",
    "resolve",
    "warn_configuration",
]

_LAZY = {
    "CarbonAccountant": "greenmeter.carbon.accountant",
    "resolve": "greenmeter.carbon.resolve",
    "ConfigurationWarning": "greenmeter.carbon.check",
    "check_configuration": "greenmeter.carbon.check",
    "warn_configuration": "greenmeter.carbon.check",
    "CarbonConfig": "greenmeter.carbon.config",
    "CarbonError": "greenmeter.carbon.errors",
    "CarbonInfo": "greenmeter.carbon.models",
    "Co2eBreakdown": "greenmeter.carbon.models",
    "ConfigProblem": "greenmeter.carbon.problems",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'greenmeter.carbon' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
