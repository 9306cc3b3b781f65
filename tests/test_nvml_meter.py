"""NvmlSensor through EnergyMeter: phase energies against the fake boards' exact traces."""

from __future__ import annotations

import time

import pytest

from greenmeter.testing import PowerTrace
from greenmeter.testing.fake_nvml import FakeGpu, FakeNvml, FakeNvmlBuildError, build_library

try:
    build_library()
except FakeNvmlBuildError as exc:  # pragma: no cover - machines without a C compiler
    pytest.skip(f"fake NVML library cannot be built: {exc}", allow_module_level=True)

meter_mod = pytest.importorskip("greenmeter.meter")


def test_meter_phases_with_counter_and_sampled_boards(monkeypatch: pytest.MonkeyPatch) -> None:
    from greenmeter.sensors import nvml

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    trace = PowerTrace([(0.5, 220.0), (0.5, 280.0), (0.5, 240.0), (0.5, 300.0)])
    fake = FakeNvml([FakeGpu(trace), FakeGpu(trace, energy_counter=False)]).install()
    try:
        sensor, unavailable = nvml.probe(sample_interval_s=0.1)
        assert sensor is not None, unavailable
        counter_id, sampled_id = (c.id for c in sensor.components())
        meter = meter_mod.EnergyMeter(sensors=[sensor], sample_interval_s=0.1)
        with meter:
            with meter.phase("train", kind="train"):
                time.sleep(1.2)
            with meter.phase("validate", kind="validate"):
                time.sleep(1.0)
        snap = meter.snapshot()
        phases = {p.path: p for p in snap.phases}
        for path in (("train",), ("validate",)):
            p = phases[path]
            truth = trace.energy_j(p.first_start_mono, p.last_end_mono)
            assert p.energy_j[counter_id] == pytest.approx(truth, rel=0.005), path
            assert p.energy_j[sampled_id] == pytest.approx(truth, rel=0.02), path
    finally:
        sensor_ref = locals().get("sensor")
        if sensor_ref is not None:
            sensor_ref.close()
        fake.close()
