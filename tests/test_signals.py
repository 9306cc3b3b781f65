"""SIGTERM, Ctrl-C and exit: the report is written outside the signal handler, and the
program's exit status is what it would have been without greenmeter.

The deadlock case measures real RAPL sensors (the emulated powercap tree), whose reads
take a lock: a handler that read the counters itself would wait forever on that lock
when the signal lands while the main thread holds it.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from greenmeter.report import Report
from greenmeter.testing.powercap import EmulatedPowercap
from greenmeter.testing.trace import PowerTrace

#: Children signalled in the deadlock test; each lands at a random instant of a loop that
#: spends most of its time inside RAPL reads.
REPETITIONS = 16
#: A child that has not ended this long after SIGTERM is hung (s); a healthy one takes
#: well under a second even with both cores busy.
HANG_S = 20.0

RAPL_CHILD = r"""
import json, sys
cfg = json.loads(sys.argv[1])
import greenmeter.report  # import the schema before the loop starts
from greenmeter import EnergyMeter
meter = EnergyMeter(powercap_root=cfg["root"], gpu=False, report_path=cfg["report"],
                    sample_interval_s=0.01, carbon=False)
meter.start()
kinds = sorted({c.sensor for c in meter.components})
print(json.dumps({"sensors": kinds}), flush=True)
while True:                      # boundaries back to back: the RAPL lock is held most
    with meter.phase("train"):   # of the time, by this thread or by the sampler
        pass
"""


def _spawn(code: str, cfg: dict[str, object], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


@pytest.mark.slow
def test_sigterm_during_locked_rapl_reads_never_hangs(
    tmp_path: Path, make_powercap: type[EmulatedPowercap]
) -> None:
    tree = make_powercap(
        package_traces=[PowerTrace.constant(60.0), PowerTrace.constant(40.0)],
        dram_traces=[PowerTrace.constant(5.0), PowerTrace.constant(3.0)],
    )
    rng = random.Random(19)
    procs = [
        _spawn(
            RAPL_CHILD, {"root": str(tree.root), "report": str(tmp_path / f"r{i}.json")}, tmp_path
        )
        for i in range(REPETITIONS)
    ]
    hung: list[int] = []
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            assert json.loads(line)["sensors"] == ["rapl"]
        for proc in procs:
            time.sleep(rng.uniform(0.0, 0.05))
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + HANG_S
        for i, proc in enumerate(procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                hung.append(i)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    assert not hung, f"{len(hung)} of {REPETITIONS} children hung after SIGTERM"
    for i, proc in enumerate(procs):
        assert proc.returncode == -signal.SIGTERM, proc.stderr
        report = Report.load(tmp_path / f"r{i}.json")
        assert report.status == "interrupted"
        assert report.totals.it_energy_j > 0
        assert not any(p.open for p in report.iter_phases())


TRACE_CHILD = r"""
import json, sys, threading, time
cfg = json.loads(sys.argv[1])
import greenmeter.report  # import the schema before timing starts
from greenmeter import EnergyMeter
from greenmeter.testing.sensors import TraceSensor
from greenmeter.testing.trace import PowerTrace

def make():
    return EnergyMeter([TraceSensor({"trace:cpu": PowerTrace.constant(50.0)})],
                       report_path=cfg["report"], sample_interval_s=0.05, carbon=False)

mode = cfg["mode"]
if mode == "ctrl-c-at-exit":           # no with block: the report is written at exit
    meter = make().start()
    with meter.phase("train"):
        time.sleep(0.05)
        raise KeyboardInterrupt
elif mode == "ctrl-c-in-with":
    with make() as meter:
        with meter.phase("train"):
            raise KeyboardInterrupt
elif mode == "sigterm-in-with":        # the report is written as the stack unwinds
    with make() as meter:
        print("ready", flush=True)
        while True:
            with meter.phase("train"):
                time.sleep(0.01)
elif mode == "started-off-main":       # the first run starts in a worker thread
    box = []
    worker = threading.Thread(target=lambda: box.append(make().start()))
    worker.start()
    worker.join()
    meter = box[0]
    print("ready", flush=True)
    while True:
        with meter.phase("train"):
            time.sleep(0.01)
elif mode == "own-exit-code":
    meter = make().start()
    with meter.phase("train"):
        time.sleep(0.02)
    sys.exit(3)
"""


def _child(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], Path]:
    report = tmp_path / f"{mode}.json"
    return _spawn(TRACE_CHILD, {"report": str(report), "mode": mode}, tmp_path), report


def _shell_status(returncode: int) -> int:
    from greenmeter.cli.run.runner import exit_code_of

    return exit_code_of(returncode)


@pytest.mark.parametrize("mode", ["ctrl-c-at-exit", "ctrl-c-in-with"])
def test_ctrl_c_keeps_exit_status_130(tmp_path: Path, mode: str) -> None:
    proc, report = _child(tmp_path, mode)
    _out, err = proc.communicate(timeout=60)
    assert _shell_status(proc.returncode) == 130, err
    assert proc.returncode == -signal.SIGINT  # ended by SIGINT, as without greenmeter
    assert "KeyboardInterrupt" in err
    assert Report.load(report).status == "interrupted"


@pytest.mark.parametrize("mode", ["sigterm-in-with", "started-off-main"])
def test_sigterm_keeps_exit_status_143_and_writes_the_report(tmp_path: Path, mode: str) -> None:
    proc, report = _child(tmp_path, mode)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=HANG_S)
    assert _shell_status(proc.returncode) == 143, err
    assert proc.returncode == -signal.SIGTERM
    loaded = Report.load(report)
    assert loaded.status == "interrupted"
    assert loaded.phase("train").count >= 1 and not loaded.phase("train").open
    assert "Traceback" not in err


def test_the_programs_own_exit_status_is_kept(tmp_path: Path) -> None:
    proc, report = _child(tmp_path, "own-exit-code")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert Report.load(report).phase("train").count == 1
