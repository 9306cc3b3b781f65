"""What a user sets outside the code: the environment and the config file.

``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` (as torchrun sets them), ``GREENMETER_TAGS``,
``GREENMETER_ESTIMATE_SCOPE`` and ``estimate_scope`` in the config file. A malformed value
in the environment or a file never stops the program: it warns once per process
(:class:`~greenmeter.core.handles.GreenMeterWarning`) and is ignored. A malformed value
given in code raises.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from greenmeter.core.handles import GreenMeterWarning

__all__ = [
    "DEFAULT_ESTIMATE_SCOPE",
    "ESTIMATE_SCOPES",
    "ESTIMATE_SCOPE_ENV",
    "env_int",
    "resolve_estimate_scope",
    "resolve_tags",
]

#: Scopes of the CPU/RAM estimate used on hosts without counters.
ESTIMATE_SCOPES = ("process", "machine")
#: Environment variable choosing the estimate scope.
ESTIMATE_SCOPE_ENV = "GREENMETER_ESTIMATE_SCOPE"
#: The scope when nothing chooses one: what the measured program itself used (see
#: docs/methodology.md, "Estimates").
DEFAULT_ESTIMATE_SCOPE = "process"

_warned_env: set[str] = set()


def env_int(name: str) -> int | None:
    """``$name`` as an int; None when unset or not an integer."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def _warn_once(key: str, message: str) -> None:
    """A configuration problem that must not stop the program: said once per process."""
    if key in _warned_env:
        return
    _warned_env.add(key)
    warnings.warn(message, GreenMeterWarning, stacklevel=4)


def resolve_estimate_scope(scope: str | None = None) -> tuple[str, str]:
    """The estimate scope to use and where it came from.

    Order: the argument, ``GREENMETER_ESTIMATE_SCOPE``, ``estimate_scope`` in the config
    file, else ``"process"``. A bad value in the environment or the config file warns
    once and is ignored.

    Raises:
        ValueError: the argument is not ``"process"`` or ``"machine"``.
    """
    choices = " or ".join(repr(s) for s in ESTIMATE_SCOPES)
    if scope is not None:
        if scope not in ESTIMATE_SCOPES:
            raise ValueError(f"estimate_scope must be {choices}, got {scope!r}")
        return scope, "argument"
    raw = os.environ.get(ESTIMATE_SCOPE_ENV, "").strip()
    if raw:
        if raw.lower() in ESTIMATE_SCOPES:
            return raw.lower(), ESTIMATE_SCOPE_ENV
        _warn_once(
            ESTIMATE_SCOPE_ENV,
            f"greenmeter: {ESTIMATE_SCOPE_ENV}={raw[:40]!r} is not {choices}; ignored "
            f"(using {DEFAULT_ESTIMATE_SCOPE!r})",
        )
    try:
        from greenmeter.carbon.settings import setting

        found = setting("estimate_scope")
    except Exception as exc:  # an unreadable config file: the carbon settings say so too
        _warn_once("config", f"greenmeter: the config file could not be read: {exc}")
        found = None
    if found is not None:
        value, where = found
        if isinstance(value, str) and value.lower() in ESTIMATE_SCOPES:
            return value.lower(), where
        _warn_once(
            f"config:{where}",
            f"greenmeter: estimate_scope = {str(value)[:40]!r} in {where} is not {choices}; "
            f"ignored (using {DEFAULT_ESTIMATE_SCOPE!r})",
        )
    return DEFAULT_ESTIMATE_SCOPE, "default"


def resolve_tags(tags: Any) -> dict[str, str]:
    """Tags given in code over those of ``GREENMETER_TAGS``.

    Raises:
        greenmeter.report.tags.TagError: a tag given in code breaks the rules.
    """
    if tags is None and not os.environ.get("GREENMETER_TAGS", "").strip():
        return {}  # the common case, without importing the report package
    from greenmeter.report.tags import TAGS_ENV, TagError, check_tags, tags_from_env

    given = check_tags(tags)  # TagError (a ValueError) names the problem
    try:
        env_tags = tags_from_env(os.environ)
    except TagError as exc:
        _warn_once(TAGS_ENV, f"greenmeter: {exc}; the variable is ignored")
        env_tags = {}
    merged = {**env_tags, **given}
    try:
        return check_tags(merged)
    except TagError as exc:  # together too many: keep the constructor's
        _warn_once(TAGS_ENV + ":merge", f"greenmeter: {exc}; {TAGS_ENV} is ignored")
        return given
