"""What the fake driver libraries (:class:`FakeNvml`, :class:`FakeAmdSmi`) share in Python.

Each fake writes a config file into a private temporary folder; its C library reads the
file whose path is in an environment variable when the driver library is initialised.
This base keeps that folder, sets the variables in this process and restores them, and
makes the fake a context manager (``with Fake(...) as fake:`` installs, then closes).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from greenmeter.testing.cbuild import loaded_library_paths

__all__ = ["FakeLibrary", "child_env", "status_code"]


def status_code(error: str | int, table: Mapping[str, int], what: str) -> int:
    """The library's return code for ``error``: a code as it is, or a name from ``table``.

    Raises:
        ValueError: An unknown name (the message lists the known ones).
    """
    if isinstance(error, int):
        return error
    try:
        return table[error]
    except KeyError:
        raise ValueError(f"unknown {what} {error!r}; use one of {sorted(table)}") from None


class FakeLibrary:
    """Base of the fake driver libraries; subclasses set the class attributes.

    Attributes:
        config_env: The variable the C library reads its config path from.
        library_path: The compiled library.
        config_path: This instance's config file.
    """

    config_env: ClassVar[str]
    library_path: Path

    def _make_folder(self, prefix: str) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.config_path: Path = self._dir / "config.txt"
        self._installed = False
        self._previous_env: dict[str, str | None] = {}

    def config_text(self) -> str:
        """The config the library reads, as text."""
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """Environment variables that make a *child* process load this fake library."""
        raise NotImplementedError

    def install(self) -> Any:
        """Make the driver binding in *this* process use the fake library."""
        raise NotImplementedError

    def write_config(self) -> Path:
        """(Re)write the config file atomically; the next initialisation reads it."""
        from greenmeter.files import write_file

        return write_file(self.config_path, self.config_text())

    def _refuse_foreign(self, fragment: str, what: str, before: str) -> None:
        foreign = [p for p in loaded_library_paths(fragment) if Path(p) != self.library_path]
        if foreign:
            name = type(self).__name__
            raise RuntimeError(
                f"another {what} is already loaded in this process ({', '.join(foreign)}); "
                f"install {name} before {before}, or run the code under test in a subprocess "
                f"with env={name}.env()"
            )

    def _set_env(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self._previous_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        self._installed = True

    def uninstall(self) -> None:
        """Stop serving this config in this process (the library itself stays loaded).

        The variables set by :meth:`install` get their earlier values back, unless another
        fake installed since took them over. A later initialisation without another
        installed fake fails as on a machine without the driver.
        """
        if not self._installed:
            return
        if os.environ.get(self.config_env) == str(self.config_path):
            for key, value in self._previous_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        self._previous_env = {}
        self._installed = False

    def close(self) -> None:
        """Uninstall and remove the config folder. Idempotent."""
        self.uninstall()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Any:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        gpus = len(getattr(self, "gpus", ()))
        return f"{type(self).__name__}(gpus={gpus}, library={str(self.library_path)!r})"


def child_env(fake: FakeLibrary, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) merged with ``fake.env()``."""
    return {**(os.environ if base is None else base), **fake.env()}
