"""Which config files greenmeter may read: the project's, the user's, or one named explicitly.

A config file sets the grid intensity that ends up in a paper, so it must come from
someone the user trusts. Searched files are taken only from

* the project: the working directory and its parents up to the project root (the first
  folder holding ``pyproject.toml`` or ``.git``); with no project root above, the working
  directory alone. The nearest ``greenmeter.toml``, or ``pyproject.toml`` with a
  ``[tool.greenmeter]`` table, is the project file;
* the user's config directory: ``$XDG_CONFIG_HOME/greenmeter/greenmeter.toml``, else
  ``~/.config/greenmeter/greenmeter.toml`` (``HOME`` from the environment).

On POSIX systems a searched file is skipped, with a warning naming the reason, when the
file, the folder holding it or any folder above is owned by another user (owners other
than the current user and root: root owns the system folders and can change any file
anyway, so trusting it adds no exposure), when the file or its folder is writable by
every user (``/tmp``), or when a folder above is writable by every user without the
sticky bit. Symbolic links are followed and both the link's folder and the target are
checked. A file named explicitly (``config_file=`` or ``GREENMETER_CONFIG``) is the
user's own choice and is read without these checks.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "PROJECT_FILES",
    "CandidateFile",
    "project_dirs",
    "project_root",
    "untrusted_reason",
    "user_config_dir",
]

#: File names looked for in each project folder, nearest folder first.
PROJECT_FILES = ("greenmeter.toml", "pyproject.toml")

Origin = Literal["explicit", "project", "user"]


@dataclass(frozen=True)
class CandidateFile:
    """A config file found by the search (or named explicitly), and where from."""

    path: Path
    origin: Origin


def project_root(cwd: Path) -> Path | None:
    """The first folder from ``cwd`` upward holding ``pyproject.toml`` or ``.git``."""
    for folder in (cwd, *cwd.parents):
        try:
            if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
                return folder
        except OSError:
            continue
    return None


def project_dirs(cwd: Path) -> list[Path]:
    """Folders searched for a project file, nearest first (see the module docstring)."""
    folder = cwd.resolve()
    root = project_root(folder)
    if root is None:
        return [folder]
    out = [folder]
    for parent in folder.parents:
        if out[-1] == root:
            break
        out.append(parent)
    return out


def user_config_dir(env: Mapping[str, str]) -> Path | None:
    """``$XDG_CONFIG_HOME/greenmeter``, else ``$HOME/.config/greenmeter``; None without either.

    Relative values are ignored, as the XDG specification asks.
    """
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "greenmeter"
    home = env.get("HOME", "")
    if home and os.path.isabs(home):
        return Path(home) / ".config" / "greenmeter"
    return None


def _owner_ok(st: os.stat_result, uid: int) -> bool:
    return st.st_uid in (uid, 0)


def _check_dir(folder: Path, uid: int, *, holds_file: bool) -> str | None:
    try:
        st = os.stat(folder)
    except OSError as exc:
        return f"its folder {str(folder)!r} cannot be examined ({exc.strerror})"
    if not _owner_ok(st, uid):
        return f"the folder {str(folder)!r} is owned by another user (uid {st.st_uid})"
    if st.st_mode & stat.S_IWOTH:
        if holds_file:
            return f"the folder {str(folder)!r} holding it is writable by every user"
        if not st.st_mode & stat.S_ISVTX:
            return (
                f"the folder {str(folder)!r} above it is writable by every user "
                "(without the sticky bit)"
            )
    return None


def untrusted_reason(path: Path, *, uid: int | None = None) -> str | None:
    """Why a searched config file must not be read, or None when it may be.

    Args:
        path: The file as found (a symbolic link is followed).
        uid: The user to trust besides root (default: the effective user).
    """
    if not hasattr(os, "geteuid"):  # no POSIX ownership to check (Windows)
        return None
    me = os.geteuid() if uid is None else uid
    real = Path(os.path.realpath(path))
    try:
        st = os.stat(real)
    except OSError as exc:
        return f"it cannot be examined ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if not _owner_ok(st, me):
        return f"it is owned by another user (uid {st.st_uid})"
    if st.st_mode & stat.S_IWOTH:
        return "it is writable by every user"
    folders = [real.parent]
    link_dir = Path(os.path.abspath(path)).parent
    if link_dir != real.parent:
        folders.append(link_dir)
    for folder in folders:
        reason = _check_dir(folder, me, holds_file=True)
        if reason:
            return reason
        for above in folder.parents:
            reason = _check_dir(above, me, holds_file=False)
            if reason:
                return reason
    return None
