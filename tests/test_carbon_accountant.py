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


def test_dataset_range_and_preset_range(project: Path) -> None:
    acct = resolve(CarbonConfig(location="CA-AB", pue="azure"), cwd=project, env={})
    rec = lookup("CA-AB")
    out = acct.co2e(_segs(1.0), {})
    preset = PUE_PRESETS["azure"]
    assert out.operational_low_g == pytest.approx(rec.low_g_per_kwh * preset.low)
    assert out.operational_high_g == pytest.approx(rec.high_g_per_kwh * preset.high)


def test_market_factor_is_separate(project: Path) -> None:
    acct = resolve(
        CarbonConfig(location="PL", pue=1.5, market_factor_g_per_kwh=20.0), cwd=project, env={}
    )
    out = acct.co2e(_segs(2.0), {})
    assert out.market_g == pytest.approx(2.0 * 1.5 * 20.0)
    assert out.operational_g == pytest.approx(2.0 * 1.5 * lookup("POL").g_per_kwh)
    assert acct.info.market is not None and "not netted" in acct.info.market.note


def test_renewable_share_applies_to_location_figure(project: Path) -> None:
    acct = resolve(CarbonConfig(location="PL", renewable_share=0.75), cwd=project, env={})
    out = acct.co2e(_segs(1.0), {})
    assert out.market_g == pytest.approx(0.25 * out.operational_g)
    assert out.operational_g == pytest.approx(lookup("POL").g_per_kwh)


def test_embodied_defaults_and_user_values(project: Path) -> None:
    acct = resolve(CarbonConfig(location="FR", embodied=True), cwd=project, env={})
    out = acct.co2e(_segs(1.0), {"gpu": 8.0, "cpu": 1.0, "dram": 3.0})
    gpu = EMBODIED_DEFAULTS["gpu"]
    cpu = EMBODIED_DEFAULTS["cpu"]
    assert gpu.per_device_hour_g == pytest.approx(gpu.manufacturing_kgco2e * 1000 / gpu.lifetime_h)
    assert out.embodied_by_kind_g == pytest.approx(
        {"gpu": 8.0 * gpu.per_device_hour_g, "cpu": 1.0 * cpu.per_device_hour_g}
    )
    assert out.embodied_g == pytest.approx(sum(out.embodied_by_kind_g.values()))
    assert out.operational_g == pytest.approx(lookup("FR").g_per_kwh)  # not added in

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
