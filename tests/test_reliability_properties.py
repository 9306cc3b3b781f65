"""Property-based tests of the arithmetic the numbers rest on.

* RAPL wrap arithmetic (:class:`greenmeter.sensors.rapl.CounterTracker`): any sequence of
  increments, observed modulo the counter range no less often than the wrap guard asks,
  sums exactly, and each wrap is counted once;
* the trapezoid integration of the sampled NVML path (``NvmlSensor._sample``): exact for
  power that is linear between samples, within the rule's error bound for steps, never
  decreasing, whatever the interleaving of boundary reads and background polls;
* the energy weighting of a carbon intensity time series (``CarbonAccountant.co2e``):
  equal to an independent overlap computation, invariant under splitting a segment,
  and between the lowest and highest intensity the energy met.

Each test prints how many cases hypothesis ran.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greenmeter.sensors.rapl import NORMAL, RESET, WRAP, WRAP_SLACK_S, CounterTracker

CASES: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_counts() -> Any:
    yield
    print(f"\nproperty cases run: {dict(sorted(CASES.items()))}")


def _count(name: str) -> None:
    CASES[name] = CASES.get(name, 0) + 1


PROPS = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# --------------------------------------------------------------------------------------
# RAPL wrap arithmetic


@PROPS
@given(
    range_uj=st.integers(min_value=1000, max_value=2**48),
    max_power_w=st.floats(min_value=0.01, max_value=1e7, allow_nan=False),
    start_frac=st.floats(min_value=0.0, max_value=0.999999),
    fractions=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=200),
)
def test_wrap_arithmetic_sums_exactly_at_the_guard_period(
    range_uj: int, max_power_w: float, start_frac: float, fractions: list[float]
) -> None:
    """Reads every guard period: each increment is at most what max power draws in it."""
    _count("wrap_guard_period")
    period_s = (range_uj * 1e-6) / (4.0 * max_power_w)  # the guard's own rule, unclamped
    most_uj = math.floor(max_power_w * 1e6 * period_s)  # a quarter of the range
    start = int(start_frac * range_uj)
    tracker = CounterTracker(range_uj, max_power_w, start, 0.0)
    total = 0
    t = 0.0
    for f in fractions:
        d = int(f * most_uj)
        total += d
        t += period_s
        event = tracker.update((start + total) % range_uj, t)
        assert event in (NORMAL, WRAP)
    assert tracker.total_uj == total  # integers: exact
    assert tracker.wraps == (start + total) // range_uj
    assert tracker.resets == 0
    assert not tracker.could_miss_wrap(t)


@PROPS
@given(
    range_uj=st.integers(min_value=1000, max_value=2**48),
    max_power_w=st.floats(min_value=0.01, max_value=1e7, allow_nan=False),
    start=st.integers(min_value=0),
    increments=st.lists(st.integers(min_value=0), min_size=1, max_size=100),
)
def test_wrap_arithmetic_any_increment_below_the_range(
    range_uj: int, max_power_w: float, start: int, increments: list[int]
) -> None:
    """Increments up to range - 1, each read after the time max power needs to draw it."""
    _count("wrap_below_range")
    start %= range_uj
    incs = [i % range_uj for i in increments]
    tracker = CounterTracker(range_uj, max_power_w, start, 0.0)
    total = 0
    t = 0.0
    for d in incs:
        total += d
        t += d / (max_power_w * 1e6)  # just long enough to draw d at max power
        tracker.update((start + total) % range_uj, t)
    assert tracker.total_uj == total
    assert tracker.wraps == (start + total) // range_uj
    assert tracker.resets == 0


@PROPS
@given(
    range_uj=st.integers(min_value=1000, max_value=2**48),
    max_power_w=st.floats(min_value=0.01, max_value=1e5),
    raw0_frac=st.floats(min_value=0.0, max_value=0.999999),
    raw1_frac=st.floats(min_value=0.0, max_value=0.999999),
    dt=st.floats(min_value=0.0, max_value=100.0),
    done=st.integers(min_value=0, max_value=2**40),
)
def test_a_backwards_step_is_a_wrap_only_if_the_time_allows_it(
    range_uj: int, max_power_w: float, raw0_frac: float, raw1_frac: float, dt: float, done: int
) -> None:
    """A counter that falls back: a wrap when max power could have drawn the forward
    distance in the time since the last read (plus the counter's update slack), else a
    reset (driver reload), which is never counted as a wrap."""
    _count("wrap_or_reset")
    raw0, raw1 = int(raw0_frac * range_uj), int(raw1_frac * range_uj)
    if raw1 >= raw0:
        raw0, raw1 = raw1, raw0
    if raw1 == raw0:
        return
    tracker = CounterTracker(range_uj, max_power_w, raw0, 0.0)
    tracker.total_uj = done  # energy counted before
    allowed = max_power_w * 1e6 * (dt + WRAP_SLACK_S)
    forward = raw1 + range_uj - raw0
    event = tracker.update(raw1, dt)
    if forward <= allowed:
        assert event == WRAP and tracker.wraps == 1 and tracker.resets == 0
        assert tracker.total_uj == done + forward
    else:
        assert event == RESET and tracker.wraps == 0 and tracker.resets == 1
        # after a reset only what the counter shows since it restarted is added, and
        # only when that much could have been drawn since the last read
        assert tracker.total_uj == done + (raw1 if raw1 <= allowed else 0)


# --------------------------------------------------------------------------------------
# trapezoid integration of the sampled NVML path


def _nvml_sensor(monkeypatch: pytest.MonkeyPatch, clock: list[float], power_w: list[float]) -> Any:
    """An NvmlSensor on a sampled board whose NVML calls and clock are scripted."""
    from greenmeter.sensors import nvml
    from greenmeter.sensors.base import ComponentInfo, ComponentKind, Method, Scope

    def field_values(handle: object, ids: list[int]) -> list[Any]:
        assert ids == [nvml.NVML_FI_DEV_POWER_INSTANT]
        value = SimpleNamespace(dVal=power_w[0] * 1000.0)  # mW
        return [SimpleNamespace(nvmlReturn=0, valueType=0, value=value)]

    fake = SimpleNamespace(
        nvmlDeviceGetFieldValues=field_values, NVMLError=RuntimeError, nvmlShutdown=lambda: None
    )
    monkeypatch.setattr(nvml, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    board = nvml._Board(index=0, handle=object(), uuid="GPU-prop")
    device = nvml._Device(board=board, component_id="nvml:GPU-prop", source=nvml.SOURCE_INSTANT)
    info = ComponentInfo(
        id="nvml:GPU-prop",
        kind=ComponentKind.GPU,
        scope=Scope.GPU_BOARD,
        method=Method.SAMPLED,
        sensor="nvml",
        label="prop",
        host="h",
        resolution_s=0.3,
    )
    return nvml.NvmlSensor(
        fake, [device], [info], sample_interval_s=0.1, call_costs_s={}
    )  # samples once at clock[0]


samples = st.lists(
    st.tuples(
        st.floats(min_value=1e-4, max_value=5.0),  # time since the previous sample (s)
        st.booleans(),  # a boundary read (True) or a background poll (False)
    ),
    min_size=1,
    max_size=60,
)


@PROPS
@given(
    a=st.floats(min_value=0.0, max_value=700.0),
    b=st.floats(min_value=-50.0, max_value=50.0),
    steps=samples,
)
def test_trapezoid_is_exact_for_linear_power(
    monkeypatch: pytest.MonkeyPatch, a: float, b: float, steps: list[tuple[float, bool]]
) -> None:
    _count("trapezoid_linear")
    t_end = sum(dt for dt, _ in steps)
    if b < 0:  # keep power non-negative over the whole span
        b = max(b, -a / t_end)

    def p(t: float) -> float:
        return a + b * t

    clock, power = [0.0], [p(0.0)]
    sensor = _nvml_sensor(monkeypatch, clock, power)
    t = 0.0
    last = 0.0
    for dt, boundary in steps:
        t += dt
        clock[0], power[0] = t, p(t)
        if boundary:
            value = sensor.read(t)["nvml:GPU-prop"]
            assert value >= last - 1e-9
            last = value
        else:
            sensor.poll(t)
    total = sensor.read(t)["nvml:GPU-prop"]
    exact = a * t + b * t * t / 2.0
    assert total == pytest.approx(exact, rel=1e-9, abs=1e-9)


@PROPS
@given(
    levels=st.lists(st.floats(min_value=0.0, max_value=700.0), min_size=1, max_size=8),
    step_s=st.floats(min_value=0.05, max_value=3.0),
    gaps=st.lists(st.floats(min_value=1e-3, max_value=0.5), min_size=2, max_size=80),
)
def test_trapezoid_error_is_bounded_for_power_steps(
    monkeypatch: pytest.MonkeyPatch, levels: list[float], step_s: float, gaps: list[float]
) -> None:
    """Piecewise-constant power: a gap within one step is exact; a gap that holds a step
    change errs by at most gap x (highest - lowest level)."""
    from greenmeter.testing.trace import PowerTrace

    _count("trapezoid_steps")
    trace = PowerTrace([(step_s, w) for w in levels], t0=0.0, repeat=True)
    clock, power = [0.0], [trace.power_w(0.0)]
    sensor = _nvml_sensor(monkeypatch, clock, power)
    t = 0.0
    bound = 0.0
    for gap in gaps:
        t_prev, t = t, t + gap
        clock[0], power[0] = t, trace.power_w(t)
        sensor.read(t)
        if math.floor((t + 1e-9) / step_s) != math.floor((t_prev - 1e-9) / step_s):
            bound += gap * (max(levels) - min(levels))  # a step change may lie inside
    total = sensor.read(t)["nvml:GPU-prop"]
    truth = trace.energy_j(0.0, t)
    assert abs(total - truth) <= bound + 1e-6 * max(1.0, truth)


@PROPS
@given(
    times=st.lists(st.floats(min_value=0.0, max_value=100.0), min_size=2, max_size=40),
    powers=st.lists(st.floats(min_value=0.0, max_value=1000.0), min_size=40, max_size=40),
)
def test_sampled_energy_never_decreases_even_with_a_clock_that_stalls(
    monkeypatch: pytest.MonkeyPatch, times: list[float], powers: list[float]
) -> None:
    """Samples whose instant is not after the previous one add nothing and take nothing."""
    _count("trapezoid_monotone")
    clock, power = [times[0]], [powers[0]]
    sensor = _nvml_sensor(monkeypatch, clock, power)
    last = 0.0
    for t, w in zip(times[1:], powers[1:], strict=False):
        clock[0], power[0] = t, w
        value = sensor.read(t)["nvml:GPU-prop"]
        assert math.isfinite(value) and value >= last
        last = value


# --------------------------------------------------------------------------------------
# carbon time-series energy weighting

T0 = 1_714_521_600  # 2024-05-01T00:00:00Z
HOUR = 3600.0


def _accountant(tmp: Path, values: list[float], pue: float) -> Any:
    from greenmeter.carbon import CarbonConfig, resolve

    path = tmp / "series.json"
    path.write_text(json.dumps([[T0 + i * HOUR, v] for i, v in enumerate(values)]))
    return resolve(
        CarbonConfig(intensity_series=path, intensity_g_per_kwh=300.0, pue=pue),
        cwd=tmp,
        env={},
    )


def _reference_g(
    values: list[float], pue: float, segments: list[tuple[float, float, float]]
) -> float:
    """Independent overlap computation ('nearest' outside the series)."""
    starts = [T0 + i * HOUR for i in range(len(values))]
    ends = [*starts[1:], starts[-1] + HOUR]
    grams = 0.0
    for a, b, e in segments:
        kwh = e * pue / 3.6e6
        if b <= a:
            if a < starts[0]:
                v = values[0]
            elif a >= ends[-1]:
                v = values[-1]
            else:
                v = next(v for s, t, v in zip(starts, ends, values, strict=True) if s <= a < t)
            grams += kwh * v
            continue
        pieces = [(-math.inf, starts[0], values[0])]
        pieces += list(zip(starts, ends, values, strict=True))
        pieces += [(ends[-1], math.inf, values[-1])]
        for s, t, v in pieces:
            overlap = min(b, t) - max(a, s)
            if overlap > 0:
                grams += kwh * v * overlap / (b - a)
    return grams


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=timezone.utc)


segment = st.tuples(
    st.floats(min_value=-2.0, max_value=14.0),  # start, hours after T0
    st.floats(min_value=0.0, max_value=6.0),  # length, hours
    st.just(0.0) | st.floats(min_value=1e-6, max_value=5e7),  # energy, J (no subnormals)
)


def test_series_energy_weighting(tmp_path: Path) -> None:
    @settings(max_examples=300, deadline=None)
    @given(
        values=st.lists(st.floats(min_value=0.0, max_value=1500.0), min_size=2, max_size=12),
        pue=st.floats(min_value=1.0, max_value=2.5),
        raw=st.lists(segment, min_size=1, max_size=6),
        cut=st.floats(min_value=0.0, max_value=1.0),
    )
    def check(values: list[float], pue: float, raw: list[Any], cut: float) -> None:
        _count("series_weighting")
        acct = _accountant(tmp_path, values, pue)
        segs = []
        for start_h, length_h, energy in raw:
            a = _utc(T0 + start_h * HOUR)
            b = _utc(T0 + (start_h + length_h) * HOUR)
            segs.append((a, b, energy))
        got = acct.co2e(segs, {})
        exact = [(a.timestamp(), b.timestamp(), e) for a, b, e in segs]
        want = _reference_g(values, pue, exact)
        assert got.operational_g == pytest.approx(want, rel=1e-9, abs=1e-9)
        energy = sum(e for _, _, e in segs)
        assert got.it_energy_j == pytest.approx(energy, rel=1e-12, abs=1e-12)
        # energy-weighted: the effective intensity lies within the values met
        if energy > 0:
            assert min(values) - 1e-9 <= got.intensity_g_per_kwh <= max(values) + 1e-9
        # splitting a segment (power constant within it) changes nothing
        a, b, e = segs[0]
        if b > a:
            m = _utc(a.timestamp() + cut * (b.timestamp() - a.timestamp()))
            f = (m.timestamp() - a.timestamp()) / (b.timestamp() - a.timestamp())
            split = [(a, m, e * f), (m, b, e * (1 - f)), *segs[1:]]
            assert acct.co2e(split, {}).operational_g == pytest.approx(
                got.operational_g, rel=1e-9, abs=1e-9
            )

    check()


def test_series_weighting_is_not_a_plain_mean(tmp_path: Path) -> None:
    """Hour 0 at 100 g/kWh, hour 1 at 900: 3 kWh in hour 1 and 1 kWh in hour 0."""
    acct = _accountant(tmp_path, [100.0, 900.0], 1.0)
    segs = [
        (_utc(T0), _utc(T0 + HOUR), 3.6e6),
        (_utc(T0 + HOUR), _utc(T0 + 2 * HOUR), 3 * 3.6e6),
    ]
    got = acct.co2e(segs, {})
    assert got.operational_g == pytest.approx(100.0 + 3 * 900.0)
    assert got.intensity_g_per_kwh == pytest.approx(700.0)  # the plain mean would be 500
