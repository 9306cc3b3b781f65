"""Config files: where they are (:func:`locate_config_files`) and what they say (:func:`read_file`).

``greenmeter.toml`` holds carbon keys at the top level and/or under ``[carbon]``;
``pyproject.toml`` under ``[tool.greenmeter]`` and/or ``[tool.greenmeter.carbon]``. Keys
are :class:`~greenmeter.carbon.CarbonConfig` field names; an unknown key at any level is a
problem with a did-you-mean. ``live_base_url``, ``live_token_env`` and ``config_file`` are
refused (:data:`FILE_REFUSED`). Which files may be read at all is decided by
:mod:`greenmeter.carbon.trust`: the project's file, then the user's, or the one file
named explicitly.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from greenmeter.carbon.config import CarbonConfig
from greenmeter.carbon.errors import CarbonError
from greenmeter.carbon.problems import ConfigProblem, raise_fatal, validate_values
from greenmeter.carbon.trust import (
    PROJECT_FILES,
    CandidateFile,
    project_dirs,
    untrusted_reason,
    user_config_dir,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "FILE_REFUSED",
    "MAX_CONFIG_BYTES",
    "OTHER_FILE_KEYS",
    "from_file",
    "load_config_layers",
    "locate_config_files",
    "read_file",
    "read_toml",
]

MAX_CONFIG_BYTES = 1024 * 1024

#: Keys other parts of greenmeter read from ``[tool.greenmeter]`` / ``greenmeter.toml``
#: besides the carbon settings (the measurement settings); any other key is an error.
OTHER_FILE_KEYS: frozenset[str] = frozenset({"estimate_scope", "export"})

#: Settings refused in config files, with the reason and where to set them instead.
FILE_REFUSED: dict[str, str] = {
    "live_base_url": (
        "where the live request goes is taken only from code (live_base_url=) or the "
        "environment (GREENMETER_ELECTRICITYMAPS_URL), never from a file"
    ),
    "live_token_env": (
        "which variable holds the API token is chosen only in code (live_token_env=); "
        "the default is ELECTRICITYMAPS_TOKEN"
    ),
    "config_file": "a config file cannot name another; use GREENMETER_CONFIG or config_file=",
}


def read_toml(path: Path) -> dict[str, Any]:
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


def _has_tool_table(path: Path) -> bool:
    """Whether a pyproject.toml has ``[tool.greenmeter]`` (True when unreadable: say why)."""
    try:
        tool = read_toml(path).get("tool", {})
    except CarbonError:
        return True
    return isinstance(tool, dict) and "greenmeter" in tool


def _unknown_key(key: str, where: str, known: Iterable[str]) -> ConfigProblem:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigProblem(
        "config.unknown_key",
        f"{where}: unknown carbon setting {key!r}{hint}; keys are the CarbonConfig field "
        "names listed in the configuration reference",
        where,
        setting=key,
    )


def read_file(path: Path) -> tuple[dict[str, Any], str, list[ConfigProblem]]:
    """Settings in a config file: (field -> value, label of the table, problems).

    ``greenmeter.toml`` holds keys at the top level and/or under ``[carbon]``;
    ``pyproject.toml`` under ``[tool.greenmeter]`` and/or ``[tool.greenmeter.carbon]``.
    Values with problems are left out of the mapping.
    """
    try:
        data = read_toml(path)
    except CarbonError as exc:
        return {}, str(path), [ConfigProblem("config.unreadable_file", str(exc), str(path))]
    fields = set(CarbonConfig.field_names())
    prefix = ""
    table: Any = data
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        table = tool.get("greenmeter", {}) if isinstance(tool, dict) else {}
        prefix = "tool.greenmeter"
        if not isinstance(table, dict):
            where = f"{path} [tool.greenmeter]"
            return (
                {},
                where,
                [ConfigProblem("config.invalid_value", f"{where} must be a table", where)],
            )
    top_label = f"{path} [{prefix}]" if prefix else str(path)
    sub_label = f"{path} [{prefix + '.' if prefix else ''}carbon]"
    problems: list[ConfigProblem] = []
    top: dict[str, Any] = {}
    sub: dict[str, Any] = {}
    for key, value in table.items():
        if key == "carbon" and not isinstance(value, dict):
            where = f"{top_label}: 'carbon'"
            problems.append(
                ConfigProblem("config.invalid_value", f"{where} must be a table", where, "carbon")
            )
        elif key == "carbon":
            for k, v in value.items():
                if k in fields:
                    sub[k] = v
                else:
                    problems.append(_unknown_key(k, sub_label, fields))
        elif key in fields:
            top[key] = value
        elif key not in OTHER_FILE_KEYS:
            problems.append(_unknown_key(key, top_label, fields | {"carbon"} | OTHER_FILE_KEYS))
    for key in sorted(set(top) & set(sub)):
        problems.append(
            ConfigProblem(
                "config.invalid_value",
                f"{path}: {key!r} is set both in [{prefix or 'top level'}] and in its carbon "
                "table; keep one",
                str(path),
                setting=key,
            )
        )
    label = sub_label if sub and not top else top_label
    values = {**top, **sub}
    for key in [k for k in values if k in FILE_REFUSED]:
        del values[key]
        problems.append(
            ConfigProblem(
                "config.refused_in_file",
                f"{label}: {key!r} is not accepted in a config file: {FILE_REFUSED[key]}",
                label,
                setting=key,
            )
        )
    if isinstance(values.get("intensity_series"), str) and not os.path.isabs(
        values["intensity_series"]
    ):
        values["intensity_series"] = str((path.parent / values["intensity_series"]).resolve())
    problems += validate_values(values, lambda field: (label, label))
    bad = {p.setting for p in problems}
    return {k: v for k, v in values.items() if k not in bad}, label, problems


def from_file(path: Path) -> tuple[CarbonConfig, str]:
    """Settings in a config file, and a label naming the table they came from.

    Raises:
        CarbonError: unreadable file, invalid TOML, unknown or refused key, invalid value
            (every problem of the file, in one message).
    """
    values, label, problems = read_file(path)
    raise_fatal(problems)
    return CarbonConfig(**values), label


def locate_config_files(
    explicit: str | os.PathLike[str] | None,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str],
    explicit_source: str = "config_file",
) -> tuple[list[CandidateFile], list[ConfigProblem]]:
    """The config files to read, in precedence order, and the problems met finding them.

    With ``explicit`` (``config_file=`` or ``GREENMETER_CONFIG``) that file alone; else
    the project file, then the user's file, each only when
    :func:`~greenmeter.carbon.trust.untrusted_reason` finds nothing against it (a skipped
    file is a non-fatal ``config.untrusted_file`` problem).
    """
    if explicit is not None:
        path = Path(os.fspath(explicit))
        if not path.is_file():
            return [], [
                ConfigProblem(
                    "config.missing_file",
                    f"config_file {str(path)!r} (from {explicit_source}) does not exist",
                    explicit_source,
                    setting="config_file",
                )
            ]
        return [CandidateFile(path, "explicit")], []
    found: list[CandidateFile] = []
    problems: list[ConfigProblem] = []
    here = Path(cwd) if cwd is not None else Path.cwd()
    candidates: list[CandidateFile] = []
    for folder in project_dirs(here):
        own = folder / PROJECT_FILES[0]
        pyproject = folder / PROJECT_FILES[1]
        if own.is_file():
            candidates.append(CandidateFile(own, "project"))
            break
        if pyproject.is_file() and _has_tool_table(pyproject):
            candidates.append(CandidateFile(pyproject, "project"))
            break
    user_dir = user_config_dir(env)
    if user_dir is not None and (user_dir / "greenmeter.toml").is_file():
        candidates.append(CandidateFile(user_dir / "greenmeter.toml", "user"))
    for candidate in candidates:
        reason = untrusted_reason(candidate.path)
        if reason is None:
            found.append(candidate)
            continue
        problems.append(
            ConfigProblem(
                "config.untrusted_file",
                f"config file {str(candidate.path)!r} not read: {reason}. greenmeter reads "
                "only files its user or root owns, in folders others cannot write; fix the "
                f"ownership or permissions, or set GREENMETER_CONFIG={candidate.path} to "
                "use it anyway",
                str(candidate.path),
                fatal=False,
            )
        )
    return found, problems


def load_config_layers(
    explicit: str | os.PathLike[str] | None,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str],
    explicit_source: str = "config_file",
) -> tuple[list[tuple[CarbonConfig, str]], list[str], list[tuple[str, str]]]:
    """The config files' settings for the resolver: (layers, resolution steps, warnings).

    Each layer is ``(CarbonConfig, label)``, in precedence order. Skipped files become
    ``(code, message)`` warnings for the report.

    Raises:
        CarbonError: a file that is read has a problem (every one, in one message), or the
            explicit file does not exist.
    """
    files, problems = locate_config_files(
        explicit, cwd=cwd, env=env, explicit_source=explicit_source
    )
    raise_fatal(problems)
    layers = []
    steps = []
    for candidate in files:
        config, label = from_file(candidate.path)
        layers.append((config, label))
        if candidate.origin == "explicit":
            steps.append(f"config file {candidate.path} (from {explicit_source})")
        else:
            steps.append(f"{candidate.origin} config file found: {candidate.path}")
    for p in problems:
        steps.append(f"config file {p.source} skipped: untrusted")
    return layers, steps, [(p.code, p.message) for p in problems]
