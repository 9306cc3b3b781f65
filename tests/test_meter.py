"""EnergyMeter phase accounting against the exact integral of power traces.

Energies are checked against the caller's clock (:mod:`fixtures.clock`): instants taken
outside the meter, before entering and after leaving each phase, bound what a correct
meter can report, however loaded the machine is.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

import pytest

from fixtures.clock import Window, assert_between, phase_window, timed
from greenmeter import EnergyMeter
from greenmeter.core.intervals import coalesce
from greenmeter.core.limits import LATENCY_RESERVOIR, MAX_INTERVALS, MAX_WARNINGS
from greenmeter.meter import MeterError
from greenmeter.testing import PowerTrace
from greenmeter.testing.sensors import TraceSensor


def _trace() -> PowerTrace:
    # three power levels, 0.05 s steps, repeating
    return PowerTrace([(0.05, 120.0), (0.05, 40.0), (0.05, 300.0)])


@pytest.fixture
def traced():
    cpu = _trace()
    gpu = PowerTrace([(0.07, 250.0), (0.03, 90.0)], t0=cpu.t0)
    sensor = TraceSensor({"trace:cpu": cpu, "trace:gpu": gpu})
    return sensor, {"trace:cpu": cpu, "trace:gpu": gpu}


def test_phase_energy_matches_trace_for_each_component(traced):
    sensor, traces = traced
    meter = EnergyMeter([sensor], sample_interval_s=0.01)
    with timed(meter.start, meter.stop) as run:
        with phase_window(meter, "train", kind="train") as w:
            time.sleep(0.12)
    snap = meter.snapshot()
    (train,) = snap.phases
    assert train.count == 1 and train.kind == "train"
    for cid, trace in traces.items():
        assert trace.energy_j(*w.inner) > 0
        assert_between(train.energy_j[cid], trace.energy_j, [w])
        # the meter's totals cover the whole run
        assert_between(snap.energy_j[cid], trace.energy_j, [run])
    assert w.end - w.start <= train.duration_s <= w.after - w.before


def test_nested_phases_form_a_tree_and_add_up(traced):
    sensor, traces = traced
    cpu = traces["trace:cpu"]
    with EnergyMeter([sensor]) as meter:
        with phase_window(meter, "fit") as w_fit:
            with phase_window(meter, "train") as w_train:
                time.sleep(0.03)
            with phase_window(meter, "validate") as w_val:
                time.sleep(0.02)
            time.sleep(0.01)
    phases = {p.path: p for p in meter.snapshot().phases}
    assert set(phases) == {("fit",), ("fit", "train"), ("fit", "validate")}
    fit, train, val = phases[("fit",)], phases[("fit", "train")], phases[("fit", "validate")]
    for rec, w in ((fit, w_fit), (train, w_train), (val, w_val)):
        assert_between(rec.energy_j["trace:cpu"], cpu.energy_j, [w])
    children = train.energy_j["trace:cpu"] + val.energy_j["trace:cpu"]
    # the fit's own share lies between the gaps seen from inside and from outside
    own = fit.energy_j["trace:cpu"] - children
    low = (
        cpu.energy_j(w_fit.start, w_train.before)
        + cpu.energy_j(w_train.after, w_val.before)
        + cpu.energy_j(w_val.after, w_fit.end)
    )
    high = (
        cpu.energy_j(w_fit.before, w_train.start)
        + cpu.energy_j(w_train.end, w_val.start)
        + cpu.energy_j(w_val.end, w_fit.after)
    )
    assert low - 1e-9 <= own <= high + 1e-9
    assert own > 0


def test_repeated_phase_accumulates_count_items_and_energy(traced):
    sensor, traces = traced
    windows: list[Window] = []
    with EnergyMeter([sensor]) as meter:
        for i in range(5):
            with phase_window(meter, "step", samples=32, steps=1) as w:
                meter.current_phase().add(tokens=100 * (i + 1))
                time.sleep(0.005)
            windows.append(w)
            time.sleep(0.003)
    (step,) = meter.snapshot().phases
    assert step.count == 5
    assert (step.samples, step.tokens, step.steps) == (160, 1500, 5)
    assert len(step.intervals_mono) == 5
    assert_between(step.energy_j["trace:gpu"], traces["trace:gpu"].energy_j, windows)
    assert sum(w.end - w.start for w in windows) <= step.duration_s
    assert step.duration_s <= sum(w.after - w.before for w in windows)


def _union_j(trace: PowerTrace, spans: list[tuple[float, float]]) -> float:
    return sum(trace.energy_j(a, b) for a, b in coalesce(spans, len(spans) or 1))


def test_concurrent_instances_of_one_phase_count_the_union_once(traced, monkeypatch):
    import greenmeter.core.phases as phases_mod

    monkeypatch.setattr(phases_mod, "MAX_INTERVALS", 10**7)  # keep every union interval
    sensor, traces = traced
    cpu = traces["trace:cpu"]
    n_threads, n_each = 8, 2000
    windows: list[list[Window]] = [[] for _ in range(n_threads)]
    with EnergyMeter([sensor], sample_interval_s=0.01) as meter:
        barrier = threading.Barrier(n_threads)

        def work(k: int) -> None:
            barrier.wait()
            for _ in range(n_each):
                with phase_window(meter, "load", samples=1) as w:
                    pass
                windows[k].append(w)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    snap = meter.snapshot()
    (load,) = snap.phases
    assert load.count == n_threads * n_each
    assert load.samples == n_threads * n_each
    assert not load.open
    # union of intervals, never more than the whole run
    assert load.energy_j["trace:cpu"] <= snap.energy_j["trace:cpu"] + 1e-9
    intervals = load.intervals_mono
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(intervals))  # disjoint, ordered
    every = [w for ws in windows for w in ws]
    low = _union_j(cpu, [w.inner for w in every])
    high = _union_j(cpu, [w.outer for w in every])
    assert low - 1e-9 <= load.energy_j["trace:cpu"] <= high + 1e-9
    assert load.duration_s <= snap.duration_s


def test_phases_in_other_threads_are_top_level_or_explicit_children(traced):
    sensor, _ = traced
    with EnergyMeter([sensor]) as meter:
        with meter.phase("fit") as fit:
            seen: list[tuple[str, ...]] = []

            def worker() -> None:
                with meter.phase("io") as a:
                    seen.append(a.path)
                b = meter.enter("prefetch", parent=fit)
                seen.append(b.path)
                b.exit()

            t = threading.Thread(target=worker)
            t.start()
            t.join()
    assert seen == [("io",), ("fit", "prefetch")]


def test_out_of_order_exit_pauses_a_phase(traced):
    """The Lightning pattern: train paused while validation runs, then resumed."""
    sensor, traces = traced
    box: dict[str, object] = {}
    with EnergyMeter([sensor]) as meter:
        fit = meter.enter("fit")
        with timed(lambda: box.update(t=meter.enter("train")), lambda: meter.exit(box["t"])) as w1:
            time.sleep(0.01)
        val = meter.enter("validate")
        time.sleep(0.01)
        val.exit()
        with timed(lambda: box.update(t=meter.enter("train")), lambda: box["t"].exit()) as w2:
            time.sleep(0.01)
        box["t"].exit()  # idempotent
        fit.exit()
    phases = {p.path: p for p in meter.snapshot().phases}
    train_rec = phases[("fit", "train")]
    assert train_rec.count == 2 and len(train_rec.intervals_mono) == 2
    assert ("fit", "validate") in phases
    assert_between(train_rec.energy_j["trace:cpu"], traces["trace:cpu"].energy_j, [w1, w2])


def test_decorator_measures_each_call(traced):
    sensor, _ = traced
    meter = EnergyMeter([sensor]).start()

    @meter.measure(kind="inference")
    def predict(x: int) -> int:
        time.sleep(0.002)
        return x * 2

    assert [predict(i) for i in range(3)] == [0, 2, 4]
    snap = meter.stop()
    (rec,) = snap.phases
    assert rec.path == ("predict",) and rec.count == 3 and rec.kind == "inference"


def test_sync_hooks_run_at_every_boundary_and_failures_never_raise(traced):
    sensor, _ = traced
    calls: list[int] = []
    with EnergyMeter([sensor]) as meter:
        meter.add_sync_hook(lambda: calls.append(1))
        with meter.phase("a"):
            pass
        assert len(calls) == 2

        def broken() -> None:
            raise RuntimeError("device gone")

        meter.add_sync_hook(broken)
        with meter.phase("b"):
            pass
    codes = [w.code for w in meter.snapshot().warnings]
    assert codes.count("meter.sync_failed") == 1


def test_failing_sensor_degrades_without_raising():
    trace = PowerTrace.constant(100.0)
    failing = {"on": False}
    sensor = TraceSensor({"trace:x": trace}, fail_after=lambda now: failing["on"])
    good_trace = PowerTrace.constant(50.0, t0=trace.t0)
    good = TraceSensor({"trace:y": good_trace})
    good.name = "trace2"
    with EnergyMeter([sensor, good], sample_interval_s=0.01) as meter:
        with meter.phase("before"):
            time.sleep(0.02)
        failing["on"] = True
        with phase_window(meter, "after") as w:
            time.sleep(0.02)
    snap = meter.snapshot()
    after = next(p for p in snap.phases if p.name == "after")
    assert after.energy_j["trace:x"] == 0.0  # frozen at its last value
    assert_between(after.energy_j["trace:y"], good_trace.energy_j, [w])
    assert snap.status["trace:x"].degraded
    assert "sensor.read_error" in {w.code for w in snap.warnings}


def test_snapshot_while_running_includes_open_phases(traced):
    sensor, traces = traced
    cpu = traces["trace:cpu"]
    with EnergyMeter([sensor]) as meter:
        t_before = time.monotonic()
        with meter.phase("long"):
            t_start = time.monotonic()
            time.sleep(0.02)
            t_ask = time.monotonic()
            snap = meter.snapshot()
            t_got = time.monotonic()
            (rec,) = snap.phases
            assert snap.running and rec.open
            energy = rec.energy_j["trace:cpu"]
            assert cpu.energy_j(t_start, t_ask) - 1e-9 <= energy
            assert energy <= cpu.energy_j(t_before, t_got) + 1e-9
    assert not meter.snapshot().running


def test_timeline_memory_is_bounded():
    sensor = TraceSensor({"trace:x": PowerTrace.constant(10.0)})
    with EnergyMeter([sensor], sample_interval_s=0.001, timeline_points=16) as meter:
        time.sleep(0.3)
    tl = meter.snapshot().timeline
    assert 2 <= len(tl) <= 16
    assert all(b.t_mono > a.t_mono for a, b in itertools.pairwise(tl))
    # cumulative energy along the timeline equals the trace
    for p in tl:
        assert p.energy_j["trace:x"] == pytest.approx(10.0 * (p.t_mono - tl[0].t_mono), rel=1e-6)


def test_latency_reservoir_is_bounded(traced):
    sensor, _ = traced
    with EnergyMeter([sensor]) as meter:
        with meter.phase("infer") as ph:
            for i in range(LATENCY_RESERVOIR + 500):
                ph.record_latency(i * 1e-6)
    (rec,) = meter.snapshot().phases
    assert len(rec.latencies_s) == LATENCY_RESERVOIR


def test_peak_power_seen_by_sampler():
    trace = PowerTrace([(0.1, 50.0), (0.1, 400.0)])
    with EnergyMeter([TraceSensor({"trace:x": trace})], sample_interval_s=0.01) as meter:
        with meter.phase("spiky"):
            time.sleep(0.25)
    (rec,) = meter.snapshot().phases
    assert rec.peak_power_w is not None
    assert 300.0 < rec.peak_power_w <= 400.0 + 1e-6


def test_usage_errors_are_clear(traced):
    sensor, _ = traced
    meter = EnergyMeter([sensor])
    with pytest.raises(MeterError, match="not started"):
        meter.enter("x")
    meter.start()
    with pytest.raises(ValueError, match="phase name"):
        meter.enter("a/b")
    with pytest.raises(ValueError, match="unknown phase kind"):
        meter.enter("x", kind="warmup")
    with pytest.raises(ValueError, match="non-negative integer"):
        with meter.phase("x") as ph:
            ph.add(samples=-1)
    meter.stop()
    with pytest.raises(MeterError, match="stopped"):
        meter.enter("x")
    with pytest.raises(ValueError, match="sample_interval_s"):
        EnergyMeter([sensor], sample_interval_s=0)


def test_phase_left_open_is_closed_at_stop_with_a_warning(traced):
    sensor, _ = traced
    meter = EnergyMeter([sensor]).start()
    meter.enter("forgotten")
    snap = meter.stop()
    (rec,) = snap.phases
    assert not rec.open and rec.last_end_mono == snap.ended_mono
    assert "meter.phase_open_at_stop" in {w.code for w in snap.warnings}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_count(traced):
    sensor, _ = traced
    with EnergyMeter([sensor]) as meter:
        with meter.phase("parent"):
            pid = os.fork()
            if pid == 0:  # child: phases are no-ops, nothing may raise
                try:
                    with meter.phase("child", samples=5):
                        pass
                    os._exit(0)
                except BaseException:
                    os._exit(1)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
    paths = {p.path for p in meter.snapshot().phases}
    assert paths == {("parent",)}


def test_interval_list_stays_bounded_and_covers_every_interval(traced):
    sensor, _ = traced
    with EnergyMeter([sensor]) as meter:
        for _ in range(MAX_INTERVALS * 3):
            with meter.phase("tiny"):
                pass
    (rec,) = meter.snapshot().phases
    assert len(rec.intervals_mono) <= MAX_INTERVALS
    assert rec.intervals_mono[0][0] == rec.first_start_mono
    assert rec.intervals_mono[-1][1] == rec.last_end_mono
    covered = sum(b - a for a, b in rec.intervals_mono)
    assert covered >= rec.duration_s - 1e-9


def test_warnings_are_capped_and_the_cap_is_reported():
    class Chatty(TraceSensor):
        def read(self, now: float) -> dict[str, float]:
            self.warn("test.chatty", "one more", None, now)
            return super().read(now)

    sensor = Chatty({"trace:x": PowerTrace.constant(5.0)})
    with EnergyMeter([sensor], sample_interval_s=0.5) as meter:
        for _ in range(MAX_WARNINGS + 200):
            with meter.phase("p"):
                pass
            if _ % 100 == 0:
                meter.snapshot()  # collects the sensor's warnings
    codes = [w.code for w in meter.snapshot().warnings]
    assert codes.count("test.chatty") == MAX_WARNINGS
    assert codes.count("meter.warnings_truncated") == 1
