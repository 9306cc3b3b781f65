"""AMD boards on a host: through EnergyMeter, beside NVIDIA boards, in doctor and reports.

Phase energies are checked against the fake boards' exact traces over windows taken by
the caller's own clock: the meter's boundary reads happen after the instant taken
before ``with meter.phase(...)`` and before the first statement inside it, and likewise
at the end, so the truth lies between the inner and the outer window however loaded
the machine is.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from greenmeter.testing import PowerTrace
from greenmeter.testing.fake_amdsmi import FakeAmdGpu, FakeAmdSmi, FakeAmdSmiBuildError
from greenmeter.testing.fake_amdsmi import build_library as build_amd
from greenmeter.testing.fake_nvml import FakeGpu, FakeNvml, FakeNvmlBuildError
from greenmeter.testing.fake_nvml import build_library as build_nvml
from greenmeter.testing.fakelib import FakeLibrary

try:
    build_amd()
    build_nvml()
except (FakeAmdSmiBuildError, FakeNvmlBuildError) as exc:  # pragma: no cover
    pytest.skip(f"fake GPU libraries cannot be built: {exc}", allow_module_level=True)

meter_mod = pytest.importorskip("greenmeter.meter")

STEPS = [(0.5, 420.0), (0.5, 610.0), (0.5, 480.0), (0.5, 700.0)]
_VARS = ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")


@pytest.fixture(autouse=True)
def _no_visibility_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)


class Windows:
    """Caller-clock windows around phases: ``outer`` before enter / after exit, ``inner``
    from the first to the last statement inside."""

    def __init__(self) -> None:
        self.outer: dict[str, tuple[float, float]] = {}
        self.inner: dict[str, tuple[float, float]] = {}

    def run(self, meter: object, name: str, kind: str, seconds: float) -> None:
        before = time.monotonic()
        with meter.phase(name, kind=kind):
            first = time.monotonic()
            time.sleep(seconds)
            last = time.monotonic()
        self.outer[name] = (before, time.monotonic())
        self.inner[name] = (first, last)

    def check(self, trace: PowerTrace, name: str, measured: float, rel: float) -> None:
        lo = trace.energy_j(*self.inner[name])
        hi = trace.energy_j(*self.outer[name])
        assert lo * (1 - rel) <= measured <= hi * (1 + rel), (name, measured, lo, hi)


F = TypeVar("F", bound=FakeLibrary)


@pytest.fixture
def installed() -> Iterator[Callable[[F], F]]:
    """``installed(fake)`` installs a fake library in this process until the test ends."""
    with contextlib.ExitStack() as stack:

        def install(fake: F) -> F:
            return stack.enter_context(fake)

        yield install


def test_meter_phases_with_counter_and_sampled_amd_boards(installed) -> None:
    from greenmeter.sensors import amd

    trace = PowerTrace(STEPS)
    installed(FakeAmdSmi([FakeAmdGpu(trace), FakeAmdGpu(trace, energy_counter=False)]))
    sensor, unavailable = amd.probe(sample_interval_s=0.1)
    assert sensor is not None, unavailable
    counter_id, sampled_id = (c.id for c in sensor.components())
    meter = meter_mod.EnergyMeter(sensors=[sensor], sample_interval_s=0.1)
    w = Windows()
    try:
        with meter:
            w.run(meter, "train", "train", 1.2)
            w.run(meter, "validate", "validate", 1.0)
        phases = {p.path: p for p in meter.snapshot().phases}
        for name in ("train", "validate"):
            p = phases[(name,)]
            w.check(trace, name, p.energy_j[counter_id], rel=0.005)
            w.check(trace, name, p.energy_j[sampled_id], rel=0.05)  # sampling gaps under load
        kinds = {c.id: c for c in meter.components}
        assert kinds[counter_id].method.value == "counter"
        assert kinds[sampled_id].detail["power_source"] == "current_socket_power"
    finally:
        sensor.close()


def test_mixed_nvidia_and_amd_host_is_discovered_and_measured(installed) -> None:
    from greenmeter.sensors.discover import discover

    nv_trace = PowerTrace([(0.5, 250.0), (0.5, 310.0)])
    amd_trace = PowerTrace(STEPS)
    nv = installed(FakeNvml([FakeGpu(nv_trace), FakeGpu(nv_trace)]))
    amd = installed(
        FakeAmdSmi(
            [FakeAmdGpu(amd_trace), FakeAmdGpu(amd_trace, partitions=2, compute_partition="DPX")]
        )
    )
    found = discover(cpu=False, sample_interval_s=0.1)
    try:
        by_sensor = {s.name: [c.id for c in s.components()] for s in found.sensors}
        assert by_sensor == {
            "nvml": [f"nvml:{u}" for u in nv.uuids],
            "amdsmi": [f"amdsmi:{amd.uuid(0)}", f"amdsmi:{amd.uuid(1)}"],
        }
        assert not [u for u in found.unavailable if u.kind.value == "gpu"]
    finally:
        found.close()
    meter = meter_mod.EnergyMeter(cpu=False, sample_interval_s=0.1)
    w = Windows()
    with meter:
        w.run(meter, "train", "train", 1.1)
    (p,) = [p for p in meter.snapshot().phases if p.path == ("train",)]
    components = {c.id: c for c in meter.components}
    assert {c.detail.get("vendor", "nvidia") for c in components.values()} == {"nvidia", "amd"}
    for u in nv.uuids:
        w.check(nv_trace, "train", p.energy_j[f"nvml:{u}"], rel=0.005)
    for i in range(2):
        w.check(amd_trace, "train", p.energy_j[f"amdsmi:{amd.uuid(i)}"], rel=0.005)
    assert components[f"amdsmi:{amd.uuid(1)}"].shared
    report = meter.report()
    vendors = {g.uuid: g.vendor for g in report.gpus}
    assert vendors[amd.uuid(1)] == "amd" and vendors[nv.uuids[0]] == "nvidia"
    (partitioned,) = [g for g in report.gpus if g.uuid == amd.uuid(1)]
    assert partitioned.compute_partition == "DPX" and partitioned.shared and not partitioned.mig


# -- doctor ------------------------------------------------------------------------------------


def test_doctor_lists_amd_gpus(installed, tmp_path, capsys) -> None:
    from greenmeter.cli import main

    trace = PowerTrace.constant(300.0)
    fake = installed(
        FakeAmdSmi([FakeAmdGpu(trace), FakeAmdGpu(trace, partitions=8, compute_partition="CPX")])
    )
    args = ["doctor", "--powercap-root", str(tmp_path)]
    assert main([*args, "--json"]) == 0
    diag = json.loads(capsys.readouterr().out)
    gpus = {c["id"]: c for c in diag["components"] if c["sensor"] == "amdsmi"}
    assert list(gpus) == [f"amdsmi:{fake.uuid(0)}", f"amdsmi:{fake.uuid(1)}"]
    assert gpus[f"amdsmi:{fake.uuid(1)}"]["shared"] is True
    assert not [u for u in diag["unavailable"] if u["sensor"] == "amdsmi"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert f"amdsmi:{fake.uuid(0)}" in text and "reading: energy_counter" in text
    assert f"ROCm id {fake.rocr_uuid(1)}" in text
    assert "shared: split into 8 CPX partitions" in text


def test_doctor_says_why_there_is_no_amd_gpu(installed, tmp_path, capsys) -> None:
    from greenmeter.cli import main

    installed(FakeAmdSmi(1, init_error="no_perm"))
    assert main(["doctor", "--json", "--powercap-root", str(tmp_path)]) == 0
    diag = json.loads(capsys.readouterr().out)
    assert not [c for c in diag["components"] if c["sensor"] == "amdsmi"]
    (u,) = [u for u in diag["unavailable"] if u["sensor"] == "amdsmi"]
    assert u["kind"] == "gpu" and "permission" in u["reason"] and "render" in u["fix"]
    assert main(["doctor", "--powercap-root", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert u["reason"] in text and u["fix"] in text
