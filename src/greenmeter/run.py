"""The run owner: what a measured run produces besides the numbers.

A :class:`Run` owns, for one measurement:

* the report: its path, the arguments every report of the run is built with (run id,
  name, tags, model, command...), and building it so that only
  :class:`~greenmeter.report.ReportError` ever escapes;
* the carbon accountant, resolved once per run and cached (a live intensity provider is
  asked once);
* the host, software and git facts, gathered once when the run starts, on the writer
  thread;
* checkpoints: one periodic mechanism (:class:`~greenmeter.writer.ReportWriter`) for the
  meter, ``greenmeter run`` and the framework callbacks, writing in order and never over
  the final report;
* the end of the process: SIGTERM, Ctrl-C, uncaught exceptions and interpreter exit
  (:mod:`greenmeter.lifecycle`), so the final report is written however the run ends.

The measuring itself is the meter's (:class:`greenmeter.core.meter.Meter`); a Run only
asks it for snapshots and, at exit, to stop.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from greenmeter.core.records import MeterSnapshot
from greenmeter.sensors.base import SensorWarning
from greenmeter.writer import ReportWriter

if TYPE_CHECKING:
    from greenmeter.report import Report

__all__ = ["FinalReport", "Run"]


@dataclass(frozen=True)
class FinalReport:
    """How a run's final report turned out.

    Attributes:
        report: The report, or None when it could not be built.
        path: Where it was written (a fallback location when the report path failed),
            or None when it was not written.
        error: Why it was not built or not written where asked, else None.
    """

    report: Report | None
    path: Path | None
    error: str | None = None


class Run:
    """One run's report, checkpoints, carbon and exit handling.

    Args:
        report_path: Where the final report and checkpoints go; None: nowhere (reports
            are still built on request).
        checkpoint_interval_s: Write an in-progress report this often (seconds); None
            disables.
        carbon: A ``greenmeter.carbon.CarbonConfig``, None for the resolver's defaults,
            or False for no carbon accounting.
        run_name: A name for the run.
        tags: Checked run tags.
        report_kwargs: Further :func:`greenmeter.report.build_report` arguments; the Run
            keeps this very dict, so callers may add to it while the run goes on.
        host: Hostname the facts are gathered for.
        err: Stream for one-line messages (default: standard error).
        verbose: Print the closing line (energy, CO2e, report path and caveats:
            :func:`greenmeter.render.closing.emit_summary`) when the final report is
            written.
    """

    def __init__(
        self,
        *,
        report_path: str | os.PathLike[str] | None = None,
        checkpoint_interval_s: float | None = None,
        carbon: Any = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        report_kwargs: dict[str, Any] | None = None,
        host: str | None = None,
        err: TextIO | None = None,
        verbose: bool = False,
    ) -> None:
        if checkpoint_interval_s is not None and not (checkpoint_interval_s > 0):
            raise ValueError(
                "checkpoint_interval_s must be a positive number of seconds or None, "
                f"got {checkpoint_interval_s!r}"
            )
        self.report_path = Path(report_path) if report_path is not None else None
        self.checkpoint_interval_s = checkpoint_interval_s
        self.carbon = carbon
        self.run_name = run_name
        self.run_id = uuid.uuid4().hex
        self.tags: dict[str, str] = dict(tags or {})
        self.report_kwargs: dict[str, Any] = report_kwargs if report_kwargs is not None else {}
        #: Facts for every report's ``extra`` (a report's own ``extra`` wins per key).
        self.extra: dict[str, Any] = {}
        self.host = host or socket.gethostname()
        self.verbose = bool(verbose)
        self._err = err
        #: How the final report turned out (after :meth:`finish`).
        self.outcome: FinalReport | None = None
        self.writer = ReportWriter(self.run_id[:8], context=self._pinned, err=err)
        self._carbon_lock = threading.Lock()
        self._carbon_done = False
        self._accountant: Any = None
        self._carbon_error: str | None = None
        self._facts_lock = threading.Lock()
        self._facts: Any = None
        self._hooks: _Hooks | None = None
        self._notes: list[SensorWarning] = []

    # -- carbon -------------------------------------------------------------------------

    def accountant(self) -> Any:
        """The carbon accountant for every report of this run, resolved once.

        Returns False for no carbon accounting (``carbon=False``, or settings that could
        not be resolved: the reports then say why).
        """
        if self.carbon is False:
            return False
        with self._carbon_lock:
            if not self._carbon_done:
                self._carbon_done = True
                try:
                    from greenmeter.carbon import resolve

                    self._accountant = resolve(self.carbon)
                except Exception as exc:
                    self._carbon_error = (
                        f"carbon accounting failed ({type(exc).__name__}: {exc}); the report "
                        "has energy but no CO2e. Check the carbon settings."
                    )
                    self._accountant = None
            return self._accountant if self._accountant is not None else False

    def check_carbon(self) -> None:
        """Resolve the carbon settings now; raise what went wrong (for a CLI's exit 2).

        Raises:
            greenmeter.carbon.CarbonError: the settings are invalid.
        """
        if self.carbon is False:
            return
        from greenmeter.carbon import resolve

        with self._carbon_lock:
            if not self._carbon_done:
                self._accountant = resolve(self.carbon)  # raises: nothing is cached
                self._carbon_done = True

    # -- reports ------------------------------------------------------------------------

    def _pinned(self) -> AbstractContextManager[Any]:
        from greenmeter import hostinfo

        return hostinfo.pinned(self.facts())

    def facts(self) -> Any:
        """Host, software and git facts of this run (gathered at the first call)."""
        with self._facts_lock:
            if self._facts is None:
                from greenmeter import hostinfo

                include_git = self.report_kwargs.get("include_git", True) is not False
                self._facts = hostinfo.gather(
                    self.host, self.report_kwargs.get("cwd"), include_git=include_git
                )
            return self._facts

    def build(self, snapshot: MeterSnapshot, **kwargs: Any) -> Report:
        """The validated report of ``snapshot`` with this run's arguments.

        ``kwargs`` override the run's :attr:`report_kwargs`; ``carbon``, ``run_name``,
        ``run_id`` and ``tags`` default to the run's.

        Raises:
            greenmeter.report.ReportError: the report cannot be built (never a raw
                validation or recursion error).
        """
        from greenmeter.report import ReportError, build_report

        merged: dict[str, Any] = {**self.report_kwargs, **kwargs}
        if merged.get("status") is None:
            merged.pop("status", None)
        if "carbon" not in merged:
            merged["carbon"] = self.accountant()
        merged.setdefault("run_name", self.run_name)
        merged.setdefault("run_id", self.run_id)
        if self.tags:
            merged["tags"] = {**self.tags, **dict(merged.get("tags") or {})}
        if self.extra:
            merged["extra"] = {**self.extra, **dict(merged.get("extra") or {})}
        notes = list(self._notes)
        if (
            self._carbon_error is not None
            and merged["carbon"] is False
            and self.carbon is not False
        ):
            notes.append(SensorWarning("carbon.unavailable", self._carbon_error))
        if notes:
            snapshot = replace(snapshot, warnings=[*snapshot.warnings, *notes])
        try:
            with self._pinned():
                return build_report(snapshot, **merged)
        except ReportError:
            raise
        except RecursionError:
            raise ReportError("the measurement is nested too deeply to build a report") from None
        except Exception as exc:
            raise ReportError(
                f"the report could not be built: {type(exc).__name__}: {exc}"
            ) from None

    def note(self, code: str, message: str) -> None:
        """A warning for every later report of this run (not the meter's own)."""
        self._notes.append(SensorWarning(code, message))

    def write(
        self, report: Report, path: str | os.PathLike[str], *, fallback: bool = True
    ) -> Path | None:
        """Write ``report`` now, in order with this run's checkpoints; the path written.

        Never raises for an I/O problem: a failure is said on standard error and, with
        ``fallback``, the report goes to the working or temporary directory instead.
        """
        return self.writer.write(report, Path(path), fallback=fallback)

    def checkpoint_every(
        self, interval_s: float, make: Callable[[], Report | None], path: str | os.PathLike[str]
    ) -> None:
        """Write ``make()`` (a report, or None to skip) to ``path`` every ``interval_s``
        seconds, built and written on the writer thread."""
        if not (interval_s > 0):
            raise ValueError(f"interval_s must be a positive number of seconds, got {interval_s!r}")
        self.writer.every(interval_s, make, Path(path))

    def stop_checkpoints(self) -> None:
        """No more periodic checkpoints; none in flight lands after a later write."""
        self.writer.stop_periodic()

    # -- the run's life -----------------------------------------------------------------

    def start(
        self,
        *,
        snapshot: Callable[[], MeterSnapshot],
        stop: Callable[[str], None],
        busy: Callable[[], bool],
        alive: Callable[[], bool],
        after_boundary: Callable[[Callable[[], None]], None],
        handle_signals: bool,
    ) -> None:
        """Begin: gather facts off the caller's thread, schedule checkpoints, watch the exit.

        Args:
            snapshot: The meter's current snapshot.
            stop: Stops the measurement and writes the final report with a status
                (called at exit, from the main thread).
            busy: True when the calling thread is inside the meter's bookkeeping.
            alive: True while the meter measures in this process.
            after_boundary: Has a function called in the main thread once the meter's
                current boundary is done.
            handle_signals: Register with :mod:`greenmeter.lifecycle` (needs a report
                path).
        """
        self._hooks = _Hooks(snapshot, stop, busy, alive, after_boundary)
        if self.report_path is None:
            return
        self.writer.post(self.facts)
        if self.checkpoint_interval_s:
            self.checkpoint_every(self.checkpoint_interval_s, self._running, self.report_path)
        if handle_signals:
            from greenmeter import lifecycle

            lifecycle.watch(self)

    def _running(self) -> Report | None:
        """The in-progress report for a periodic checkpoint; None once the meter has
        stopped (its final report follows: a checkpoint due just as it stopped is
        skipped, not a failure)."""
        hooks = self._hooks
        if hooks is None or not hooks.alive():
            return None
        try:
            snap = hooks.snapshot()
        except Exception:
            if not hooks.alive():
                return None
            raise
        return self.build(snap, status="running")

    def finish(self, snapshot: MeterSnapshot) -> FinalReport:
        """Write the final report of ``snapshot`` to the report path (status from
        :attr:`report_kwargs`, default ``complete``). Never raises."""
        self.stop_checkpoints()
        if self.report_path is None:
            self.outcome = FinalReport(None, None, "no report path")
            return self.outcome
        from greenmeter.report import ReportError

        try:
            report = self.build(snapshot)
        except ReportError as exc:
            self.writer._say(f"greenmeter: could not build the final report: {exc}")
            self.outcome = FinalReport(None, None, str(exc))
        else:
            written = self.write(report, self.report_path)
            error = None if written == self.report_path else "written elsewhere or not at all"
            self.outcome = FinalReport(report, written, error)
            if self.verbose and written is not None:
                from greenmeter.render.closing import emit_summary

                emit_summary(report, written, stream=self._err)
        self.close()
        return self.outcome

    def close(self) -> None:
        """Stop the writer thread and forget the exit handling."""
        from greenmeter import lifecycle

        lifecycle.unwatch(self)
        self.writer.close()

    # -- what lifecycle needs -----------------------------------------------------------

    @property
    def alive(self) -> bool:
        """Still measuring in this process."""
        return self._hooks is not None and self._hooks.alive()

    def busy_in_main(self) -> bool:
        """The calling thread is inside the meter's or the writer's bookkeeping."""
        hooks = self._hooks
        return (hooks is not None and hooks.busy()) or self.writer.owns_lock()

    def after_bookkeeping(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` in the main thread once the meter's current boundary is done."""
        if self._hooks is not None:
            self._hooks.after_boundary(fn)

    def post(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the writer thread (safe in a signal handler)."""
        self.writer.post(fn)

    def save_soon(self, status: str) -> None:
        """Queue an in-progress report with ``status`` (safe in a signal handler)."""
        hooks = self._hooks
        if hooks is None or self.report_path is None:
            return
        self.report_kwargs["status"] = status
        path = self.report_path
        self.writer.post(lambda: self._save_now(hooks, path, status))

    def _save_now(self, hooks: _Hooks, path: Path, status: str) -> None:
        if hooks.alive():
            self.writer.submit(lambda: self.build(hooks.snapshot(), status=status), path)

    def finish_at_exit(self, status: str) -> None:
        """Stop and write the final report with ``status`` unless one was chosen."""
        if self._hooks is not None:
            self.report_kwargs.setdefault("status", status)
            self._hooks.stop(status)


@dataclass(frozen=True)
class _Hooks:
    snapshot: Callable[[], MeterSnapshot]
    stop: Callable[[str], None]
    busy: Callable[[], bool]
    alive: Callable[[], bool]
    after_boundary: Callable[[Callable[[], None]], None]
