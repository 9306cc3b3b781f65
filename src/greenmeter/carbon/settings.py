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

Config files: the nearest ``greenmeter.toml`` (keys at top level or under
``[carbon]``) or ``pyproject.toml`` with ``[tool.greenmeter.carbon]`` (or carbon keys
directly under ``[tool.greenmeter]``), searched from the working directory upward to
the project root (the first folder holding a ``pyproject.toml`` or ``.git``). Keys are
:class:`~greenmeter.carbon.CarbonConfig` field names.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from greenmeter.carbon.config import CarbonConfig
from greenmeter.carbon.errors import CarbonError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["ENV_VARS", "MEASUREMENT_KEYS", "find_config_file", "from_env", "from_file", "setting"]

#: Keys of the config file that configure the measurement, not carbon: top level of
#: ``greenmeter.toml`` or ``[tool.greenmeter]`` of ``pyproject.toml``.
MEASUREMENT_KEYS = ("estimate_scope",)

MAX_CONFIG_BYTES = 1024 * 1024


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


def from_env(env: Mapping[str, str]) -> tuple[CarbonConfig, dict[str, str]]:
    """Settings given by environment variables, and field -> variable name.

    Raises:
        CarbonError: a variable holds an invalid value (the message names it).
    """
    values: dict[str, Any] = {}
    names: dict[str, str] = {}
    for var, (field, parse) in ENV_VARS.items():
        raw = env.get(var)
        if raw is None or raw.strip() == "":
            continue
        try:
            values[field] = parse(raw)
        except CarbonError as exc:
            raise CarbonError(f"environment variable {var}={raw!r} {exc}") from None
        names[field] = var
    try:
        return CarbonConfig(**values), names
    except CarbonError as exc:
        listed = ", ".join(f"{v}={env[v]!r}" for v in names.values())
        raise CarbonError(f"{exc} (from environment: {listed})") from None


def _is_root(folder: Path) -> bool:
    return (folder / "pyproject.toml").is_file() or (folder / ".git").exists()


def find_config_file(cwd: Path) -> Path | None:
    """Nearest greenmeter.toml or pyproject.toml with a [tool.greenmeter] table."""
    folder = cwd.resolve()
    for candidate_dir in (folder, *folder.parents):
        own = candidate_dir / "greenmeter.toml"
        if own.is_file():
            return own
        pyproject = candidate_dir / "pyproject.toml"
        if pyproject.is_file():
            try:
                data = _read_toml(pyproject)
            except CarbonError:
                return pyproject  # report its error when read
            if isinstance(data.get("tool", {}).get("greenmeter"), dict):
                return pyproject
        if _is_root(candidate_dir):
            return None
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise CarbonError(f"config file {str(path)!r} is larger than 1 MB")
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise CarbonError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CarbonError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise CarbonError(f"config file {str(path)!r} is not UTF-8 text, as TOML must be") from None
    except RecursionError:
        raise CarbonError(
            f"config file {str(path)!r} is nested too deeply to be a config"
        ) from None


def from_file(path: Path) -> tuple[CarbonConfig, str]:
    """Settings in a config file, and a label naming the table they came from.

    Raises:
        CarbonError: unreadable file, invalid TOML, unknown key or invalid value.
    """
    data = _read_toml(path)
    known = set(CarbonConfig.field_names())
    if path.name == "pyproject.toml":
        tool = data.get("tool", {}).get("greenmeter", {})
        if not isinstance(tool, dict):
            raise CarbonError(f"{path}: [tool.greenmeter] must be a table")
        if isinstance(tool.get("carbon"), dict):
            table, label, strict = tool["carbon"], f"{path} [tool.greenmeter.carbon]", True
        else:
            table, label, strict = tool, f"{path} [tool.greenmeter]", False
    else:
        if isinstance(data.get("carbon"), dict):
            table, label, strict = data["carbon"], f"{path} [carbon]", True
        else:
            table, label, strict = data, str(path), False
    if strict:
        unknown = sorted(set(table) - known)
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise CarbonError(f"{label}: unknown carbon setting(s) {', '.join(hints)}")
    values = {k: v for k, v in table.items() if k in known and k != "config_file"}
    for key in ("intensity_series",):
        if isinstance(values.get(key), str) and not os.path.isabs(values[key]):
            values[key] = str((path.parent / values[key]).resolve())
    try:
        return CarbonConfig(**values), label
    except CarbonError as exc:
        raise CarbonError(f"{label}: {exc}") from None
    except TypeError as exc:  # pragma: no cover - guarded by the key filter
        raise CarbonError(f"{label}: {exc}") from None


def setting(
    key: str, *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[Any, str] | None:
    """A measurement setting (:data:`MEASUREMENT_KEYS`) from the config file, and where.

    The file is ``$GREENMETER_CONFIG`` or the one :func:`find_config_file` finds; the key
    is read at the top level of ``greenmeter.toml`` or under ``[tool.greenmeter]`` of
    ``pyproject.toml``. None when unset.

    Raises:
        CarbonError: the file cannot be read or is not valid TOML.
    """
    environ = os.environ if env is None else env
    given = environ.get("GREENMETER_CONFIG", "").strip()
    try:
        path = Path(given) if given else find_config_file(cwd if cwd is not None else Path.cwd())
    except FileNotFoundError:  # the working directory was removed: no config file
        return None
    if path is None or not path.is_file():
        return None
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("greenmeter", {})
        label = f"{path} [tool.greenmeter]"
    else:
        table, label = data, str(path)
    if not isinstance(table, dict) or key not in table:
        return None
    return table[key], label
