"""EnergyMeter: the public entry point, a meter plus the run that owns its report.

:class:`EnergyMeter` composes :class:`greenmeter.core.meter.Meter` (phases, boundary
reads, the sampler: it only measures) with :class:`greenmeter.run.Run` (report path,
checkpoints, carbon, signals and exit). It also reads the settings a user gives through
the environment (``RANK``/``LOCAL_RANK``/``WORLD_SIZE``, ``GREENMETER_TAGS``,
``GREENMETER_ESTIMATE_SCOPE``, ``GREENMETER_EXPORT``) and the config file, forwards
phases to a parent ``greenmeter run`` (``GREENMETER_CHANNEL``) and publishes live
metrics (:mod:`greenmeter.export`).

Size: about 500 lines, most of it the public methods' documented signatures; each
delegates in a few lines to the meter or the run.

Example:
    >>> from greenmeter import EnergyMeter
    >>> with EnergyMeter() as meter:                      # doctest: +SKIP
    ...     with meter.phase("train", kind="train") as ph:
    ...         for batch in loader:
    ...             step(batch)
    ...             ph.add(samples=len(batch))
    >>> meter.snapshot().phases[0].energy_j               # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from greenmeter.core.limits import LATENCY_RESERVOIR, MAX_INTERVALS, MAX_WARNINGS
from greenmeter.core.meter import (
    GreenMeterWarning,
    Meter,
    MeterError,
    PhaseHandle,
    PhaseListener,
)
from greenmeter.core.records import MeterSnapshot
from greenmeter.lifecycle import Terminated
from greenmeter.options import (
    ESTIMATE_SCOPE_ENV,
    ESTIMATE_SCOPES,
    env_int,
    resolve_estimate_scope,
    resolve_tags,
)
from greenmeter.run import Run
from greenmeter.sensors.base import ComponentInfo, Sensor, Unavailable

if TYPE_CHECKING:
    from greenmeter.export.base import Exporter
    from greenmeter.export.live import LiveExport
    from greenmeter.report import Report

__all__ = [
    "ESTIMATE_SCOPES",
    "ESTIMATE_SCOPE_ENV",
    "LATENCY_RESERVOIR",
    "MAX_INTERVALS",
    "MAX_WARNINGS",
    "EnergyMeter",
    "GreenMeterWarning",
    "MeterError",
    "PhaseHandle",
    "PhaseListener",
    "resolve_estimate_scope",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class EnergyMeter:
    """Measures energy per phase from the host's counters and writes the run's report.

    Args:
        sensors: Sensors to read; None discovers the best source per component
            (:func:`greenmeter.sensors.discover.discover`).
        powercap_root: Root of the powercap sysfs tree (else ``GREENMETER_POWERCAP_ROOT``,
            else ``/sys/class/powercap``).
        gpus: GPUs to measure: None for those this process can see (honouring
            ``CUDA_VISIBLE_DEVICES``), else indices or UUIDs.
        cpu: Discover CPU and memory sources.
        gpu: Discover GPU sources.
        sample_interval_s: Background sampler period in seconds (default 0.1 s, 10 Hz).
        timeline_points: Most points kept in the power timeline (memory is fixed).
        rank: Global rank (default ``$RANK`` or 0).
        local_rank: Rank on this host (default ``$LOCAL_RANK`` or 0).
        world_size: Number of ranks (default ``$WORLD_SIZE`` or 1).
        count_host: Measure this host's CPU and memory on this rank; default
            ``local_rank == 0`` so a host is counted once however many ranks it runs.
        carbon: A :class:`greenmeter.carbon.CarbonConfig` used when building reports
            (resolved once per run), or False for none.
        report_path: Where :meth:`stop` writes the final report, and where periodic
            checkpoints go. When it cannot be written, the report goes to the working
            directory or the temporary directory and standard error says where.
        checkpoint_interval_s: Write an in-progress report (status ``running``) this
            often, from a thread of its own; None disables checkpoints.
        run_name: A name for the run, carried into the report.
        read_timeout_s: Longest wait for a sensor that may block (NVML); past it the
            last values are used, the component is marked degraded and a warning is
            recorded.
        handle_signals: With ``report_path``, also write the final report on SIGTERM
            (chaining any handler already installed) and at interpreter exit.
        estimate_scope: For hosts without energy counters, estimate the CPU and RAM
            energy of ``"process"`` (this process and its children) or of the whole
            ``"machine"``; default ``$GREENMETER_ESTIMATE_SCOPE``, else the config
            file's ``estimate_scope``, else ``"process"``.
        tags: Run labels (``{"experiment": "ablation", "seed": 3}``), added to
            ``$GREENMETER_TAGS`` (``key=value,key=value``); see
            :mod:`greenmeter.report.tags` for the rules.
        export: Publish live metrics while the run goes on: a spec such as
            ``"prometheus"`` (scrape endpoint on 127.0.0.1:9464), ``"prometheus:PORT"``,
            ``"pushgateway:http://host:9091"`` or ``"otel"`` (several separated by
            commas), an :class:`greenmeter.export.Exporter`, or a list of them; default
            ``$GREENMETER_EXPORT``, else the config file's ``export``, else none. See
            :mod:`greenmeter.export`; a failing exporter is a warning, never an error.
        verbose: With ``report_path``, print one closing line on standard error when
            the final report is written: energy (J), CO2e (g), where the report went,
            and the caveats (estimate and its scope, world-average intensity). False
            prints nothing.

    Raises:
        ValueError: an argument is out of range or ``export`` is not a valid spec; bad
            ``tags`` raise
            :class:`greenmeter.report.tags.TagError` (a ValueError) naming the tag.
    """

    def __init__(
        self,
        sensors: Sequence[Sensor] | None = None,
        *,
        powercap_root: str | os.PathLike[str] | None = None,
        gpus: Sequence[int | str] | None = None,
        cpu: bool = True,
        gpu: bool = True,
        sample_interval_s: float = 0.1,
        timeline_points: int = 2048,
        rank: int | None = None,
        local_rank: int | None = None,
        world_size: int | None = None,
        count_host: bool | None = None,
        carbon: Any = None,
        report_path: str | os.PathLike[str] | None = None,
        checkpoint_interval_s: float | None = None,
        run_name: str | None = None,
        read_timeout_s: float = 2.0,
        handle_signals: bool = True,
        estimate_scope: str | None = None,
        tags: Any = None,
        export: Any = None,
        verbose: bool = True,
    ) -> None:
        self.rank = rank if rank is not None else (env_int("RANK") or 0)
        self.local_rank = local_rank if local_rank is not None else (env_int("LOCAL_RANK") or 0)
        self.world_size = world_size if world_size is not None else (env_int("WORLD_SIZE") or 1)
        self.count_host = (self.local_rank == 0) if count_host is None else bool(count_host)
        self.host = socket.gethostname()
        self.handle_signals = bool(handle_signals)
        if estimate_scope is not None:
            resolve_estimate_scope(estimate_scope)  # a bad value raises here, not at start
        self._estimate_scope_arg = estimate_scope
        self._estimate_scope: tuple[str, str] | None = None
        if export is not None:
            from greenmeter.export import parse_export

            parse_export(export)  # a bad spec raises here, not at start
        self._export_arg = export
        self._live: LiveExport | None = None
        #: Extra arguments for every report of this run (``model=``, ``status=``...).
        self.report_kwargs: dict[str, Any] = {}
        self.run = Run(
            report_path=report_path,
            checkpoint_interval_s=checkpoint_interval_s,
            carbon=carbon,
            run_name=run_name,
            tags=resolve_tags(tags),
            report_kwargs=self.report_kwargs,
            host=self.host,
            verbose=verbose,
        )
        self._discover_args = {
            "powercap_root": powercap_root,
            "gpus": gpus,
            "cpu": cpu,
            "gpu": gpu,
        }
        self.core = Meter(
            sensors,
            discover=self._discover,
            host=self.host,
            rank=self.rank,
            local_rank=self.local_rank,
            world_size=self.world_size,
            sample_interval_s=sample_interval_s,
            timeline_points=timeline_points,
            read_timeout_s=read_timeout_s,
        )

    # -- settings -------------------------------------------------------------------------

    @property
    def carbon(self) -> Any:
        """The carbon settings reports are built with."""
        return self.run.carbon

    @property
    def report_path(self) -> Path | None:
        """Where the final report and checkpoints go."""
        return self.run.report_path

    @property
    def checkpoint_interval_s(self) -> float | None:
        """Seconds between in-progress reports (None: none)."""
        return self.run.checkpoint_interval_s

    @property
    def run_name(self) -> str | None:
        """The run's name."""
        return self.run.run_name

    @property
    def run_id(self) -> str:
        """The run's id (32 hex digits), the same in every report of the run."""
        return self.run.run_id

    @property
    def tags(self) -> dict[str, str]:
        """The run's tags."""
        return dict(self.run.tags)

    @property
    def estimate_scope(self) -> str:
        """``"process"`` or ``"machine"``: what the CPU/RAM estimate covers (decided at
        the first use, so the config file is read only when an estimate is built)."""
        if self._estimate_scope is None:
            self._estimate_scope = resolve_estimate_scope(self._estimate_scope_arg)
        return self._estimate_scope[0]

    @property
    def estimate_scope_source(self) -> str:
        """Where :attr:`estimate_scope` came from: ``"argument"``, the variable, the
        config file's path, or ``"default"``."""
        self.estimate_scope  # noqa: B018 - decides it
        assert self._estimate_scope is not None
        return self._estimate_scope[1]

    @property
    def sample_interval_s(self) -> float:
        """The background sampler period, seconds."""
        return self.core.sample_interval_s

    @property
    def read_timeout_s(self) -> float:
        """The read time bound of blocking sensors, seconds."""
        return self.core.read_timeout_s

    def _discover(self) -> tuple[list[Sensor], list[Unavailable]]:
        from greenmeter.sensors.discover import discover

        found = discover(
            powercap_root=self._discover_args["powercap_root"],
            gpus=self._discover_args["gpus"],
            cpu=bool(self._discover_args["cpu"]),
            gpu=bool(self._discover_args["gpu"]),
            sample_interval_s=self.core.sample_interval_s,
            count_host=self.count_host,
            host=self.host,
            estimate_scope=lambda: self.estimate_scope,
        )
        return list(found.sensors), list(found.unavailable)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> EnergyMeter:
        """Open the sensors, take the first reading and start the background thread.

        Returns the meter, so ``meter = EnergyMeter().start()`` works.
        """
        if self.core.running:
            return self
        from greenmeter.carbon.check import warn_configuration

        warn_configuration(self.carbon)  # mistakes are loud at the start; never raises
        self.core.start()
        if any(c.method.value == "estimated" for c in self.core.components):
            self.run.extra["estimate_scope"] = self.estimate_scope
        if os.environ.get("GREENMETER_CHANNEL"):
            self._attach_parent_channel()
        self.run.start(
            snapshot=self.core.snapshot,
            stop=self._stop_at_exit,
            busy=self.core.owns_lock,
            alive=lambda: self.core.running and not self.core.inert,
            after_boundary=self.core.after_boundary_in_main,
            handle_signals=self.handle_signals,
        )
        from greenmeter.export.live import start_for_meter

        self._live = start_for_meter(self, self._export_arg)
        return self

    def stop(self) -> MeterSnapshot:
        """Close open phases, stop the thread, take the final reading.

        Idempotent: later calls return the same snapshot. When ``report_path`` was
        given, the final report is written there (atomically; elsewhere if that fails,
        said on standard error).
        """
        first = not self.core.stopped
        snapshot = self.core.stop()
        if first:
            if self.report_path is not None:
                self.run.finish(snapshot)
            else:
                self.run.close()
            if self._live is not None:  # the final figures, then ports released
                self._live.stop(snapshot.ended_mono, snapshot.energy_j)
        return snapshot

    def _stop_at_exit(self, status: str) -> None:
        self.report_kwargs.setdefault("status", status)
        self.stop()

    def __enter__(self) -> EnergyMeter:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        if exc_type is not None and self.report_path is not None:
            self.report_kwargs.setdefault("status", _status_of(exc_type, exc))
        if not self.core.inert:
            self.stop()

    # -- phases ---------------------------------------------------------------------------

    def enter(
        self,
        name: str,
        kind: str | None = None,
        *,
        parent: PhaseHandle | tuple[str, ...] | None = None,
    ) -> PhaseHandle:
        """Open an instance of a phase and return its handle; see :meth:`Meter.enter`."""
        return self.core.enter(name, kind, parent=parent)

    def exit(self, handle: PhaseHandle) -> None:
        """Close a phase instance opened by :meth:`enter` (idempotent; any order)."""
        self.core.exit(handle)

    def phase(
        self,
        name: str,
        kind: str | None = None,
        *,
        samples: int | None = None,
        tokens: int | None = None,
        steps: int | None = None,
    ) -> PhaseHandle:
        """Measure the enclosed ``with`` block as phase ``name``; see :meth:`Meter.phase`."""
        return self.core.phase(name, kind, samples=samples, tokens=tokens, steps=steps)

    def measure(self, name: str | None = None, kind: str | None = None) -> Callable[[F], F]:
        """Decorator: each call is one entry of phase ``name`` with its latency recorded;
        see :meth:`Meter.measure`."""
        return self.core.measure(name, kind)

    def track(
        self, iterable: Iterable[T], phase: str, kind: str | None = None, **options: Any
    ) -> Iterator[T]:
        """Iterate ``iterable`` inside phase ``phase``, counting steps and samples.

        ``for batch in meter.track(loader, "train"):`` is the plain-loop way in; see
        :func:`greenmeter.loops.track` for the options (sample counting, windows every
        N steps, epochs).
        """
        from greenmeter.loops import track

        return track(self, iterable, phase, kind, **options)

    def add_sync_hook(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` at every phase boundary before the counters are read."""
        self.core.add_sync_hook(hook)

    def add_warning(self, code: str, message: str, component_id: str | None = None) -> None:
        """Record a structured warning in the run's report (once per ``code``)."""
        self.core.add_warning(code, message, component_id)

    def add_listener(self, listener: PhaseListener) -> None:
        """Send every phase entry, exit and item count to ``listener`` (synchronously)."""
        self.core.add_listener(listener)

    def add_observer(self, observer: Any) -> None:
        """Send phase events and periodic readings to ``observer`` without ever blocking
        the measured program; see :mod:`greenmeter.core.observers`."""
        self.core.add_observer(observer)

    def current_phase(self) -> PhaseHandle | None:
        """The innermost phase open in the calling thread, if any."""
        return self.core.current_phase()

    # -- results --------------------------------------------------------------------------

    @property
    def components(self) -> list[ComponentInfo]:
        """The measured components (known after :meth:`start`)."""
        return self.core.components

    @property
    def unavailable(self) -> list[Unavailable]:
        """Sources that were considered and not used, with reasons."""
        return self.core.unavailable

    @property
    def total_energy_j(self) -> float:
        """Energy in joules since start, summed over components (reads the counters)."""
        return self.core.total_energy_j

    @property
    def exporters(self) -> list[Exporter]:
        """The live exporters publishing this run (those that started; empty after stop)."""
        return list(self._live.exporters) if self._live is not None else []

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self.core.running

    @property
    def started_mono(self) -> float:
        """``time.monotonic()`` at start."""
        return self.core.started_mono

    @property
    def started_utc(self) -> datetime:
        """UTC time at start."""
        return self.core.started_utc

    @property
    def ended_mono(self) -> float | None:
        """``time.monotonic()`` at stop (None while running)."""
        return self.core.ended_mono

    def utc(self, t_mono: float) -> datetime:
        """Convert a ``time.monotonic()`` instant to an aware UTC datetime."""
        return self.core.utc(t_mono)

    def settle(self, timeout_s: float | None = None) -> bool:
        """Wait until GPU figures up to now are exact (the counter's next update was
        seen); True when they are. See :meth:`greenmeter.core.meter.Meter.settle`."""
        return self.core.settle(timeout_s)

    def snapshot(self) -> MeterSnapshot:
        """The meter's state as plain data (``running=True`` before :meth:`stop`)."""
        return self.core.snapshot()

    def report(self, **kwargs: Any) -> Report:
        """Build the validated :class:`greenmeter.report.Report` from :meth:`snapshot`.

        Keyword arguments go to :func:`greenmeter.report.build_report` (``model=``,
        ``status=``, ``include_command=``...); ``carbon``, ``run_name``, ``run_id`` and
        ``tags`` default to the run's.

        Raises:
            greenmeter.report.ReportError: the report cannot be built (the only error).
            MeterError: the meter was never started.
        """
        return self.run.build(self.snapshot(), **kwargs)

    def save(self, path: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Build the report and write it to ``path`` atomically; returns the path.

        Raises:
            greenmeter.report.ReportError: the report cannot be built.
            greenmeter.files.OutputError: the file cannot be written.
        """
        target = Path(path)
        self.report(**kwargs).save(target)
        return target

    # -- internals ------------------------------------------------------------------------

    def _attach_parent_channel(self) -> None:
        """Under ``greenmeter run``, forward this process's phases to the parent."""
        try:
            from greenmeter.channel import attach_from_env

            attach_from_env(self)
        except Exception as exc:
            self.add_warning(
                "meter.channel_failed",
                f"could not forward phases to the parent `greenmeter run`: {exc!r}",
            )


def _status_of(exc_type: type[BaseException], exc: object) -> str:
    """A report status for an exception leaving a ``with EnergyMeter()`` block."""
    if issubclass(exc_type, (KeyboardInterrupt, Terminated)):
        return "interrupted"
    if issubclass(exc_type, SystemExit):
        code = getattr(exc, "code", None)
        return "complete" if code in (None, 0) else "failed"
    return "failed"
