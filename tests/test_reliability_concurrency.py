"""Concurrency: many threads at once, and forked DataLoader workers that open phases.

The truth for a phase is the trace's exact energy over the union of its instances'
intervals. The instants come from a phase listener, which the meter calls with the very
``time.monotonic()`` values it read its counters at, so the check is exact (up to float
rounding), not statistical.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from greenmeter import EnergyMeter
from greenmeter.report import Report
from greenmeter.testing.sensors import TraceSensor
from greenmeter.testing.trace import PowerTrace

Event = tuple[float, int]  # (t_mono, +1 enter / -1 exit)


class Recorder:
    """A phase listener that keeps every boundary instant per path."""

    def __init__(self) -> None:
        self.events: dict[tuple[str, ...], list[Event]] = defaultdict(list)
        self.items: dict[tuple[str, ...], int] = defaultdict(int)
        self._lock = threading.Lock()

    def phase_entered(self, path: tuple[str, ...], kind: str, t_mono: float) -> None:
        with self._lock:
            self.events[path].append((t_mono, 1))

    def phase_exited(self, path: tuple[str, ...], t_mono: float) -> None:
        with self._lock:
            self.events[path].append((t_mono, -1))

    def items_added(
        self, path: tuple[str, ...], samples: int | None, tokens: int | None, steps: int | None
    ) -> None:
        with self._lock:
            self.items[path] += samples or 0

    def union(self, path: tuple[str, ...]) -> list[tuple[float, float]]:
        """The union of the path's instances as disjoint (start, end) intervals."""
        out: list[tuple[float, float]] = []
        depth = 0
        start = 0.0
        # at equal instants exits come first: the meter orders boundaries under its lock
        for t, step in sorted(self.events[path], key=lambda e: (e[0], e[1])):
            if step > 0:
                if depth == 0:
                    start = t
                depth += 1
            else:
                depth -= 1
                assert depth >= 0, f"{path}: an exit before its entry"
                if depth == 0:
                    out.append((start, t))
        assert depth == 0, f"{path}: {depth} instance(s) never closed"
        return out


def _truth(trace: PowerTrace, intervals: list[tuple[float, float]]) -> float:
    return sum(trace.energy_j(a, b) for a, b in intervals)


#: A busy power pattern: the energy of an interval depends on exactly where it lies.
BUSY_STEPS = [(0.0013, 95.0), (0.0007, 310.0), (0.0021, 40.0), (0.0009, 180.0)]


@pytest.mark.slow
def test_eight_threads_hundred_thousand_boundaries_each() -> None:
    threads_n, iterations = 8, 25_000  # 4 boundaries per iteration: 10^5 per thread
    trace = PowerTrace(BUSY_STEPS)
    meter = EnergyMeter([TraceSensor({"trace:cpu": trace})], sample_interval_s=0.01)
    recorder = Recorder()
    meter.add_listener(recorder)
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(iterations):
                with meter.phase("shared"):
                    with meter.phase(f"t{i}") as ph:
                        ph.add(samples=1)
        except BaseException as exc:  # pragma: no cover - the assertion shows it
            errors.append(exc)

    started = time.perf_counter()
    with meter:
        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    elapsed = time.perf_counter() - started
    assert errors == []
    snap = meter.snapshot()
    phases = {p.path: p for p in snap.phases}
    assert set(phases) == {("shared",)} | {("shared", f"t{i}") for i in range(threads_n)}
    assert phases[("shared",)].count == threads_n * iterations
    worst = 0.0
    for path, rec in phases.items():
        if path != ("shared",):
            assert rec.count == iterations and rec.samples == iterations
        union = recorder.union(path)
        truth = _truth(trace, union)
        assert rec.energy_j["trace:cpu"] == pytest.approx(truth, rel=1e-9, abs=1e-9), path
        assert rec.duration_s == pytest.approx(sum(b - a for a, b in union), rel=1e-9, abs=1e-9)
        assert not rec.open
        worst = max(worst, abs(rec.energy_j["trace:cpu"] - truth) / truth)
    # the shared phase, open in some thread nearly all the time, holds each child's energy
    shared = phases[("shared",)].energy_j["trace:cpu"]
    assert shared <= snap.energy_j["trace:cpu"] + 1e-9
    assert all(phases[("shared", f"t{i}")].energy_j["trace:cpu"] <= shared for i in range(8))
    total_truth = trace.energy_j(snap.started_mono, snap.ended_mono)  # type: ignore[arg-type]
    assert snap.energy_j["trace:cpu"] == pytest.approx(total_truth, rel=1e-12)
    boundaries = threads_n * iterations * 4
    print(
        f"\n{boundaries} boundaries from {threads_n} threads in {elapsed:.1f} s "
        f"({elapsed / boundaries * 1e6:.1f} us each); worst phase error vs truth {worst:.1e}"
    )


torch = pytest.importorskip("torch")


class _Dataset(torch.utils.data.Dataset):  # type: ignore[misc]
    """Opens a meter phase for every item, inside the DataLoader's forked workers."""

    def __init__(self, meter: EnergyMeter, n: int) -> None:
        self.meter = meter
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with self.meter.phase("load") as ph:
            ph.add(samples=1)
            ph.record_latency(0.001)
            time.sleep(0.002)
            return torch.full((8,), float(i)), os.getpid()


def test_dataloader_fork_workers_do_not_double_count(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    trace = PowerTrace(BUSY_STEPS)
    path = tmp_path / "loader.json"
    meter = EnergyMeter(
        [TraceSensor({"trace:cpu": trace})],
        sample_interval_s=0.02,
        report_path=path,
        checkpoint_interval_s=0.1,
        carbon=False,
    )
    recorder = Recorder()
    meter.add_listener(recorder)
    n_items, batch, epochs = 96, 8, 2
    worker_pids: set[int] = set()
    with meter:
        loader = torch.utils.data.DataLoader(
            _Dataset(meter, n_items),
            batch_size=batch,
            num_workers=2,
            multiprocessing_context="fork",
        )
        for _ in range(epochs):
            with meter.phase("train", kind="train"):
                for x, pid in loader:
                    worker_pids.update(int(p) for p in pid)
                    with meter.phase("step") as ph:
                        (x @ x.T).sum().item()
                        ph.add(samples=len(x))
    snap = meter.snapshot()
    phases = {p.path: p for p in snap.phases}
    assert worker_pids and os.getpid() not in worker_pids  # items came from forked workers
    # the workers' phases are no-ops: the parent's meter never sees them
    assert set(phases) == {("train",), ("train", "step")}
    assert ("load",) not in recorder.events
    assert phases[("train",)].count == epochs
    assert phases[("train", "step")].count == epochs * n_items // batch
    assert phases[("train", "step")].samples == epochs * n_items
    for p, rec in phases.items():
        truth = _truth(trace, recorder.union(p))
        assert rec.energy_j["trace:cpu"] == pytest.approx(truth, rel=1e-9, abs=1e-9), p
    total = trace.energy_j(snap.started_mono, snap.ended_mono)  # type: ignore[arg-type]
    assert snap.energy_j["trace:cpu"] == pytest.approx(total, rel=1e-12)
    assert phases[("train",)].energy_j["trace:cpu"] <= snap.energy_j["trace:cpu"]
    report = Report.load(path)
    assert report.status == "complete"
    assert report.phase("train/step").items.samples == epochs * n_items
    err = capfd.readouterr().err  # the parent's closing line only, nothing from workers
    assert err.count("greenmeter") == 1 and err.startswith("greenmeter: energy")
