"""Live exporters: running figures against a known trace, Prometheus scrape and push,
OpenTelemetry through the SDK's in-memory reader, bounded labels, failures as warnings."""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.request
from dataclasses import dataclass
from typing import ClassVar

import pytest

from greenmeter.export import ExportError, LiveFigures, parse_export, phase_label
from greenmeter.export.prometheus import PrometheusExporter

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402


@dataclass(frozen=True)
class Comp:
    id: str
    kind: str
    method: str
    host: str = "h"


COMPS = [Comp("rapl:package-0", "cpu", "counter"), Comp("nvml:GPU-1", "gpu", "counter")]
#: Constant power per component (watts): cumulative energy at t is power x t exactly.
POWER_W = {"rapl:package-0": 40.0, "nvml:GPU-1": 300.0}


def reading(t: float) -> dict[str, float]:
    return {cid: w * t for cid, w in POWER_W.items()}


def fed(times: list[float], phases: list[tuple[float, str, tuple[str, ...]]]) -> LiveFigures:
    """Figures fed with readings at ``times`` and phase events (t, "enter"/"exit", path)."""
    fig = LiveFigures(COMPS, run="r1", g_per_j=400 / 3.6e6)
    # A reading at the same instant as a boundary comes first (the boundary sees it).
    events = sorted([(t, "read", ()) for t in times] + phases, key=lambda e: (e[0], e[1] != "read"))
    for t, what, path in events:
        if what == "read":
            fig.on_reading(t, reading(t))
        elif what == "enter":
            fig.phase_entered(path, "custom", t)
        else:
            fig.phase_exited(path, t)
    return fig


def test_figures_follow_the_trace() -> None:
    times = [k / 10 for k in range(1, 31)]  # a 10 Hz sampler for 3 s
    fig = fed(
        times, [(0.5, "enter", ("train",)), (2.5, "exit", ("train",)), (2.7, "enter", ("test",))]
    )
    snap = fig.snapshot()
    assert snap.t_mono == pytest.approx(3.0)
    for cid, w in POWER_W.items():
        assert snap.energy_j[cid] == pytest.approx(w * 3.0)
        assert snap.power_w[cid] == pytest.approx(w)
    total_w = sum(POWER_W.values())
    # Phase boundaries fall on readings here, so the live figure is exact.
    assert snap.phase_energy_j["train"] == pytest.approx(total_w * 2.0)
    assert snap.phase_energy_j["test"] == pytest.approx(total_w * 0.3)  # still open
    assert snap.phase_open == {"train": 0, "test": 1}
    assert snap.co2e_g == pytest.approx(total_w * 3.0 * 400 / 3.6e6)


def test_phase_between_readings_is_off_by_at_most_one_period() -> None:
    times = [k / 10 for k in range(1, 31)]
    fig = fed(times, [(0.55, "enter", ("p",)), (2.05, "exit", ("p",))])
    true_j = sum(POWER_W.values()) * 1.5
    got = fig.snapshot().phase_energy_j["p"]
    assert abs(got - true_j) <= sum(POWER_W.values()) * 0.1 + 1e-9


def test_late_or_backwards_readings_never_lower_the_figures() -> None:
    fig = LiveFigures(COMPS, run="r")
    fig.on_reading(1.0, reading(1.0))
    fig.on_reading(0.5, reading(0.5))  # arrives late
    fig.on_reading(2.0, {"rapl:package-0": 10.0, "nvml:GPU-1": 600.0})  # package went back
    snap = fig.snapshot()
    assert snap.energy_j["rapl:package-0"] == 40.0 and snap.energy_j["nvml:GPU-1"] == 600.0


def test_phase_labels_are_bounded() -> None:
    assert phase_label(("fit", "train", "epoch-12", "window-3")) == "fit/train/epoch-N/window-N"
    fig = LiveFigures(COMPS, run="r", max_phases=3)
    fig.on_reading(1.0, reading(1.0))
    for epoch in range(50):  # one label for every epoch
        fig.phase_entered(("train", f"epoch-{epoch}"), "epoch", 1.0)
        fig.phase_exited(("train", f"epoch-{epoch}"), 1.0)
    for name in ("a", "b", "c", "d", "e"):
        fig.phase_entered((name,), "custom", 1.0)
    snap = fig.snapshot()
    assert set(snap.phase_open) == {"train/epoch-N", "a", "b", "other"}
    assert snap.phase_open["other"] == 3
    for name in ("c", "d", "e"):
        fig.phase_exited((name,), 2.0)
    assert fig.snapshot().phase_open["other"] == 0


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_prometheus_endpoint_serves_the_figures_on_localhost() -> None:
    fig = fed([0.5, 1.0], [(0.5, "enter", ("train",))])
    exporter = PrometheusExporter(port=0)
    exporter.start(fig)
    try:
        assert exporter.addr == "127.0.0.1" and exporter.port > 0
        got = _scrape(exporter.port)
    finally:
        exporter.stop()
    for comp in COMPS:
        labels = (
            ("component", comp.id),
            ("host", "h"),
            ("kind", comp.kind),
            ("method", comp.method),
            ("run", "r1"),
        )
        assert got[("greenmeter_energy_joules_total", labels)] == pytest.approx(
            POWER_W[comp.id] * 1.0
        )
        assert got[("greenmeter_power_watts", labels)] == pytest.approx(POWER_W[comp.id])
    train = (("phase", "train"), ("run", "r1"))
    assert got[("greenmeter_phase_energy_joules_total", train)] == pytest.approx(340 * 0.5)
    assert got[("greenmeter_phase_open", train)] == 1
    assert got[("greenmeter_co2e_grams_total", (("run", "r1"),))] == pytest.approx(
        340 * 400 / 3.6e6
    )
    with pytest.raises(OSError):  # the server is gone after stop()
        _scrape(exporter.port)


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(
            ExportError, match=f"cannot serve Prometheus metrics on 127.0.0.1:{port}"
        ):
            PrometheusExporter(port=port).start(fed([1.0], []))


class _Gateway(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Gateway.received.append(("PUT", self.path, body))
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT

    def log_message(self, *args: object) -> None:
        pass


def test_pushgateway_gets_the_final_figures() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Gateway.received.clear()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        fig = fed([0.5], [])
        exporter = PrometheusExporter(push_url=url, push_interval_s=0.05)
        exporter.start(fig)
        threading.Event().wait(0.3)
        fig.on_reading(2.0, reading(2.0))
        exporter.stop()
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Gateway.received) >= 2  # periodic pushes and the final one
    _method, path, body = _Gateway.received[-1]
    assert path == "/metrics/job/greenmeter/run/r1"
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    energy = {s.labels["component"]: s.value for s in families["greenmeter_energy_joules"].samples}
    assert energy == pytest.approx({cid: w * 2.0 for cid, w in POWER_W.items()})


def test_unreachable_pushgateway_is_one_warning_and_never_raises() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # closed again below: nothing listens there
    got: list[tuple[str, str]] = []
    exporter = PrometheusExporter(
        push_url=f"http://127.0.0.1:{port}", push_interval_s=0.02, timeout_s=0.5
    )
    exporter.on_warning = lambda code, message: got.append((code, message))
    exporter.start(fed([1.0], []))
    threading.Event().wait(0.2)
    exporter.stop()
    assert [code for code, _ in got] == ["export.unreachable"]
    assert f"127.0.0.1:{port}" in got[0][1]


def test_opentelemetry_in_memory_reader_sees_the_figures() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from greenmeter.export.otel import OpenTelemetryExporter

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    fig = fed([0.5, 1.5], [(0.5, "enter", ("train",))])
    exporter = OpenTelemetryExporter(meter_provider=provider)
    exporter.start(fig)
    data = reader.get_metrics_data()
    points: dict[str, list[object]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            assert sm.scope.name == "greenmeter"
            for metric in sm.metrics:
                points[metric.name] = list(metric.data.data_points)
    energy = {p.attributes["component"]: p.value for p in points["greenmeter.energy"]}
    assert energy == pytest.approx({cid: w * 1.5 for cid, w in POWER_W.items()})
    power = {p.attributes["component"]: p.value for p in points["greenmeter.power"]}
    assert power == pytest.approx(POWER_W)
    phase = {p.attributes["phase"]: p.value for p in points["greenmeter.phase.energy"]}
    assert phase == {"train": pytest.approx(340 * 1.0)}
    assert [p.value for p in points["greenmeter.co2e"]] == [pytest.approx(340 * 1.5 * 400 / 3.6e6)]
    exporter.stop()
    provider.shutdown()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("prometeus", "did you mean 'prometheus'"),
        ("prometheus:abc", "the port must be a number"),
        ("pushgateway:localhost:9091", "give the Pushgateway's URL"),
    ],
)
def test_bad_specs_say_what_is_expected(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_export(spec)


def test_specs_choose_the_exporter() -> None:
    exporters = parse_export("prometheus:0.0.0.0:9100, pushgateway:https://gw:9091")
    assert [e.describe() for e in exporters] == [
        "Prometheus endpoint http://0.0.0.0:9100/metrics",
        "Prometheus Pushgateway https://gw:9091 (job 'greenmeter')",
    ]
    assert parse_export(None) == []
