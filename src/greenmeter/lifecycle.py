"""Write the final report however the process ends, and keep its exit status.

Runs that have a report path register here (:func:`watch`) when they start. Then:

* at normal interpreter exit, a run still measuring is stopped and its report written
  with status ``complete`` (``failed`` / ``interrupted`` when an uncaught exception, or
  Ctrl-C, is what ended the program);
* on **SIGTERM** the handler only records the signal and decides what happens next; it
  never reads a counter or writes a file (a handler that did could wait forever on a lock
  the interrupted code holds):

  - with the default action, it raises :class:`Terminated` (a ``SystemExit``) in the
    main thread, so ``with`` blocks and ``finally`` clauses run: an
    ``EnergyMeter`` ``with`` block writes the report as the stack unwinds, else it is
    written at exit; then the process ends by SIGTERM as it would have (exit status 143
    in a shell). When the signal lands while the main thread is inside greenmeter's own
    bookkeeping (a phase boundary, a report being replaced), the exit is raised as soon
    as that bookkeeping is done, so no counter state is left half updated;
  - when the program has its own handler, that handler runs after an in-progress report
    (status ``interrupted``) is queued for the writer thread; the program decides, and
    the final report, written at exit, keeps the status ``interrupted``;
  - a program that ignores SIGTERM (``SIG_IGN``) is left alone;

* **exit status**: the program's own status is kept. An uncaught Ctrl-C still ends the
  process by SIGINT (130 in a shell) although writing the report ran Python code at
  exit;
* ``kill -9`` cannot be caught: the last periodic checkpoint (status ``running``) is what
  remains, which is why checkpoints are written atomically.

Signal handlers can only be installed from the main thread. When the first run starts in
another thread, the handler is installed by the main thread as soon as it next runs
Python code (a CPython pending call); where that is not possible (another interpreter),
at the next start of a run in the main thread, and until then SIGTERM keeps its previous
meaning (the last checkpoint survives).
"""

from __future__ import annotations

import _thread
import atexit
import os
import signal
import sys
import threading
import weakref
from types import FrameType, TracebackType
from typing import Any, Protocol

__all__ = ["Terminated", "Watched", "unwatch", "watch"]


class Terminated(SystemExit):
    """Raised in the main thread when SIGTERM arrives with its default action.

    A ``SystemExit``, so ``except Exception`` does not catch it; its code is
    ``128 + signal``, the status a shell reports for the signal.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


class Watched(Protocol):
    """What this module needs of a run."""

    @property
    def alive(self) -> bool:
        """Still measuring in this process (not stopped, not a forked child's copy)."""

    def finish_at_exit(self, status: str) -> None:
        """Stop measuring and write the final report with ``status``."""

    def save_soon(self, status: str) -> None:
        """Queue an in-progress report with ``status`` (safe in a signal handler)."""

    def busy_in_main(self) -> bool:
        """The calling (main) thread is inside the run's bookkeeping right now."""

    def post(self, fn: Any) -> None:
        """Run ``fn()`` on the run's writer thread (safe in a signal handler)."""

    def after_bookkeeping(self, fn: Any) -> None:
        """Call ``fn()`` in the main thread once the current boundary is done."""


_watched: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()
_atexit_registered = False
_sigterm_installed = False
_install_scheduled = False
_previous_sigterm: Any = None
_previous_excepthook: Any = None
_uncaught_status: str | None = None
_keyboard_interrupt = False
_signalled = False  # a SIGTERM reached a program that handles it itself
_terminated: int | None = None  # SIGTERM with the default action: end by it at exit
_exit_raised = False  # Terminated was raised: the process is on its way out


def watch(run: Watched) -> None:
    """Have ``run``'s final report written at exit or SIGTERM if it is still measuring."""
    global _atexit_registered
    with _lock:
        _watched.add(run)
        first = not _atexit_registered
        _atexit_registered = True
    if first:
        atexit.register(_at_exit)
        _install_excepthook()
    _ensure_sigterm()


def unwatch(run: Watched) -> None:
    """Forget ``run`` (it has stopped on its own)."""
    with _lock:
        _watched.discard(run)


def _alive() -> list[Any]:
    with _lock:
        runs = list(_watched)
    out = []
    for run in runs:
        try:
            if run.alive:
                out.append(run)
        except Exception:  # pragma: no cover - defensive
            continue
    return out


def _status_at_exit() -> str:
    if _uncaught_status is not None:
        return _uncaught_status
    return "interrupted" if (_signalled or _terminated is not None) else "complete"


def _at_exit() -> None:
    status = _status_at_exit()
    with _lock:
        runs = list(_watched)
        _watched.clear()
    for run in runs:
        try:
            if run.alive:
                run.finish_at_exit(status)
        except Exception as exc:  # never turn an exit into a crash
            print(f"greenmeter: could not write the final report: {exc!r}", file=sys.stderr)
    if _keyboard_interrupt:
        _keep_sigint_exit()
    if _terminated is not None:
        _end_by(_terminated)


def _keep_sigint_exit() -> None:
    """Let an uncaught Ctrl-C still end the process by SIGINT (status 130).

    CPython ends such a process by SIGINT only while its "unhandled KeyboardInterrupt"
    flag is set, and evaluating a source string (``exec``, which dataclasses and other
    libraries do when imported) clears it. Evaluating one that raises KeyboardInterrupt
    sets it again.
    """
    try:
        exec("raise KeyboardInterrupt")
    except KeyboardInterrupt:
        pass


def _end_by(signum: int) -> None:
    """End the process by ``signum`` with its default action, as it would have ended."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    try:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    except (OSError, ValueError):
        os._exit(128 + signum)


def _install_excepthook() -> None:
    global _previous_excepthook
    _previous_excepthook = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        global _uncaught_status, _keyboard_interrupt
        if issubclass(exc_type, KeyboardInterrupt):
            _uncaught_status = "interrupted"
            _keyboard_interrupt = True
        else:
            _uncaught_status = "failed"
        _previous_excepthook(exc_type, exc, tb)

    sys.excepthook = hook


# -- SIGTERM --------------------------------------------------------------------------------


def _ensure_sigterm() -> None:
    global _install_scheduled
    if _sigterm_installed:
        return
    if threading.current_thread() is threading.main_thread():
        _install_sigterm()
        return
    with _lock:
        if _install_scheduled:
            return
        _install_scheduled = True
    _install_from_main_thread_soon()


def _install_sigterm() -> None:
    global _previous_sigterm, _sigterm_installed
    if _sigterm_installed:
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main thread, or an embedded interpreter refuses
        return
    _previous_sigterm = previous
    _sigterm_installed = True


_PENDING_CALL: Any = None  # keeps the C callback alive


def _install_from_main_thread_soon() -> None:
    """Ask CPython to run :func:`_install_sigterm` in the main thread (a pending call)."""
    global _PENDING_CALL, _install_scheduled
    if sys.implementation.name != "cpython":
        _install_scheduled = False
        return
    try:
        import ctypes

        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)

        def run(_: Any) -> int:
            global _install_scheduled
            _install_scheduled = False
            try:
                _install_sigterm()
            except Exception:  # pragma: no cover - must never raise into C
                pass
            return 0

        _PENDING_CALL = callback_type(run)
        add = ctypes.pythonapi.Py_AddPendingCall
        add.argtypes = [callback_type, ctypes.c_void_p]
        add.restype = ctypes.c_int
        if add(_PENDING_CALL, None) != 0:
            _install_scheduled = False
    except Exception:
        _install_scheduled = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Record SIGTERM and raise or schedule the exit; no I/O, no lock of greenmeter's."""
    global _signalled, _terminated
    previous = _previous_sigterm
    if previous == signal.SIG_IGN:
        return  # the program ignores SIGTERM: it goes on, and so does the measurement
    runs = _alive()
    if callable(previous):
        # The program's own handler decides what happens next, often a graceful stop
        # that still opens phases: queue a report now and keep measuring.
        _signalled = True
        for run in runs:
            run.save_soon("interrupted")
        previous(signum, frame)
        return
    if _exit_raised:
        return  # already unwinding towards the exit: let the report be written
    if not runs:
        _end_by(signum)  # nothing to write: the default action, now
        return
    _terminated = signum
    busy = [run for run in runs if run.busy_in_main()]
    if busy:
        # inside greenmeter's bookkeeping: raise when the boundary is done, or when the
        # handler runs again a little later (the writer thread signals the main again)
        for run in runs:
            run.after_bookkeeping(_raiser(signum))
        busy[0].post(lambda: _signal_main_again(signum))
        return
    _raise_terminated(signum)


def _raise_terminated(signum: int) -> None:
    global _exit_raised
    _exit_raised = True
    raise Terminated(signum)


def _raiser(signum: int) -> Any:
    def raise_terminated() -> None:
        if not _exit_raised:
            _raise_terminated(signum)

    return raise_terminated


#: Pause before the writer thread signals the main thread again (s).
_RETRY_S = 0.005


def _signal_main_again(signum: int) -> None:
    """On a writer thread: deliver the signal to the main thread again, shortly."""
    import time

    time.sleep(_RETRY_S)
    if not _exit_raised:
        _thread.interrupt_main(signum)
