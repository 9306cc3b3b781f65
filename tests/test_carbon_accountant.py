"""CO2e arithmetic: PUE, ranges, market-based and embodied figures kept separate."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from greenmeter.carbon import CarbonConfig, Co2eBreakdown, resolve
from greenmeter.carbon.constants import EMBODIED_DEFAULTS, PUE_PRESETS
from greenmeter.carbon.dataset import lookup

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
KWH = 3.6e6


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    return tmp_path


def _segs(*kwh: float) -> list[tuple[datetime, datetime, float]]:
    out = []
    for i, e in enumerate(kwh):
        out.append((T0 + timedelta(minutes=10 * i), T0 + timedelta(minutes=10 * i + 10), e * KWH))
    return out


def test_operational_is_facility_energy_times_intensity(project: Path) -> None:
    acct = resolve(CarbonConfig(location="DE", pue=1.25), cwd=project, env={})
    out = acct.co2e(_segs(2.0, 1.0), {"gpu": 1.0})
    intensity = lookup("DEU").g_per_kwh
    assert out.it_energy_j == pytest.approx(3 * KWH)
    assert out.facility_energy_j == pytest.approx(3 * KWH * 1.25)
    assert out.operational_g == pytest.approx(3 * 1.25 * intensity)
    assert out.intensity_g_per_kwh == pytest.approx(intensity)
    assert out.market_g is None and out.embodied_g is None
    assert out.operational_low_g == out.operational_g == out.operational_high_g


def test_ranges_from_explicit_intensity_and_pue(project: Path) -> None:
    cfg = CarbonConfig(
        intensity_g_per_kwh=400,
        intensity_low_g_per_kwh=300,
        intensity_high_g_per_kwh=500,
        pue=1.2,
        pue_low=1.1,
        pue_high=1.5,
    )
    out = resolve(cfg, cwd=project, env={}).co2e(_segs(1.0), {})
    assert out.operational_g == pytest.approx(1.2 * 400)
    assert out.operational_low_g == pytest.approx(1.1 * 300)
    assert out.operational_high_g == pytest.approx(1.5 * 500)


def test_no_range_without_a_source_range(project: Path) -> None:
    acct = resolve(CarbonConfig(location="AU-VIC", pue="uptime-2024"), cwd=project, env={})
    out = acct.co2e(_segs(1.0), {})
    assert out.operational_low_g == out.operational_g == out.operational_high_g
    info = acct.info.intensity
    assert info.low_g_per_kwh is None and info.range_note is None
    assert info.scope3_g_per_kwh == pytest.approx(90.0)  # kept apart, never added
    assert out.operational_g == pytest.approx(770.0 * PUE_PRESETS["uptime-2024"].value)
    assert acct.info.pue.source_url and acct.info.pue.source_url.startswith("https://")


def test_market_factor_is_separate(project: Path) -> None:
    acct = resolve(
        CarbonConfig(location="PL", pue=1.5, market_factor_g_per_kwh=20.0), cwd=project, env={}
    )
    out = acct.co2e(_segs(2.0), {})
    assert out.market_g == pytest.approx(2.0 * 1.5 * 20.0)
    assert out.operational_g == pytest.approx(2.0 * 1.5 * lookup("POL").g_per_kwh)
    assert acct.info.market is not None and "not netted" in acct.info.market.note


def test_renewable_share_without_residual_mix_is_disclosed(project: Path) -> None:
    acct = resolve(CarbonConfig(location="PL", renewable_share=0.75), cwd=project, env={})
    out = acct.co2e(_segs(1.0), {})
    assert out.market_g == pytest.approx(0.25 * out.operational_g)
    assert out.operational_g == pytest.approx(lookup("POL").g_per_kwh)
    market = acct.info.market
    assert market is not None and market.uncovered_basis == "location_average"
    assert market.disclosure and "residual mix" in market.disclosure
    assert "GHG Protocol" in market.disclosure


def test_renewable_share_uses_the_residual_mix_when_given(project: Path) -> None:
    acct = resolve(
        CarbonConfig(location="DE", renewable_share=0.6, residual_mix_g_per_kwh=700.0, pue=1.5),
        cwd=project,
        env={},
    )
    out = acct.co2e(_segs(2.0), {})
    assert out.market_g == pytest.approx(2.0 * 1.5 * 0.4 * 700.0)
    market = acct.info.market
    assert market is not None and market.uncovered_basis == "residual_mix"
    assert market.disclosure is None and market.uncovered_factor_g_per_kwh == 700.0


def test_embodied_defaults_and_user_values(project: Path) -> None:
    acct = resolve(CarbonConfig(location="FR", embodied=True), cwd=project, env={})
    out = acct.co2e(_segs(1.0), {"gpu": 8.0, "cpu": 2.0, "host": 1.0, "dram": 3.0})
    gpu = EMBODIED_DEFAULTS["gpu"]
    server = EMBODIED_DEFAULTS["server"]
    assert gpu.per_device_hour_g == pytest.approx(gpu.manufacturing_kgco2e * 1000 / gpu.lifetime_h)
    # the server per host-hour (1.0), not per CPU-package hour (2.0)
    assert out.embodied_by_kind_g == pytest.approx(
        {"gpu": 8.0 * gpu.per_device_hour_g, "server": 1.0 * server.per_device_hour_g}
    )
    assert out.embodied_g == pytest.approx(sum(out.embodied_by_kind_g.values()))
    assert out.operational_g == pytest.approx(lookup("FR").g_per_kwh)  # not added in
    per = {d.kind: d.counted_per for d in acct.info.embodied.devices}
    assert per == {"gpu": "board", "server": "host"}

    user = resolve(
        CarbonConfig(location="FR", embodied={"gpu": {"kgco2e": 100, "lifetime_h": 1000}}),
        cwd=project,
        env={},
    )
    assert user.co2e(_segs(1.0), {"gpu": 2.0}).embodied_g == pytest.approx(2.0 * 100_000 / 1000)


def test_bad_segments_warn_instead_of_raising(project: Path) -> None:
    acct = resolve(CarbonConfig(intensity_g_per_kwh=100), cwd=project, env={})
    out = acct.co2e([(T0, T0, -5.0), (T0, T0, float("nan")), (T0, T0, KWH)], {})
    assert out.operational_g == pytest.approx(100.0)
    assert [c for c, _ in acct.warnings] == ["carbon.bad_segment"]


def test_breakdown_follows_report_conventions() -> None:
    with pytest.raises(ValueError):
        Co2eBreakdown(
            it_energy_j=-1, facility_energy_j=0, pue=1, intensity_g_per_kwh=0,
            operational_g=0, operational_low_g=0, operational_high_g=0,
        )  # fmt: skip
    with pytest.raises(ValueError):
        Co2eBreakdown(
            it_energy_j=1, facility_energy_j=1, pue=1, intensity_g_per_kwh=float("inf"),
            operational_g=0, operational_low_g=0, operational_high_g=0,
        )  # fmt: skip
    with pytest.raises(ValueError):
        Co2eBreakdown.model_validate(
            {"it_energy_j": 1, "facility_energy_j": 1, "pue": 1, "intensity_g_per_kwh": 1,
             "operational_g": 0, "operational_low_g": 0, "operational_high_g": 0, "x": 1}
        )  # fmt: skip
