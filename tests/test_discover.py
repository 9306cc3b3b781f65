"""discover(): the best source per component, and a reason for every source left out."""

from __future__ import annotations

import sys
import types

import pytest

from greenmeter.sensors.base import ComponentInfo, ComponentKind, Method, Scope, Sensor
from greenmeter.sensors.discover import Discovery, discover
from greenmeter.sensors.estimate import EstimateSensor
from greenmeter.sensors.rapl import RaplSensor
from greenmeter.testing import EmulatedPowercap, PowerTrace


def _ids(d: Discovery) -> set[str]:
    return {c.id for s in d.sensors for c in s.components()}


@pytest.fixture
def no_nvml(monkeypatch):
    """Make ``import greenmeter.sensors.nvml`` fail, whatever the tree holds."""
    monkeypatch.setitem(sys.modules, "greenmeter.sensors.nvml", None)


class _GpuSensor(Sensor):
    name = "nvml"

    def components(self) -> list[ComponentInfo]:
        return [
            ComponentInfo(
                "nvml:GPU-1",
                ComponentKind.GPU,
                Scope.GPU_BOARD,
                Method.COUNTER,
                "nvml",
                "GPU",
                "h",
                0.1,
            )
        ]

    def read(self, now: float) -> dict[str, float]:
        return {"nvml:GPU-1": 0.0}


def test_rapl_tree_gives_counters_for_cpu_and_dram(rapl_tree: EmulatedPowercap, no_nvml) -> None:
    d = discover(powercap_root=rapl_tree.root)
    try:
        assert len(d.sensors) == 1 and isinstance(d.sensors[0], RaplSensor)
        assert _ids(d) == {"rapl:package-0", "rapl:package-1", "rapl:dram-0", "rapl:dram-1"}
        left_out = {(u.sensor, u.kind) for u in d.unavailable}
        assert ("estimate", ComponentKind.CPU) in left_out
        assert ("estimate", ComponentKind.RAM) in left_out
        assert ("pyrapl", ComponentKind.CPU) in left_out
        assert ("rapl", ComponentKind.PSYS) in left_out
        gpu = [u for u in d.unavailable if u.kind == ComponentKind.GPU and u.sensor == "nvml"]
        assert len(gpu) == 1 and "greenmeter.sensors.nvml" in gpu[0].reason
        assert all(u.reason for u in d.unavailable)
    finally:
        d.close()


def test_no_dram_zone_adds_a_ram_estimate(make_powercap, no_nvml) -> None:
    pc = make_powercap([PowerTrace.constant(30.0)])
    d = discover(powercap_root=pc.root, gpu=False)
    try:
        assert _ids(d) == {"rapl:package-0", "estimate:ram"}
        est = next(s for s in d.sensors if isinstance(s, EstimateSensor))
        assert est.components()[0].method == Method.ESTIMATED
        assert any(u.kind == ComponentKind.DRAM and u.sensor == "rapl" for u in d.unavailable)
        assert any(u.kind == ComponentKind.GPU and "gpu=False" in u.reason for u in d.unavailable)
    finally:
        d.close()


def test_no_powercap_falls_back_to_the_estimate(tmp_path, no_nvml) -> None:
    d = discover(powercap_root=tmp_path / "none", gpu=False)
    assert _ids(d) == {"estimate:cpu", "estimate:ram"}
    rapl = [u for u in d.unavailable if u.sensor == "rapl"]
    assert rapl and rapl[0].fix and "modprobe" in rapl[0].fix
    pyr = [u for u in d.unavailable if u.sensor == "pyrapl"]
    assert pyr and "use_pyrapl=True" in (pyr[0].fix or "")


def test_unreadable_counters_fall_back_with_the_fix(rapl_tree: EmulatedPowercap, no_nvml) -> None:
    for key in ("package-0", "package-1"):
        rapl_tree.make_unreadable(key, how="fail")
    d = discover(powercap_root=rapl_tree.root, gpu=False)
    assert _ids(d) == {"estimate:cpu", "estimate:ram"}
    why = [u for u in d.unavailable if u.sensor == "rapl" and u.kind == ComponentKind.CPU]
    assert why and "chmod" in (why[0].fix or "") and "udev" in (why[0].fix or "")


def test_count_host_false_skips_cpu_and_dram(rapl_tree: EmulatedPowercap, no_nvml) -> None:
    d = discover(powercap_root=rapl_tree.root, count_host=False, gpu=False)
    assert d.sensors == []
    kinds = {u.kind for u in d.unavailable if "count_host=False" in u.reason}
    assert kinds == {ComponentKind.CPU, ComponentKind.DRAM}


def test_gpu_sensor_from_nvml_probe(monkeypatch, tmp_path) -> None:
    calls = {}

    def probe(gpus=None, sample_interval_s=0.1, host=None):
        calls.update(gpus=gpus, sample_interval_s=sample_interval_s, host=host)
        return _GpuSensor(), []

    fake = types.ModuleType("greenmeter.sensors.nvml")
    fake.probe = probe  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "greenmeter.sensors.nvml", fake)
    d = discover(powercap_root=tmp_path, cpu=False, gpus=[0], sample_interval_s=0.25, host="h")
    assert _ids(d) == {"nvml:GPU-1"}
    assert calls == {"gpus": [0], "sample_interval_s": 0.25, "host": "h"}
    assert any(u.kind == ComponentKind.CPU and "cpu=False" in u.reason for u in d.unavailable)


def test_gpu_sensors_of_both_vendors(monkeypatch, tmp_path) -> None:
    calls: list[tuple[str, object]] = []

    def module(name: str, sensor_name: str, cid: str) -> types.ModuleType:
        def probe(gpus=None, sample_interval_s=0.1, host=None):
            calls.append((sensor_name, gpus))
            sensor = _GpuSensor()
            sensor.name = sensor_name
            sensor.components = lambda: [  # type: ignore[method-assign]
                ComponentInfo(
                    cid,
                    ComponentKind.GPU,
                    Scope.GPU_BOARD,
                    Method.COUNTER,
                    sensor_name,
                    "GPU",
                    "h",
                    0.1,
                )
            ]
            return sensor, []

        mod = types.ModuleType(name)
        mod.probe = probe  # type: ignore[attr-defined]
        return mod

    monkeypatch.setitem(sys.modules, "greenmeter.sensors.nvml", module("n", "nvml", "nvml:GPU-1"))
    monkeypatch.setitem(sys.modules, "greenmeter.sensors.amd", module("a", "amdsmi", "amdsmi:u-1"))
    d = discover(powercap_root=tmp_path, cpu=False, gpus=["GPU-1"])
    assert _ids(d) == {"nvml:GPU-1", "amdsmi:u-1"}
    assert calls == [("nvml", ["GPU-1"]), ("amdsmi", ["GPU-1"])]
    # One vendor's failure leaves the other measuring, and is explained.
    monkeypatch.setitem(sys.modules, "greenmeter.sensors.amd", None)
    d = discover(powercap_root=tmp_path, cpu=False)
    assert _ids(d) == {"nvml:GPU-1"}
    (why,) = [u for u in d.unavailable if u.sensor == "amdsmi"]
    assert "greenmeter.sensors.amd" in why.reason and why.kind == ComponentKind.GPU
    d = discover(powercap_root=tmp_path, gpu=False, cpu=False)
    assert {u.sensor for u in d.unavailable if "gpu=False" in u.reason} == {"nvml", "amdsmi"}


def test_broken_nvml_module_is_no_gpu_sensor(monkeypatch, tmp_path) -> None:
    fake = types.ModuleType("greenmeter.sensors.nvml")  # no probe(): AttributeError
    monkeypatch.setitem(sys.modules, "greenmeter.sensors.nvml", fake)
    d = discover(powercap_root=tmp_path, cpu=False)
    assert d.sensors == []
    assert [u.kind for u in d.unavailable if u.sensor == "nvml"] == [ComponentKind.GPU]

    def boom(**kw):
        raise RuntimeError("driver exploded")

    fake.probe = boom  # type: ignore[attr-defined]
    d = discover(powercap_root=tmp_path, cpu=False)
    assert d.sensors == []
    assert any("driver exploded" in u.reason for u in d.unavailable)


def test_use_pyrapl_when_rapl_missing(tmp_path, monkeypatch, no_nvml) -> None:
    import greenmeter.sensors.pyrapl as pyrapl_mod
    from greenmeter.sensors.base import Unavailable

    monkeypatch.setattr(
        pyrapl_mod,
        "probe",
        lambda host=None: (None, [Unavailable("pyrapl", ComponentKind.CPU, "tested", None)]),
    )
    d = discover(powercap_root=tmp_path / "none", use_pyrapl=True, gpu=False)
    assert _ids(d) == {"estimate:cpu", "estimate:ram"}
    assert any(u.reason == "tested" for u in d.unavailable)
