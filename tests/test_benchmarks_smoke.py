"""Smoke tests of the core benchmark (benchmarks/bench_core.py) and its peer harness.

* ``bench_core.py --quick`` for greenmeter runs in a subprocess, prints every figure of
  the table with a value, writes them as JSON, and its accuracy rows agree with the
  emulated traces' exact integral;
* the mount-namespace harness that lets the peers read the emulated tree shows a live
  tree at ``/sys/class/powercap`` inside and leaves the host's ``/sys`` alone.

Running the peers themselves takes ~35 s (their imports alone take seconds); set
``GREENMETER_BENCH_PEERS=1`` to include them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_core.py"
sys.path.insert(0, str(ROOT / "benchmarks"))

import _peers  # noqa: E402
import bench_core  # noqa: E402

FIGURE_KEYS = [key for key, _, _ in bench_core.ROWS]
NUMBER = r"-?\d+(?:\.\d+)?"


def _run(tools: str, tmp_path: Path, timeout_s: float) -> tuple[str, dict]:
    out_json = tmp_path / "bench.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--quiet", "--tools", tools, "--json",
         str(out_json)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        cwd=str(ROOT),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out_json.read_text())


def _table_row(stdout: str, label: str) -> list[str]:
    line = next((ln for ln in stdout.splitlines() if ln.startswith(label)), None)
    assert line is not None, f"row {label!r} missing from:\n{stdout}"
    return line[len(label) :].split()


def _label(key: str, settings: bench_core.Settings) -> str:
    label = next(lbl for k, lbl, _ in bench_core.ROWS if k == key)
    if key == "memory_timeline_mb":
        label = f"memory of a {settings.timeline_hours:g} h timeline (MB)"
    return label


def test_quick_run_prints_every_greenmeter_figure(tmp_path: Path) -> None:
    start = time.monotonic()
    stdout, doc = _run("greenmeter", tmp_path, timeout_s=120)
    elapsed = time.monotonic() - start

    gm = doc["results"]["greenmeter"]
    assert gm["problems"] == {}, gm["problems"]
    for key in FIGURE_KEYS:
        value = gm["figures"].get(key)
        assert isinstance(value, (int, float)), f"{key} has no value: {value!r}"
        cells = _table_row(stdout, _label(key, bench_core.QUICK))
        value_cell = cells[2] if key in bench_core.TARGETS else cells[0]
        assert re.fullmatch(NUMBER, value_cell), (key, cells)
    assert doc["mode"] == "quick" and doc["table"] in stdout

    # importing greenmeter (and its meter class) pulls in no heavy framework
    assert gm["figures"]["heavy_modules"] == []

    # accuracy against the emulated traces' exact integral, with and without wraps
    for scenario in ("accuracy_nowrap", "accuracy_wrap"):
        rows = gm["detail"][scenario]
        assert len(rows) == len(bench_core.QUICK.phases_s)
        for row in rows:
            assert row["true_package_j"] > 10.0
            assert row["package_j"] == pytest.approx(row["true_package_j"], rel=0.01)
            assert row["dram_j"] == pytest.approx(row["true_dram_j"], rel=0.02)
            # the reported error is the one recomputed from the rows
            err = 100.0 * (row["package_j"] - row["true_package_j"]) / row["true_package_j"]
            assert row["package_err_pct"] == pytest.approx(err)

    # the 1-hour timeline stays bounded by the meter's timeline capacity
    timeline = gm["detail"]["timeline"]
    assert timeline["ticks"] == int(bench_core.QUICK.timeline_hours * 36000)
    assert timeline["timeline_points"] <= 2048
    assert elapsed < 60


def _namespace_ready() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    return _peers.namespace_problem()


@pytest.mark.skipif(sys.platform != "linux", reason="mount namespaces are Linux-only")
def test_namespace_shows_live_emulated_tree_at_sys() -> None:
    why = _namespace_ready()
    if why:
        pytest.skip(why)
    from greenmeter.testing import EmulatedPowercap, PowerTrace

    host_had_powercap = Path("/sys/class/powercap").exists()
    with EmulatedPowercap(
        [PowerTrace.constant(100.0), PowerTrace.constant(50.0)],
        dram_traces=[PowerTrace.constant(10.0)] * 2,
    ) as pc:
        script = (
            "cat /sys/class/powercap/intel-rapl:0/name;"
            "cat /sys/class/powercap/intel-rapl/subsystem/intel-rapl:1/name;"
            "cat /sys/devices/virtual/powercap/intel-rapl/intel-rapl:0/energy_uj;"
            "sleep 0.3;"
            "cat /sys/devices/virtual/powercap/intel-rapl/intel-rapl:0/energy_uj;"
            "ls /sys/class/net"
        )
        proc = subprocess.run(
            _peers.namespace_command(pc.sysfs_root, ["sh", "-c", script]),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.split()
        assert lines[:2] == ["package-0", "package-1"]
        first, second = int(lines[2]), int(lines[3])
        # the counter is live inside: 100 W over >= 0.3 s is >= 30 J (no wrap at this range)
        assert second - first >= 29_000_000
        assert second - first < 100_000_000
        # the rest of /sys/class is still there (bound back in)
        assert "lo" in lines[4:]
    # nothing leaked to the host's /sys
    assert Path("/sys/class/powercap").exists() == host_had_powercap


@pytest.mark.skipif(
    os.environ.get("GREENMETER_BENCH_PEERS") != "1",
    reason="peers take ~35 s; set GREENMETER_BENCH_PEERS=1 to run them",
)
def test_quick_run_measures_peers_or_says_why(tmp_path: Path) -> None:
    stdout, doc = _run("greenmeter,codecarbon,zeus", tmp_path, timeout_s=300)
    for peer in ("codecarbon", "zeus"):
        res = doc["results"][peer]
        why = _namespace_ready() or _peers.peer_problem(peer)
        if why:
            assert all("cannot run" in p for p in res["problems"].values())
            continue
        for key in ("ready_ms", "boundary_us", "err_nowrap_package_pct"):
            assert isinstance(res["figures"].get(key), (int, float)), (peer, key, res["problems"])
        # without wraps every tool reads the same counters: all within 1 % of the truth
        assert res["figures"]["err_nowrap_package_pct"] < 1.0
    assert "gm/zeus" in stdout and "gm/codecarbon" in stdout
