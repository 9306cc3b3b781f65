"""Observers (live exporters) get phase events and consistent periodic readings, in order,
on a thread of their own: a slow or broken observer never holds up the measured code."""

from __future__ import annotations

import threading
import time

import pytest

from greenmeter import EnergyMeter
from greenmeter.core.records import Reading
from greenmeter.testing import PowerTrace
from greenmeter.testing.sensors import TraceSensor


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[object, ...]]] = []
        self.readings: list[Reading] = []
        self.threads: set[str] = set()

    def phase_entered(self, path, kind, t_mono):
        self.threads.add(threading.current_thread().name)
        self.events.append(("enter", (path, kind)))

    def phase_exited(self, path, t_mono):
        self.events.append(("exit", (path,)))

    def items_added(self, path, samples, tokens, steps):
        self.events.append(("items", (path, samples, steps)))

    def reading_taken(self, reading):
        self.readings.append(reading)


def test_observer_gets_phase_events_and_readings_on_its_own_thread():
    trace = PowerTrace([(0.03, 120.0), (0.02, 30.0)])
    rec = Recorder()
    with EnergyMeter([TraceSensor({"trace:cpu": trace})], sample_interval_s=0.01) as meter:
        meter.add_observer(rec)
        with meter.phase("train", samples=4):
            with meter.phase("step"):
                time.sleep(0.2)
    snap = meter.snapshot()
    assert rec.events == [
        ("enter", (("train",), "train")),
        ("items", (("train",), 4, None)),
        ("enter", (("train", "step"), "custom")),
        ("exit", (("train", "step"),)),
        ("exit", (("train",),)),
    ]
    assert rec.threads == {"greenmeter-observers"}
    assert len(rec.readings) >= 5
    for reading in rec.readings:  # each value with its own instant
        truth = trace.energy_j(snap.started_mono, reading.t_mono)
        assert reading.energy_j["trace:cpu"] == pytest.approx(truth, rel=1e-9, abs=1e-9)
        assert not reading.stale
    assert [r.t_mono for r in rec.readings] == sorted(r.t_mono for r in rec.readings)


def test_a_blocked_observer_never_blocks_the_boundaries():
    release = threading.Event()

    class Stuck:
        def phase_entered(self, path, kind, t_mono):
            release.wait()

    meter = EnergyMeter([TraceSensor({"trace:cpu": PowerTrace.constant(10.0)})]).start()
    meter.add_observer(Stuck())
    for _ in range(20_000):  # more events than the queue holds
        with meter.phase("p"):
            pass
    release.set()
    snap = meter.stop()
    assert snap.phases[0].count == 20_000
    assert "meter.observer_lagging" in {w.code for w in snap.warnings}


def test_a_failing_observer_is_reported_once_and_never_raises():
    class Broken:
        def phase_exited(self, path, t_mono):
            raise RuntimeError("exporter down")

    with EnergyMeter([TraceSensor({"trace:cpu": PowerTrace.constant(10.0)})]) as meter:
        meter.add_observer(Broken())
        for _ in range(3):
            with meter.phase("p"):
                pass
        time.sleep(0.1)
    codes = [w.code for w in meter.snapshot().warnings]
    assert codes.count("meter.observer_failed") == 1


def test_an_observer_needs_an_event_method():
    with EnergyMeter([TraceSensor({"trace:cpu": PowerTrace.constant(10.0)})]) as meter:
        with pytest.raises(TypeError, match="reading_taken"):
            meter.add_observer(object())
