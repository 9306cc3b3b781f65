"""The one way greenmeter writes a file: reports, checkpoints, rendered tables, plots.

:func:`write_file` behaves like a careful ``> path`` in a shell:

* a **regular file** (or a path that does not exist yet) is replaced atomically: the data
  goes to a temporary file in the same directory, is flushed to disk (``fsync``) and is
  renamed over the target, so a reader sees the old content or the new one, never a torn
  file. A new file gets the permissions any other program's output would get
  (``0o666`` minus the umask); an existing file keeps its mode, and its owner where the
  process may set it;
* a **symbolic link** is followed: its target is written (as above), the link stays;
* anything that is **not a regular file** (``/dev/null``, a terminal, a FIFO) is written
  through, in place: it is never replaced by a regular file. A FIFO with no reader is an
  error rather than a hang; a socket or a directory is an error.

Temporary files are named ``.<name>.<pid>.<random>.tmp``. One left behind by a process
that was killed mid-write (``kill -9``) is removed by the next write of the same file.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import threading
from pathlib import Path

__all__ = ["OutputError", "write_file"]

_TMP_SUFFIX = ".tmp"
#: Temporary files this process is writing right now (never cleaned up under a writer).
_active: set[str] = set()
_active_lock = threading.Lock()


class OutputError(OSError):
    """A file cannot be written; the message names the path and what to do."""

    def __str__(self) -> str:
        return str(self.strerror)


def write_file(
    path: str | os.PathLike[str],
    data: str | bytes,
    *,
    encoding: str = "utf-8",
    make_parents: bool = True,
) -> Path:
    """Write ``data`` to ``path``: atomically for files, through for devices and FIFOs.

    Args:
        path: Where to write. A symbolic link is followed; a missing parent directory is
            created when ``make_parents`` is true.
        data: Text (encoded with ``encoding``) or bytes.
        encoding: Encoding for text data.
        make_parents: Create missing parent directories.

    Returns:
        The path that was written (the link's target when ``path`` is a symbolic link).

    Raises:
        OutputError: the path is a directory or a socket, a FIFO has no reader, or the
            operating system refused the write (the message says which and why).
    """
    payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
    given = Path(path)
    try:
        st: os.stat_result | None = os.stat(given)  # follows symbolic links
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _error(given, exc) from None
    if st is not None and (not stat.S_ISREG(st.st_mode) or _is_special_name(given)):
        _write_through(given, payload, st)
        return given
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    _write_atomic(target, payload, st, make_parents)
    return target


def _is_special_name(path: Path) -> bool:
    """``/dev/stdout`` and ``/proc/self/fd/N`` name an open file: write into it in place."""
    text = os.path.abspath(path)
    return text.startswith(("/dev/", "/proc/"))


def _error(path: Path, exc: OSError, what: str = "cannot write") -> OutputError:
    reason = exc.strerror or str(exc)
    hint = ""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "; choose a path you may write to"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "; free some space or write elsewhere"
    return OutputError(exc.errno or 0, f"{what} {path}: {reason}{hint}")


def _write_through(path: Path, payload: bytes, st: os.stat_result) -> None:
    """Write into an existing non-regular file (device, FIFO) without replacing it."""
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise OutputError(errno.EISDIR, f"cannot write {path}: it is a directory; name a file")
    if stat.S_ISSOCK(mode):
        raise OutputError(
            errno.ENXIO, f"cannot write {path}: it is a socket; name a file, a device or a FIFO"
        )
    flags = os.O_WRONLY | getattr(os, "O_NOCTTY", 0)
    if stat.S_ISFIFO(mode):
        flags |= os.O_NONBLOCK  # fail at once rather than wait for a reader forever
    elif stat.S_ISREG(mode):
        flags |= os.O_APPEND  # /dev/stdout redirected to a file: add to what is there
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO and stat.S_ISFIFO(mode):
            raise OutputError(
                errno.ENXIO,
                f"cannot write {path}: it is a FIFO and no process is reading it; start the "
                "reader first",
            ) from None
        raise _error(path, exc) from None
    try:
        if stat.S_ISFIFO(mode):
            os.set_blocking(fd, True)
        view = memoryview(payload)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError as exc:
        raise _error(path, exc) from None
    finally:
        os.close(fd)


def _write_atomic(
    target: Path, payload: bytes, st: os.stat_result | None, make_parents: bool
) -> None:
    parent = target.parent
    if make_parents:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _error(parent, exc, "cannot create the directory") from None
    _clean_stale(target)
    tmp = parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{_TMP_SUFFIX}"
    with _active_lock:
        _active.add(str(tmp))
    try:
        try:
            # 0o666 before the umask, as any other program's output; O_EXCL: never follow
            # or reuse something that is already there.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(tmp, flags, 0o666)
        except OSError as exc:
            raise _error(target, exc) from None
        try:
            if st is not None:
                _keep_mode_and_owner(fd, st)
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            _unlink(tmp)
            raise _error(target, exc) from None
        os.close(fd)
        try:
            os.replace(tmp, target)
        except OSError as exc:
            _unlink(tmp)
            raise _error(target, exc) from None
    except BaseException:
        _unlink(tmp)
        raise
    finally:
        with _active_lock:
            _active.discard(str(tmp))
    _fsync_dir(parent)


def _keep_mode_and_owner(fd: int, st: os.stat_result) -> None:
    try:
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
    except OSError:
        pass
    if hasattr(os, "fchown") and (st.st_uid != os.geteuid() or st.st_gid != os.getegid()):
        try:
            os.fchown(fd, st.st_uid, st.st_gid)
        except OSError:
            pass  # only root may give a file away; the content matters more


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_dir(directory: Path) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _clean_stale(target: Path) -> None:
    """Remove temporary files of ``target`` left by writers that no longer run."""
    prefix = f".{target.name}."
    try:
        entries = os.scandir(target.parent)
    except OSError:
        return
    with entries:
        for entry in entries:
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(_TMP_SUFFIX)):
                continue
            middle = name[len(prefix) : -len(_TMP_SUFFIX)].split(".")
            if len(middle) != 2 or not middle[0].isdigit():
                continue
            full = os.path.join(target.parent, name)
            with _active_lock:
                busy = full in _active
            if busy or _pid_alive(int(middle[0])):
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    os.unlink(full)
            except OSError:
                pass
