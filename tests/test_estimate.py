"""EstimateSensor and the bundled CPU rated-power table."""

from __future__ import annotations

import json
import os
import time

import pytest

from greenmeter.sensors.base import ComponentKind, Method, Scope
from greenmeter.sensors.estimate import (
    DEFAULT_W_PER_LOGICAL_CPU,
    RAM_W_PER_GB,
    EstimateSensor,
    cpu_power_table,
    normalise_cpu_name,
    rated_power_w,
)
from greenmeter.sensors.regenerate_cpu_power import convert, main


class Clock:
    """A settable cumulative busy-CPU-seconds source."""

    def __init__(self) -> None:
        self.busy_s = 1000.0

    def __call__(self) -> float:
        return self.busy_s


def test_cpu_energy_is_rated_power_times_busy_share() -> None:
    busy = Clock()
    s = EstimateSensor(ram=False, rated_power_w=120.0, logical_cpus=8, busy_cpu_s=busy)
    assert s.read(time.monotonic()) == {"estimate:cpu": 0.0}
    busy.busy_s += 4.0  # four CPU-seconds busy: half the machine for one second
    assert s.read(time.monotonic())["estimate:cpu"] == pytest.approx(120.0 * 4.0 / 8)
    busy.busy_s -= 1.0  # a process of the tree vanished: energy never goes backwards
    assert s.read(time.monotonic())["estimate:cpu"] == pytest.approx(60.0)
    busy.busy_s += 3.0  # net +2 CPU-s since the previous read
    assert s.read(time.monotonic())["estimate:cpu"] == pytest.approx(60.0 + 120.0 * 3.0 / 8)
    assert s.poll_interval_s is None  # cumulative: no sampling needed


def test_ram_energy_is_watts_per_gb_times_time() -> None:
    s = EstimateSensor(cpu=False, ram_gb=16.0)
    t_a = time.monotonic()
    e_a = s.read(t_a)["estimate:ram"]
    t_b = t_a + 2.5
    e_b = s.read(t_b)["estimate:ram"]
    assert e_b - e_a == pytest.approx(RAM_W_PER_GB * 16.0 * 2.5)
    assert s.read(t_a)["estimate:ram"] == e_b  # an earlier instant never lowers the total


def test_components_are_labelled_with_model_constants_and_source() -> None:
    s = EstimateSensor(cpu_model="Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", ram_gb=8.0)
    comps = {c.id: c for c in s.components()}
    assert set(comps) == {"estimate:cpu", "estimate:ram"}
    cpu, ram = comps["estimate:cpu"], comps["estimate:ram"]
    assert cpu.method == Method.ESTIMATED and ram.method == Method.ESTIMATED
    assert (cpu.kind, ram.kind) == (ComponentKind.CPU, ComponentKind.RAM)
    assert cpu.scope == Scope.MACHINE
    for c in (cpu, ram):
        assert {"model", "constants", "source", "cpu_model"} <= set(c.detail)
    assert "Intel Xeon Gold 6248" in cpu.detail["constants"]
    assert "codecarbon" in cpu.detail["source"] and "MIT" in cpu.detail["source"]
    assert f"ram_w_per_gb={RAM_W_PER_GB:g}" in ram.detail["constants"]
    assert "crucial.com" in ram.detail["source"]
    rows = dict(cpu_power_table()["rows"])
    assert s.rated_power_w == rows["Intel Xeon Gold 6248"] * _sockets()


def _sockets() -> int:
    from greenmeter.sensors.estimate import _socket_count

    return _socket_count()


@pytest.mark.parametrize(
    ("model", "row"),
    [
        ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", "Intel Xeon Gold 6248"),
        ("AMD EPYC 7763 64-Core Processor", "AMD EPYC 7763"),
        ("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz", "Intel Core i7-8700K"),
        ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "Intel Xeon E5-2680 v4"),
        ("AMD Ryzen 7 5800H with Radeon Graphics", "AMD Ryzen 7 5800H"),
    ],
)
def test_table_lookup_finds_the_right_row(model: str, row: str) -> None:
    rows = dict(cpu_power_table()["rows"])
    found = rated_power_w(model)
    assert found.matched == row
    assert found.power_w == rows[row]


def test_unknown_model_falls_back_per_logical_cpu() -> None:
    found = rated_power_w("Intel(R) Xeon(R) Processor", logical_cpus=6)
    assert found.matched is None
    assert found.power_w == DEFAULT_W_PER_LOGICAL_CPU * 6
    assert "codecarbon" in found.source
    assert rated_power_w("", logical_cpus=2).matched is None


def test_normalisation() -> None:
    assert normalise_cpu_name("Intel(R) Core(TM) i9-13900K CPU @ 5.80GHz") == "intel core i9-13900k"
    assert normalise_cpu_name("AMD EPYC 9654 96-Core Processor") == "amd epyc 9654"


def test_process_scope_follows_this_process_cpu_time() -> None:
    s = EstimateSensor(scope="process", rated_power_w=50.0, logical_cpus=2, ram=False)
    assert s.components()[0].scope == Scope.PROCESS
    cpu_a = time.process_time()
    e_a = s.read(time.monotonic())["estimate:cpu"]
    x = 0
    end = time.monotonic() + 0.4
    while time.monotonic() < end:  # burn CPU in this process
        x += 1
    e_b = s.read(time.monotonic())["estimate:cpu"]
    cpu_s = time.process_time() - cpu_a
    # /proc accounting ticks every 10 ms
    assert e_b - e_a == pytest.approx(50.0 * cpu_s / 2, abs=50.0 * 0.03 / 2)


def test_process_scope_ram_uses_resident_memory() -> None:
    rss = [2e9]
    s = EstimateSensor(scope="process", cpu=False, rss_bytes=lambda: rss[0])
    assert s.poll_interval_s is not None
    t = time.monotonic()
    e_a = s.read(t)["estimate:ram"]
    rss[0] = 4e9
    s.poll(t + 1.0)  # 1 s at 2 GB, then resident memory becomes 4 GB
    e = s.read(t + 2.0)["estimate:ram"] - e_a
    assert e == pytest.approx(RAM_W_PER_GB * (2.0 * 1.0 + 4.0 * 1.0))


def test_bundled_table_metadata() -> None:
    meta = cpu_power_table()
    assert meta["unit"] == "W"
    assert meta["licence"] == "MIT"
    assert "Code Carbon" in meta["copyright"] and "MIT License" in meta["licence_text"]
    assert "codecarbon/data/hardware/cpu_power.csv" in meta["source"]
    assert len(meta["rows"]) > 1000
    names = [r[0] for r in meta["rows"]]
    assert names == sorted(names) and len(names) == len(set(names))
    assert all(r[1] > 0 for r in meta["rows"])


def test_regenerate_converts_a_codecarbon_csv(tmp_path) -> None:
    src = tmp_path / "cpu_power.csv"
    src.write_text(
        'Name,TDP\nIntel Core i7-8700K,95.0\n"AMD EPYC 7763",280\nBroken,n/a\n'
        "Zero Watt,0\nIntel Core i7-8700K,999\n"
    )
    doc = convert(src, "9.9")
    assert doc["rows"] == [["AMD EPYC 7763", 280.0], ["Intel Core i7-8700K", 95.0]]
    out = tmp_path / "out.json"
    assert main(["--source", str(src), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["rows"] == doc["rows"]
    assert not os.path.exists(out.with_suffix(".tmp"))
