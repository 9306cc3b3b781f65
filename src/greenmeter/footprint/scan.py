"""Find the report files under the paths a user gives: files, directories, globs.

A directory is walked recursively for ``*.json`` files (symbolic links to files are
followed, links to directories are not, so a loop cannot trap the walk). A file given
by name is taken whatever its name. A path that does not exist is expanded as a glob
(``runs/**/*.json``, ``exp-*``). Each file is listed once, by absolute path, with the
size and modification time (ns) that key the index.
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["FoundFile", "ScanResult", "scan"]

_GLOB_CHARS = frozenset("*?[")


class FoundFile(NamedTuple):
    """A candidate report file: absolute path, size (bytes), modification time (ns)."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class ScanResult:
    """What :func:`scan` found.

    Attributes:
        files: Every candidate file, once, in the order the file system lists them (the
            same order for the same, unchanged folders).
        dirs: Absolute directories walked (their index entries can be checked for files
            that disappeared).
        explicit: Files named directly (or by a glob), not found by walking a directory.
        missing: Inputs that matched nothing.
        problems: ``(path, problem)`` for directories or files that could not be read.
    """

    files: list[FoundFile] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    explicit: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def _walk(root: str, out: ScanResult) -> None:
    stack = [root]
    add = out.files.append
    is_reg = stat.S_ISREG
    new = tuple.__new__
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            out.problems.append((folder, f"cannot list the directory: {exc.strerror or exc}"))
            continue
        subdirs = []
        for entry in entries:
            try:
                if entry.name.endswith(".json"):
                    st = entry.stat()
                    if is_reg(st.st_mode):
                        add(new(FoundFile, (entry.path, st.st_size, st.st_mtime_ns)))
                        continue
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
            except OSError:
                continue  # vanished or a dangling link: nothing to read
        stack.extend(reversed(subdirs))


def _add(path: str, out: ScanResult, walked: set[str]) -> bool:
    """Add a file or walk a directory; False when ``path`` does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if stat.S_ISDIR(st.st_mode):
        if path not in walked:
            walked.add(path)
            out.dirs.append(path)
            _walk(path, out)
    elif stat.S_ISREG(st.st_mode):
        out.files.append(FoundFile(path, st.st_size, st.st_mtime_ns))
        out.explicit.append(path)
    else:
        out.problems.append((path, "not a regular file"))
    return True


def _matches(pattern: str) -> Iterable[str]:
    if not _GLOB_CHARS.intersection(pattern):
        return ()
    return sorted(glob.glob(os.path.expanduser(pattern), recursive=True))


def scan(inputs: Sequence[str | os.PathLike[str]]) -> ScanResult:
    """Every candidate report file under ``inputs`` (files, directories, globs)."""
    out = ScanResult()
    walked: set[str] = set()
    for given in inputs:
        text = os.fspath(given)
        if _add(os.path.abspath(os.path.expanduser(text)), out, walked):
            continue
        found = False
        for match in _matches(text):
            found = _add(os.path.abspath(match), out, walked) or found
        if not found:
            out.missing.append(text)
    if len(walked) + len(out.explicit) > 1:  # inputs may overlap: each file once
        once = {f.path: f for f in reversed(out.files)}
        if len(once) < len(out.files):
            out.files = [f for f in out.files if once.pop(f.path, None) is not None]
            out.explicit = list(dict.fromkeys(out.explicit))
        out.problems = list(dict.fromkeys(out.problems))
    return out
