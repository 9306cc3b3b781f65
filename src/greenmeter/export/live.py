"""Live export wired to a meter: which exporters, fed from where, started and stopped when.

:func:`resolve_export` decides the exporters of a meter: the ``export=`` argument, else
``$GREENMETER_EXPORT``, else ``export`` in the config file (``greenmeter.toml`` or
``[tool.greenmeter]`` of ``pyproject.toml``). A bad spec given in code raises; a bad one
in the environment or a file is one warning and is ignored, as every other setting there.

:class:`LiveExport` owns the run's :class:`~greenmeter.export.figures.LiveFigures` and
its exporters. It is a meter *observer* (:mod:`greenmeter.core.observers`): the sampler's
readings and the phase events reach it on the observer thread, so the training thread
only appends an event to a queue; serving and pushing happen on the exporters' threads.
An exporter that cannot start, or fails later, is one warning (on standard error, in the
report, and as an :class:`~greenmeter.export.base.ExportWarning` when warnings are
collected) and the run goes on without it.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from greenmeter.export import EXPORT_ENV, parse_export
from greenmeter.export.base import Exporter, ExportWarning
from greenmeter.export.figures import LiveFigures

__all__ = [
    "EXPORT_KEY",
    "LiveExport",
    "carbon_factor",
    "meter_warning",
    "resolve_export",
    "start_for_meter",
]

#: The config file key holding export specs (a string, as the environment variable).
EXPORT_KEY = "export"
_CHANNEL_ENV = "GREENMETER_CHANNEL"
ExportArg = str | Exporter | Sequence[str | Exporter] | None
Warn = Callable[[str, str], None]


def _by_rank(exporters: list[Exporter], local_rank: int) -> list[Exporter]:
    """Prometheus endpoints from specs serve on ``PORT + local_rank``: one port per rank."""
    from greenmeter.export.prometheus import PrometheusExporter

    if local_rank > 0:
        for exporter in exporters:
            if isinstance(exporter, PrometheusExporter) and not exporter.push_url:
                if exporter.port:  # 0 picks a free port anyway
                    exporter.port = min(65535, exporter.port + local_rank)
    return exporters


def _from_specs(spec: ExportArg, local_rank: int) -> list[Exporter]:
    if spec is None:
        return []
    given = [spec] if isinstance(spec, (str, Exporter)) else list(spec)
    out: list[Exporter] = []
    for item in given:
        if isinstance(item, str):
            out.extend(_by_rank(parse_export(item), local_rank))
        else:
            out.extend(parse_export(item))
    return out


def resolve_export(
    export: ExportArg,
    *,
    local_rank: int = 0,
    warn: Warn | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[list[Exporter], str]:
    """The exporters of a meter and where they came from.

    Order: ``export`` (specs or :class:`Exporter` objects), ``$GREENMETER_EXPORT``, the
    config file's ``export`` key. The environment and the file are not read in a command
    run by ``greenmeter run`` (``GREENMETER_CHANNEL`` set): the parent exports the
    whole run. A Prometheus endpoint given as a spec serves on ``PORT + local_rank``, so
    the ranks of one host each have their own port.

    Args:
        export: The argument given in code; None to use the environment or the file.
        local_rank: This process's rank on its host.
        warn: Receives ``(code, message)`` for a bad spec in the environment or a file.
        env: The environment (default ``os.environ``).

    Returns:
        ``(exporters, source)``: ``source`` is ``"argument"``, the variable's name, the
        config file, or ``""`` when nothing asks for an export.

    Raises:
        ValueError: ``export`` holds an unknown or malformed spec.
    """
    if export is not None:
        return _from_specs(export, local_rank), "argument"
    environ = os.environ if env is None else env
    if environ.get(_CHANNEL_ENV):
        return [], ""
    say = warn or _default_warn
    raw = environ.get(EXPORT_ENV, "").strip()
    if raw:
        try:
            return _from_specs(raw, local_rank), EXPORT_ENV
        except ValueError as exc:
            say("export.bad_setting", f"{EXPORT_ENV}: {exc}; ignored, nothing is exported")
            return [], ""
    try:
        from greenmeter.carbon.settings import setting

        found = setting(EXPORT_KEY, env=environ)
    except Exception:  # an unreadable config file: the configuration check says so
        return [], ""
    if found is None:
        return [], ""
    value, where = found
    try:
        if not isinstance(value, str):
            raise ValueError(f"must be a string of specs such as 'prometheus', got {value!r}")
        exporters = _from_specs(value, local_rank)
        for exporter in exporters:
            if getattr(exporter, "push_url", None):
                raise ValueError(
                    "where figures are pushed is taken only from code or the environment "
                    f"({EXPORT_ENV}), never from a file"
                )
    except ValueError as exc:
        say("export.bad_setting", f"{EXPORT_KEY} in {where}: {exc}; ignored")
        return [], ""
    return exporters, where


def _listening() -> bool:
    try:
        from greenmeter.carbon.check import _listening as listening

        return listening()
    except Exception:  # pragma: no cover - defensive
        return True


def _default_warn(code: str, message: str) -> None:
    """One line on standard error, and a warning when something collects warnings."""
    text = f"greenmeter: live export: {message}"
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except Exception:
        pass
    if _listening():
        try:
            warnings.warn(text, ExportWarning, stacklevel=3)
        except Exception:  # warnings turned into errors must not stop the run
            pass


def carbon_factor(accountant: Any) -> float | None:
    """Operational CO2e grams per joule of IT energy (PUE included), or None.

    Asks the accountant for one kWh at the current instant: the live CO2e figure uses
    the intensity at the start of the run (the report's own figure follows the
    intensity over time when a series is configured).
    """
    if not accountant:
        return None
    from datetime import datetime, timedelta, timezone

    try:
        now = datetime.now(timezone.utc)
        out = accountant.co2e([(now, now + timedelta(hours=1), 3.6e6)], {})
        return float(out.operational_g) / 3.6e6
    except Exception:
        return None


class LiveExport:
    """The live figures of one meter and the exporters publishing them.

    Args:
        exporters: The exporters to start (see :func:`resolve_export`).
        warn: Receives ``(code, message)`` for each problem, once per code and exporter.
    """

    def __init__(self, exporters: Sequence[Exporter], warn: Warn) -> None:
        self._pending = list(exporters)
        self._warn = warn
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        #: The exporters that started (after :meth:`start`).
        self.exporters: list[Exporter] = []
        #: The running figures (after :meth:`start`).
        self.figures: LiveFigures | None = None

    def _problem(self, exporter: Exporter, code: str, message: str) -> None:
        with self._lock:
            if (exporter.name, code) in self._warned:
                return
            self._warned.add((exporter.name, code))
        self._warn(code, message)

    def start(
        self,
        components: Sequence[object],
        run: str,
        g_per_j: Callable[[], float | None] | None = None,
    ) -> list[Exporter]:
        """Create the figures and start every exporter; returns those that started.

        ``g_per_j`` is called on a thread of its own (resolving carbon may ask a live
        intensity provider) and its result sets the figures' CO2e factor. Never raises.
        """
        from greenmeter.export.base import ExportError

        figures = LiveFigures(components, run=run)
        self.figures = figures
        for exporter in self._pending:
            exporter.on_warning = lambda code, message, e=exporter: self._problem(e, code, message)
            try:
                exporter.start(figures)
            except ExportError as exc:
                self._problem(exporter, "export.unavailable", f"{exc}; the run goes on without it")
                continue
            except Exception as exc:
                self._problem(
                    exporter,
                    "export.unavailable",
                    f"the {exporter.name} export could not start ({exc!r}); the run goes "
                    "on without it",
                )
                continue
            self.exporters.append(exporter)
        self._pending = []
        if self.exporters and g_per_j is not None:
            threading.Thread(
                target=self._set_factor,
                args=(figures, g_per_j),
                name="greenmeter-export-carbon",
                daemon=True,
            ).start()
        return list(self.exporters)

    @staticmethod
    def _set_factor(figures: LiveFigures, g_per_j: Callable[[], float | None]) -> None:
        try:
            figures.g_per_j = g_per_j()
        except Exception:  # no CO2e figure; the report says why carbon failed
            pass

    # -- observer methods (called on the meter's observer thread) -------------------------

    def reading_taken(self, reading: Any) -> None:
        """A periodic reading (:class:`greenmeter.core.records.Reading`)."""
        if self.figures is not None:
            self.figures.on_reading(reading.t_mono, reading.energy_j)

    def phase_entered(self, path: tuple[str, ...], kind: str, t_mono: float) -> None:
        """A phase opened."""
        if self.figures is not None:
            self.figures.phase_entered(path, kind, t_mono)

    def phase_exited(self, path: tuple[str, ...], t_mono: float) -> None:
        """A phase closed."""
        if self.figures is not None:
            self.figures.phase_exited(path, t_mono)

    # -- the end --------------------------------------------------------------------------

    def stop(
        self, t_mono: float | None = None, energy_j: Mapping[str, float] | None = None
    ) -> None:
        """Take the final figures (``energy_j`` in joules at ``t_mono``) and stop every
        exporter: a Pushgateway gets a last push, an endpoint's port is released.

        Idempotent; never raises.
        """
        if self.figures is not None and t_mono is not None and energy_j is not None:
            self.figures.on_reading(t_mono, energy_j)
        exporters, self.exporters = self.exporters, []
        for exporter in exporters:
            exporter.stop()


def meter_warning(add_warning: Callable[[str, str], None]) -> Warn:
    """A ``warn`` for :class:`LiveExport` that records the problem in the run's report
    (through ``add_warning``) and says it once on standard error."""

    def warn(code: str, message: str) -> None:
        try:
            add_warning(code, message)
        except Exception:  # pragma: no cover - defensive
            pass
        _default_warn(code, message)

    return warn


def start_for_meter(meter: Any, export: ExportArg) -> LiveExport | None:
    """Start the live export of a started :class:`greenmeter.EnergyMeter`, if any is asked.

    The exporters come from :func:`resolve_export`; the run label is the run's name
    (else the first 8 hex digits of its id), with ``.rank-N`` in a distributed run so
    ranks never overwrite each other's series. Returns None when nothing is exported.
    Never raises: a problem is a warning.
    """
    warn = meter_warning(meter.add_warning)
    try:
        exporters, _source = resolve_export(export, local_rank=meter.local_rank, warn=warn)
    except ValueError as exc:  # the argument was checked when the meter was made
        warn("export.bad_setting", str(exc))
        return None
    if not exporters:
        return None
    live = LiveExport(exporters, warn)
    label = meter.run_name or meter.run_id[:8]
    if meter.world_size > 1:
        label = f"{label}.rank-{meter.rank}"
    live.start(meter.components, label, lambda: carbon_factor(meter.run.accountant()))
    if live.exporters:
        meter.add_observer(live)
        return live
    return None
