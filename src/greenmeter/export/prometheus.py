"""Prometheus: a scrape endpoint, or pushes to a Pushgateway for batch jobs.

Needs the optional ``prometheus-client`` package (``pip install "greenmeter[prometheus]"``).
Series (every one labelled with ``run``; component series also with ``component``,
``kind``, ``method`` and ``host``; phase series with ``phase``):

=====================================  =======  ==========================================
metric                                 type     meaning
=====================================  =======  ==========================================
``greenmeter_energy_joules_total``     counter  energy per component since the run started
``greenmeter_power_watts``             gauge    mean power per component, last interval
``greenmeter_phase_energy_joules_total`` counter energy per phase (all components)
``greenmeter_phase_open``              gauge    open instances per phase
``greenmeter_co2e_grams_total``        counter  operational CO2e (when carbon is accounted)
=====================================  =======  ==========================================

The endpoint binds to ``127.0.0.1`` unless told otherwise: energy figures say what a
machine is doing, so exposing them to a network is the user's decision.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from greenmeter.export.base import Exporter, ExportError
from greenmeter.export.figures import LiveFigures, LiveSnapshot

__all__ = ["PrometheusExporter", "collect_families"]

#: Default scrape port (the OpenTelemetry Prometheus exporter's default, 9464).
DEFAULT_PORT = 9464
_COMPONENT_LABELS = ("run", "component", "kind", "method", "host")


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ExportError(
            "Prometheus export needs the prometheus-client package, which is not installed "
            f'({exc}); install it with: pip install "greenmeter[prometheus]"'
        ) from None
    return prometheus_client


def collect_families(snap: LiveSnapshot) -> Iterator[Any]:
    """The metric families of one snapshot (``prometheus_client`` metric objects)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    energy = CounterMetricFamily(
        "greenmeter_energy_joules",
        "Energy per component since the run started (joules).",
        labels=_COMPONENT_LABELS,
    )
    power = GaugeMetricFamily(
        "greenmeter_power_watts",
        "Mean power per component over the last sampling interval (watts).",
        labels=_COMPONENT_LABELS,
    )
    for comp in snap.components:
        labels = [snap.run, comp.id, comp.kind, comp.method, comp.host]
        energy.add_metric(labels, snap.energy_j.get(comp.id, 0.0))
        power.add_metric(labels, snap.power_w.get(comp.id, 0.0))
    yield energy
    yield power
    phase_energy = CounterMetricFamily(
        "greenmeter_phase_energy_joules",
        "Energy per phase, all components, closed and open time (joules).",
        labels=("run", "phase"),
    )
    phase_open = GaugeMetricFamily(
        "greenmeter_phase_open", "Open instances per phase.", labels=("run", "phase")
    )
    for label, value in sorted(snap.phase_energy_j.items()):
        phase_energy.add_metric([snap.run, label], value)
        phase_open.add_metric([snap.run, label], snap.phase_open.get(label, 0))
    yield phase_energy
    yield phase_open
    if snap.co2e_g is not None:
        co2e = CounterMetricFamily(
            "greenmeter_co2e_grams",
            "Operational (location-based) CO2e since the run started (grams).",
            labels=("run",),
        )
        co2e.add_metric([snap.run], snap.co2e_g)
        yield co2e


class _Collector:
    def __init__(self, figures: LiveFigures) -> None:
        self._figures = figures

    def collect(self) -> Iterator[Any]:
        yield from collect_families(self._figures.snapshot())

    def describe(self) -> list[Any]:
        return []  # no fixed set: the families depend on the run


class PrometheusExporter(Exporter):
    """Serve the run's figures for scraping, or push them to a Pushgateway.

    Args:
        port: Scrape port (default 9464; 0 picks a free one, see :attr:`port`). Ignored
            with ``push_url``.
        addr: Address to bind (default ``127.0.0.1``: this machine only).
        push_url: A Pushgateway URL (``http://host:9091``): push at the start, every
            ``push_interval_s`` and once more when the run ends, instead of serving.
        push_interval_s: Seconds between pushes.
        job: The Pushgateway job name.
        timeout_s: Longest wait for one push (seconds).
    """

    name = "prometheus"

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        *,
        addr: str = "127.0.0.1",
        push_url: str | None = None,
        push_interval_s: float = 15.0,
        job: str = "greenmeter",
        timeout_s: float = 5.0,
    ) -> None:
        super().__init__()
        if not (0 <= int(port) <= 65535):
            raise ValueError(f"port must be between 0 and 65535, got {port!r}")
        if not (push_interval_s > 0):
            raise ValueError(f"push_interval_s must be positive, got {push_interval_s!r}")
        self.port = int(port)
        self.addr = addr
        self.push_url = push_url
        self.push_interval_s = float(push_interval_s)
        self.job = job
        self.timeout_s = float(timeout_s)
        self._server: Any = None
        self._registry: Any = None
        self._stop = threading.Event()
        self._pusher: threading.Thread | None = None

    def describe(self) -> str:
        if self.push_url:
            return f"Prometheus Pushgateway {self.push_url} (job {self.job!r})"
        return f"Prometheus endpoint http://{self.addr}:{self.port}/metrics"

    def _start(self, figures: LiveFigures) -> None:
        client = _client()
        self._stop = threading.Event()  # an exporter may serve one meter after another
        self._registry = client.CollectorRegistry(auto_describe=False)
        self._registry.register(_Collector(figures))
        if self.push_url:
            self._pusher = threading.Thread(
                target=self._push_loop, name="greenmeter-prometheus-push", daemon=True
            )
            self._pusher.start()
            return
        try:
            self._server, _thread = client.start_http_server(
                self.port, addr=self.addr, registry=self._registry
            )
        except OSError as exc:
            raise ExportError(
                f"cannot serve Prometheus metrics on {self.addr}:{self.port}: "
                f"{exc.strerror or exc}; choose another port (export='prometheus:PORT')"
            ) from None
        self.port = int(self._server.server_address[1])

    def _push(self) -> None:
        client = _client()
        client.push_to_gateway(
            self.push_url,
            job=self.job,
            registry=self._registry,
            grouping_key={"run": self._figures_run()},
            timeout=self.timeout_s,
        )

    def _figures_run(self) -> str:
        return self.figures.run if self.figures is not None else "unknown"

    def _push_loop(self) -> None:
        self._guard(self._push, "push")  # at once: a wrong URL is said at the start
        while not self._stop.wait(self.push_interval_s):
            self._guard(self._push, "push")

    def _stop_export(self) -> None:
        self._stop.set()
        if self._pusher is not None:
            self._pusher.join(timeout=self.timeout_s + 1.0)
            self._guard(self._push, "final push")
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _guard(self, fn: Callable[[], None], what: str) -> None:
        try:
            fn()
        except Exception as exc:
            self.warn_once(
                "export.unreachable",
                f"Prometheus {what} to {self.push_url} failed: {exc}; check that the "
                "Pushgateway runs and the URL is right (export='pushgateway:URL'); the run "
                "goes on and the report keeps every figure",
            )
