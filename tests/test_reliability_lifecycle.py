"""A run's numbers survive however the process ends: kill -9, SIGTERM, exceptions, exit.

Each case runs a child Python process that measures a :class:`TraceSensor` whose trace
is anchored on this process's ``time.monotonic()`` (one clock for the whole machine), so
the exact energy at any instant, including the instant of a ``kill -9``, is known here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from greenmeter import EnergyMeter
from greenmeter.report import Report
from greenmeter.testing.sensors import TraceSensor
from greenmeter.testing.trace import PowerTrace

#: Power steps (W) of the child's trace: varying, so energies depend on the exact instants.
STEPS = [(0.07, 180.0), (0.05, 40.0), (0.11, 260.0), (0.03, 90.0)]
MAX_POWER_W = max(p for _, p in STEPS)
CHECKPOINT_S = 0.2
#: Scheduling and write slack on a busy 2-core machine (s): building and fsyncing one
#: checkpoint takes ~30-40 ms here; the sampler may wake late under load.
SLACK_S = 0.3

CHILD = r"""
import json, signal, sys, time
cfg = json.loads(sys.argv[1])
stop_requested = []
handler = cfg.get("user_handler")
if handler == "exit":
    def on_term(signum, frame):
        with open(cfg["marker"], "w") as fh:
            fh.write(f"user handler ran for signal {signum}")
        sys.exit(7)
    signal.signal(signal.SIGTERM, on_term)
elif handler == "graceful":  # finish the current work, then leave normally
    signal.signal(signal.SIGTERM, lambda signum, frame: stop_requested.append(signum))
elif handler == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
import greenmeter.report  # import the schema before timing starts
from greenmeter import EnergyMeter
from greenmeter.testing.sensors import TraceSensor
from greenmeter.testing.trace import PowerTrace

trace = PowerTrace(cfg["steps"], t0=cfg["t0"])
meter = EnergyMeter(
    [TraceSensor({"trace:cpu": trace})],
    report_path=cfg["report"],
    checkpoint_interval_s=cfg.get("interval"),
    sample_interval_s=0.05,
    carbon=False,
    run_name="child",
)
meter.start()
print(json.dumps({"started_mono": meter.started_mono}), flush=True)

def work(n):
    for _ in range(n):
        with meter.phase("train", kind="train") as ph:
            time.sleep(0.02)
            ph.add(samples=8)
        with meter.phase("validate", kind="validate"):
            time.sleep(0.005)

mode = cfg["mode"]
if mode == "forever":
    while True:
        work(1)
elif mode == "raise":
    work(5)
    raise RuntimeError("boom in user code")
elif mode == "exit":
    work(5)  # no stop(): the report is written at interpreter exit
elif mode == "until_asked":
    while not stop_requested:
        work(1)
    work(3)  # a graceful stop still opens phases after the signal
    print(json.dumps({"after_signal": 3}), flush=True)
elif mode == "ignore":
    work(cfg["n"])
"""


def _start(tmp_path: Path, name: str, mode: str, t0: float, **extra: Any) -> subprocess.Popen:
    cfg = {
        "steps": STEPS,
        "t0": t0,
        "report": str(tmp_path / f"{name}.json"),
        "mode": mode,
        **extra,
    }
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )


def _started_mono(proc: subprocess.Popen) -> float:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else "child printed nothing"
    return float(json.loads(line)["started_mono"])


@pytest.mark.slow
def test_kill_9_leaves_a_valid_checkpoint_close_to_the_truth(tmp_path: Path) -> None:
    """Three children killed at different instants: each leaves a valid ``running`` file."""
    t0 = time.monotonic()
    trace = PowerTrace(STEPS, t0=t0)
    kill_after_s = (0.9, 1.25, 1.6)
    procs = [
        _start(tmp_path, f"run{i}", "forever", t0, interval=CHECKPOINT_S)
        for i in range(len(kill_after_s))
    ]
    starts = [_started_mono(p) for p in procs]
    lags: list[float] = []
    for i, (proc, start) in enumerate(zip(procs, starts, strict=True)):
        time.sleep(max(0.0, start + kill_after_s[i] - time.monotonic()))
        t_kill = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]

        report = Report.load(tmp_path / f"run{i}.json")
        assert report.status == "running"
        t_ck = start + report.duration_s
        lag = t_kill - t_ck
        lags.append(lag)
        assert 0 <= lag <= CHECKPOINT_S + SLACK_S, f"checkpoint {lag:.3f} s behind the kill"
        # the checkpoint's energy is the exact energy up to its own instant...
        truth_ck = trace.energy_j(start, t_ck)
        assert report.totals.it_energy_j == pytest.approx(truth_ck, rel=1e-9, abs=1e-9)
        # ... and behind the energy at the kill by no more than the lag allows
        missing = trace.energy_j(start, t_kill) - report.totals.it_energy_j
        assert 0 <= missing <= MAX_POWER_W * (CHECKPOINT_S + SLACK_S)
        train = report.phase("train")
        assert train.count >= 10
        assert train.items.samples in (8 * train.count, 8 * (train.count - 1))
        assert train.it_energy_j + report.phase("validate").it_energy_j <= (
            report.totals.it_energy_j + 1e-9
        )
    print(f"\nkill -9: checkpoint lag behind the kill instant (s): {[round(x, 3) for x in lags]}")


def test_sigterm_writes_interrupted_and_default_action_still_terminates(tmp_path: Path) -> None:
    t0 = time.monotonic()
    proc = _start(tmp_path, "term", "forever", t0, interval=5.0)
    start = _started_mono(proc)
    time.sleep(0.5)
    t_term = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == -signal.SIGTERM  # the default action still happened
    _out, err = proc.communicate()
    report = Report.load(tmp_path / "term.json")
    assert report.status == "interrupted", err
    t_end = start + report.duration_s
    assert t_term <= t_end <= t_term + 2.0
    truth = PowerTrace(STEPS, t0=t0).energy_j(start, t_end)
    assert report.totals.it_energy_j == pytest.approx(truth, rel=1e-9, abs=1e-9)
    assert not any(p.open for p in report.iter_phases())


def test_sigterm_chains_to_the_users_handler(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    proc = _start(
        tmp_path,
        "chain",
        "forever",
        time.monotonic(),
        interval=5.0,
        user_handler="exit",
        marker=str(marker),
    )
    _started_mono(proc)
    time.sleep(0.4)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 7  # the user's handler ran and chose the exit code
    _out, err = proc.communicate()
    assert marker.read_text() == f"user handler ran for signal {int(signal.SIGTERM)}"
    assert Report.load(tmp_path / "chain.json").status == "interrupted", err


def test_sigterm_with_a_graceful_handler_never_breaks_the_remaining_steps(
    tmp_path: Path,
) -> None:
    """The program's handler sets a flag and finishes its work: phases keep working."""
    t0 = time.monotonic()
    proc = _start(tmp_path, "graceful", "until_asked", t0, interval=5.0, user_handler="graceful")
    start = _started_mono(proc)
    time.sleep(0.4)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Error" not in err and json.loads(out)["after_signal"] == 3
    report = Report.load(tmp_path / "graceful.json")
    assert report.status == "interrupted"
    train = report.phase("train")
    assert train.items.samples == 8 * train.count  # the steps after the signal counted
    truth = PowerTrace(STEPS, t0=t0).energy_j(start, start + report.duration_s)
    assert report.totals.it_energy_j == pytest.approx(truth, rel=1e-9, abs=1e-9)


def test_sigterm_ignored_by_the_program_is_ignored_by_the_meter(tmp_path: Path) -> None:
    proc = _start(tmp_path, "ignored", "ignore", time.monotonic(), n=30, user_handler="ignore")
    _started_mono(proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    report = Report.load(tmp_path / "ignored.json")
    assert report.status == "complete"
    assert report.phase("train").count == 30 and report.phase("validate").count == 30


def test_uncaught_exception_leaves_failed(tmp_path: Path) -> None:
    proc = _start(tmp_path, "boom", "raise", time.monotonic())
    _started_mono(proc)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "RuntimeError: boom in user code" in err  # the user's traceback is intact
    report = Report.load(tmp_path / "boom.json")
    assert report.status == "failed"
    assert report.phase("train").count == 5 and report.phase("train").items.samples == 40


def test_exit_without_stop_leaves_complete(tmp_path: Path) -> None:
    t0 = time.monotonic()
    proc = _start(tmp_path, "done", "exit", t0)
    start = _started_mono(proc)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    # nothing went wrong: only the closing line is printed
    assert err.count("greenmeter") == 1 and err.startswith("greenmeter: energy")
    report = Report.load(tmp_path / "done.json")
    assert report.status == "complete"
    truth = PowerTrace(STEPS, t0=t0).energy_j(start, start + report.duration_s)
    assert report.totals.it_energy_j == pytest.approx(truth, rel=1e-9, abs=1e-9)
    assert report.phase("validate").count == 5


class _UserError(Exception):
    pass


def test_with_block_failure_is_recorded_and_reraised_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "with.json"
    trace = PowerTrace(STEPS)
    error = _UserError("the user's own error")
    with pytest.raises(_UserError) as info:
        with EnergyMeter([TraceSensor({"trace:cpu": trace})], report_path=path, carbon=False) as m:
            with m.phase("train", kind="train"):
                time.sleep(0.05)
                raise error
    assert info.value is error and info.value.__traceback__ is not None
    assert info.value.__cause__ is None and info.value.__context__ is None
    report = Report.load(path)
    assert report.status == "failed"
    assert report.phase("train").count == 1 and not report.phase("train").open


def test_keyboard_interrupt_in_with_block_is_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "ctrlc.json"
    with pytest.raises(KeyboardInterrupt):
        with EnergyMeter([TraceSensor({"trace:cpu": PowerTrace(STEPS)})], report_path=path) as m:
            with m.phase("train"):
                raise KeyboardInterrupt
    assert Report.load(path).status == "interrupted"


FORK_CHILD = r"""
import json, os, sys, time
cfg = json.loads(sys.argv[1])
from greenmeter import EnergyMeter
from greenmeter.testing.sensors import TraceSensor
from greenmeter.testing.trace import PowerTrace
meter = EnergyMeter([TraceSensor({"trace:cpu": PowerTrace.constant(100.0)})],
                    report_path=cfg["report"], carbon=False).start()
with meter.phase("train"):
    time.sleep(0.05)
pid = os.fork()
if pid == 0:
    with meter.phase("in-child"):   # inert in a forked child
        time.sleep(0.01)
    sys.exit(0)                     # runs atexit handlers in the child
_, status = os.waitpid(pid, 0)
print(json.dumps({"child_status": status}), flush=True)
meter.stop()
"""


def test_forked_child_exit_does_not_touch_the_parents_report(tmp_path: Path) -> None:
    path = tmp_path / "fork.json"
    proc = subprocess.run(
        [sys.executable, "-c", FORK_CHILD, json.dumps({"report": str(path)})],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["child_status"] == 0
    # no failed final report in the child: the parent's closing line only
    assert proc.stderr.count("greenmeter") == 1, proc.stderr
    assert proc.stderr.startswith("greenmeter: energy"), proc.stderr
    report = Report.load(path)
    assert report.status == "complete"
    assert [p.path_str for p in report.iter_phases()] == ["train"]
