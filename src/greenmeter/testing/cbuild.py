"""Compiling the emulators' small C libraries, once per source, into a shared cache.

Used by :mod:`greenmeter.testing.fake_nvml` and :mod:`greenmeter.testing.fake_amdsmi`.
The cache folder is ``$GREENMETER_CACHE_DIR``, else ``$XDG_CACHE_HOME/greenmeter``, else
``~/.cache/greenmeter``; each library lives in a folder named by a hash of what it was
built from, so a changed source is rebuilt and an unchanged one is not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

__all__ = ["build_shared_library", "cache_root", "emulator_source", "loaded_library_paths"]


def cache_root() -> Path:
    """The folder compiled emulator libraries are cached in (greenmeter's cache rule)."""
    from greenmeter.cache import cache_dir

    return cache_dir()


def emulator_source(file_name: str) -> str:
    """The C source of one emulator library: ``fake_trace.c`` (the power trace), then
    ``file_name``, both shipped in ``greenmeter.testing``."""
    files = resources.files("greenmeter.testing")
    trace = files.joinpath("fake_trace.c").read_text(encoding="utf-8")
    body = files.joinpath(file_name).read_text(encoding="utf-8")
    return f'{trace}\n#line 1 "{file_name}"\n{body}'


def build_shared_library(
    source: bytes,
    target: Path,
    *,
    error: type[Exception],
    what: str,
) -> Path:
    """Compile C ``source`` into the shared library ``target`` unless it exists already.

    The library's soname is ``target``'s file name. The compiler is ``$CC``, else
    ``cc``, else ``gcc``. Concurrent builders each publish a whole file (atomic rename).

    Args:
        source: The C source text.
        target: Where the library goes (its folder is created).
        error: The exception type raised on failure.
        what: What is being built, for messages ("the fake NVML library").

    Raises:
        error: No C compiler, or the build failed (the message has its output).
    """
    if target.is_file():
        return target
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise error(
            f"no C compiler found to build {what}; install one "
            "(e.g. `apt-get install gcc`) or set CC"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "source.c"
        src.write_bytes(source)
        tmp_lib = Path(tmp) / target.name
        cmd = [
            compiler,
            "-shared",
            "-fPIC",
            "-O2",
            "-fvisibility=hidden",
            f"-Wl,-soname,{target.name}",
            "-o",
            str(tmp_lib),
            str(src),
            "-lm",
            "-lpthread",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise error(f"building {what} failed ({' '.join(cmd)}):\n{proc.stderr}")
        os.replace(tmp_lib, target)
    return target


def loaded_library_paths(fragment: str) -> list[str]:
    """Paths of the shared libraries mapped into this process whose path has ``fragment``.

    Read from Linux ``/proc/self/maps``; empty elsewhere.
    """
    try:
        text = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    return sorted({line.split()[-1] for line in text.splitlines() if fragment in line})
