"""meter.track(): loop phases against the exact integral of a power trace.

Energies are checked against the caller's clock (:mod:`fixtures.clock`): a loop phase's
boundaries lie between instants the loop body takes itself and instants taken outside
the loop.
"""

from __future__ import annotations

import gc
import itertools
import subprocess
import sys
import time
from collections import namedtuple

import pytest

from fixtures.clock import Window, assert_between
from greenmeter import EnergyMeter
from greenmeter.loops import batch_size
from greenmeter.testing import PowerTrace
from greenmeter.testing.sensors import TraceSensor


def _bodies(meter, items, phase, **options):
    """Run a tracked loop; the instants before/after it and at each body's start and end."""
    before = time.monotonic()
    starts, ends = [], []
    for item in meter.track(items, phase, **options):
        starts.append(time.monotonic())
        time.sleep(0.004)
        yield item
        ends.append(time.monotonic())
    after = time.monotonic()
    yield Window(before, starts[0], ends[-1], after), starts, ends


@pytest.fixture
def traced():
    trace = PowerTrace([(0.013, 180.0), (0.007, 35.0), (0.011, 260.0)])
    return TraceSensor({"trace:cpu": trace}), trace


def _phases(meter):
    return {p.path: p for p in meter.snapshot().phases}


class _Shaped:
    """A minimal tensor-like object: only a ``shape``."""

    def __init__(self, *shape: int) -> None:
        self.shape = shape


def test_batch_size_duck_typing():
    assert batch_size(_Shaped(7, 3)) == 7
    assert batch_size((_Shaped(5, 2), _Shaped(9))) == 5
    assert batch_size({"ids": [1, 2], "x": {"pixels": _Shaped(4, 8)}}) == 4
    assert batch_size([(_Shaped(), 1), _Shaped(6)]) == 6  # scalar shapes are skipped
    assert batch_size([10, 11, 12]) == 3  # no shape anywhere: len()
    assert batch_size({"text": "abc", "labels": [0, 1]}) == 2  # first sized non-string
    assert batch_size("a sentence") is None
    assert batch_size(42) is None


def test_loop_phase_energy_steps_and_partial_last_batch(traced):
    sensor, trace = traced
    batches = [_Shaped(8, 2)] * 4 + [_Shaped(3, 2)]  # 35 samples, last batch partial
    with EnergyMeter([sensor], sample_interval_s=0.01) as meter:
        *seen, (window, _, _) = _bodies(meter, batches, "train")
        train = _phases(meter)[("train",)]
    assert sum(b.shape[0] for b in seen) == 35
    assert train.kind == "train" and train.count == 1
    assert train.steps == 5 and train.samples == 35 and train.tokens is None
    assert trace.energy_j(*window.inner) > 1.0
    assert_between(train.energy_j["trace:cpu"], trace.energy_j, [window])
    assert not train.open


def test_custom_sample_and_token_counters(traced):
    sensor, _ = traced
    Batch = namedtuple("Batch", "ids mask")
    data = [Batch([[1, 2, 3], [4, 5, 0]], [[1, 1, 1], [1, 1, 0]]), Batch([[7, 0, 0]], [[1, 0, 0]])]
    with EnergyMeter([sensor]) as meter:
        for _ in meter.track(
            data,
            "predict",
            samples=lambda b: len(b.ids),
            tokens=lambda b: sum(map(sum, b.mask)),
        ):
            pass
        rec = _phases(meter)[("predict",)]
    assert (rec.samples, rec.tokens, rec.steps) == (3, 6, 2)


def test_windows_partition_the_loop(traced):
    sensor, trace = traced
    items = list(range(10))
    with EnergyMeter([sensor]) as meter:
        *_, (loop_w, starts, ends) = _bodies(meter, items, "train", window_steps=4)
        phases = _phases(meter)
    windows = [phases[("train", f"window-{k}")] for k in range(3)]
    assert ("train", "window-3") not in phases  # no empty window at the end
    assert [w.steps for w in windows] == [4, 4, 2]
    assert [w.samples for w in windows] == [None, None, None]  # ints have no batch size
    assert all(w.kind == "window" for w in windows)
    assert [w.attrs["first_step"] for w in windows] == ["0", "4", "8"]
    loop = phases[("train",)]
    for k, w in enumerate(windows):
        first, last = 4 * k, min(4 * k + 3, len(items) - 1)
        # a window opens when its first item is fetched, closes when the next one is
        caller = Window(
            before=ends[first - 1] if first else loop_w.before,
            start=starts[first],
            end=ends[last],
            after=starts[last + 1] if last + 1 < len(items) else loop_w.after,
        )
        assert_between(w.energy_j["trace:cpu"], trace.energy_j, [caller])
    # consecutive windows share their boundary instants: no gap, no overlap
    for a, b in itertools.pairwise(windows):
        assert a.intervals_mono[-1][1] <= b.intervals_mono[0][0]
    covered = sum(w.duration_s for w in windows)
    assert covered == pytest.approx(loop.duration_s, abs=2e-3)
    assert_between(loop.energy_j["trace:cpu"], trace.energy_j, [loop_w])


def test_epochs_nest_under_the_loop_phase_and_accumulate(traced):
    sensor, trace = traced
    loops: list[Window] = []
    with EnergyMeter([sensor]) as meter:
        with meter.phase("fit"):
            for epoch in range(3):
                *_, (w, _, _) = _bodies(meter, [_Shaped(2)] * (epoch + 1), "train", epoch=epoch)
                loops.append(w)
        phases = _phases(meter)
    train = phases[("fit", "train")]
    assert train.count == 3 and train.steps == 6 and train.samples == 12
    epochs = [phases[("fit", "train", f"epoch-{i}")] for i in range(3)]
    assert [e.kind for e in epochs] == ["epoch"] * 3
    assert [e.steps for e in epochs] == [1, 2, 3]
    assert [e.attrs["epoch"] for e in epochs] == ["0", "1", "2"]
    assert_between(train.energy_j["trace:cpu"], trace.energy_j, loops)
    for epoch, w in zip(epochs, loops, strict=True):
        assert_between(epoch.energy_j["trace:cpu"], trace.energy_j, [w])
    assert sum(e.energy_j["trace:cpu"] for e in epochs) <= train.energy_j["trace:cpu"] + 1e-9


def test_windows_nest_under_the_epoch(traced):
    sensor, _ = traced
    with EnergyMeter([sensor]) as meter:
        for _ in meter.track(range(5), "train", epoch=1, window_steps=2):
            pass
        phases = _phases(meter)
    assert [phases[("train", "epoch-1", f"window-{k}")].steps for k in range(3)] == [2, 2, 1]


def test_break_closes_the_phase_at_generator_close(traced):
    sensor, trace = traced
    with EnergyMeter([sensor]) as meter:
        before = time.monotonic()
        for i, _ in enumerate(meter.track(range(100), "train", window_steps=3)):
            if i == 0:
                first = time.monotonic()
            if i == 4:
                last = time.monotonic()
                break
            time.sleep(0.002)
        t_after_break = time.monotonic()
        time.sleep(0.03)  # energy here must not count in the loop
        phases = _phases(meter)
    train = phases[("train",)]
    assert not train.open and train.steps == 5
    assert train.last_end_mono <= t_after_break
    assert not phases[("train", "window-1")].open
    window = Window(before, first, last, t_after_break)
    assert_between(train.energy_j["trace:cpu"], trace.energy_j, [window])


def test_exception_in_body_closes_the_phase_and_propagates(traced):
    sensor, _ = traced
    with EnergyMeter([sensor]) as meter:
        with pytest.raises(KeyError):
            for _ in meter.track(range(10), "train"):
                raise KeyError("boom")
        train = _phases(meter)[("train",)]
        assert not train.open and train.steps == 1


def test_abandoned_generator_closes_at_garbage_collection(traced):
    sensor, _ = traced
    with EnergyMeter([sensor]) as meter:
        it = meter.track(range(10), "train")
        next(it)
        assert _phases(meter)[("train",)].open
        del it
        gc.collect()
        assert not _phases(meter)[("train",)].open


def test_nothing_is_opened_before_the_first_item(traced):
    sensor, _ = traced
    with EnergyMeter([sensor]) as meter:
        it = meter.track([1, 2], "train")
        assert ("train",) not in _phases(meter)
        assert list(it) == [1, 2]


def test_user_phases_inside_the_loop_become_children(traced):
    sensor, _ = traced
    with EnergyMeter([sensor]) as meter:
        for _ in meter.track(range(2), "train", window_steps=1):
            with meter.phase("forward"):
                pass
        phases = _phases(meter)
    assert phases[("train", "window-0", "forward")].count == 1
    assert phases[("train", "window-1", "forward")].count == 1


def test_invalid_options_fail_clearly(traced):
    sensor, _ = traced
    with EnergyMeter([sensor]) as meter:
        with pytest.raises(ValueError, match="window_steps"):
            meter.track([], "train", window_steps=0)
        with pytest.raises(ValueError, match="epoch"):
            meter.track([], "train", epoch=-1)
        with pytest.raises(TypeError, match="samples="):
            meter.track([], "train", samples=3)
        with pytest.raises(ValueError, match="non-negative integer"):
            list(meter.track([1], "train", samples=lambda b: -2))


def test_core_imports_no_torch():
    code = (
        "import sys, greenmeter, greenmeter.loops, greenmeter.meter\n"
        "bad = [m for m in ('torch', 'numpy', 'pandas', 'transformers') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_counts_reach_the_meter_at_boundaries_and_flush_intervals(traced, monkeypatch):
    import greenmeter.loops as loops

    sensor, _ = traced
    with EnergyMeter([sensor]) as meter:
        monkeypatch.setattr(loops, "FLUSH_INTERVAL_S", 1e9)  # never by time
        for i, _ in enumerate(meter.track(range(6), "train")):
            if i == 3:  # no lock taken per step: nothing handed over yet
                assert _phases(meter)[("train",)].steps is None
        assert _phases(meter)[("train",)].steps == 6  # flushed at the loop's end
        monkeypatch.setattr(loops, "FLUSH_INTERVAL_S", 0.0)  # every step
        for i, _ in enumerate(meter.track(range(6), "predict")):
            assert _phases(meter)[("predict",)].steps == i + 1
