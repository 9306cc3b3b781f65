"""Carbon settings from environment variables and config files.

Environment variables (all optional):

==================================== ==============================================
``GREENMETER_INTENSITY_G_PER_KWH``   explicit grid intensity, gCO2e/kWh
``GREENMETER_INTENSITY_LOW_G_PER_KWH`` / ``..._HIGH_G_PER_KWH``  its range
``GREENMETER_LOCATION``              country / state / subregion / province
``GREENMETER_CLOUD_REGION``          e.g. ``aws:us-east-1``
``GREENMETER_USE_PROVIDER_FIGURE``   ``1``/``true`` to use the provider's own figure
``GREENMETER_PUE``                   number >= 1 or preset name
``GREENMETER_PUE_SOURCE``            source text for a numeric PUE
``GREENMETER_INTENSITY_SERIES``      path to a CSV/JSON intensity time series
``GREENMETER_SERIES_OUT_OF_RANGE``   ``nearest`` or ``static``
``GREENMETER_LIVE_PROVIDER``         ``electricitymaps`` (off when unset)
``GREENMETER_LIVE_ZONE``             provider zone, e.g. ``FR``
``GREENMETER_ELECTRICITYMAPS_URL``   API base URL
``GREENMETER_MARKET_FACTOR_G_PER_KWH`` market-based factor, gCO2e/kWh
``GREENMETER_RENEWABLE_SHARE``       contracted renewable share, 0..1
``GREENMETER_RESIDUAL_MIX_G_PER_KWH`` residual-mix factor for the uncovered share
``GREENMETER_EMBODIED``              ``1``/``true`` for embodied defaults
``GREENMETER_CONFIG``                config file to read instead of searching
``ELECTRICITYMAPS_TOKEN``            API token (name configurable: live_token_env)
==================================== ==============================================

Config files are read by :mod:`greenmeter.carbon.config_files` (its names are
re-exported here); which files may be read at all is decided by
:mod:`greenmeter.carbon.trust`. Any other ``GREENMETER_*`` variable that greenmeter does
not know (:data:`OTHER_ENV_VARS`) is a problem, with a did-you-mean.

Every problem found is a :class:`~greenmeter.carbon.problems.ConfigProblem`;
:func:`read_env` returns them all, :func:`from_env` raises the fatal ones together as one
:class:`~greenmeter.carbon.CarbonError`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from greenmeter.carbon.config import CarbonConfig
from greenmeter.carbon.config_files import (
    FILE_REFUSED,
    MAX_CONFIG_BYTES,
    OTHER_FILE_KEYS,
    from_file,
    load_config_layers,
    locate_config_files,
    read_file,
    read_toml,
)
from greenmeter.carbon.errors import CarbonError
from greenmeter.carbon.problems import ConfigProblem, raise_fatal, validate_values

__all__ = [
    "ENV_VARS",
    "FILE_REFUSED",
    "MAX_CONFIG_BYTES",
    "MEASUREMENT_KEYS",
    "OTHER_ENV_VARS",
    "OTHER_FILE_KEYS",
    "ConfigProblem",
    "env_name_problems",
    "from_env",
    "from_file",
    "load_config_layers",
    "locate_config_files",
    "read_env",
    "read_file",
    "setting",
]

#: Keys of a config file that configure the measurement, not carbon: at the top level of
#: ``greenmeter.toml`` or under ``[tool.greenmeter]`` of ``pyproject.toml``.
MEASUREMENT_KEYS = OTHER_FILE_KEYS


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CarbonError("is not a number") from None


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise CarbonError("must be 1/0, true/false, yes/no or on/off")


def _pue(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text.strip()


def _str(text: str) -> str:
    return text.strip()


#: env var -> (CarbonConfig field, parser)
ENV_VARS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "GREENMETER_INTENSITY_G_PER_KWH": ("intensity_g_per_kwh", _float),
    "GREENMETER_INTENSITY_LOW_G_PER_KWH": ("intensity_low_g_per_kwh", _float),
    "GREENMETER_INTENSITY_HIGH_G_PER_KWH": ("intensity_high_g_per_kwh", _float),
    "GREENMETER_LOCATION": ("location", _str),
    "GREENMETER_CLOUD_REGION": ("cloud", _str),
    "GREENMETER_USE_PROVIDER_FIGURE": ("use_provider_figure", _bool),
    "GREENMETER_PUE": ("pue", _pue),
    "GREENMETER_PUE_SOURCE": ("pue_source", _str),
    "GREENMETER_INTENSITY_SERIES": ("intensity_series", _str),
    "GREENMETER_SERIES_OUT_OF_RANGE": ("series_out_of_range", _str),
    "GREENMETER_LIVE_PROVIDER": ("live_provider", _str),
    "GREENMETER_LIVE_ZONE": ("live_zone", _str),
    "GREENMETER_ELECTRICITYMAPS_URL": ("live_base_url", _str),
    "GREENMETER_MARKET_FACTOR_G_PER_KWH": ("market_factor_g_per_kwh", _float),
    "GREENMETER_RENEWABLE_SHARE": ("renewable_share", _float),
    "GREENMETER_RESIDUAL_MIX_G_PER_KWH": ("residual_mix_g_per_kwh", _float),
    "GREENMETER_EMBODIED": ("embodied", _bool),
    "GREENMETER_CONFIG": ("config_file", _str),
}


#: Other ``GREENMETER_*`` variables greenmeter reads (any not listed here or in
#: :data:`ENV_VARS` is reported as unknown, with a did-you-mean).
OTHER_ENV_VARS: frozenset[str] = frozenset(
    {
        "GREENMETER_POWERCAP_ROOT",
        "GREENMETER_TAGS",
        "GREENMETER_ESTIMATE_SCOPE",
        "GREENMETER_EXPORT",
        "GREENMETER_FAKE_AMDSMI_CONFIG",
        "GREENMETER_REDACT_COMMAND",
        "GREENMETER_CHANNEL",
        "GREENMETER_TESTING_TRACES",
        "GREENMETER_FAKE_NVML_CONFIG",
        "GREENMETER_CACHE_DIR",
        "GREENMETER_CODECARBON_SITE",
        "GREENMETER_PEERS_PYTHON",
        "GREENMETER_BENCH_PEERS",
    }
)

# -- environment -----------------------------------------------------------------------


def read_env(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str], list[ConfigProblem]]:
    """Carbon settings in environment variables: (field -> value, field -> variable, problems).

    Values with problems are left out of the first mapping.
    """
    values: dict[str, Any] = {}
    names: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    for var, (field, parse) in ENV_VARS.items():
        raw = env.get(var)
        if raw is None or raw.strip() == "":
            continue
        try:
            values[field] = parse(raw)
        except CarbonError as exc:
            problems.append(
                ConfigProblem(
                    "config.invalid_value",
                    f"environment variable {var}={raw!r} {exc}",
                    f"environment variable {var}",
                    setting=field,
                )
            )
            continue
        names[field] = var

    def describe(field: str | None) -> tuple[str, str]:
        if field is None:
            listed = ", ".join(f"{v}={env[v]!r}" for v in names.values())
            return f"environment ({listed})", "environment"
        var = names[field]
        return f"environment variable {var}={env[var]!r}", f"environment variable {var}"

    problems += validate_values(values, describe)
    bad = {p.setting for p in problems}
    return {k: v for k, v in values.items() if k not in bad}, names, problems


def from_env(env: Mapping[str, str]) -> tuple[CarbonConfig, dict[str, str]]:
    """Settings given by environment variables, and field -> variable name.

    Raises:
        CarbonError: a variable holds an invalid value (the message names it).
    """
    values, names, problems = read_env(env)
    raise_fatal(problems)
    return CarbonConfig(**values), names


def env_name_problems(env: Mapping[str, str]) -> list[ConfigProblem]:
    """``GREENMETER_*`` variables greenmeter does not know (a typo, most often)."""
    known = sorted(set(ENV_VARS) | OTHER_ENV_VARS)
    problems = []
    for name in sorted(env):
        if not name.startswith("GREENMETER_") or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(
            ConfigProblem(
                "config.unknown_env",
                f"unknown environment variable {name}{hint}; greenmeter does not read it "
                "(its variables are listed in the configuration reference): rename or "
                "unset it",
                f"environment variable {name}",
                setting=name,
            )
        )
    return problems


def setting(
    key: str, *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[Any, str] | None:
    """A measurement setting (:data:`MEASUREMENT_KEYS`) from the config files, and where.

    The files are those :func:`locate_config_files` trusts (``$GREENMETER_CONFIG`` alone
    when set), first that sets ``key`` wins; the key is read at the top level of
    ``greenmeter.toml`` or under ``[tool.greenmeter]`` of ``pyproject.toml``. None when
    unset.

    Raises:
        CarbonError: a file cannot be read or is not valid TOML.
    """
    environ = os.environ if env is None else env
    given = environ.get("GREENMETER_CONFIG", "").strip() or None
    try:
        files, _problems = locate_config_files(given, cwd=cwd, env=environ)
    except FileNotFoundError:  # the working directory was removed: no config file
        return None
    for candidate in files:
        path = candidate.path
        data = read_toml(path)
        if path.name == "pyproject.toml":
            tool = data.get("tool", {})
            table = tool.get("greenmeter", {}) if isinstance(tool, dict) else {}
            label = f"{path} [tool.greenmeter]"
        else:
            table, label = data, str(path)
        if isinstance(table, dict) and key in table:
            return table[key], label
    return None
