"""The pyRAPL backend, with greenmeter's wrap guard, against an emulated tree.

pyRAPL reads only ``/sys/class/powercap``. The test mounts an emulated tree there inside
a private mount namespace (``unshare -m``) of a child process, so the host is untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from greenmeter.sensors.base import ComponentKind
from greenmeter.testing import EmulatedPowercap, PowerTrace

pytest.importorskip("pyRAPL", reason="pyRAPL is not installed (pip install 'greenmeter[pyrapl]')")

RANGE_UJ = 40_000_000  # 40 J: ~2 wraps per second at the powers below


def _host_sockets() -> int:
    ids = {
        p.read_text().strip()
        for p in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology/physical_package_id")
    }
    return max(1, len(ids))


CHILD = textwrap.dedent(
    """
    import json, threading, time
    from greenmeter.sensors.pyrapl import probe
    sensor, why = probe()
    if sensor is None:
        print(json.dumps({"error": [u.reason for u in why]}))
        raise SystemExit(0)
    raw = sensor._ps  # pyRAPL's own Sensor: what pyRAPL alone would report
    stop = threading.Event()
    def guard():
        while not stop.wait(sensor.poll_interval_s):
            sensor.poll(time.monotonic())
    threading.Thread(target=guard, daemon=True).start()
    def timed():
        for _ in range(20):
            t = time.monotonic()
            v = sensor.read(t)
            r = list(raw.energy())
            if time.monotonic() - t < 0.0005:
                break
        return t, v, r
    t_a, e_a, r_a = timed()
    time.sleep(2.0)
    t_b, e_b, r_b = timed()
    stop.set()
    print(json.dumps({"t_a": t_a, "t_b": t_b, "e_a": e_a, "e_b": e_b,
                      "raw_diff_uj": [b - a for a, b in zip(r_a, r_b)],
                      "wraps": sensor.wrap_counts(),
                      "components": [c.id for c in sensor.components()],
                      "warnings": [w.code for w in sensor.drain_warnings()]}))
    """
)


def _run_in_namespace(pc: EmulatedPowercap) -> dict:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip(
            "unshare (util-linux) not found: cannot give pyRAPL a private /sys/class/powercap"
        )
    sysfs = pc.sysfs_root
    # /sys/class/powercap and /sys/devices/virtual/powercap do not exist on a machine
    # without RAPL and cannot be created in sysfs: cover their parents with tmpfs first.
    script = (
        "set -e; "
        "if [ ! -d /sys/class/powercap ]; then mount -t tmpfs gm-class /sys/class; "
        "mkdir /sys/class/powercap; fi; "
        f"mount --bind {sysfs}/class/powercap /sys/class/powercap; "
        "if [ ! -d /sys/devices/virtual/powercap ]; then "
        "mount -t tmpfs gm-virtual /sys/devices/virtual; mkdir /sys/devices/virtual/powercap; fi; "
        f"mount --bind {sysfs}/devices/virtual/powercap /sys/devices/virtual/powercap; "
        f'exec "{sys.executable}" -c "$GM_CHILD"'
    )
    env = {**os.environ, "GM_CHILD": CHILD}
    env.pop("GREENMETER_POWERCAP_ROOT", None)
    out = subprocess.run(
        [unshare, "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    if out.returncode != 0 and not out.stdout.strip():
        pytest.skip(
            f"cannot mount an emulated tree on /sys/class/powercap in a private mount "
            f"namespace here (needs root or CAP_SYS_ADMIN): {out.stderr.strip()}"
        )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "error" not in result, result
    return result


def test_pyrapl_backend_adds_the_wrap_guard(make_powercap) -> None:
    n = _host_sockets()  # pyRAPL insists on one package zone per socket it sees
    t0 = time.monotonic()
    steps = [[(0.25, 45.0), (0.35, 100.0), (0.4, 70.0)], [(0.3, 85.0), (0.7, 50.0)]]
    pc = make_powercap(
        [PowerTrace(steps[i % 2], t0=t0) for i in range(n)],
        dram_traces=[PowerTrace([(0.5, 7.0), (0.5, 12.0)], t0=t0) for _ in range(n)],
        max_energy_range_uj=RANGE_UJ,
        start_uj={"package-0": RANGE_UJ - 5_000_000},
        tdp_w=60.0,
    )
    r = _run_in_namespace(pc)
    assert set(r["components"]) == {
        f"pyrapl:{k}-{s}" for k in ("package", "dram") for s in range(n)
    }
    t_a, t_b = r["t_a"], r["t_b"]
    for s in range(n):
        truth = pc.true_package_energy_j(t_a, t_b, s)
        got = r["e_b"][f"pyrapl:package-{s}"] - r["e_a"][f"pyrapl:package-{s}"]
        assert got == pytest.approx(truth, rel=0.005)
        assert r["wraps"][f"pyrapl:package-{s}"] >= 2
        # pyRAPL's own difference is off by whole wraps: this is what the guard fixes
        raw = r["raw_diff_uj"][2 * s] * 1e-6
        assert abs(raw - truth) > 0.5 * RANGE_UJ * 1e-6
        dram = pc.true_dram_energy_j(t_a, t_b, s)
        got_dram = r["e_b"][f"pyrapl:dram-{s}"] - r["e_a"][f"pyrapl:dram-{s}"]
        assert got_dram == pytest.approx(dram, rel=0.005)
    assert "rapl.counter_reset" not in r["warnings"]


@pytest.mark.skipif(
    Path("/sys/class/powercap").exists(),
    reason="this machine has a powercap tree; the missing-tree path needs none",
)
def test_probe_without_powercap_explains() -> None:
    from greenmeter.sensors.pyrapl import probe

    sensor, why = probe()
    assert sensor is None
    assert len(why) == 1 and why[0].kind == ComponentKind.CPU
    assert "/sys/class/powercap" in why[0].reason
    assert why[0].fix


def test_probe_without_pyrapl_installed(monkeypatch) -> None:
    import greenmeter.sensors.pyrapl as mod

    def missing():
        raise ImportError("No module named 'pyRAPL'")

    monkeypatch.setattr(mod, "_import_pyrapl", missing)
    sensor, why = mod.probe()
    assert sensor is None
    assert "not installed" in why[0].reason and "greenmeter[pyrapl]" in (why[0].fix or "")
