"""One run's report files: checkpoints built and written off the measuring threads, in order.

:class:`ReportWriter` owns a daemon thread, ``greenmeter-writer``, that builds, serialises
and writes checkpoints (reports with status ``running``), periodically or when asked.
Final reports are written by the caller, at once. Every write gets a sequence number when
it is asked for, and a file is replaced only by a write with a higher number than the one
that last landed there: a slow checkpoint still in flight when the final report lands is
dropped, never written over it.

Every file goes through :func:`greenmeter.files.write_file` (atomic, links followed).
When the final report cannot be written (a full or read-only disk, a vanished directory)
it goes to the working directory, else to the temporary directory, under the name
``<stem>.<run id prefix><suffix>``, and a line on standard error says where. Checkpoint
failures are reported once on standard error; the run goes on.

Work can also be posted to the thread (:meth:`ReportWriter.post`); posting only appends
to a :class:`queue.SimpleQueue`, which is safe from a signal handler.
"""

from __future__ import annotations

import os
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TextIO

from greenmeter.files import write_file

__all__ = ["ReportWriter"]

#: Something with ``model_dump_json(indent=...)``: a report.
Report = Any
MakeReport = Callable[[], "Report | None"]


class ReportWriter:
    """Writes one run's reports.

    Args:
        tag: A short token for fallback file names (the run id's first characters).
        context: Returns a context manager every build runs inside (pinned host facts).
        err: Stream for the one-line messages (default: ``sys.stderr`` at write time).
    """

    def __init__(
        self,
        tag: str,
        *,
        context: Callable[[], AbstractContextManager[Any]] | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.tag = tag
        self._context = context or nullcontext
        self._err = err
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._seq = 0
        self._seq_lock = threading.Lock()
        #: Held while a file is replaced; re-entrant so a signal arriving mid-write in the
        #: main thread can tell (``owns_lock``).
        self._commit_lock = threading.RLock()
        self._landed: dict[str, int] = {}
        #: path -> [interval_s, make, path, next instant]
        self._periodic: dict[str, list[Any]] = {}
        self._told: set[str] = set()
        self._closed = False

    # -- asking for writes ----------------------------------------------------------------

    def every(self, interval_s: float, make: MakeReport, path: Path) -> None:
        """Write ``make()`` to ``path`` every ``interval_s`` seconds (None skips one).

        One schedule per path: a second call for the same path replaces the first.
        """
        with self._seq_lock:
            self._periodic[os.path.abspath(path)] = [
                float(interval_s),
                make,
                Path(path),
                time.monotonic() + float(interval_s),
            ]
        self._ensure_thread()
        self._queue.put(("wake",))

    def stop_periodic(self, path: Path | None = None) -> None:
        """No more periodic checkpoints (of ``path``, or of any path): any write asked for
        afterwards is numbered after every periodic one, so a periodic checkpoint still in
        flight never lands over it."""
        with self._seq_lock:
            if path is None:
                self._periodic.clear()
            else:
                self._periodic.pop(os.path.abspath(path), None)

    def submit(self, make: MakeReport, path: Path) -> None:
        """Build and write ``make()`` to ``path`` on the writer thread, soon."""
        seq = self._next_seq()
        self._ensure_thread()
        self._queue.put(("write", seq, make, Path(path)))

    def post(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the writer thread (safe to call from a signal handler)."""
        self._queue.put(("call", fn))
        if self._thread is None:
            self._ensure_thread()

    def write(self, report: Report, path: Path, *, fallback: bool = True) -> Path | None:
        """Write ``report`` to ``path`` now, after any earlier-numbered write; the path written.

        With ``fallback``, a failure tries the working directory, then the temporary
        directory (a line on standard error says where). Returns None when nothing could
        be written (also said on standard error). Never raises for an I/O problem.
        """
        seq = self._next_seq()
        text = _serialise(report)
        target = Path(path)
        try:
            self._commit(seq, target, text)
            return target
        except OSError as exc:
            reason = str(exc)
        if not fallback:
            self._say(f"greenmeter: could not write the report to {target}: {reason}")
            return None
        tried: list[str] = []
        for place in self._fallbacks(target):
            try:
                self._commit(seq, place, text)
            except OSError:
                tried.append(str(place))
                continue
            self._say(
                f"greenmeter: could not write the report to {target} ({reason}); "
                f"wrote it to {place} instead"
            )
            return place
        self._say(
            f"greenmeter: could not write the report to {target} ({reason}), nor to "
            f"{' or '.join(tried) or 'a fallback location'}; this run's report is lost"
        )
        return None

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the periodic writes and the thread (waits for a write in progress)."""
        self.stop_periodic()
        self._closed = True
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            self._queue.put(("stop",))
            thread.join(timeout_s)

    def owns_lock(self) -> bool:
        """True when the calling thread is replacing a file right now."""
        is_owned = getattr(self._commit_lock, "_is_owned", None)
        return bool(is_owned()) if is_owned is not None else False

    def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything asked for so far is done; False on timeout."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(("call", done.set))
        return done.wait(timeout_s)

    # -- the thread -----------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="greenmeter-writer", daemon=True
                )
                self._thread.start()

    def forget_thread(self) -> None:
        """After a fork: the thread does not exist in the child."""
        self._thread = None
        self._thread_lock = threading.Lock()
        self._commit_lock = threading.RLock()
        self._periodic = {}
        self._closed = True

    def _next_due(self) -> float:
        with self._seq_lock:
            return min((item[3] for item in self._periodic.values()), default=float("inf"))

    def _run(self) -> None:
        while True:
            wait = max(0.0, self._next_due() - time.monotonic())
            try:
                item = self._queue.get(timeout=min(wait, 3600.0))
            except queue.Empty:
                item = ("periodic",)
            kind = item[0]
            if kind == "stop":
                return
            if kind == "call":
                try:
                    item[1]()
                except Exception as exc:  # never let the thread die
                    self._tell_once("call", f"greenmeter: warning: {exc!r}")
                continue
            if kind == "write":
                self._checkpoint(item[1], item[2], item[3])
            due: list[tuple[int, MakeReport, Path]] = []
            with self._seq_lock:
                now = time.monotonic()
                for item in self._periodic.values():
                    if now >= item[3]:
                        item[3] = now + item[0]
                        self._seq += 1
                        due.append((self._seq, item[1], item[2]))
            for seq, make, path in due:
                self._checkpoint(seq, make, path)

    def _checkpoint(self, seq: int, make: MakeReport, path: Path) -> None:
        try:
            with self._context():
                report = make()
            if report is None:
                return
            text = _serialise(report)
        except Exception as exc:
            self._tell_once("build", f"greenmeter: warning: a checkpoint could not be built: {exc}")
            return
        try:
            self._commit(seq, path, text)
        except OSError as exc:
            self._tell_once("write", f"greenmeter: warning: writing a checkpoint failed: {exc}")

    # -- writing --------------------------------------------------------------------------

    def _next_seq(self) -> int:
        with self._seq_lock:
            self._seq += 1
            return self._seq

    def _commit(self, seq: int, path: Path, text: str) -> bool:
        key = os.path.abspath(path)
        with self._commit_lock:
            if self._landed.get(key, 0) > seq:
                return False  # a later write landed already: this one is stale
            write_file(path, text)
            self._landed[key] = seq
            return True

    def _fallbacks(self, target: Path) -> list[Path]:
        name = f"{target.stem}.{self.tag}{target.suffix or '.json'}"
        out: list[Path] = []
        for folder in (Path.cwd, lambda: Path(tempfile.gettempdir())):
            try:
                place = folder() / name
            except OSError:
                continue
            if os.path.abspath(place) != os.path.abspath(target) and place not in out:
                out.append(place)
        return out

    def _say(self, line: str) -> None:
        stream = self._err if self._err is not None else sys.stderr
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass

    def _tell_once(self, what: str, line: str) -> None:
        if what in self._told:
            return
        self._told.add(what)
        self._say(line)


def _serialise(report: Report) -> str:
    return str(report.model_dump_json(indent=2)) + "\n"
