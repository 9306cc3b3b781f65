"""Carbon accounting: grid intensity, PUE, time-varying intensity, market and embodied.

    >>> from greenmeter.carbon import CarbonConfig, resolve
    >>> acct = resolve(CarbonConfig(location="FR", pue=1.2))  # doctest: +SKIP
    >>> acct.co2e([(start_utc, end_utc, 3.6e6)], {"gpu": 1.0})  # doctest: +SKIP

Resolution order, first match wins: an explicit intensity, an explicit location or cloud
region, environment variables (``GREENMETER_*``), a config file (``[tool.greenmeter]`` in
``pyproject.toml`` or ``greenmeter.toml``), else the world average with a loud warning.
Nothing touches the network unless a live provider is configured.
"""

from __future__ import annotations

from greenmeter.carbon.accountant import CarbonAccountant
from greenmeter.carbon.config import CarbonConfig
from greenmeter.carbon.errors import CarbonError
from greenmeter.carbon.models import CarbonInfo, Co2eBreakdown
from greenmeter.carbon.resolve import resolve

__all__ = [
    "CarbonAccountant",
    "CarbonConfig",
    "CarbonError",
    "CarbonInfo",
    "Co2eBreakdown",
    "resolve",
]
