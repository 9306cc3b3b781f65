"""Facts about the host, the installed software and the working directory.

Everything here is best effort and never raises: a fact that cannot be found is None.
Framework versions come from package metadata (``importlib.metadata``); no ML
framework is ever imported to learn its version.

A run gathers these facts once (:func:`gather`, three ``git`` calls included) on a
thread that measures nothing, and builds every report of the run inside
:func:`pinned`, so checkpoints never probe the machine again.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import platform
import re
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "REDACT_ENV",
    "Facts",
    "command_line",
    "cuda_version",
    "gather",
    "git_info",
    "host_facts",
    "package_version",
    "pinned",
    "redact_command",
    "software_versions",
]

_GIT_TIMEOUT_S = 2.0
#: Set to ``0`` to record the command line without redaction.
REDACT_ENV = "GREENMETER_REDACT_COMMAND"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(1 << 20)
    except OSError:
        return None


def _cpuinfo() -> tuple[str | None, int | None]:
    """CPU model name and socket count from /proc/cpuinfo (Linux)."""
    text = _read("/proc/cpuinfo")
    if not text:
        return None, None
    model = None
    sockets: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "Model", "cpu model") and model is None and value:
            model = value
        elif key == "physical id":
            sockets.add(value)
    return model, (len(sockets) or None)


def _os_release() -> str | None:
    text = _read("/etc/os-release") or _read("/usr/lib/os-release")
    if not text:
        return None
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"') or None
    return None


def _ram_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:
        pass
    text = _read("/proc/meminfo") or ""
    match = re.search(r"^MemTotal:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def _physical_cores() -> int | None:
    try:
        import psutil

        value = psutil.cpu_count(logical=False)
        return int(value) if value else None
    except Exception:
        return None


@dataclass(frozen=True)
class Facts:
    """What :func:`gather` found, for every report of one run.

    Attributes:
        host: :func:`host_facts` of the run's host.
        software: :func:`software_versions`.
        cwd: The resolved directory ``git`` was asked about ("" when it was not).
        git: :func:`git_info` of ``cwd`` (None outside a checkout or when not asked).
    """

    host: dict[str, Any] = field(default_factory=dict)
    software: dict[str, str | None] = field(default_factory=dict)
    cwd: str = ""
    git: dict[str, Any] | None = None


_PINNED: ContextVar[Facts | None] = ContextVar("greenmeter_pinned_facts", default=None)


def gather(
    hostname: str | None = None, cwd: str | Path | None = None, *, include_git: bool = True
) -> Facts:
    """Host, software and git facts, probed now (git is a few subprocesses)."""
    where = _resolved(cwd) if include_git else ""  # "": git is probed when asked
    return Facts(
        host=_probe_host(hostname),
        software=_probe_software(),
        cwd=where,
        git=_probe_git(where) if include_git else None,
    )


@contextmanager
def pinned(facts: Facts) -> Iterator[Facts]:
    """Within the block (this thread), :func:`host_facts`, :func:`software_versions` and
    :func:`git_info` answer from ``facts`` instead of probing (git only for its ``cwd``,
    the host facts only for its hostname)."""
    token = _PINNED.set(facts)
    try:
        yield facts
    finally:
        _PINNED.reset(token)


def _resolved(cwd: str | Path | None) -> str:
    try:
        return str((Path(cwd) if cwd is not None else Path.cwd()).resolve())
    except OSError:
        return str(cwd or "")


def host_facts(hostname: str | None = None) -> dict[str, Any]:
    """Facts about this machine, as keyword arguments for ``HostInfo``.

    Keys: ``hostname``, ``os``, ``os_release``, ``kernel``, ``cpu_model``, ``sockets``,
    ``physical_cores``, ``logical_cores``, ``ram_bytes`` (bytes). Unknown facts are None.
    """
    facts = _PINNED.get()
    if facts is not None and facts.host and hostname in (None, facts.host.get("hostname")):
        return dict(facts.host)
    return _probe_host(hostname)


def _probe_host(hostname: str | None) -> dict[str, Any]:
    model, sockets = _cpuinfo()
    if model is None:
        model = platform.processor() or None
    if sockets is None and platform.system() == "Linux" and model is not None:
        sockets = 1
    return {
        "hostname": hostname or socket.gethostname() or "localhost",
        "os": platform.system() or None,
        "os_release": _os_release(),
        "kernel": platform.release() or None,
        "cpu_model": model,
        "sockets": sockets,
        "physical_cores": _physical_cores(),
        "logical_cores": os.cpu_count(),
        "ram_bytes": _ram_bytes(),
    }


def package_version(*names: str) -> str | None:
    """Installed version of the first distribution found among ``names``, else None."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        except Exception:
            continue
    return None


def cuda_version() -> str | None:
    """The CUDA version the installed torch was built for, without importing torch.

    Read from torch's own ``torch/version.py`` text (``cuda = '12.1'``); None for a CPU
    build or when torch is not installed.
    """
    try:
        dist = metadata.distribution("torch")
    except Exception:
        return None
    try:
        text = Path(str(dist.locate_file("torch/version.py"))).read_text(encoding="utf-8")
    except Exception:
        text = ""
    match = re.search(r"^cuda\s*(?::\s*[^=]+)?=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    if match:
        return match.group(1)
    local = (dist.version or "").partition("+")[2]
    cu = re.fullmatch(r"cu(\d+)(\d)", local)
    if cu:
        return f"{cu.group(1)}.{cu.group(2)}"
    return None


def software_versions() -> dict[str, str | None]:
    """Versions of Python, greenmeter and the ML stack, for ``SoftwareInfo``."""
    facts = _PINNED.get()
    if facts is not None and facts.software:
        return dict(facts.software)
    return _probe_software()


def _probe_software() -> dict[str, str | None]:
    from greenmeter._version import __version__

    return {
        "python": platform.python_version(),
        "greenmeter": __version__,
        "torch": package_version("torch"),
        "cuda": cuda_version(),
        "lightning": package_version("lightning"),
        "pytorch_lightning": package_version("pytorch-lightning", "pytorch_lightning"),
        "transformers": package_version("transformers"),
        "nvidia_ml_py": package_version("nvidia-ml-py", "pynvml"),
        "amdsmi": package_version("amdsmi"),
        "pydantic": package_version("pydantic"),
    }


def _git(args: Sequence[str], cwd: str | Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=str(cwd),
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip()


def git_info(cwd: str | Path | None = None) -> dict[str, Any] | None:
    """Commit, dirty flag and branch of the git checkout at ``cwd`` (default: current).

    Returns None when ``cwd`` is not in a git checkout or git is not installed.
    ``dirty`` is True when tracked files have uncommitted changes (untracked files
    are ignored).
    """
    facts = _PINNED.get()
    if facts is not None and facts.cwd and _resolved(cwd) == facts.cwd:
        return dict(facts.git) if facts.git is not None else None
    return _probe_git(cwd)


def _probe_git(cwd: str | Path | None) -> dict[str, Any] | None:
    try:
        where = Path(cwd) if cwd else Path.cwd()
    except OSError:  # the working directory was removed
        return None
    commit = _git(["rev-parse", "HEAD"], where)
    if not commit or not re.fullmatch(r"[0-9a-f]{7,64}", commit):
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], where)
    return {
        "commit": commit,
        "dirty": bool(status),
        "branch": branch if branch and branch != "HEAD" else None,
    }


def redact_command(argv: Sequence[str], *, enabled: bool | None = None) -> list[str]:
    """``argv`` with secrets replaced by ``***`` (rules: :mod:`greenmeter.redact`).

    ``--api-key=abc`` becomes ``--api-key=***``, ``env HF_TOKEN=x`` becomes
    ``env HF_TOKEN=***``, ``postgres://u:z@h/db`` becomes ``postgres://***@h/db``.

    Args:
        argv: The command line.
        enabled: False records ``argv`` as given; None (default) redacts unless the
            environment variable ``GREENMETER_REDACT_COMMAND`` is ``0``/``false``/``no``/``off``.
    """
    if enabled is None:
        setting = os.environ.get(REDACT_ENV, "").strip().lower()
        enabled = setting not in ("0", "false", "no", "off")
    if not enabled:
        return [str(a) for a in argv]
    from greenmeter.redact import redact_argv

    return redact_argv(argv)


def command_line(argv: Sequence[str] | None = None) -> list[str]:
    """The command that started this process (``sys.argv``), secrets redacted."""
    args = list(sys.argv if argv is None else argv)
    return redact_command(args)
