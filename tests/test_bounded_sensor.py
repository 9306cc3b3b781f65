"""A sensor whose reads hang never blocks the user's thread past the bound."""

from __future__ import annotations

import time

import pytest

from greenmeter import EnergyMeter
from greenmeter.sensors.bounded import BoundedSensor
from greenmeter.testing import PowerTrace
from greenmeter.testing.sensors import TraceSensor


def test_hanging_reads_are_bounded_and_energy_catches_up():
    trace = PowerTrace.constant(200.0)
    hang = {"until": 0.0}
    slow = TraceSensor(
        {"trace:gpu": trace},
        delay_s=lambda now: max(0.0, hang["until"] - time.monotonic()),
        may_block=True,
    )
    with EnergyMeter([slow], sample_interval_s=0.02, read_timeout_s=0.1) as meter:
        assert isinstance(meter._sensors[0], BoundedSensor)
        with meter.phase("before"):
            time.sleep(0.05)
        hang["until"] = time.monotonic() + 0.6  # the driver stalls for 0.6 s
        t0 = time.perf_counter()
        with meter.phase("during"):
            pass
        blocked_s = time.perf_counter() - t0
        time.sleep(0.8)  # the stall ends; reads answer again
        with meter.phase("after"):
            time.sleep(0.05)
    snap = meter.snapshot()
    # the user's thread waited at most about one bound, not the whole stall
    assert blocked_s < 0.35
    assert "sensor.read_timeout" in {w.code for w in snap.warnings}
    # nothing lost: the run's total equals the trace once the counter answers again
    assert snap.energy_j["trace:gpu"] == pytest.approx(
        trace.energy_j(snap.started_mono, snap.ended_mono), rel=1e-6
    )
    after = next(p for p in snap.phases if p.name == "after")
    assert after.energy_j["trace:gpu"] == pytest.approx(
        trace.energy_j(*after.intervals_mono[0]), rel=1e-6
    )


def test_errors_inside_the_bound_still_degrade_the_sensor():
    trace = PowerTrace.constant(50.0)
    state = {"fail": False}
    flaky = TraceSensor({"trace:x": trace}, fail_after=lambda now: state["fail"], may_block=True)
    with EnergyMeter([flaky], read_timeout_s=0.5) as meter:
        state["fail"] = True
        with meter.phase("p"):
            pass
    snap = meter.snapshot()
    assert snap.status["trace:x"].degraded
    assert "sensor.read_error" in {w.code for w in snap.warnings}


def test_bound_must_be_positive():
    with pytest.raises(ValueError, match="timeout_s"):
        BoundedSensor(TraceSensor({"trace:x": PowerTrace.constant(1.0)}), timeout_s=0)
