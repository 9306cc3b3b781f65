"""Live metrics reached from every entry point: ``EnergyMeter(export=)``, the environment
and the config file, ``greenmeter run --export``, the callbacks; scraped while running,
against the meter's own figures; failures are one warning and the run goes on."""

from __future__ import annotations

import http.server
import json
import os
import socket
import sys
import textwrap
import threading
import time
import urllib.request
import warnings
from pathlib import Path
from typing import ClassVar

import pytest

from greenmeter import EnergyMeter
from greenmeter.carbon.settings import env_name_problems
from greenmeter.cli import main
from greenmeter.cli.run.runner import TESTING_TRACES_ENV
from greenmeter.export import EXPORT_ENV, ExportWarning
from greenmeter.export.live import resolve_export
from greenmeter.export.prometheus import PrometheusExporter
from greenmeter.testing import PowerTrace
from greenmeter.testing.sensors import TraceSensor

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families

#: Constant powers of the emulated RAPL zones (watts).
PACKAGE_W, DRAM_W = 60.0, 8.0
ENERGY = "greenmeter_energy_joules_total"


@pytest.fixture(autouse=True)
def _no_settings(monkeypatch, tmp_path):
    for var in (EXPORT_ENV, "GREENMETER_CONFIG", "GREENMETER_CHANNEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()  # a project root without a config file


@pytest.fixture
def rapl(make_powercap):
    """An emulated powercap tree: one package and its DRAM at constant power."""
    t0 = time.monotonic()
    return make_powercap(
        package_traces=[PowerTrace.constant(PACKAGE_W, t0=t0)],
        dram_traces=[PowerTrace.constant(DRAM_W, t0=t0)],
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def by_label(samples: dict, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for (n, labels), value in samples.items() if n == name}


def _traced(**kwargs: object) -> EnergyMeter:
    return EnergyMeter(
        [TraceSensor({"trace:cpu": PowerTrace.constant(5.0)})], carbon=False, **kwargs
    )


# -- EnergyMeter(export=...) ------------------------------------------------------------


def test_scraped_energy_follows_the_meter_and_the_port_is_released(rapl) -> None:
    meter = EnergyMeter(
        powercap_root=rapl.root, gpu=False, carbon=False, sample_interval_s=0.05,
        export="prometheus:0", run_name="live",
    )  # fmt: skip
    total_w = PACKAGE_W + DRAM_W
    seen: list[float] = []
    with meter:
        (exporter,) = meter.exporters
        port = exporter.port
        assert (
            port > 0
            and exporter.describe() == f"Prometheus endpoint http://127.0.0.1:{port}/metrics"
        )
        with meter.phase("train", kind="train"):
            for _epoch in range(3):
                time.sleep(0.2)
                before = meter.snapshot().energy_j
                got = scrape(port)
                after = meter.snapshot().energy_j
                energy = by_label(got, ENERGY, "component")
                assert set(energy) == {"rapl:package-0", "rapl:dram-0"}
                for cid, value in energy.items():
                    # the newest reading the sampler delivered: at most a sampling period
                    # (plus delivery on a busy machine) behind the meter's own figure
                    watts = PACKAGE_W if "package" in cid else DRAM_W
                    assert value <= after[cid] + 1e-6
                    assert value >= before[cid] - watts * 0.5
                seen.append(sum(energy.values()))
                runs = {dict(k[1])["run"] for k in got}
                assert runs == {"live"}
                phases = by_label(got, "greenmeter_phase_open", "phase")
                assert phases == {"train": 1.0}
                power = by_label(got, "greenmeter_power_watts", "component")
                assert power["rapl:package-0"] == pytest.approx(PACKAGE_W, rel=0.3)
        time.sleep(0.15)
        closed = scrape(port)
        assert by_label(closed, "greenmeter_phase_open", "phase") == {"train": 0.0}
        train_j = by_label(closed, "greenmeter_phase_energy_joules_total", "phase")["train"]
        assert train_j == pytest.approx(0.6 * total_w, rel=0.5)
    assert seen == sorted(seen) and seen[0] < seen[-1]  # counters only go up
    assert meter.exporters == []
    with pytest.raises(OSError):
        scrape(port)
    with socket.socket() as s:  # the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1)


def test_opentelemetry_in_memory_reader_gets_the_meter_figures(rapl) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from greenmeter.export.otel import OpenTelemetryExporter

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])

    def points() -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for rm in reader.get_metrics_data().resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out[metric.name] = {
                        str(p.attributes.get("component", p.attributes.get("phase"))): p.value
                        for p in metric.data.data_points
                    }
        return out

    meter = EnergyMeter(
        powercap_root=rapl.root, gpu=False, carbon=False, sample_interval_s=0.05,
        export=OpenTelemetryExporter(meter_provider=provider),
    )  # fmt: skip
    with meter:
        with meter.phase("train"):
            time.sleep(0.25)
            live = points()["greenmeter.energy"]
            now = meter.snapshot().energy_j
            for cid, value in live.items():
                assert 0 < value <= now[cid] + 1e-6
    snap = meter.snapshot()
    final = points()
    # after stop the instruments report the final reading: the report's own figures
    assert final["greenmeter.energy"] == pytest.approx(snap.energy_j, rel=1e-9)
    (train,) = snap.phases
    # a live phase figure is taken at the readings nearest its boundaries
    assert final["greenmeter.phase.energy"]["train"] == pytest.approx(
        sum(train.energy_j.values()), abs=(PACKAGE_W + DRAM_W) * 0.2
    )
    provider.shutdown()


class _Gateway(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_PUT(self) -> None:
        _Gateway.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT

    def log_message(self, *args: object) -> None:
        pass


def test_the_pushgateway_gets_the_final_figures_of_the_report(rapl) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Gateway.bodies.clear()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        meter = EnergyMeter(powercap_root=rapl.root, gpu=False, carbon=False,
                            export=f"prometheus+push:{url}")  # fmt: skip
        with meter, meter.phase("train"):
            time.sleep(0.2)
        snap = meter.snapshot()
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Gateway.bodies) >= 2  # one at the start, one at the end
    families = {f.name: f for f in text_string_to_metric_families(_Gateway.bodies[-1].decode())}
    energy = {s.labels["component"]: s.value for s in families["greenmeter_energy_joules"].samples}
    assert energy == pytest.approx(snap.energy_j, rel=1e-9)


def test_an_unreachable_pushgateway_is_one_warning_naming_the_fix(tmp_path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    with pytest.warns(ExportWarning, match="check that the Pushgateway runs") as got:
        with _traced(export=f"pushgateway:{url}", report_path=tmp_path / "r.json") as meter:
            with meter.phase("train"):
                time.sleep(0.2)
    assert len([w for w in got if issubclass(w.category, ExportWarning)]) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["status"] == "complete"


def test_a_bad_spec_in_code_raises_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="did you mean 'prometheus'"):
        _traced(export="prometheus-endpoint")
    with pytest.raises(ValueError, match="must be a spec string or an Exporter"):
        _traced(export=[9464])


def test_a_port_in_use_is_one_warning_and_the_run_goes_on(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.warns(ExportWarning, match=f"127.0.0.1:{port}.*choose another port") as got:
            with _traced(export=f"prometheus:{port}", report_path=tmp_path / "r.json") as meter:
                with meter.phase("train"):
                    time.sleep(0.05)
                assert meter.exporters == []
    assert len([w for w in got if issubclass(w.category, ExportWarning)]) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["status"] == "complete" and report["phases"]
    codes = [w["code"] for w in report["warnings"]]
    assert "export.unavailable" in codes


def test_a_missing_package_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    with pytest.warns(ExportWarning, match=r'pip install "greenmeter\[prometheus\]"'):
        with _traced(export="prometheus:0") as meter:
            with meter.phase("p"):
                pass
    assert meter.snapshot().phases[0].path == ("p",)


def test_the_training_thread_never_waits_for_a_slow_scrape(monkeypatch) -> None:
    from greenmeter.export.figures import LiveFigures

    slow = LiveFigures.snapshot

    def snapshot(self: LiveFigures):  # a scrape that takes 1 s to serialise
        time.sleep(1.0)
        return slow(self)

    monkeypatch.setattr(LiveFigures, "snapshot", snapshot)
    with _traced(export="prometheus:0", sample_interval_s=0.01) as meter:
        port = meter.exporters[0].port
        scraper = threading.Thread(target=scrape, args=(port,), daemon=True)
        scraper.start()
        time.sleep(0.05)
        t = time.monotonic()
        for i in range(200):
            with meter.phase(f"step-{i}"):
                pass
        assert time.monotonic() - t < 0.9  # far below the scrape's 1 s
        scraper.join(5)


def test_no_client_library_is_imported_unless_an_export_starts() -> None:
    import subprocess

    code = textwrap.dedent(
        """
        import sys
        from greenmeter import EnergyMeter
        from greenmeter.testing import PowerTrace
        from greenmeter.testing.sensors import TraceSensor
        with EnergyMeter([TraceSensor({"t:c": PowerTrace.constant(1.0)})], carbon=False):
            pass
        print(sorted(m for m in sys.modules if m.startswith(("prometheus", "opentelemetry"))))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENMETER_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- the environment and the config file -------------------------------------------------


def test_the_environment_variable_turns_the_export_on(monkeypatch) -> None:
    monkeypatch.setenv(EXPORT_ENV, "prometheus:0")
    with _traced() as meter:
        (exporter,) = meter.exporters
        assert scrape(exporter.port)
    assert env_name_problems({EXPORT_ENV: "prometheus"}) == []  # a known variable
    # in a command run by `greenmeter run` the parent exports: the child does not
    monkeypatch.setenv("GREENMETER_CHANNEL", "/nonexistent/socket")
    assert resolve_export(None) == ([], "")


def test_a_bad_environment_value_warns_once_and_is_ignored(monkeypatch) -> None:
    monkeypatch.setenv(EXPORT_ENV, "prometeus")
    with pytest.warns(ExportWarning, match=f"{EXPORT_ENV}: unknown export spec.*did you mean"):
        with _traced() as meter:
            assert meter.exporters == []


def test_the_config_file_key_and_what_it_may_not_say(tmp_path) -> None:
    (tmp_path / "greenmeter.toml").write_text('export = "prometheus:0"\n')
    exporters, source = resolve_export(None)
    assert [type(e) for e in exporters] == [PrometheusExporter]
    assert source == str(tmp_path / "greenmeter.toml")
    # where figures are sent is never taken from a file (as the live carbon URL)
    (tmp_path / "greenmeter.toml").write_text('export = "pushgateway:http://gw:9091"\n')
    got: list[tuple[str, str]] = []
    assert resolve_export(None, warn=lambda c, m: got.append((c, m))) == ([], "")
    assert got and "never from a file" in got[0][1]
    from greenmeter.carbon.check import check_configuration

    assert not [p for p in check_configuration() if "export" in p.message]


def test_each_local_rank_serves_its_own_port() -> None:
    (exporter,) = resolve_export("prometheus:9500", local_rank=3)[0]
    assert isinstance(exporter, PrometheusExporter) and exporter.port == 9503
    (exporter,) = resolve_export("prometheus:0", local_rank=3)[0]
    assert exporter.port == 0
    given = PrometheusExporter(9600)
    assert resolve_export(given, local_rank=3)[0][0].port == 9600  # objects are as given
    meter = _traced(export="prometheus:0", run_name="ddp", rank=1, local_rank=1, world_size=2)
    with meter:
        got = scrape(meter.exporters[0].port)
    assert {dict(k[1])["run"] for k in got} == {"ddp.rank-1"}


def test_callbacks_pass_export_to_the_meter_they_create() -> None:
    from greenmeter.integrations._lightning_common import GreenMeterCallbackCore

    assert GreenMeterCallbackCore(export="otel")._meter_kwargs["export"] == "otel"
    assert "export" not in GreenMeterCallbackCore()._meter_kwargs
    transformers = pytest.importorskip("greenmeter.integrations.transformers")
    callback = transformers.GreenMeterTrainerCallback(
        export="prometheus:0",
        meter_kwargs={"sensors": [TraceSensor({"t:c": PowerTrace.constant(1.0)})]},
    )
    meter = callback._meter()
    try:
        assert scrape(meter.exporters[0].port)
    finally:
        meter.stop()


# -- greenmeter run --export ---------------------------------------------------------------

SCRAPING_CHILD = textwrap.dedent(
    """
    import json, sys, time, urllib.request
    from greenmeter import EnergyMeter
    from greenmeter.testing import PowerTrace
    from greenmeter.testing.sensors import TraceSensor

    url, out = sys.argv[1], sys.argv[2]
    texts = []
    with EnergyMeter([TraceSensor({"own:cpu": PowerTrace.constant(1.0)})]) as meter:
        with meter.phase("train", kind="train"):
            for _ in range(3):
                time.sleep(0.25)
                texts.append(urllib.request.urlopen(url, timeout=5).read().decode())
    with open(out, "w") as fh:
        json.dump(texts, fh)
    """
)


@pytest.fixture
def traces(tmp_path, monkeypatch):
    """``greenmeter run`` measures one constant 40 W trace."""
    spec = {"trace:cpu": {"steps": [[1.0, 40.0]], "t0": time.monotonic(), "kind": "cpu"}}
    path = tmp_path / "traces.json"
    path.write_text(json.dumps(spec))
    monkeypatch.setenv(TESTING_TRACES_ENV, str(path))


def test_greenmeter_run_serves_while_the_command_runs(tmp_path, traces, capsys) -> None:
    port = _free_port()
    child = tmp_path / "child.py"
    child.write_text(SCRAPING_CHILD)
    seen, out = tmp_path / "seen.json", tmp_path / "run.json"
    url = f"http://127.0.0.1:{port}/metrics"
    argv = ["run", "--no-live", "--export", f"prometheus:{port}", "-o", str(out), "--"]
    assert main([*argv, sys.executable, str(child), url, str(seen)]) == 0
    assert f"live metrics: Prometheus endpoint {url}" in capsys.readouterr().err
    totals = []
    for text in json.loads(seen.read_text()):
        families = {f.name: f for f in text_string_to_metric_families(text)}
        (sample,) = families["greenmeter_energy_joules"].samples
        totals.append(sample.value)
        phase = {s.labels["phase"]: s.value for s in families["greenmeter_phase_open"].samples}
        assert phase == {"train": 1.0}  # the command's own phase, through the channel
    assert totals == sorted(totals) and 0 < totals[0] < totals[-1]
    report = json.loads(out.read_text())
    assert report["status"] == "complete"
    assert totals[-1] < report["totals"]["it_energy_j"]
    with pytest.raises(OSError):  # released when the run ended
        scrape(port)


def test_greenmeter_run_bad_spec_exits_2_before_the_command(tmp_path, traces, capsys) -> None:
    marker = tmp_path / "ran"
    cmd = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    assert main(["run", "--export", "promethus:9464", "--", *cmd]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "--export: unknown export spec 'promethus:9464'" in err and "did you mean" in err
    assert not marker.exists()


def test_greenmeter_run_without_the_package_warns_and_writes_the_report(
    tmp_path, traces, capsys, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    out = tmp_path / "run.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExportWarning)
        code = main(["run", "--no-live", "--export", "prometheus:0", "-o", str(out), "--",
                     sys.executable, "-c", "pass"])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "live export" in line]
    assert len(lines) == 1 and "greenmeter[prometheus]" in lines[0]
    report = json.loads(Path(out).read_text())
    assert report["status"] == "complete"
    assert "export.unavailable" in [w["code"] for w in report["warnings"]]
