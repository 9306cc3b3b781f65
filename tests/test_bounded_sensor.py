"""A sensor whose reads hang never blocks the user's thread past the bound, is marked
degraded from the instant it stalls, and is never frozen by a call ending at the bound."""

from __future__ import annotations

import random
import threading
import time
import types

import pytest

import greenmeter.sensors.bounded as bounded_mod
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
        assert isinstance(meter.core.sensors[0], BoundedSensor)
        with meter.phase("before"):
            time.sleep(0.05)
        t_stall = time.monotonic()
        hang["until"] = t_stall + 0.6  # the driver stalls for 0.6 s
        t0 = time.perf_counter()
        with meter.phase("during"):
            pass
        blocked_s = time.perf_counter() - t0
        time.sleep(0.8)  # the stall ends; reads answer again
        t_back = time.monotonic()
        with meter.phase("after"):
            time.sleep(0.05)
    snap = meter.snapshot()
    # the user's thread waited at most about one bound, not the whole stall
    assert blocked_s < 0.35
    codes = {w.code for w in snap.warnings}
    assert {"sensor.read_timeout", "sensor.read_recovered"} <= codes
    # degraded from the instant of the first timeout, recovered once reads answer again
    status = snap.status["trace:gpu"]
    assert status.degraded
    assert status.degraded_at is not None and t_stall <= status.degraded_at <= t_stall + 0.3
    assert status.recovered_at is not None and status.degraded_at < status.recovered_at
    assert status.recovered_at <= t_back + 0.2
    # nothing lost: the run's total equals the trace once the counter answers again
    assert snap.energy_j["trace:gpu"] == pytest.approx(
        trace.energy_j(snap.started_mono, snap.ended_mono), rel=1e-6
    )
    after = next(p for p in snap.phases if p.name == "after")
    assert after.energy_j["trace:gpu"] == pytest.approx(
        trace.energy_j(*after.intervals_mono[0]), rel=1e-6
    )
    # the report lowers the confidence of the phases once the component is degraded
    report = meter.report(include_git=False)
    assert report.component("trace:gpu").degraded
    assert report.phase("during").confidence.level == "low"


def test_a_call_ending_at_the_bound_never_freezes_the_sensor(monkeypatch):
    """Hammer timeouts: reads last about the bound, so many end just as their caller gives
    up. Afterwards, fast reads must return fresh values again.

    The hand-over from the worker to the caller is slowed by 3 ms where a
    ``threading.Event`` carries it, which widens the window in which a timing-out caller
    can misjudge a finished call as hung."""

    class SlowSetEvent(threading.Event):
        def set(self) -> None:
            time.sleep(0.003)
            super().set()

    class SlowHandoff(types.ModuleType):
        def __getattr__(self, name: str) -> object:
            return getattr(threading, name)

    proxy = SlowHandoff("threading")
    proxy.Event = SlowSetEvent  # type: ignore[attr-defined]
    monkeypatch.setattr(bounded_mod, "threading", proxy)

    trace = PowerTrace.constant(100.0)
    bound_s = 0.01
    rng = random.Random(5)
    slow = {"on": True}
    inner = TraceSensor(
        {"x": trace},
        delay_s=lambda now: bound_s * rng.uniform(0.5, 1.2) if slow["on"] else 0.0,
        may_block=True,
    )
    sensor = BoundedSensor(inner, timeout_s=bound_s)

    def hammer(until: float) -> None:
        while time.monotonic() < until:
            sensor.read(time.monotonic())

    hammer(time.monotonic() + 1.0)
    slow["on"] = False
    time.sleep(0.1)  # any call still running ends
    for _ in range(5):
        now = time.monotonic()
        value = sensor.read(now).get("x")
        assert value == pytest.approx(trace.cumulative_j(now), rel=1e-9), "frozen on stale values"
    status = sensor.status()["x"]
    assert status.degraded and status.recovered_at is not None
    sensor.close()


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


def test_a_sensor_that_stops_blocking_is_read_on_the_callers_thread():
    # a sensor whose reads answer from memory (an NVML sensor whose boards are read by
    # their own threads) turns ``may_block`` off: no hand-over to the worker then
    trace = PowerTrace.constant(100.0)
    threads: list[str] = []

    class Recording(TraceSensor):
        def read(self, now: float) -> dict[str, float]:
            threads.append(threading.current_thread().name)
            return super().read(now)

    inner = Recording({"trace:gpu": trace}, may_block=True)
    sensor = BoundedSensor(inner, timeout_s=1.0)
    try:
        sensor.read(time.monotonic())
        inner.may_block = False
        values, fresh = sensor.read_fresh(time.monotonic())
        assert fresh and values["trace:gpu"] > 0
        here = threading.current_thread().name
        assert threads[0] != here and threads[1] == here
    finally:
        sensor.close()
