"""Live intensity from an Electricity Maps-style API, against a stub server on loopback."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from greenmeter.carbon import CarbonConfig, resolve
from greenmeter.carbon.dataset import lookup

TOKEN = "tok-SECRET-5f1c9a77e2"
T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
KWH = 3.6e6


class _Stub:
    mode = "ok"
    requests: list[dict[str, str]]

    def __init__(self) -> None:
        self.requests = []


@pytest.fixture
def stub() -> Iterator[tuple[str, _Stub]]:
    state = _Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            state.requests.append(
                {"path": url.path, "zone": parse_qs(url.query).get("zone", [""])[0],
                 "token": self.headers.get("auth-token", "")}
            )  # fmt: skip
            if state.mode == "500":
                body = f"internal error for {TOKEN}".encode()
                self.send_response(500)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if state.mode == "slow":
                time.sleep(1.0)
            history = [
                {"zone": "FR", "carbonIntensity": v,
                 "datetime": (T0 + timedelta(hours=i)).isoformat().replace("+00:00", "Z")}
                for i, v in enumerate([40, 60, 80])
            ]  # fmt: skip
            body = json.dumps({"zone": "FR", "history": history}).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v3", state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    return tmp_path


def _everything(acct, caplog, capsys, *extra: str) -> str:
    out = capsys.readouterr()
    return "\n".join(
        [acct.info.model_dump_json(), repr(acct.warnings), caplog.text, out.out, out.err, *extra]
    )


def test_live_success_uses_hourly_values(stub, project, caplog, capsys) -> None:
    url, state = stub
    caplog.set_level(logging.DEBUG)
    cfg = CarbonConfig(location="FR", live_provider="electricitymaps", live_base_url=url)
    acct = resolve(cfg, cwd=project, env={"ELECTRICITYMAPS_TOKEN": TOKEN})
    assert state.requests == [
        {"path": "/v3/carbon-intensity/history", "zone": "FR", "token": TOKEN}
    ]
    ts = acct.info.time_series
    assert ts is not None and ts.origin == "electricitymaps" and ts.points == 3 and ts.zone == "FR"
    out = acct.co2e([(T0 + timedelta(minutes=30), T0 + timedelta(minutes=90), KWH)], {})
    assert out.operational_g == pytest.approx(0.5 * 40 + 0.5 * 60)
    assert acct.warnings == []
    assert TOKEN not in _everything(acct, caplog, capsys, repr(out))


@pytest.mark.parametrize("mode", ["500", "slow"])
def test_live_failure_keeps_static_value_and_hides_token(
    stub, project, caplog, capsys, mode: str
) -> None:
    url, state = stub
    state.mode = mode
    caplog.set_level(logging.DEBUG)
    cfg = CarbonConfig(
        location="FR", live_provider="electricitymaps", live_base_url=url, live_timeout_s=0.3
    )
    started = time.monotonic()
    acct = resolve(cfg, cwd=project, env={"ELECTRICITYMAPS_TOKEN": TOKEN})
    assert time.monotonic() - started < 5
    assert len(state.requests) == 1 and state.requests[0]["token"] == TOKEN
    codes = [c for c, _ in acct.warnings]
    assert codes == ["carbon.live_failed"]
    message = acct.warnings[0][1]
    assert ("HTTP 500" in message) if mode == "500" else ("timed out" in message)
    assert acct.info.time_series is None
    out = acct.co2e([(T0, T0 + timedelta(hours=1), KWH)], {})
    assert out.operational_g == pytest.approx(lookup("FR").g_per_kwh)
    assert TOKEN not in _everything(acct, caplog, capsys, repr(out))


def test_live_is_off_by_default(stub, project) -> None:
    url, state = stub
    resolve(CarbonConfig(location="FR", live_base_url=url), cwd=project, env={})
    assert state.requests == []


def test_live_token_name_and_url_from_env(stub, project, caplog, capsys) -> None:
    url, state = stub
    env = {
        "GREENMETER_LIVE_PROVIDER": "electricitymaps",
        "GREENMETER_LIVE_ZONE": "FR",
        "GREENMETER_ELECTRICITYMAPS_URL": url,
        "MY_EM_TOKEN": TOKEN,
    }
    acct = resolve(CarbonConfig(live_token_env="MY_EM_TOKEN"), cwd=project, env=env)
    assert state.requests[0]["token"] == TOKEN
    assert acct.info.time_series is not None
    assert TOKEN not in _everything(acct, caplog, capsys)


# -- transport: one deadline, https only -------------------------------------------------


@pytest.fixture
def drip() -> Iterator[tuple[str, list[float]]]:
    """A server that answers one byte every 0.2 s (a 200 OK of about 60 s in all)."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    closed_at: list[float] = []
    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
        + b" " * 200
    )

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                for i in range(len(reply)):
                    if stop.is_set():
                        break
                    try:
                        conn.sendall(reply[i : i + 1])
                    except OSError:  # the client gave up
                        closed_at.append(time.monotonic())
                        break
                    time.sleep(0.2)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v3", closed_at
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_one_deadline_for_the_whole_request(drip) -> None:
    from greenmeter.carbon.live import LiveFetchError, fetch_history

    url, closed_at = drip
    started = time.monotonic()
    with pytest.raises(LiveFetchError, match=r"timed out .*1 s deadline"):
        fetch_history("FR", token=TOKEN, base_url=url, timeout_s=1.0)
    assert time.monotonic() - started < 1.5
    time.sleep(0.5)  # the connection was shut at the deadline: the server's next byte fails
    assert closed_at and closed_at[0] - started < 2.0


def test_meter_stop_is_bounded_by_the_live_deadline(drip, project, monkeypatch) -> None:
    from greenmeter import EnergyMeter
    from greenmeter.testing import PowerTrace
    from greenmeter.testing.sensors import TraceSensor

    url, _ = drip
    monkeypatch.chdir(project)
    cfg = CarbonConfig(
        location="FR", live_provider="electricitymaps", live_base_url=url, live_timeout_s=1.0
    )
    meter = EnergyMeter(
        [TraceSensor({"t:cpu": PowerTrace.constant(5.0)})],
        carbon=cfg,
        report_path=project / "run.json",
    ).start()
    started = time.monotonic()
    meter.stop()
    assert time.monotonic() - started < 2.5
    report = json.loads((project / "run.json").read_text())
    assert any(w["code"] == "carbon.live_failed" for w in report["warnings"])


def test_redirect_away_from_https_is_refused(project) -> None:
    from greenmeter.carbon.live import LiveFetchError, fetch_history

    hops: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hops.append(self.path)
            self.send_response(302)
            self.send_header("Location", "http://api.example.invalid/v3/carbon-intensity/history")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(
            LiveFetchError, match=r"redirect to http://api\.example\.invalid refused"
        ):
            fetch_history(
                "FR", token=TOKEN, base_url=f"http://127.0.0.1:{server.server_address[1]}/v3"
            )
    finally:
        server.shutdown()
        server.server_close()
    assert len(hops) == 1


def test_plain_http_elsewhere_is_never_contacted() -> None:
    from greenmeter.carbon.live import LiveFetchError, fetch_history

    with pytest.raises(LiveFetchError, match="must use https://"):
        fetch_history("FR", token=TOKEN, base_url="http://api.electricitymap.org/v3")
