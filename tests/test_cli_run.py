"""``greenmeter run``: the child's phases in the parent's report, exit codes, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from greenmeter.cli import main
from greenmeter.cli.run.child_signals import Forwarder
from greenmeter.cli.run.runner import TESTING_TRACES_ENV
from greenmeter.testing import PowerTrace

PY = (sys.executable, "-c")
GM = (sys.executable, "-m", "greenmeter")
STEPS = [(0.04, 180.0), (0.03, 25.0), (0.05, 90.0)]

PHASED_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from greenmeter import EnergyMeter
    from greenmeter.testing import PowerTrace
    from greenmeter.testing.sensors import TraceSensor

    spans = {}
    with EnergyMeter([TraceSensor({"own:cpu": PowerTrace.constant(1.0)})]) as meter:
        with meter.phase("fit", kind="fit"):
            for i in range(3):
                with meter.phase(f"epoch-{i}", kind="epoch") as ph:
                    a = time.monotonic()
                    time.sleep(0.07)
                    ph.add(samples=32, steps=4)
                    b = time.monotonic()
                spans[f"epoch-{i}"] = (a, b)
        with meter.phase("test") as ph:
            a = time.monotonic()
            time.sleep(0.05)
            spans["test"] = (a, time.monotonic())
    with open(sys.argv[1], "w") as fh:
        json.dump(spans, fh)
    """
)

SIGNAL_CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from greenmeter import EnergyMeter
    from greenmeter.testing import PowerTrace
    from greenmeter.testing.sensors import TraceSensor

    ready, graceful = sys.argv[1], sys.argv[2] == "graceful"
    def on_term(signum, frame):
        with open(ready + ".term", "w") as fh:
            fh.write(str(signum))
        raise SystemExit(7)
    if graceful:
        signal.signal(signal.SIGTERM, on_term)
    with EnergyMeter([TraceSensor({"own:cpu": PowerTrace.constant(1.0)})]) as meter:
        with meter.phase("work", kind="train"):
            open(ready, "w").close()
            time.sleep(30)
    """
)


@pytest.fixture
def traces(tmp_path, monkeypatch):
    """The parent measures one trace-driven component; returns the trace."""
    t0 = time.monotonic()
    spec = {"trace:cpu": {"steps": STEPS, "t0": t0, "kind": "cpu"}}
    path = tmp_path / "traces.json"
    path.write_text(json.dumps(spec))
    monkeypatch.setenv(TESTING_TRACES_ENV, str(path))
    return PowerTrace(STEPS, t0=t0)


def _script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _phases(report: dict) -> dict[tuple[str, ...], dict]:
    out = {}

    def walk(items):
        for p in items:
            out[tuple(p["path"])] = p
            walk(p["children"])

    walk(report["phases"])
    return out


def test_child_phases_appear_in_the_report_with_exact_energy(tmp_path, traces, capsys):
    spans_file = tmp_path / "spans.json"
    child = _script(tmp_path, "child.py", PHASED_CHILD)
    out = tmp_path / "run.json"
    code = main(["run", "-o", str(out), "--", sys.executable, str(child), str(spans_file)])
    assert code == 0
    report = json.loads(out.read_text())
    spans = json.loads(spans_file.read_text())
    assert report["status"] == "complete"
    assert report["command"] == [sys.executable, str(child), str(spans_file)]
    start = report["extra"]["monotonic_start_s"]
    assert report["extra"]["channel_processes"] == 1 and report["extra"]["channel_invalid"] == 0
    phases = _phases(report)
    expected = {("fit",), ("test",)} | {("fit", f"epoch-{i}") for i in range(3)}
    assert set(phases) == expected
    (key,) = phases[("fit",)]["energy_j"]
    assert key.startswith("trace:cpu@")
    for path, phase in phases.items():
        truth = sum(traces.energy_j(start + a, start + b) for a, b in phase["intervals_s"])
        assert phase["energy_j"][key] == pytest.approx(truth, rel=1e-6), path
        if path[-1] in spans:
            # the parent's interval is the child's own, up to the delivery delay
            (a, b), (ca, cb) = phase["intervals_s"][0], spans[path[-1]]
            assert abs(start + a - ca) < 0.05 and abs(start + b - cb) < 0.05
            child_truth = traces.energy_j(ca, cb)
            max_w = max(w for _, w in STEPS)
            bound = max_w * (abs(start + a - ca) + abs(start + b - cb)) + 1e-6
            assert abs(phase["energy_j"][key] - child_truth) <= bound
    epoch = phases[("fit", "epoch-1")]
    assert epoch["kind"] == "epoch" and epoch["items"]["samples"] == 32
    # the whole command is the report's total
    total = traces.energy_j(start, start + report["duration_s"])
    assert report["totals"]["it_energy_j"] == pytest.approx(total, rel=1e-6)
    assert "report: " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("code_text", "exit_code", "status"),
    [
        ("pass", 0, "complete"),
        ("raise SystemExit(3)", 3, "failed"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 128 + 9, "failed"),
    ],
)
def test_exit_code_is_propagated(tmp_path, traces, code_text, exit_code, status):
    out = tmp_path / "run.json"
    code = main(["run", "-q", "-o", str(out), "--", sys.executable, "-c", code_text])
    assert code == exit_code
    report = json.loads(out.read_text())
    assert report["status"] == status and report["extra"]["exit_code"] == exit_code


def test_command_not_found_is_127_with_a_clear_message(tmp_path, traces, capsys):
    out = tmp_path / "run.json"
    code = main(["run", "-o", str(out), "--", "no-such-command-xyz", "--flag"])
    err = capsys.readouterr().err
    assert code == 127
    assert "command not found: 'no-such-command-xyz'" in err and "PATH" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert main(["run", "-o", str(out), "--", str(tmp_path / "missing.sh")]) == 127


def test_usage_errors_exit_2_before_the_command_runs(tmp_path, traces, capsys):
    marker = tmp_path / "ran"
    cmd = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    assert main(["run"]) == 2
    assert "no command to run" in capsys.readouterr().err
    assert main(["run", "-o", str(tmp_path / "nodir" / "r.json"), "--", *cmd]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["run", "--location", "Atlantis", "--", *cmd]) == 2
    assert "carbon settings" in capsys.readouterr().err
    assert main(["run", "--interval", "-1", "--", *cmd]) == 2
    assert not marker.exists()


def test_command_without_separator_keeps_its_own_options(tmp_path, traces):
    out = tmp_path / "run.json"
    code = main(["run", "-q", "-o", str(out), sys.executable, "-c", "import sys; sys.exit(4)"])
    assert code == 4
    assert json.loads(out.read_text())["command"][1:] == ["-c", "import sys; sys.exit(4)"]


def _start_parent(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, Path, Path]:
    child = _script(tmp_path, "sig_child.py", SIGNAL_CHILD)
    ready = tmp_path / "ready"
    out = tmp_path / "run.json"
    parent = subprocess.Popen(
        [*GM, "run", "-q", "-o", str(out), "--", sys.executable, str(child), str(ready), mode],
        env=dict(os.environ),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert parent.poll() is None, parent.stderr.read()
        assert time.monotonic() < deadline, "child never got ready"
        time.sleep(0.02)
    return parent, ready, out


def test_sigterm_reaches_the_child_and_the_report_says_interrupted(tmp_path, traces):
    parent, _, out = _start_parent(tmp_path, "graceful")
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=20) == 7  # the child's own exit code
    assert (tmp_path / "ready.term").read_text() == str(int(signal.SIGTERM))
    report = json.loads(out.read_text())
    assert report["status"] == "interrupted"
    work = _phases(report)[("work",)]
    assert not work["open"] and work["kind"] == "train"
    assert report["extra"]["channel_closed_at_exit"] == 0  # the child closed it itself


def test_child_killed_by_forwarded_sigterm_gives_143_and_closed_phases(tmp_path, traces):
    parent, _, out = _start_parent(tmp_path, "default")
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=20) == 128 + signal.SIGTERM
    report = json.loads(out.read_text())
    assert report["status"] == "interrupted" and report["extra"]["signal"] == "SIGTERM"
    assert not _phases(report)[("work",)]["open"]
    assert report["extra"]["channel_closed_at_exit"] == 1
    assert any(w["code"] == "channel.phase_open_at_exit" for w in report["warnings"])


def test_terminal_sigint_is_not_sent_twice(tmp_path, monkeypatch):
    """A Ctrl-C already reached the child through the terminal: forward only a second one."""
    monkeypatch.setattr("greenmeter.cli.run.child_signals.tty_sent_to_group", lambda: True)
    ready = tmp_path / "ready"
    code_text = (
        f"import time\nopen({str(ready)!r}, 'w').close()\n"
        "try:\n    time.sleep(30)\nexcept KeyboardInterrupt:\n    pass\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code_text])
    try:
        while not ready.exists():
            time.sleep(0.01)
        fwd = Forwarder()
        fwd.child = child
        fwd.forward(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.3)
        fwd.forward(signal.SIGINT)  # the second one is passed on
        assert child.wait(timeout=10) == 0  # the child's KeyboardInterrupt handler ran
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_checkpoints_are_written_while_the_command_runs(tmp_path, traces):
    out = tmp_path / "run.json"
    probe = tmp_path / "seen.json"
    code_text = textwrap.dedent(
        f"""
        import json, time
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                status = json.load(open({str(out)!r}))["status"]
                break
            except (OSError, ValueError):
                time.sleep(0.02)
        json.dump(status, open({str(probe)!r}, "w"))
        """
    )
    code = main(["run", "-q", "--checkpoint-interval", "0.1", "-o", str(out), "--", *PY, code_text])
    assert code == 0
    assert json.loads(probe.read_text()) == "running"
    assert json.loads(out.read_text())["status"] == "complete"


def test_run_on_emulated_rapl_counters(tmp_path, make_powercap, monkeypatch):
    """The real sensor path: discover() reads an emulated powercap tree."""
    monkeypatch.delenv(TESTING_TRACES_ENV, raising=False)
    t0 = time.monotonic()
    pc = make_powercap(
        package_traces=[PowerTrace(STEPS, t0=t0)],
        dram_traces=[PowerTrace([(0.05, 6.0), (0.05, 14.0)], t0=t0)],
        max_energy_range_uj=20_000_000,  # 20 J: wraps several times during the run
    )
    spans_file = tmp_path / "spans.json"
    child = _script(tmp_path, "child.py", PHASED_CHILD)
    out = tmp_path / "run.json"
    argv = ["run", "-q", "--powercap-root", str(pc.root), "--gpus", "none", "-o", str(out)]
    assert main([*argv, "--", sys.executable, str(child), str(spans_file)]) == 0
    report = json.loads(out.read_text())
    start = report["extra"]["monotonic_start_s"]
    methods = {c["id"]: c["method"] for c in report["components"]}
    assert methods == {"rapl:package-0": "counter", "rapl:dram-0": "counter"}
    phases = _phases(report)
    assert ("fit", "epoch-2") in phases
    for phase in phases.values():
        for zone in ("package-0", "dram-0"):
            (key,) = [k for k in phase["energy_j"] if k.startswith(f"rapl:{zone}@")]
            truth = sum(
                pc.true_energy_j(zone, start + a, start + b) for a, b in phase["intervals_s"]
            )
            # the emulated counters advance about every millisecond from a separate
            # process; on a busy machine allow 5 ms at the peak power, or 2 %
            assert phase["energy_j"][key] == pytest.approx(truth, rel=0.02, abs=0.005 * 180)


RANK_CHILD = textwrap.dedent(
    """
    import os, subprocess, sys, time
    if sys.argv[1] == "launch":  # like torchrun: start two ranks and wait for both
        procs = [subprocess.Popen([sys.executable, __file__, str(r)]) for r in (0, 1)]
        sys.exit(max(p.wait() for p in procs))
    from greenmeter import EnergyMeter
    from greenmeter.testing import PowerTrace
    from greenmeter.testing.sensors import TraceSensor
    rank = int(sys.argv[1])
    # a file barrier, so slow interpreter start-up cannot separate the ranks' phases
    here = os.path.dirname(os.path.abspath(__file__))
    open(os.path.join(here, f"ready-{rank}"), "w").close()
    while not all(os.path.exists(os.path.join(here, f"ready-{r}")) for r in (0, 1)):
        time.sleep(0.005)
    time.sleep(0.05 * rank)  # the ranks overlap but do not start together
    with EnergyMeter([TraceSensor({"own:cpu": PowerTrace.constant(1.0)})]) as meter:
        with meter.phase("train", kind="train") as ph:
            time.sleep(0.15)
            ph.add(samples=10 * (rank + 1))
    """
)


def test_ranks_sending_the_same_phase_are_counted_once_over_their_union(tmp_path, traces):
    child = _script(tmp_path, "ranks.py", RANK_CHILD)
    out = tmp_path / "run.json"
    assert main(["run", "-q", "-o", str(out), "--", sys.executable, str(child), "launch"]) == 0
    report = json.loads(out.read_text())
    start = report["extra"]["monotonic_start_s"]
    assert report["extra"]["channel_processes"] == 2
    train = _phases(report)[("train",)]
    assert train["count"] == 2 and train["attrs"]["processes"] == "2"
    assert train["items"]["samples"] == 30
    ((a, b),), (key,) = train["intervals_s"], train["energy_j"]  # one span: the union
    assert b - a == pytest.approx(train["duration_s"], rel=1e-6)
    assert 0.15 < b - a < 1.0  # longer than either rank's own 0.15 s
    assert train["energy_j"][key] == pytest.approx(traces.energy_j(start + a, start + b), rel=1e-6)
