"""Live intensity for the run's own span: past-range requests, the series' zone and basis."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from greenmeter.carbon import CarbonConfig, resolve

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
KWH = 3.6e6


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _value(t: datetime) -> int:
    return 100 + int((t - T0).total_seconds() // 3600)  # 100 g at T0, +1 g per hour


@pytest.fixture
def stub() -> Iterator[tuple[str, list[dict[str, str]]]]:
    requests: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            requests.append({"path": url.path, **q})
            if url.path.endswith("/past-range"):
                a = datetime.fromisoformat(q["start"].replace("Z", "+00:00"))
                b = datetime.fromisoformat(q["end"].replace("Z", "+00:00"))
                hours = int((b - a).total_seconds() // 3600)
                times = [a + timedelta(hours=i) for i in range(hours)]
            else:  # history: three hours from T0
                times = [T0 + timedelta(hours=i) for i in range(3)]
            data = [
                {"zone": "FR", "carbonIntensity": _value(t), "datetime": _iso(t),
                 "emissionFactorType": "lifecycle"}
                for t in times
            ]  # fmt: skip
            key = "data" if url.path.endswith("/past-range") else "history"
            body = json.dumps({"zone": "FR", key: data}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v3", requests
    finally:
        server.shutdown()
        server.server_close()


def _acct(url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = CarbonConfig(location="FR", live_provider="electricitymaps", live_base_url=url)
    return resolve(cfg, env={}, cwd=tmp_path, config_search=False)


def test_series_is_fetched_for_the_runs_span(stub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, requests = stub
    acct = _acct(url, tmp_path)
    start, end = T0 + timedelta(hours=10, minutes=15), T0 + timedelta(hours=12, minutes=15)
    acct.prepare_span(start, end)
    assert requests[-1]["path"] == "/v3/carbon-intensity/past-range"
    assert (requests[-1]["start"], requests[-1]["end"]) == (
        _iso(T0 + timedelta(hours=10)),
        _iso(T0 + timedelta(hours=13)),
    )
    ts = acct.info.time_series
    assert ts is not None and ts.covers_run is True
    assert ts.zone == "FR" and ts.basis == "lifecycle" and "past-range" in ts.source
    out = acct.co2e([(start, end, 2 * KWH)], {})  # 1 kWh in each of three buckets' parts
    assert out.operational_g == pytest.approx(0.75 * 110 + 1.0 * 111 + 0.25 * 112)
    assert not [c for c, _ in acct.warnings if c == "carbon.series_out_of_range"]
    n = len(requests)
    acct.co2e([(start, end, KWH)], {})
    assert len(requests) == n  # fetched once per run


def test_long_span_is_split_into_requests(stub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, requests = stub
    acct = _acct(url, tmp_path)
    acct.prepare_span(T0, T0 + timedelta(days=10))
    ranges = [r for r in requests if r["path"].endswith("/past-range")]
    assert len(ranges) == 2 and ranges[0]["end"] == ranges[1]["start"]
    ts = acct.info.time_series
    assert ts is not None and ts.points == 240 and ts.covers_run is True


def test_span_already_covered_needs_no_request(stub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, requests = stub
    acct = _acct(url, tmp_path)
    acct.prepare_span(T0, T0 + timedelta(hours=2))
    assert [r["path"] for r in requests] == ["/v3/carbon-intensity/history"]
    assert acct.info.time_series is not None and acct.info.time_series.covers_run is True
