"""``greenmeter run`` loses no phase event, however fast the command sends them."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from greenmeter.cli.run.runner import TESTING_TRACES_ENV

CALLS = 50_000  # an enter and an exit each: 10^5 events

TIGHT_LOOP = textwrap.dedent(
    """
    import sys
    from greenmeter import EnergyMeter
    from greenmeter.testing import PowerTrace
    from greenmeter.testing.sensors import TraceSensor

    meter = EnergyMeter(
        [TraceSensor({"own:cpu": PowerTrace.constant(1.0)})], report_path=sys.argv[1]
    )

    @meter.measure("predict")
    def predict(x):
        return x + 1

    with meter:
        for i in range(int(sys.argv[2])):
            predict(i)
    """
)


def _env(tmp_path: Path) -> dict[str, str]:
    spec = {"trace:cpu": {"steps": [[0.05, 40.0], [0.05, 90.0]], "t0": 0.0, "kind": "cpu"}}
    traces = tmp_path / "traces.json"
    traces.write_text(json.dumps(spec))
    return {**os.environ, TESTING_TRACES_ENV: str(traces), "TERM": "xterm"}


def _count(report: dict, path: list[str]) -> int:
    return sum(p["count"] for p in report["phases"] if p["path"] == path)


def _run_on_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as stdin, stdout and stderr."""
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every process closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
    finally:
        os.close(slave)
    code = proc.wait(timeout=240)
    reader.join(timeout=10)
    os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "tty"])
def test_every_event_of_a_tight_loop_reaches_the_report(tmp_path, terminal):
    script = tmp_path / "loop.py"
    script.write_text(TIGHT_LOOP)
    own, run = tmp_path / "own.json", tmp_path / "run.json"
    argv = [sys.executable, "-m", "greenmeter", "run", "-o", str(run), "--"]
    argv += [sys.executable, str(script), str(own), str(CALLS)]
    t0 = time.monotonic()
    if terminal:
        code, output = _run_on_a_terminal(argv, _env(tmp_path))
        assert "report: " in output  # the terminal display and summary were on
    else:
        proc = subprocess.run(argv, env=_env(tmp_path), capture_output=True, timeout=240)
        code = proc.returncode
    assert code == 0
    run_report = json.loads(run.read_text())
    own_report = json.loads(own.read_text())
    extra = run_report["extra"]
    assert extra["channel_events"] == 2 * CALLS
    assert (extra["channel_lost"], extra["channel_invalid"], extra["channel_ignored"]) == (0, 0, 0)
    assert _count(run_report, ["predict"]) == CALLS
    assert _count(own_report, ["predict"]) == CALLS  # the script's own report agrees
    assert not any(w["code"] == "channel.dropped" for w in own_report["warnings"])
    assert time.monotonic() - t0 < 200
