"""The emulated powercap tree: real sysfs layout, live counters, truth and faults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import SMALL_RANGE_UJ
from greenmeter.testing import EmulatedPowercap, PowerTrace


def _alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _read(path: Path) -> int:
    return int(path.read_text().split("\n", 1)[0])


def test_layout_matches_sysfs(rapl_tree: EmulatedPowercap) -> None:
    root = rapl_tree.root
    assert root.name == "powercap" and root.parent.name == "class"
    # top-level entries are symlinks into the devices tree, as on a real machine
    entries = sorted(os.listdir(root))
    assert entries == sorted(
        ["intel-rapl"]
        + [f"intel-rapl:{p}" for p in range(3)]
        + [f"intel-rapl:{p}:{s}" for p in range(2) for s in range(3)]
    )
    for e in entries:
        link = root / e
        assert link.is_symlink()
        target = os.readlink(link)
        assert target.startswith("../../devices/virtual/powercap/intel-rapl")
        assert link.resolve().is_dir()
    ctl = root / "intel-rapl"
    assert (ctl / "enabled").read_text() == "1\n"
    assert (ctl / "subsystem").resolve() == root.resolve()
    names = {e: (root / e / "name").read_text().strip() for e in entries if e != "intel-rapl"}
    assert names == {
        "intel-rapl:0": "package-0",
        "intel-rapl:0:0": "core",
        "intel-rapl:0:1": "uncore",
        "intel-rapl:0:2": "dram",
        "intel-rapl:1": "package-1",
        "intel-rapl:1:0": "core",
        "intel-rapl:1:1": "uncore",
        "intel-rapl:1:2": "dram",
        "intel-rapl:2": "psys",
    }
    z0 = root / "intel-rapl:0"
    # subzones are real subdirectories of their package
    assert (z0 / "intel-rapl:0:2").resolve() == (root / "intel-rapl:0:2").resolve()
    for attr in (
        "energy_uj",
        "max_energy_range_uj",
        "enabled",
        "constraint_0_name",
        "constraint_0_power_limit_uw",
        "constraint_0_max_power_uw",
        "constraint_1_name",
        "uevent",
    ):
        assert (z0 / attr).is_file(), attr
    assert (z0 / "constraint_0_name").read_text() == "long_term\n"
    assert _read(z0 / "max_energy_range_uj") == SMALL_RANGE_UJ
    assert (z0 / "device").resolve() == ctl.resolve()
    assert (z0 / "subsystem").resolve() == root.resolve()
    assert oct(os.stat(z0 / "energy_uj").st_mode & 0o777) == "0o444"


def test_counters_are_live_for_reopening_and_pread_readers(rapl_tree: EmulatedPowercap) -> None:
    path = rapl_tree.energy_path("package-0")
    fd = os.open(path, os.O_RDONLY)
    try:
        t_a = time.monotonic()
        a_open, a_pread = _read(path), int(os.pread(fd, 32, 0).split(b"\n")[0])
        time.sleep(0.3)
        t_b = time.monotonic()
        b_open, b_pread = _read(path), int(os.pread(fd, 32, 0).split(b"\n")[0])
    finally:
        os.close(fd)
    truth_uj = rapl_tree.true_energy_j("package-0", t_a, t_b) * 1e6
    for a, b in ((a_open, b_open), (a_pread, b_pread)):
        moved = (b - a) % SMALL_RANGE_UJ
        # both readers see the counter advance by the trace's energy (within a few ms of power)
        assert abs(moved - truth_uj) < 110.0 * 0.02 * 1e6


def test_values_wrap_and_are_never_torn(make_powercap) -> None:
    rng = 2_000_000  # 2 J: wraps every 20 ms at 100 W
    pc = make_powercap(
        [PowerTrace([(0.01, 100.0), (0.01, 97.0)])], max_energy_range_uj=rng, subzones=False
    )
    fd = os.open(pc.energy_path("package-0"), os.O_RDONLY)
    seen, backwards = 0, 0
    last = None
    deadline = time.monotonic() + 0.4
    try:
        while time.monotonic() < deadline:
            data = os.pread(fd, 32, 0)
            first = data.split(b"\n", 1)[0]
            assert first.isdigit(), data  # a whole number, never a torn or empty value
            v = int(first)
            assert 0 <= v < rng
            if last is not None and v < last:
                backwards += 1
            last = v
            seen += 1
    finally:
        os.close(fd)
    assert seen > 1000
    assert backwards >= 10  # about 20 wraps in 0.4 s


def test_true_energy_is_the_trace_integral(rapl_tree: EmulatedPowercap) -> None:
    t_a = time.monotonic()
    t_b = t_a + 2.7
    p0 = rapl_tree.trace("package-0").energy_j(t_a, t_b)
    p1 = rapl_tree.trace("package-1").energy_j(t_a, t_b)
    assert rapl_tree.true_energy_j("package-0", t_a, t_b) == p0
    assert rapl_tree.true_package_energy_j(t_a, t_b) == pytest.approx(p0 + p1)
    assert rapl_tree.true_package_energy_j(t_a, t_b, socket=1) == pytest.approx(p1)
    d = rapl_tree.true_dram_energy_j(t_a, t_b)
    assert d == pytest.approx(
        rapl_tree.trace("dram-0").energy_j(t_a, t_b) + rapl_tree.trace("dram-1").energy_j(t_a, t_b)
    )
    # core and uncore default to 60 % and 10 % of the package, inside it
    assert rapl_tree.true_energy_j("core-0", t_a, t_b) == pytest.approx(0.6 * p0)
    assert rapl_tree.true_energy_j("uncore-0", t_a, t_b) == pytest.approx(0.1 * p0)


def test_published_instant_says_how_old_the_counters_are(rapl_tree: EmulatedPowercap) -> None:
    path = rapl_tree.energy_path("package-0")
    time.sleep(0.05)
    published = rapl_tree.published_mono()
    assert 0.0 <= time.monotonic() - published < 0.25
    # the updater held up (as a busy machine does): the counters stop, and the published
    # instant says since when
    pid = rapl_tree.updater_pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        held = rapl_tree.published_mono()  # stopped, perhaps inside a tick
        v1 = _read(path)
        time.sleep(0.1)
        assert rapl_tree.published_mono() == held and _read(path) == v1
        assert time.monotonic() - held >= 0.1
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(0.05)
    after = rapl_tree.published_mono()
    assert after > held and time.monotonic() - after < 0.25
    assert _read(path) != v1


def test_nested_traces_must_stay_inside_the_package() -> None:
    pkg = PowerTrace([(0.5, 50.0), (0.5, 10.0)])
    core = PowerTrace([(0.5, 30.0), (0.5, 30.0)], t0=pkg.t0)  # 30 W > 10 W in step 2
    with pytest.raises(ValueError, match="inside the package"):
        EmulatedPowercap([pkg], core_traces=[core], uncore_traces=[PowerTrace.constant(0.0)])


def test_freeze_reset_remove_and_unreadable(rapl_tree: EmulatedPowercap) -> None:
    p = rapl_tree.energy_path("package-1")
    rapl_tree.freeze(["package-1"])
    a = _read(p)
    time.sleep(0.05)
    assert _read(p) == a  # stale while frozen
    t_u = rapl_tree.unfreeze(["package-1"])
    assert t_u > 0 and _read(p) != a

    t_r = rapl_tree.reset_counter("package-1")
    v = _read(p)
    # right after the reset the counter shows only the energy drawn since it
    assert 0 <= v <= rapl_tree.true_energy_j("package-1", t_r, time.monotonic()) * 1e6 + 200_000

    rapl_tree.make_unreadable("dram-0", how="fail")
    with pytest.raises(IsADirectoryError):
        rapl_tree.energy_path("dram-0").read_text()
    rapl_tree.make_readable("dram-0")
    x = _read(rapl_tree.energy_path("dram-0"))
    time.sleep(0.05)
    assert _read(rapl_tree.energy_path("dram-0")) != x  # live again

    rapl_tree.make_unreadable("dram-1", how="permission")
    assert os.stat(rapl_tree.energy_path("dram-1")).st_mode & 0o777 == 0

    zdir = rapl_tree.zone_path("package-1")
    rapl_tree.remove_zone("package-1")
    assert not zdir.exists()
    remaining = sorted(os.listdir(rapl_tree.root))
    assert "intel-rapl:1" not in remaining and "intel-rapl:1:2" not in remaining
    assert "intel-rapl:0" in remaining
    time.sleep(0.02)  # the updater keeps running for the others
    a = _read(rapl_tree.energy_path("package-0"))
    time.sleep(0.02)
    assert _read(rapl_tree.energy_path("package-0")) != a


def test_mmio_twins_and_dies(make_powercap) -> None:
    tr = PowerTrace.constant(80.0)
    pc = make_powercap([tr], mmio=True, dies_per_package=2, dram_traces=[PowerTrace.constant(6)])
    names = {}
    for e in os.listdir(pc.root):
        if ":" in e:
            names[e] = (pc.root / e / "name").read_text().strip()
    assert names["intel-rapl:0"] == "package-0-die-0"
    assert names["intel-rapl:1"] == "package-0-die-1"
    assert names["intel-rapl-mmio:0"] == "package-0"
    t_a = time.monotonic()
    assert pc.true_energy_j("package-0-die-1", t_a, t_a + 1) == pytest.approx(40.0)
    assert pc.true_package_energy_j(t_a, t_a + 1) == pytest.approx(80.0)  # twins not summed
    assert pc.true_dram_energy_j(t_a, t_a + 1) == pytest.approx(6.0)


def test_close_stops_the_updater_and_removes_the_tree() -> None:
    with EmulatedPowercap([PowerTrace.constant(10.0)]) as pc:
        pid = pc.updater_pid
        base = pc.sysfs_root
        assert base.is_dir()
    assert not base.exists()
    assert pid is not None and not _alive(pid)
    pc.close()  # idempotent


def test_updater_exits_when_the_parent_dies() -> None:
    code = textwrap.dedent(
        """
        import sys, time
        from greenmeter.testing import EmulatedPowercap, PowerTrace
        pc = EmulatedPowercap([PowerTrace.constant(10.0)])
        print(pc.updater_pid, pc.sysfs_root, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid_text, base = parent.stdout.readline().split()
    pid = int(pid_text)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5.0
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid), "updater outlived its parent"
    deadline = time.monotonic() + 2.0
    while Path(base).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not Path(base).exists()
