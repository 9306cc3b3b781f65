"""Write the final report however the process ends: normal exit, exception, SIGTERM.

Meters that have a ``report_path`` register here when they start. Then:

* at normal interpreter exit, a meter still running is stopped and its report written
  with status ``complete`` (or ``failed`` / ``interrupted`` when an uncaught exception,
  or Ctrl-C, is what ended the program);
* on SIGTERM the report is written with status ``interrupted`` and the signal then goes
  on to whatever handled it before. With the default action the meter is stopped and the
  process terminates as usual. When the program has its own handler (a graceful
  shutdown that finishes the current step and exits), the report is saved at once but
  the meter keeps measuring, so the program's remaining phases neither fail nor go
  uncounted; the final report, written at exit, keeps the status ``interrupted``. A
  program that ignores SIGTERM (``SIG_IGN``) is left alone;
* ``kill -9`` cannot be caught: the last periodic checkpoint (status ``running``) is what
  remains, which is why checkpoints are written atomically.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import weakref
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from greenmeter.meter import EnergyMeter

__all__ = ["unwatch", "watch"]

_watched: weakref.WeakSet[EnergyMeter] = weakref.WeakSet()
_lock = threading.Lock()
_installed = False
_previous_sigterm: Any = None
_previous_excepthook: Any = None
_uncaught_status: str | None = None
_signalled = False  # a SIGTERM reached a program that handles it itself


def watch(meter: EnergyMeter) -> None:
    """Have ``meter``'s final report written at exit or SIGTERM if it is still running."""
    global _installed
    with _lock:
        _watched.add(meter)
        if _installed:
            return
        _installed = True
    atexit.register(_at_exit)
    _install_excepthook()
    _install_sigterm()


def unwatch(meter: EnergyMeter) -> None:
    """Forget ``meter`` (it has stopped on its own)."""
    with _lock:
        _watched.discard(meter)


def _finish_all(status: str) -> None:
    with _lock:
        meters = list(_watched)
        _watched.clear()
    for meter in meters:
        if getattr(meter, "_inert", False):
            continue  # a forked child's copy: the parent process owns the report
        try:
            if meter.running:
                meter.report_kwargs.setdefault("status", status)
                meter.stop()
        except Exception as exc:  # never turn an exit into a crash
            print(f"greenmeter: could not write the final report: {exc!r}", file=sys.stderr)


def _save_all(status: str) -> None:
    """Write every running meter's report now, without stopping it."""
    with _lock:
        meters = list(_watched)
    for meter in meters:
        if getattr(meter, "_inert", False):
            continue
        try:
            if meter.running and meter.report_path is not None:
                meter.report_kwargs.setdefault("status", status)
                meter.save(meter.report_path)
        except Exception as exc:  # never turn a signal into a crash
            print(f"greenmeter: could not write the report: {exc!r}", file=sys.stderr)


def _at_exit() -> None:
    _finish_all(_uncaught_status or ("interrupted" if _signalled else "complete"))


def _install_excepthook() -> None:
    global _previous_excepthook
    _previous_excepthook = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        global _uncaught_status
        _uncaught_status = "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed"
        _previous_excepthook(exc_type, exc, tb)

    sys.excepthook = hook


def _install_sigterm() -> None:
    global _previous_sigterm
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    try:
        _previous_sigterm = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # embedded interpreters may refuse
        _previous_sigterm = None


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _signalled
    previous = _previous_sigterm
    if previous == signal.SIG_IGN:
        return  # the program ignores SIGTERM: it goes on, and so does the measurement
    if callable(previous):
        # The program's own handler decides what happens next, often a graceful stop
        # that still opens phases: save the numbers now and keep measuring.
        _signalled = True
        _save_all("interrupted")
        previous(signum, frame)
    else:  # default action: terminate as SIGTERM would have
        _finish_all("interrupted")
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
