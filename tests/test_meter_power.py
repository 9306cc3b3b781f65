"""Peak power and the timeline come from consistent pairs: a reading and its own instant.

Boundaries read the counters too, often while the sampler is between its read and its
bookkeeping; a sampler that took a newer boundary's value with its own older instant
would see power that never existed.
"""

from __future__ import annotations

import time

import pytest

from greenmeter import EnergyMeter
from greenmeter.testing import PowerTrace
from greenmeter.testing.sensors import TraceSensor


def _busy_boundaries(meter: EnergyMeter, seconds: float) -> int:
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with meter.phase("inner"):
            n += 1
    return n


def test_peak_power_of_a_constant_trace_is_its_power_with_frequent_boundaries() -> None:
    trace = PowerTrace.constant(100.0)
    # each read takes 2 ms, so the sampler's read and a boundary's overlap often
    sensor = TraceSensor({"trace:cpu": trace}, delay_s=lambda now: 0.002)
    with EnergyMeter([sensor], sample_interval_s=0.01) as meter:
        with meter.phase("outer"):
            n = _busy_boundaries(meter, 1.0)
    assert n > 50
    snap = meter.snapshot()
    outer = next(p for p in snap.phases if p.name == "outer")
    assert outer.peak_power_w is not None
    assert outer.peak_power_w == pytest.approx(100.0, rel=1e-6)
    inner = next(p for p in snap.phases if p.name == "inner")
    if inner.peak_power_w is not None:
        assert inner.peak_power_w == pytest.approx(100.0, rel=1e-6)


def test_timeline_points_lie_on_the_trace_with_frequent_boundaries() -> None:
    trace = PowerTrace([(0.05, 300.0), (0.05, 20.0), (0.1, 90.0)])
    sensor = TraceSensor({"trace:cpu": trace}, delay_s=lambda now: 0.001)
    with EnergyMeter([sensor], sample_interval_s=0.01) as meter:
        with meter.phase("outer"):
            _busy_boundaries(meter, 0.8)
    snap = meter.snapshot()
    assert len(snap.timeline) > 10
    for point in snap.timeline:
        truth = trace.energy_j(snap.started_mono, point.t_mono)
        assert point.energy_j["trace:cpu"] == pytest.approx(truth, rel=1e-9, abs=1e-9)
    outer = next(p for p in snap.phases if p.name == "outer")
    # a window's mean power can never exceed the trace's highest power
    assert outer.peak_power_w is not None and outer.peak_power_w <= 300.0 * (1 + 1e-9)
