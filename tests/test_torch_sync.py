"""install(): CUDA sync at phase boundaries only, for the meter's GPUs, never initialising CUDA."""

from __future__ import annotations

import dataclasses
import types

import pytest

torch = pytest.importorskip("torch")

from greenmeter import EnergyMeter  # noqa: E402
from greenmeter.integrations.torch import install  # noqa: E402
from greenmeter.sensors.base import ComponentKind, Scope  # noqa: E402
from greenmeter.testing import PowerTrace  # noqa: E402
from greenmeter.testing.sensors import TraceSensor  # noqa: E402

UUIDS = ["1111aaaa-0000-0000-0000-000000000000", "2222bbbb-0000-0000-0000-000000000000",
         "3333cccc-0000-0000-0000-000000000000"]  # fmt: skip


class GpuTraceSensor(TraceSensor):
    """Trace-driven GPU components that carry NVML-style UUID details."""

    def __init__(self, uuids: dict[str, str]) -> None:
        super().__init__(
            {cid: PowerTrace.constant(100.0) for cid in uuids},
            kind=ComponentKind.GPU,
            scope=Scope.GPU_BOARD,
        )
        self._components = [
            dataclasses.replace(c, detail={"uuid": uuids[c.id]}) for c in self._components
        ]


@pytest.fixture
def fake_cuda(monkeypatch):
    state = types.SimpleNamespace(initialized=False, synced=[], props=0)

    def props(i):
        state.props += 1
        return types.SimpleNamespace(uuid=UUIDS[i])

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: state.initialized)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "get_device_properties", props)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda i=None: state.synced.append(i))
    return state


def test_syncs_the_measured_gpus_at_boundaries_only(fake_cuda):
    # the meter measures the boards of CUDA devices 2 and 0 (mapped by UUID, not index)
    sensor = GpuTraceSensor({"nvml:GPU-c": "GPU-" + UUIDS[2], "nvml:GPU-a": "GPU-" + UUIDS[0]})
    with EnergyMeter([sensor]) as meter:
        install(meter)
        install(meter)  # idempotent
        for _ in meter.track(range(6), "train"):
            pass
        assert fake_cuda.synced == [] and fake_cuda.props == 0  # CUDA never touched

        fake_cuda.initialized = True  # the user's code has started using CUDA
        for _ in meter.track(range(50), "train", window_steps=25):
            pass
        # boundaries: train enter, window-0 enter, window-0 exit, window-1 enter,
        # window-1 exit, train exit = 6, each syncing devices 2 and 0; none per step
        assert sorted(fake_cuda.synced) == sorted([2, 0] * 6)


def test_explicit_devices_and_fallback_to_all(fake_cuda):
    fake_cuda.initialized = True
    with EnergyMeter([TraceSensor({"t": PowerTrace.constant(5.0)})]) as meter:
        install(meter)  # no GPU components: all visible devices
        with meter.phase("x"):
            pass
    # enter, exit, and the final reading at stop()
    assert sorted(fake_cuda.synced) == sorted([0, 1, 2] * 3)

    fake_cuda.synced.clear()
    with EnergyMeter([TraceSensor({"t": PowerTrace.constant(5.0)})]) as meter:
        install(meter, devices=["cuda:1", "GPU-" + UUIDS[2], 7])  # 7 is not visible
        with meter.phase("x"):
            pass
    assert sorted(fake_cuda.synced) == sorted([1, 2] * 3)


def test_a_failing_sync_never_reaches_user_code(fake_cuda, monkeypatch):
    fake_cuda.initialized = True

    def broken(i=None):
        raise RuntimeError("CUDA error: an illegal memory access")

    monkeypatch.setattr(torch.cuda, "synchronize", broken)
    with EnergyMeter([TraceSensor({"t": PowerTrace.constant(5.0)})]) as meter:
        install(meter)
        with meter.phase("train"):
            pass
    codes = [w.code for w in meter.snapshot().warnings]
    assert "meter.sync_failed" in codes
