"""Faults injected mid-run: the run goes on, user code sees no exception, the report says.

Each fault is injected into the real code path (the emulated powercap tree, the fake
NVML library, a sensor whose reads hang) while phases are being measured; energies are
checked against the traces' exact integrals, and the final report must carry the warning.
"""

from __future__ import annotations

import datetime as dt_mod
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import greenmeter.core.meter as meter_mod
from greenmeter import EnergyMeter
from greenmeter.report import Report
from greenmeter.sensors import rapl
from greenmeter.sensors.base import ComponentKind, Scope
from greenmeter.testing.powercap import EmulatedPowercap
from greenmeter.testing.sensors import TraceSensor
from greenmeter.testing.trace import PowerTrace

#: RAPL counters are advanced about every millisecond: a boundary may miss one update.
RAPL_ABS_J = 0.5


def _codes(report: Report) -> dict[str, list[str | None]]:
    out: dict[str, list[str | None]] = {}
    for w in report.warnings:
        out.setdefault(w.code, []).append(w.component)
    return out


def _run_phases(meter: EnergyMeter, until: float, name: str = "step") -> list[float]:
    """Open and close phases until ``until``; returns each boundary's cost (s)."""
    costs: list[float] = []
    while time.monotonic() < until:
        a = time.monotonic()
        handle = meter.enter(name)
        b = time.monotonic()
        time.sleep(0.005)
        c = time.monotonic()
        handle.exit()
        d = time.monotonic()
        costs += [b - a, d - c]
    return costs


# --------------------------------------------------------------------------------------
# a sensor read that hangs


def test_hung_sensor_never_blocks_user_code_past_the_bound(tmp_path: Path) -> None:
    bound_s = 0.2
    t0 = time.monotonic()
    trace = PowerTrace([(0.1, 150.0), (0.1, 60.0)], t0=t0)
    hang_from, hang_to = t0 + 0.6, t0 + 2.2  # a 1.6 s stall of the "driver"

    def delay(now: float) -> float:
        return hang_to - now if hang_from <= now < hang_to else 0.0

    sensor = TraceSensor(
        {"trace:gpu": trace},
        kind=ComponentKind.GPU,
        scope=Scope.GPU_BOARD,
        delay_s=delay,
        may_block=True,
    )
    path = tmp_path / "hang.json"
    meter = EnergyMeter(
        [sensor], sample_interval_s=0.05, read_timeout_s=bound_s, report_path=path, carbon=False
    )
    with meter:
        costs = _run_phases(meter, t0 + 2.8)
    snap = meter.snapshot()
    worst = max(costs)
    print(f"\nhung read: {len(costs)} boundaries, worst {worst * 1e3:.0f} ms (bound 200 ms)")
    assert worst <= bound_s + 0.1
    stalled = [c for c in costs if c > 0.05]
    # the 1.6 s stall spans ~300 boundaries; it cost one of them the bound, not each
    assert 1 <= len(stalled) <= 10
    # no energy is lost: the counter caught up when the driver answered again
    truth = trace.energy_j(snap.started_mono, snap.ended_mono)  # type: ignore[arg-type]
    assert snap.energy_j["trace:gpu"] == pytest.approx(truth, rel=1e-9)
    report = Report.load(path)
    assert "sensor.read_timeout" in _codes(report)
    assert report.status == "complete"


# --------------------------------------------------------------------------------------
# a GPU that falls off the bus


def test_gpu_lost_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml = pytest.importorskip("greenmeter.testing.fake_nvml")
    nvml = pytest.importorskip("greenmeter.sensors.nvml")
    try:
        fake_nvml.build_library()
    except fake_nvml.FakeNvmlBuildError as exc:  # pragma: no cover - no C compiler
        pytest.skip(f"fake NVML library cannot be built: {exc}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    t0 = time.monotonic()
    trace = PowerTrace([(0.2, 250.0), (0.2, 330.0)], t0=t0)
    lost_at = t0 + 1.2
    fake = fake_nvml.FakeNvml(
        [
            fake_nvml.FakeGpu(trace),
            fake_nvml.FakeGpu(trace, faults=[fake_nvml.FakeFault(at=lost_at, error="gpu_lost")]),
        ]
    ).install()
    try:
        sensor, unavailable = nvml.probe(sample_interval_s=0.05)
        assert sensor is not None, unavailable
        healthy_id, lost_id = (c.id for c in sensor.components())
        path = tmp_path / "gpu.json"
        meter = EnergyMeter([sensor], sample_interval_s=0.05, report_path=path, carbon=False)
        with meter:
            _run_phases(meter, lost_at + 0.8, name="train")
        snap = meter.snapshot()
    finally:
        fake.close()
    start, end = snap.started_mono, snap.ended_mono
    assert end is not None and start < lost_at < end
    assert snap.energy_j[healthy_id] == pytest.approx(trace.energy_j(start, end), rel=2e-3)
    # the lost board keeps what it drew until its last good read (sampled every 50 ms)
    lost_truth = trace.energy_j(start, lost_at)
    assert lost_truth - 330.0 * 0.3 <= snap.energy_j[lost_id] <= lost_truth + 0.5
    report = Report.load(path)
    codes = _codes(report)
    assert "nvml.gpu_lost" in codes
    assert any(c and c.startswith(lost_id) for c in codes["nvml.gpu_lost"])
    assert report.component(lost_id).degraded and not report.component(healthy_id).degraded
    assert report.status == "complete"


# --------------------------------------------------------------------------------------
# RAPL: driver reload (counter reset) and a zone that disappears


def _powercap(
    make_powercap: Callable[..., EmulatedPowercap], traces: list[PowerTrace], **kw: object
) -> EmulatedPowercap:
    return make_powercap(traces, subzones=False, tdp_w=60.0, **kw)


def test_rapl_counter_reset_is_flagged_and_not_counted_as_a_wrap(
    tmp_path: Path, make_powercap: Callable[..., EmulatedPowercap]
) -> None:
    t0 = time.monotonic()
    trace = PowerTrace([(0.1, 60.0), (0.1, 110.0)], t0=t0)
    pc = _powercap(make_powercap, [trace])  # 262 kJ range, counter starts mid-range
    sensor, why = rapl.probe(pc.root)
    assert sensor is not None, why
    path = tmp_path / "reset.json"
    meter = EnergyMeter([sensor], sample_interval_s=0.05, report_path=path, carbon=False)
    with meter:
        with meter.phase("before"):
            time.sleep(0.4)
        with meter.phase("across"):
            time.sleep(0.3)
            t_reset = pc.reset_counter("package-0", 0)
            time.sleep(0.4)
        with meter.phase("after"):
            time.sleep(0.3)
    snap = meter.snapshot()
    cid = "rapl:package-0"
    assert sensor.wrap_counts() == {cid: 0}
    assert sensor.reset_counts() == {cid: 1}
    phases = {p.path[0]: p for p in snap.phases}
    for name in ("before", "after"):
        p = phases[name]
        truth = trace.energy_j(p.first_start_mono, p.last_end_mono)  # type: ignore[arg-type]
        assert p.energy_j[cid] == pytest.approx(truth, abs=RAPL_ABS_J), name
    # across the reset, only the energy between the last read and the reset is missing;
    # the meter's sampler reads every 50 ms
    p = phases["across"]
    truth = trace.energy_j(p.first_start_mono, p.last_end_mono)  # type: ignore[arg-type]
    missing = truth - p.energy_j[cid]
    assert -RAPL_ABS_J <= missing <= 110.0 * 0.15
    assert p.first_start_mono < t_reset < p.last_end_mono  # type: ignore[operator]
    report = Report.load(path)
    assert "rapl.counter_reset" in _codes(report)
    assert not any(w.code.endswith("wrap") for w in report.warnings)


def test_rapl_zone_that_disappears_degrades_only_its_component(
    tmp_path: Path, make_powercap: Callable[..., EmulatedPowercap]
) -> None:
    t0 = time.monotonic()
    traces = [PowerTrace([(0.1, 70.0), (0.1, 30.0)], t0=t0), PowerTrace.constant(45.0, t0=t0)]
    pc = _powercap(make_powercap, traces, dram_traces=[PowerTrace.constant(5.0, t0=t0)] * 2)
    sensor, why = rapl.probe(pc.root)
    assert sensor is not None, why
    path = tmp_path / "zone.json"
    meter = EnergyMeter([sensor], sample_interval_s=0.05, report_path=path, carbon=False)
    with meter:
        _run_phases(meter, time.monotonic() + 0.5, name="train")
        t_removed = pc.remove_zone("package-1")  # the package and its dram subzone
        _run_phases(meter, time.monotonic() + 0.6, name="train")
    snap = meter.snapshot()
    start, end = snap.started_mono, snap.ended_mono
    assert end is not None
    assert snap.energy_j["rapl:package-0"] == pytest.approx(
        traces[0].energy_j(start, end), abs=RAPL_ABS_J
    )
    assert snap.energy_j["rapl:package-1"] == pytest.approx(
        traces[1].energy_j(start, t_removed), abs=RAPL_ABS_J
    )
    assert snap.energy_j["rapl:dram-1"] == pytest.approx(5.0 * (t_removed - start), abs=0.1)
    report = Report.load(path)
    lost = _codes(report).get("rapl.zone_lost", [])
    assert {c.split("@")[0] for c in lost if c} == {"rapl:package-1", "rapl:dram-1"}
    assert report.component("rapl:package-1").degraded
    assert not report.component("rapl:package-0").degraded
    assert not report.component("rapl:dram-0").degraded


def test_rapl_zone_unreadable_mid_run(
    tmp_path: Path, make_powercap: Callable[..., EmulatedPowercap]
) -> None:
    t0 = time.monotonic()
    trace = PowerTrace.constant(80.0, t0=t0)
    pc = _powercap(make_powercap, [trace], dram_traces=[PowerTrace.constant(6.0, t0=t0)])
    sensor, why = rapl.probe(pc.root)
    assert sensor is not None, why
    meter = EnergyMeter([sensor], sample_interval_s=0.05, report_path=tmp_path / "u.json")
    with meter:
        with meter.phase("train"):
            time.sleep(0.3)
            t_fail = pc.make_unreadable("dram-0", how="fail")
            time.sleep(0.3)
    snap = meter.snapshot()
    assert snap.energy_j["rapl:package-0"] == pytest.approx(
        trace.energy_j(snap.started_mono, snap.ended_mono),
        abs=RAPL_ABS_J,  # type: ignore[arg-type]
    )
    assert snap.energy_j["rapl:dram-0"] == pytest.approx(
        6.0 * (t_fail - snap.started_mono), abs=0.1
    )
    assert snap.status["rapl:dram-0"].degraded
    assert "rapl.zone_lost" in _codes(Report.load(tmp_path / "u.json"))


# --------------------------------------------------------------------------------------
# wall-clock jumps


@pytest.mark.parametrize("jump_s", [86_400.0, -3_600.0])
def test_wall_clock_jump_changes_no_duration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jump_s: float
) -> None:
    real_datetime = dt_mod.datetime
    real_time = time.time

    class JumpedDatetime(real_datetime):
        @classmethod
        def now(cls, tz: dt_mod.tzinfo | None = None) -> dt_mod.datetime:  # type: ignore[override]
            return real_datetime.now(tz) + dt_mod.timedelta(seconds=jump_s)

    trace = PowerTrace([(0.05, 90.0), (0.05, 10.0)])
    meter = EnergyMeter([TraceSensor({"trace:cpu": trace})], sample_interval_s=0.05, carbon=False)
    real_start = real_datetime.now(dt_mod.timezone.utc)
    meter.start()
    # the wall clock jumps after start: NTP step, suspend/resume, an admin's `date -s`
    monkeypatch.setattr(meter_mod, "datetime", JumpedDatetime)
    monkeypatch.setattr(time, "time", lambda: real_time() + jump_s)
    with meter.phase("train"):
        time.sleep(0.3)
    snap = meter.stop()
    report = meter.report()
    real_end = real_datetime.now(dt_mod.timezone.utc)
    elapsed = snap.ended_mono - snap.started_mono  # type: ignore[operator]
    assert report.duration_s == pytest.approx(elapsed, abs=1e-6)
    assert (report.end_utc - report.start_utc).total_seconds() == pytest.approx(elapsed, abs=1e-5)
    assert real_start - dt_mod.timedelta(seconds=0.1) <= report.start_utc <= real_end
    assert real_start <= report.end_utc <= real_end + dt_mod.timedelta(seconds=0.1)
    train = report.phase("train")
    assert train.duration_s == pytest.approx(0.3, abs=0.1)
    assert snap.energy_j["trace:cpu"] == pytest.approx(
        trace.energy_j(snap.started_mono, snap.ended_mono),  # type: ignore[arg-type]
        rel=1e-9,
    )
