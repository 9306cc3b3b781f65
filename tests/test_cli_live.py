"""The live display: epoch projection, status text, terminal drawing."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from greenmeter import EnergyMeter
from greenmeter.cli.run.live import (
    EpochTracker,
    LiveDisplay,
    LiveSample,
    format_status,
    is_epoch,
    project,
)
from greenmeter.render.numbers import format_duration, format_energy, format_mass
from greenmeter.testing import PowerTrace
from greenmeter.testing.sensors import TraceSensor


class _Clock:
    """Energy and time the tracker reads, advanced by the test."""

    def __init__(self) -> None:
        self.energy_j = 0.0
        self.t = 100.0

    def epoch(self, tracker: EpochTracker, pid: int, i: int, energy_j: float, s: float) -> None:
        tracker.on_enter(pid, ("fit", f"epoch-{i}"), "custom")
        self.energy_j += energy_j
        self.t += s
        tracker.on_exit(pid, ("fit", f"epoch-{i}"), "custom")


def test_epoch_names_and_kind():
    assert is_epoch("epoch-3", "custom") and is_epoch("Epoch_12", "custom")
    assert is_epoch("epoch7", "custom") and is_epoch("anything", "epoch")
    assert not is_epoch("epochs", "custom") and not is_epoch("train", "train")


def test_projection_excludes_warmup_and_gives_a_range():
    clock = _Clock()
    tracker = EpochTracker(lambda: clock.energy_j, lambda: clock.t)
    clock.energy_j = 40.0  # start-up before the first epoch
    clock.epoch(tracker, 11, 0, 300.0, 20.0)  # warm-up: compilation, caches
    clock.epoch(tracker, 11, 1, 100.0, 10.0)
    clock.epoch(tracker, 22, 1, 999.0, 1.0)  # another rank's epoch: not counted twice
    assert tracker.stats().completed == 2 and not tracker.stats().warmup_excluded
    clock.epoch(tracker, 11, 2, 120.0, 12.0)
    clock.epoch(tracker, 11, 3, 110.0, 11.0)
    stats = tracker.stats()
    assert stats.completed == 4 and stats.used == 3 and stats.warmup_excluded
    assert stats.mean_j == pytest.approx(110.0)
    assert (stats.low_j, stats.high_j) == (100.0, 120.0)
    assert stats.mean_s == pytest.approx(11.0)
    base = 40.0 + 300 + 100 + 999 + 120 + 110
    assert stats.base_energy_j == pytest.approx(base)
    proj = project(stats, total_epochs=10, now_mono=clock.t + 4.0)
    assert proj.remaining_epochs == 6
    assert proj.total_j == pytest.approx(base + 6 * 110.0)
    assert (proj.low_j, proj.high_j) == pytest.approx((base + 600.0, base + 720.0))
    assert proj.eta_s == pytest.approx(6 * 11.0 - 4.0)
    assert project(stats, total_epochs=4, now_mono=clock.t).remaining_epochs == 0


def test_no_projection_from_too_few_epochs():
    clock = _Clock()
    tracker = EpochTracker(lambda: clock.energy_j, lambda: clock.t)
    assert tracker.stats() is None
    clock.epoch(tracker, 1, 0, 10.0, 1.0)
    clock.epoch(tracker, 1, 1, 10.0, 1.0)
    assert project(tracker.stats(), total_epochs=10, now_mono=clock.t) is None


def test_formatting_units():
    assert format_duration(3725.9) == "1:02:05"
    assert format_energy(512.0) == "512 J" and format_energy(7.2e6) == "2 kWh"
    assert format_energy(3.6e6 * 0.3421) == "0.342 kWh"
    assert format_mass(142.0) == "142 g" and format_mass(1420.0) == "1.42 kg"


def test_status_line_content_and_width():
    clock = _Clock()
    tracker = EpochTracker(lambda: clock.energy_j, lambda: clock.t)
    for i, e in enumerate((7.2e6, 3.24e6, 3.96e6, 3.6e6)):
        clock.epoch(tracker, 1, i, e, 600.0)
    stats = tracker.stats()
    sample = LiveSample(
        elapsed_s=2400.0,
        power_w={"gpu0": 250.0, "cpu0": 50.0},
        energy_j=clock.energy_j,
        co2e_g=clock.energy_j * 1e-4,
        epochs=stats,
        projection=project(stats, 6, clock.t),
        total_epochs=6,
        g_per_j=1e-4,
    )
    line = format_status(sample)
    assert "0:40:00" in line and "300 W (gpu0 250, cpu0 50)" in line
    assert "| 5 kWh |" in line and "1.8 kg CO2e" in line
    # 2 epochs left at 1 kWh each (0.9-1.1 after the warm-up) on top of 5 kWh done
    assert "epoch 4/6: total ~7 kWh (6.8 kWh-7.2 kWh) ~2.52 kg CO2e" in line
    assert "ETA 0:20:00" in line
    assert len(format_status(sample, width=40)) == 40


def _meter(power_w: float) -> EnergyMeter:
    return EnergyMeter([TraceSensor({"t:cpu": PowerTrace.constant(power_w)})]).start()


def test_power_per_component_from_successive_readings():
    meter = _meter(125.0)
    try:
        display = LiveDisplay(meter, sys.stderr, mode="off")
        display.sample()
        time.sleep(0.05)
        sample = display.sample()
        assert sample.power_w == {"cpu": pytest.approx(125.0, rel=1e-6)}
        assert sample.energy_j == pytest.approx(125.0 * sample.elapsed_s, rel=1e-6)
    finally:
        meter.stop()


def _pty(rows: int = 24, cols: int = 100) -> tuple[int, int]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    return master, slave


def _read_all(fd: int) -> bytes:
    chunks = []
    while select.select([fd], [], [], 0.05)[0]:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def test_terminal_mode_reserves_the_bottom_row_and_gives_it_back():
    master, slave = _pty()
    meter = _meter(80.0)
    try:
        stream = os.fdopen(slave, "w")
        display = LiveDisplay(meter, stream, mode="tty", period_s=0.0)
        display._next = 0.0
        display.tick()
        display.close()
        data = _read_all(master)
    finally:
        meter.stop()
        stream.close()
        os.close(master)
    reserve, draw, release = (
        data.find(b"\x1b[1;23r"),
        data.find(b"\x1b[24;1H"),
        data.rfind(b"\x1b[1;24r"),
    )
    assert 0 <= reserve < draw < release
    assert b"greenmeter 0:00:00" in data and b"80 W" not in data[:reserve]


def test_run_on_a_terminal_draws_the_status_and_restores_the_terminal(tmp_path, monkeypatch):
    import json

    from greenmeter.cli.run.runner import TESTING_TRACES_ENV

    spec = {"t:cpu": {"steps": [[1.0, 60.0]], "t0": time.monotonic()}}
    (tmp_path / "traces.json").write_text(json.dumps(spec))
    master, slave = _pty(rows=30, cols=120)
    env = {**os.environ, TESTING_TRACES_ENV: str(tmp_path / "traces.json"), "TERM": "xterm"}
    cmd = [sys.executable, "-m", "greenmeter", "run", "-o", str(tmp_path / "r.json"), "--"]
    proc = subprocess.Popen(
        [*cmd, sys.executable, "-c", "import time; print('child says hi'); time.sleep(1.6)"],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    out = b""
    while proc.poll() is None:
        out += _read_all(master)
    out += _read_all(master)
    os.close(master)
    assert proc.returncode == 0
    assert b"child says hi" in out and b"\x1b[1;29r" in out
    assert b"greenmeter 0:00:01 | 60 W" in out
    assert out.rfind(b"\x1b[1;30r") > out.rfind(b"\x1b[1;29r")  # whole screen scrolls again
    assert b"report: " in out
