"""Check the whole configuration before a run: :func:`check_configuration`.

A mistake in the configuration (a misspelt location, an unknown cloud region, a key or
``GREENMETER_*`` variable greenmeter does not know, a value out of range, a setting a
config file may not make) should be seen when the run starts, not found later inside
the report. :func:`check_configuration` gathers every such problem from every source
(argument, environment, project and user config files) without touching the network;
``greenmeter run`` refuses to start on a fatal one, and :func:`warn_configuration`
prints each problem once, as one line on stderr, and passes it to :mod:`warnings`
(category :class:`ConfigurationWarning`) so that ``pytest.warns`` and
``logging.captureWarnings`` see it. Neither ever raises: training is never stopped by
a configuration problem.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from greenmeter.carbon.config import CarbonConfig
from greenmeter.carbon.config_files import locate_config_files, read_file
from greenmeter.carbon.problems import ConfigProblem
from greenmeter.carbon.settings import env_name_problems, read_env
from greenmeter.carbon.trust import CandidateFile

__all__ = [
    "ConfigProblem",
    "ConfigurationWarning",
    "SettingSource",
    "check_configuration",
    "setting_sources",
    "warn_configuration",
]

_CHANNEL_ENV = "GREENMETER_CHANNEL"
_warned: set[str] = set()
_warned_lock = threading.Lock()


class ConfigurationWarning(UserWarning):
    """A configuration problem found when a meter starts (see :func:`check_configuration`)."""


@dataclass(frozen=True)
class SettingSource:
    """Where one setting is given, for ``greenmeter doctor``.

    Attributes:
        setting: The :class:`CarbonConfig` field.
        value: The value as given (text for paths).
        source: ``argument``, ``environment variable NAME`` or the config file's label.
        used: True for the source that wins (the first that sets it); False when a
            source before it sets the same setting.
    """

    setting: str
    value: Any
    source: str
    used: bool


def _config_files(
    config: Any,
    env_values: Mapping[str, Any],
    cwd: str | os.PathLike[str] | None,
    env: Mapping[str, str],
) -> tuple[list[CandidateFile], list[ConfigProblem]]:
    """The config files the resolver would read (the explicit one wins: argument first)."""
    if isinstance(config, CarbonConfig) and config.config_file is not None:
        explicit, source = config.config_file, "argument config_file"
    else:
        explicit, source = env_values.get("config_file"), "environment GREENMETER_CONFIG"
    return locate_config_files(
        explicit, cwd=Path(cwd) if cwd is not None else None, env=env, explicit_source=source
    )


def _is_config(config: Any) -> bool:
    return config is None or isinstance(config, CarbonConfig)


def check_configuration(
    config: Any = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> list[ConfigProblem]:
    """Every configuration problem, from every source, before anything is measured.

    Args:
        config: The ``carbon=`` a meter or command was given: a :class:`CarbonConfig`,
            None (the resolver's defaults), False (carbon off) or a ready accountant.
        cwd: Where the project config search starts (default: the working directory).
        env: Environment mapping (default ``os.environ``).

    Returns:
        The problems, fatal ones (``greenmeter run`` refuses to start) and non-fatal
        ones (a config file skipped as untrusted). Empty when all is well. Never raises;
        nothing here touches the network.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    problems: list[ConfigProblem] = []
    try:
        problems += env_name_problems(environ)
        if config is False or not _is_config(config):
            return problems  # carbon off, or an accountant resolved already
        env_values, _, env_problems = read_env(environ)
        problems += env_problems
        files, file_problems = _config_files(config, env_values, cwd, environ)
        problems += file_problems
        for candidate in files:
            problems += read_file(candidate.path)[2]
    except Exception as exc:  # a checker bug must not stop a run
        problems.append(
            ConfigProblem(
                "config.check_failed",
                f"the configuration could not be checked ({type(exc).__name__}: {exc})",
                "greenmeter",
                fatal=False,
            )
        )
    return problems


def setting_sources(
    config: Any = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> list[SettingSource]:
    """Each carbon setting given anywhere, with its source, in precedence order.

    Sources are the argument, then environment variables, then the config files that
    may be read (project, then user; or the explicit file). Invalid values are left out
    (:func:`check_configuration` reports them). Never raises.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    layers: list[tuple[dict[str, Any], Any]] = []
    try:
        if isinstance(config, CarbonConfig):
            layers.append((config.given(), lambda _f: "argument"))
        values, names, _ = read_env(environ)
        layers.append((values, lambda f: f"environment variable {names.get(f, '?')}"))
        files, _ = _config_files(config, values, cwd, environ)
        for candidate in files:
            file_values, label, _ = read_file(candidate.path)
            layers.append((file_values, lambda _f, label=label: label))
    except Exception:
        pass
    out: list[SettingSource] = []
    seen: set[str] = set()
    for values, describe in layers:
        for field in CarbonConfig.field_names():
            if field not in values:
                continue
            value = values[field]
            shown = os.fspath(value) if isinstance(value, os.PathLike) else value
            out.append(SettingSource(field, shown, describe(field), field not in seen))
            seen.add(field)
    return out


def _listening() -> bool:
    """Whether something besides Python's default printer receives warnings.

    pytest, ``warnings.catch_warnings(record=True)`` and ``logging.captureWarnings``
    replace the printer; with the default one a warning would print a second line.
    """
    try:
        impl = warnings._showwarnmsg_impl  # type: ignore[attr-defined]
        default = warnings.showwarning is warnings._showwarning_orig  # type: ignore[attr-defined]
        return not (default and getattr(impl, "__module__", "") == "warnings")
    except AttributeError:
        return True


def warn_configuration(
    config: Any = None,
    *,
    stream: TextIO | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    problems: list[ConfigProblem] | None = None,
) -> list[ConfigProblem]:
    """Check the configuration and warn about each problem once per process.

    Each new problem is written as one line (``greenmeter: configuration: ...``) to
    ``stream`` (default stderr) and issued as a :class:`ConfigurationWarning` when
    something collects warnings (pytest, ``logging.captureWarnings``); with Python's
    default printer the stderr line alone is shown, so the message appears once. Skipped
    in a command run by ``greenmeter run`` (``GREENMETER_CHANNEL`` set), which checked
    before starting it.

    Args:
        config, cwd, env: As for :func:`check_configuration`.
        stream: Where the lines go (default ``sys.stderr``).
        problems: Already found problems to emit instead of checking again.

    Returns:
        The problems found (also those warned about before). Never raises.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    if problems is None:
        if environ.get(_CHANNEL_ENV):
            return []
        problems = check_configuration(config, cwd=cwd, env=environ)
    out = stream if stream is not None else sys.stderr
    for problem in problems:
        with _warned_lock:
            if problem.message in _warned:
                continue
            _warned.add(problem.message)
        try:
            out.write(f"greenmeter: configuration: {problem.message}\n")
            out.flush()
        except Exception:
            pass
        if _listening():
            try:
                warnings.warn(problem.message, ConfigurationWarning, stacklevel=3)
            except Exception:  # warnings turned into errors must not stop the run
                pass
    return problems
