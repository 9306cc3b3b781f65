"""Boundary placement between counter updates, case by case.

A board draws a known power; its counter updates every 100 ms at ``PHASE + k * STEP``
with the exact energy drawn up to that instant. Reads are fed to a
:class:`~greenmeter.sensors.placement.Track` as the counter readers would (on a simulated
clock), with value instants chosen to hit the cases that are hard to index; the readers'
own handling of held-up calls is driven with stand-ins whose calls take known times.
"""

from __future__ import annotations

import math
import threading
import time

import pytest

from greenmeter.sensors.nvml_tracker import BoardSpec, GpuTracker, _Reader
from greenmeter.sensors.placement import PLACED, Track

STEP = 0.1
PHASE = 0.0371  # update instants: PHASE + k * STEP


def _power_w(t: float) -> float:
    return 150.0 if t < 2.0 else 420.0


def _energy_j(t: float) -> float:
    """Exact energy drawn from 0 to ``t`` (J)."""
    return 150.0 * min(t, 2.0) + 420.0 * max(0.0, t - 2.0)


def _counter_j(t: float) -> float:
    """The counter's value at ``t``: the energy up to the latest update at or before it."""
    k = math.floor((t - PHASE) / STEP)
    return _energy_j(PHASE + k * STEP) if k >= 0 else 0.0


def _update(k: int) -> float:
    return PHASE + k * STEP


def _read(track: Track, s: float, slack_s: float = 0.00005) -> None:
    """A read whose value was taken at ``s`` (known within ``slack_s``)."""
    track.add_read(s, _counter_j(s), s - slack_s, s + slack_s)


def _sampled(track: Track, t_from: float, t_to: float, period_s: float = 0.05) -> None:
    t = t_from
    while t < t_to:
        track.add_power(t, _power_w(t))
        t += period_s


def _loosely_located() -> Track:
    """A track whose grid is known within about a millisecond: reads a millisecond
    either side of updates 1 to 5, then quiet."""
    track = Track(STEP)
    _sampled(track, 0.0, 4.0)
    _read(track, 0.01)
    for k in range(1, 6):
        _read(track, _update(k) - 0.0011)
        _read(track, _update(k) + 0.0009)
    assert 0.0005 < track.uncertainty_s() < 0.0015
    return track


def test_a_read_just_after_an_update_after_a_quiet_stretch_is_indexed_by_energy() -> None:
    # two seconds without a read, then one that lands 0.7 ms after an update instant:
    # closer than the grid is known, so the grid alone cannot tell whether it saw that
    # update or the one before; the counter's change since the last read can
    track = _loosely_located()
    k = 25
    _read(track, _update(k) + 0.0007)
    _read(track, _update(k + 1) + 0.0009)
    for t in (_update(k) - 0.03, _update(k) + 0.05):  # boundaries either side of it
        f = track.energy_at(t)
        assert f.method == PLACED and f.exact
        assert abs(f.energy_j - _energy_j(t)) <= f.bound_j + 1e-9
        assert f.energy_j == pytest.approx(_energy_j(t), abs=0.5)


def test_a_read_held_up_across_two_updates_is_indexed_by_energy() -> None:
    # the reader's thread is held up (an interpreter stall) for 160 ms inside one call:
    # the value was taken 5 ms after update 10, but the call only returned after update
    # 11. Both lie in the read's span; the latest one is not the one it saw: indexed on
    # it, every figure from update 10 on is a step's energy (15 J) off
    track = _loosely_located()
    for k in range(6, 10):
        _read(track, _update(k) + 0.001)
    start, end = _update(10) + 0.003, _update(11) + 0.06
    track.add_read(0.5 * (start + end), _counter_j(_update(10) + 0.005), start, end)
    for k in (12, 13):
        _read(track, _update(k) + 0.001)
    for t in (_update(10) + 0.05, _update(11) + 0.05, _update(12) + 0.05):
        f = track.energy_at(t)
        assert f.exact
        assert abs(f.energy_j - _energy_j(t)) <= f.bound_j + 1e-9
        assert f.energy_j == pytest.approx(_energy_j(t), abs=0.5)


class _SlowCounter:
    """A stand-in for ``pynvml`` whose counter calls take 2.5 ms, the value taken
    half-way; :attr:`late_s` delays the value of the next call (the thread held up
    before the driver's work), and that call sees a counter that changed just before
    its value was taken."""

    def __init__(self) -> None:
        self.value_mj = 1000
        self.late_s = 0.0
        self.changed_at: float | None = None

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int:
        start = time.monotonic()
        _sleep_until(start + self.late_s + 0.00125)
        if self.late_s:
            self.value_mj += 5000  # changed just before this value was taken
            self.changed_at = time.monotonic() - 0.0001
            self.late_s = 0.0
        value = self.value_mj
        _sleep_until(time.monotonic() + 0.00125)
        return value


def _sleep_until(t: float) -> None:
    while time.monotonic() < t:
        pass


def test_a_read_held_up_inside_its_call_still_brackets_the_update() -> None:
    # a call held up for 1.2 ms before the driver took the value: stamped at the
    # call's middle, the value is 0.6 ms later than the stamp, and the update it saw
    # came after the stamp; the read's own slack must keep that update in its bracket
    nv = _SlowCounter()
    spec = BoardSpec("gpu:0", object(), nv.value_mj, STEP, has_instant=False)
    reader = _Reader(
        nv, spec, threading.Event(), lambda *a: None, [], threading.Lock(), lambda: True
    )
    for _ in range(5):
        assert reader.read_once()
    nv.late_s = 0.0012
    assert reader.read_once()
    last = reader.track._updates[-1]
    assert nv.changed_at is not None
    assert last.value_j == pytest.approx(5.0)
    assert last.lo < nv.changed_at <= last.hi


class _SlowPower:
    """Instant power whose first ``slow`` calls are held up for 2 ms."""

    def __init__(self, slow: int) -> None:
        self.slow = slow
        self.calls = 0

    def read_w(self) -> float:
        self.calls += 1
        if self.calls <= self.slow:
            _sleep_until(time.monotonic() + 0.002)
        return 250.0


@pytest.mark.parametrize("slow", [1, 2])
def test_a_held_up_power_sample_is_taken_again_and_never_lost(slow: int) -> None:
    # a short phase may get a single sample per board: a held-up call is made again at
    # once, and when that one is held up too its sample is kept (instant: the middle)
    spec = BoardSpec("gpu:0", object(), 0, STEP, has_instant=False)
    tracker = GpuTracker(_SlowCounter(), [spec], on_fail=lambda *a: None)
    reader = tracker._readers["gpu:0"]
    reader.power = _SlowPower(slow)
    tracker._sample_all()
    track = tracker.track("gpu:0")
    assert track._pw == [250.0]
    assert reader.power.calls == 2
    tracker.close()
