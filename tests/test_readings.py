"""The GPU sensors' shared pieces: wrap-aware counter, trapezoid integration, step probe."""

from __future__ import annotations

import itertools
import time

import pytest

from greenmeter.sensors.readings import (
    PowerIntegrator,
    WrappingCounter,
    measure_update_steps,
    timed,
)

UNIT = 15.3e-6  # J per count, AMD's accumulator


def counts(joules: float) -> int:
    return round(joules / UNIT)


def test_ordinary_steps_add_up_exactly() -> None:
    c = WrappingCounter(1000, 0.0, UNIT, max_power_w=1500.0)
    for k in range(1, 11):  # 10 reads, 0.1 s apart, 600 W
        assert c.update(1000 + k * counts(60.0), k * 0.1) is None
    assert c.energy_j == pytest.approx(10 * counts(60.0) * UNIT, rel=1e-12)
    assert c.wraps == 0


def test_64_bit_wrap_is_counted_across() -> None:
    start = 2**64 - counts(30.0)
    c = WrappingCounter(start, 0.0, UNIT, max_power_w=1500.0)
    after = counts(45.0)  # 30 J to the wrap, 45 J past it, in 0.1 s at 750 W
    event = c.update(after, 0.1)
    assert event is not None and (event.kind, event.bits) == ("wrap", 64)
    assert c.energy_j == pytest.approx((counts(30.0) + after) * UNIT, rel=1e-12)
    assert c.wraps == 1


def test_32_bit_wrap_while_below_2_to_32() -> None:
    c = WrappingCounter(2**32 - 100, 0.0, UNIT, max_power_w=1500.0)
    event = c.update(500, 0.05)
    assert event is not None and (event.kind, event.bits) == ("wrap", 32)
    assert c.energy_j == pytest.approx(600 * UNIT)
    # A counter already past 2^32 cannot be a 32-bit one: a step back there is no wrap.
    big = WrappingCounter(2**40, 0.0, UNIT, max_power_w=1500.0)
    assert big.update(2**40 - 10, 0.05).kind == "backward"  # type: ignore[union-attr]


def test_small_step_back_is_ignored_and_counting_resumes() -> None:
    c = WrappingCounter(10**9, 0.0, UNIT, max_power_w=1500.0)
    c.update(10**9 + 1000, 0.1)
    event = c.update(10**9 + 400, 0.2)  # a glitch: 600 counts back
    assert event is not None and event.kind == "backward"
    assert c.energy_j == pytest.approx(1000 * UNIT)
    assert c.update(10**9 + 3000, 0.3) is None  # carries on from the last good value
    assert c.energy_j == pytest.approx(3000 * UNIT)


def test_restart_near_zero_keeps_what_was_counted() -> None:
    c = WrappingCounter(5 * 10**10, 0.0, UNIT, max_power_w=1500.0)
    c.update(5 * 10**10 + 2000, 0.1)
    event = c.update(70, 0.2)  # driver reload: the count restarts
    assert event is not None and event.kind == "reset"
    assert c.energy_j == pytest.approx(2000 * UNIT)
    c.update(170, 0.3)
    assert c.energy_j == pytest.approx(2100 * UNIT)


def test_implausible_jump_is_not_counted() -> None:
    c = WrappingCounter(10**9, 0.0, UNIT, max_power_w=1000.0)
    event = c.update(10**9 + counts(5000.0), 0.1)  # 5 kJ in 0.1 s: 50 kW
    assert event is not None and event.kind == "jump"
    assert c.energy_j == 0.0
    c.update(10**9 + counts(5000.0) + 100, 0.2)
    assert c.energy_j == pytest.approx(100 * UNIT)


def test_a_stalled_counter_that_catches_up_is_counted_whole() -> None:
    c = WrappingCounter(10**9, 0.0, UNIT, max_power_w=800.0)
    for k in range(1, 21):  # read every 0.1 s for 2 s, the counter never moves
        assert c.update(10**9, k * 0.1) is None
    # Then it catches up with 2 s at 500 W = 1000 J: more than 800 W x 0.1 s, but not
    # more than 800 W x 2 s since the counter last changed.
    assert c.update(10**9 + counts(1000.0), 2.1) is None
    assert c.energy_j == pytest.approx(counts(1000.0) * UNIT)


def test_guard_period_is_a_quarter_of_the_32_bit_range() -> None:
    c = WrappingCounter(0, 0.0, UNIT, max_power_w=1500.0)
    assert c.guard_period_s() == pytest.approx(2**32 * UNIT / (4 * 1500.0))


def test_trapezoid_is_exact_for_linear_power() -> None:
    integ = PowerIntegrator()
    for t in (0.0, 0.5, 1.25, 2.0):
        integ.add(t, 100.0 + 50.0 * t)  # P(t) = 100 + 50 t
    assert integ.energy_j == pytest.approx(100.0 * 2.0 + 25.0 * 2.0**2, rel=1e-12)
    integ.add(1.0, 1e6)  # out of order: dropped
    assert integ.energy_j == pytest.approx(300.0, rel=1e-12)


def test_sample_stamps_the_middle_of_the_call_and_passes_errors() -> None:
    integ = PowerIntegrator()
    before = time.monotonic()
    integ.sample(lambda: (time.sleep(0.02), 200.0)[1])
    after = time.monotonic()
    assert integ.last_t is not None and before + 0.009 < integ.last_t < after - 0.009
    with pytest.raises(RuntimeError):
        integ.sample(lambda: (_ for _ in ()).throw(RuntimeError("gone")))
    assert integ.last_w == 200.0


def test_update_step_probe_sees_the_step_and_drops_failing_readers() -> None:
    start = time.monotonic()

    def stepped() -> int:
        return int((time.monotonic() - start) / 0.01)  # changes every 10 ms

    def broken() -> int:
        raise OSError("gone")

    steps = measure_update_steps(
        {"a": stepped, "b": broken, "c": lambda: 7},
        {"a": stepped(), "b": 0, "c": 7},
        budget_s=0.2,
        changes=5,
    )
    assert steps["a"] == pytest.approx(0.01, abs=0.004)
    assert steps["b"] is None and steps["c"] is None


def test_timed_keeps_the_longest_call() -> None:
    costs: dict[str, float] = {}
    for d in (0.0, 0.02, 0.0):
        timed(costs, "f", time.sleep, d)
    assert 0.015 < costs["f"] < 0.5
    with pytest.raises(ZeroDivisionError):
        timed(costs, "g", lambda: 1 / 0)
    assert "g" in costs
    assert list(itertools.islice(costs, 2)) == ["f", "g"]


def test_update_step_probe_gives_no_step_it_cannot_see_precisely() -> None:
    # a 100 ms counter read every 30 ms (many slow boards read in turn): two changes
    # seen, each known within 30 ms, say nothing useful about the step
    start = time.monotonic()

    def stepped() -> int:
        return int((time.monotonic() - start) / 0.1)

    def slow_stepped() -> int:
        time.sleep(0.03)
        return stepped()

    rough = measure_update_steps(
        {"a": slow_stepped}, {"a": 0}, budget_s=0.25, changes=4, max_relative_error=0.05
    )
    assert rough["a"] is None
    fine = measure_update_steps(
        {"a": stepped}, {"a": stepped()}, budget_s=0.35, changes=4, max_relative_error=0.05
    )
    assert fine["a"] == pytest.approx(0.1, abs=0.002)
