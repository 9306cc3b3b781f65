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
