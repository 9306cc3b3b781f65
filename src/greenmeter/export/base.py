"""What every live exporter is: started with the run's figures, stopped at its end.

An exporter never raises into the run once started: a collector that cannot be reached
is a warning (once per kind of problem), handed to ``on_warning`` (the meter records it
in the report) or, without one, to Python's :mod:`warnings`.
"""

from __future__ import annotations

import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable

from greenmeter.export.figures import LiveFigures

__all__ = ["ExportError", "ExportWarning", "Exporter"]


class ExportError(RuntimeError):
    """An exporter cannot start (a missing package, a port in use); says what to do."""


class ExportWarning(RuntimeWarning):
    """A live export problem that does not stop the run."""


class Exporter(ABC):
    """A live metrics exporter. Subclasses implement :meth:`_start` and :meth:`_stop_export`."""

    #: Short name used in messages.
    name: str = "exporter"

    def __init__(self) -> None:
        self.figures: LiveFigures | None = None
        #: Called with ``(code, message)`` for each problem; set by the meter.
        self.on_warning: Callable[[str, str], None] | None = None
        self._warned: set[str] = set()
        self._warn_lock = threading.Lock()
        self._running = False

    @abstractmethod
    def describe(self) -> str:
        """Where the figures go, in words (for the start-up line and the docs)."""

    @abstractmethod
    def _start(self, figures: LiveFigures) -> None:
        """Begin publishing ``figures``; may raise :class:`ExportError`."""

    @abstractmethod
    def _stop_export(self) -> None:
        """Publish a last time if the kind of exporter needs it, and release resources."""

    def start(self, figures: LiveFigures) -> None:
        """Begin publishing. Raises :class:`ExportError` when it cannot start."""
        self.figures = figures
        self._start(figures)
        self._running = True

    def stop(self) -> None:
        """Stop publishing (idempotent; never raises)."""
        if not self._running:
            return
        self._running = False
        try:
            self._stop_export()
        except Exception as exc:  # an exporter problem never reaches the run
            self.warn_once("export.stop_failed", f"stopping the {self.name} export failed: {exc}")

    def warn_once(self, code: str, message: str) -> None:
        """Report a problem once per ``code``."""
        with self._warn_lock:
            if code in self._warned:
                return
            self._warned.add(code)
        if self.on_warning is not None:
            self.on_warning(code, message)
        else:
            warnings.warn(f"greenmeter: {message}", ExportWarning, stacklevel=2)
