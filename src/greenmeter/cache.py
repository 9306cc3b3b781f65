"""Where greenmeter keeps files it can rebuild: the compiled fake NVML library, the
footprint index.

The rule: ``$GREENMETER_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/greenmeter``, else
``~/.cache/greenmeter``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_dir"]

#: Environment variable that places greenmeter's cache.
CACHE_ENV = "GREENMETER_CACHE_DIR"


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """greenmeter's cache directory (not created here).

    Args:
        env: Environment to read (default ``os.environ``).
    """
    env = os.environ if env is None else env
    given = env.get(CACHE_ENV)
    if given:
        return Path(given)
    xdg = env.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "greenmeter"
