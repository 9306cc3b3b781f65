"""OpenTelemetry metrics through the OpenTelemetry API.

greenmeter creates observable instruments on a meter of the application's
``MeterProvider`` (the global one by default, which the application configures with the
SDK and an exporter, e.g. OTLP to a collector), so it fits whatever pipeline the
application already has. Needs the optional ``opentelemetry-api`` package
(``pip install "greenmeter[otel]"``); without an SDK configured, the API's no-op
provider makes the export a no-op, as OpenTelemetry intends for libraries.

Instruments (attributes as the Prometheus exporter's labels):

* ``greenmeter.energy`` (observable counter, J): energy per component;
* ``greenmeter.power`` (observable gauge, W): mean power per component, last interval;
* ``greenmeter.phase.energy`` (observable counter, J): energy per phase;
* ``greenmeter.phase.open`` (observable gauge): open instances per phase;
* ``greenmeter.co2e`` (observable counter, g): operational CO2e, when accounted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from greenmeter.export.base import Exporter, ExportError
from greenmeter.export.figures import LiveFigures

__all__ = ["OpenTelemetryExporter"]


class OpenTelemetryExporter(Exporter):
    """Publish the run's figures as OpenTelemetry observable instruments.

    Args:
        meter_provider: The ``MeterProvider`` to use; default the global one
            (``opentelemetry.metrics.get_meter_provider()``).
    """

    name = "opentelemetry"

    def __init__(self, meter_provider: Any = None) -> None:
        super().__init__()
        self.meter_provider = meter_provider
        self._instruments: list[Any] = []

    def describe(self) -> str:
        which = "the given" if self.meter_provider is not None else "the global"
        return f"OpenTelemetry metrics through {which} MeterProvider"

    def _start(self, figures: LiveFigures) -> None:
        try:
            from opentelemetry import metrics
        except ImportError as exc:
            raise ExportError(
                "OpenTelemetry export needs the opentelemetry-api package, which is not "
                f'installed ({exc}); install it with: pip install "greenmeter[otel]"'
            ) from None
        import greenmeter

        provider = self.meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter("greenmeter", greenmeter.__version__)

        def observe(what: str) -> Any:
            def callback(options: Any) -> Iterable[Any]:
                return self._observations(figures, what, metrics.Observation)

            return callback

        self._instruments = [
            meter.create_observable_counter(
                "greenmeter.energy",
                [observe("energy")],
                unit="J",
                description="Energy per component since the run started",
            ),
            meter.create_observable_gauge(
                "greenmeter.power",
                [observe("power")],
                unit="W",
                description="Mean power per component over the last sampling interval",
            ),
            meter.create_observable_counter(
                "greenmeter.phase.energy",
                [observe("phase_energy")],
                unit="J",
                description="Energy per phase, all components",
            ),
            meter.create_observable_gauge(
                "greenmeter.phase.open",
                [observe("phase_open")],
                unit="1",
                description="Open instances per phase",
            ),
            meter.create_observable_counter(
                "greenmeter.co2e",
                [observe("co2e")],
                unit="g",
                description="Operational (location-based) CO2e since the run started",
            ),
        ]

    @staticmethod
    def _observations(figures: LiveFigures, what: str, observation: Any) -> list[Any]:
        snap = figures.snapshot()
        if what in ("energy", "power"):
            values = snap.energy_j if what == "energy" else snap.power_w
            return [
                observation(
                    values.get(c.id, 0.0),
                    {
                        "run": snap.run,
                        "component": c.id,
                        "kind": c.kind,
                        "method": c.method,
                        "host": c.host,
                    },
                )
                for c in snap.components
            ]
        if what == "phase_energy":
            return [
                observation(v, {"run": snap.run, "phase": label})
                for label, v in sorted(snap.phase_energy_j.items())
            ]
        if what == "phase_open":
            return [
                observation(v, {"run": snap.run, "phase": label})
                for label, v in sorted(snap.phase_open.items())
            ]
        if snap.co2e_g is None:
            return []
        return [observation(snap.co2e_g, {"run": snap.run})]

    def _stop_export(self) -> None:
        # Observable instruments stay registered: the last figures keep being reported
        # until the application's provider shuts down, so the final export has them.
        pass
