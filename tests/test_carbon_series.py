"""Time-varying intensity: parsing, clear errors, energy-weighted totals."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from greenmeter.carbon import CarbonConfig, CarbonError, resolve
from greenmeter.carbon import series as series_mod
from greenmeter.carbon.series import load_series, parse

T0 = datetime(2024, 5, 1, 0, 0, tzinfo=timezone.utc)
KWH = 3.6e6


def _h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    return tmp_path


def _csv(folder: Path, text: str, name: str = "series.csv") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


HOURLY = (
    "timestamp,intensity\n2024-05-01T00:00:00Z,100\n2024-05-01T01:00:00Z,300\n"
    "2024-05-01T02:00:00Z,200\n"
)


def test_energy_weighted_total_by_hand(project: Path) -> None:
    path = _csv(project, HOURLY)
    acct = resolve(CarbonConfig(intensity_series=path, pue=2.0), cwd=project, env={})
    segments = [
        (_h(0.5), _h(1.5), 1 * KWH),  # half at 100, half at 300 g/kWh
        (_h(2.0), _h(2.25), 0.5 * KWH),  # all at 200 g/kWh
    ]
    out = acct.co2e(segments, {})
    # Facility energy doubles the IT energy (PUE 2).
    expected_g = 2.0 * (1.0 * (0.5 * 100 + 0.5 * 300) + 0.5 * 200)
    assert out.operational_g == pytest.approx(expected_g)
    assert out.facility_energy_j == pytest.approx(2.0 * 1.5 * KWH)
    assert out.intensity_g_per_kwh == pytest.approx(expected_g / (2.0 * 1.5))
    # A plain mean of the series (200) differs from the energy-weighted figure here.
    one = acct.co2e([(_h(0.0), _h(3.0), 3 * KWH)], {})
    assert one.operational_g == pytest.approx(2.0 * (100 + 300 + 200))
    skewed = acct.co2e([(_h(0.0), _h(0.5), 2 * KWH), (_h(1.0), _h(1.5), 1 * KWH)], {})
    assert skewed.intensity_g_per_kwh == pytest.approx((2 * 100 + 1 * 300) / 3)
    assert out.time_varying
    assert acct.info.time_series is not None and acct.info.time_series.points == 3
    assert acct.warnings == [("carbon.default_intensity", acct.warnings[0][1])]


def test_out_of_range_nearest_and_static(project: Path) -> None:
    path = _csv(project, HOURLY)
    seg = [(_h(2.5), _h(3.5), 1 * KWH)]  # half in the last bucket, half after the series
    near = resolve(CarbonConfig(intensity_series=path, location="FR"), cwd=project, env={})
    out = near.co2e(seg, {})
    assert out.operational_g == pytest.approx(200.0)
    assert "carbon.series_out_of_range" in [c for c, _ in near.warnings]
    static = resolve(
        CarbonConfig(intensity_series=path, intensity_g_per_kwh=40.0, series_out_of_range="static"),
        cwd=project,
        env={},
    )
    assert static.co2e(seg, {}).operational_g == pytest.approx(0.5 * 200 + 0.5 * 40)
    before = static.co2e([(_h(-2), _h(-1), 1 * KWH)], {})
    assert before.operational_g == pytest.approx(40.0)
    assert near.co2e([(_h(-2), _h(-1), 1 * KWH)], {}).operational_g == pytest.approx(100.0)


def test_zero_length_segment_uses_its_bucket(project: Path) -> None:
    acct = resolve(CarbonConfig(intensity_series=_csv(project, HOURLY)), cwd=project, env={})
    assert acct.co2e([(_h(1.2), _h(1.2), KWH)], {}).operational_g == pytest.approx(300.0)


def test_json_shapes_including_electricity_maps_history(tmp_path: Path) -> None:
    history = {
        "zone": "FR",
        "history": [
            {"zone": "FR", "carbonIntensity": 50, "datetime": "2024-05-01T00:00:00.000Z"},
            {"zone": "FR", "carbonIntensity": 70, "datetime": "2024-05-01T01:00:00.000Z"},
        ],
    }
    s = parse(json.dumps(history), origin="h.json")
    assert s.values_g_per_kwh == (50.0, 70.0) and s.step_s == 3600
    pairs = parse("[[1714521600, 10], [1714525200, 20]]", origin="p.json")
    assert pairs.times_s == (1714521600.0, 1714525200.0)
    assert pairs.times_s[0] == T0.timestamp()


def test_electricity_maps_csv_export_prefers_lca(tmp_path: Path) -> None:
    text = (
        "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
        "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage\n"
        "2024-05-01 00:00:00,France,France,FR,20,45,90\n"
        "2024-05-01 01:00:00,France,France,FR,22,48,91\n"
    )
    s = load_series(_csv(tmp_path, text, "FR_2024_hourly.csv"))
    assert s.values_g_per_kwh == (45.0, 48.0)
    assert s.times_s[0] == T0.timestamp()  # naive export times are UTC


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (
            "timestamp,intensity\n2024-05-01T00:00Z,100\n2024-05-01T01:00Z,abc\n",
            r"line 3: intensity 'abc' is not a number",
        ),
        (
            "timestamp,intensity\n2024-05-01T00:00Z,100\nyesterday,120\n",
            r"line 3: cannot read timestamp 'yesterday'",
        ),
        (
            "timestamp,intensity\n2024-05-01T00:00Z,100\n2024-05-01T01:00Z,-3\n",
            r"line 3: intensity -3.0 is negative",
        ),
        (
            "timestamp,intensity\n2024-05-01T01:00Z,100\n2024-05-01T00:00Z,120\n",
            r"line 3: timestamp goes back in time \(before .*line 2\)",
        ),
        (
            "timestamp,intensity\n2024-05-01T00:00Z,100\n2024-05-01T00:00Z,120\n",
            r"line 3: duplicate timestamp",
        ),
        ("when,value_x\n2024-05-01T00:00Z,100\n", r"line 1: header .* needs a time column"),
        ("timestamp,intensity\n2024-05-01T00:00Z,100\n", r"at least 2 points"),
        (
            "timestamp,intensity\n2024-05-01T00:00Z,100\n2024-05-01T01:00Z\n",
            r"line 3: expected 2 columns",
        ),
    ],
)
def test_malformed_series_names_the_line(tmp_path: Path, body: str, pattern: str) -> None:
    with pytest.raises(CarbonError, match=pattern):
        load_series(_csv(tmp_path, body))


def test_gappy_series_names_the_line(tmp_path: Path) -> None:
    body = (
        "timestamp,intensity\n"
        "2024-05-01T00:00Z,100\n2024-05-01T01:00Z,110\n2024-05-01T02:00Z,120\n"
        "2024-05-01T07:00Z,130\n2024-05-01T08:00Z,140\n"
    )
    with pytest.raises(CarbonError, match=r"line 5: gap of 5 h after .*line 4.*step is 1 h"):
        load_series(_csv(tmp_path, body))


def test_malformed_json_names_line_and_item(tmp_path: Path) -> None:
    with pytest.raises(CarbonError, match=r"line 2 column \d+: invalid JSON"):
        parse('[\n  {"datetime": "2024-05-01T00:00Z", }\n]', origin="x.json")
    with pytest.raises(CarbonError, match=r"item 1: intensity 'n/a' is not a number"):
        parse('[["2024-05-01T00:00Z", 1], ["2024-05-01T01:00Z", "n/a"]]', origin="x.json")


def test_huge_file_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series_mod, "MAX_SERIES_BYTES", 64)
    path = _csv(tmp_path, HOURLY * 3)
    with pytest.raises(CarbonError, match=r"above the .* limit"):
        load_series(path)


def test_missing_series_file_is_clear(project: Path) -> None:
    with pytest.raises(CarbonError, match="cannot read intensity series"):
        resolve(CarbonConfig(intensity_series=project / "none.csv"), cwd=project, env={})
