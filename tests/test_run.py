"""The run owner: checkpoints in order, final report written however the disk behaves,
carbon resolved once, only ReportError out of report()."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

import greenmeter.report as report_pkg
from greenmeter import EnergyMeter
from greenmeter.report import Report, ReportError
from greenmeter.testing import PowerTrace
from greenmeter.testing.sensors import TraceSensor

#: How long the slow checkpoint takes: longer than any join a stop() could afford (s).
SLOW_S = 6.0


def _meter(path: Path, **kwargs: object) -> EnergyMeter:
    return EnergyMeter(
        [TraceSensor({"trace:cpu": PowerTrace.constant(80.0)})],
        report_path=path,
        sample_interval_s=0.02,
        carbon=False,
        **kwargs,  # type: ignore[arg-type]
    )


def _status(path: Path) -> str:
    return str(json.loads(path.read_text())["status"])


@pytest.mark.slow
def test_a_slow_checkpoint_never_lands_after_the_final_report(tmp_path, monkeypatch):
    real = report_pkg.build_report
    slow_started = threading.Event()

    def slow_build(snapshot, **kwargs):
        if kwargs.get("status") == "running" and not slow_started.is_set():
            slow_started.set()
            time.sleep(SLOW_S)  # a checkpoint that takes very long to build
        return real(snapshot, **kwargs)

    monkeypatch.setattr(report_pkg, "build_report", slow_build)
    path = tmp_path / "run.json"
    meter = _meter(path, checkpoint_interval_s=0.05).start()
    with meter.phase("train"):
        assert slow_started.wait(10)
    t0 = time.monotonic()
    meter.stop()
    stop_s = time.monotonic() - t0
    assert _status(path) == "complete"
    time.sleep(max(0.0, SLOW_S + 1.0 - stop_s))  # the slow checkpoint is done by now
    assert _status(path) == "complete"
    assert Report.load(path).phase("train").count == 1


def test_a_slow_checkpoint_write_is_waited_for_then_overwritten(tmp_path, monkeypatch):
    import greenmeter.writer as writer_mod

    real = writer_mod.write_file
    slow_started = threading.Event()

    def slow_write(path, data, **kwargs):
        if '"status": "running"' in data and not slow_started.is_set():
            slow_started.set()
            time.sleep(1.0)  # the disk is slow while a checkpoint is being replaced
        return real(path, data, **kwargs)

    monkeypatch.setattr(writer_mod, "write_file", slow_write)
    path = tmp_path / "run.json"
    meter = _meter(path, checkpoint_interval_s=0.05).start()
    assert slow_started.wait(10)
    meter.stop()
    assert _status(path) == "complete"
    time.sleep(0.2)
    assert _status(path) == "complete"


def test_checkpoints_are_written_while_running(tmp_path):
    path = tmp_path / "run.json"
    meter = _meter(path, checkpoint_interval_s=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert Report.load(path).status == "running"
    finally:
        meter.stop()
    assert Report.load(path).status == "complete"


def test_the_sampler_thread_builds_and_writes_nothing(tmp_path, monkeypatch):
    threads: set[str] = set()
    real = report_pkg.build_report

    def spy(snapshot, **kwargs):
        threads.add(threading.current_thread().name)
        return real(snapshot, **kwargs)

    monkeypatch.setattr(report_pkg, "build_report", spy)
    path = tmp_path / "run.json"
    meter = _meter(path, checkpoint_interval_s=0.05).start()
    time.sleep(0.4)
    meter.stop()
    assert "greenmeter-writer" in threads
    assert "greenmeter-sampler" not in threads


def test_an_unwritable_report_path_falls_back_to_the_working_directory(
    tmp_path, monkeypatch, capsys
):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    meter = _meter(blocker / "run.json").start()
    with meter.phase("train"):
        time.sleep(0.02)
    meter.stop()  # never raises for an I/O problem
    (written,) = cwd.glob("run.*.json")
    assert written.name == f"run.{meter.run_id[:8]}.json"
    assert Report.load(written).phase("train").count == 1
    err = capsys.readouterr().err
    assert f"could not write the report to {blocker / 'run.json'}" in err
    assert f"wrote it to {written}" in err
    assert meter.run.outcome is not None and meter.run.outcome.path == written


def test_then_to_the_temporary_directory(tmp_path, monkeypatch, capsys):
    import tempfile

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()  # the working directory vanished too
    meter = _meter(tmp_path / "file" / "run.json")
    (tmp_path / "file").write_text("x")
    meter.start().stop()
    (written,) = temp.glob("run.*.json")
    assert Report.load(written).status == "complete"
    assert f"wrote it to {written}" in capsys.readouterr().err


def test_report_raises_only_report_error(tmp_path, monkeypatch):
    meter = _meter(tmp_path / "r.json").start()
    try:
        with pytest.raises(ReportError, match="status"):
            meter.report(status="finished")
        with pytest.raises(ReportError):
            meter.report(model=object())

        def deep(snapshot, **kwargs):
            raise RecursionError("maximum recursion depth exceeded")

        monkeypatch.setattr(report_pkg, "build_report", deep)
        with pytest.raises(ReportError, match="nested too deeply"):
            meter.report()

        def broken(snapshot, **kwargs):
            raise TypeError("unexpected")

        monkeypatch.setattr(report_pkg, "build_report", broken)
        with pytest.raises(ReportError, match="TypeError: unexpected"):
            meter.report()
    finally:
        monkeypatch.undo()
        meter.stop()


def test_carbon_is_resolved_once_per_run(tmp_path, monkeypatch):
    import greenmeter.carbon as carbon_pkg

    calls: list[object] = []
    real = carbon_pkg.resolve

    def counting(config=None, **kwargs):
        calls.append(config)
        return real(config, **kwargs)

    monkeypatch.setattr(carbon_pkg, "resolve", counting)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()  # a project root: no config file above it
    meter = EnergyMeter(
        [TraceSensor({"trace:cpu": PowerTrace.constant(80.0)})],
        report_path=tmp_path / "run.json",
        checkpoint_interval_s=0.05,
        sample_interval_s=0.02,
    ).start()
    time.sleep(0.3)  # several checkpoints
    meter.report(include_git=False)
    meter.stop()
    assert len(calls) == 1
    assert Report.load(tmp_path / "run.json").carbon is not None


def test_git_and_host_facts_are_gathered_once(tmp_path, monkeypatch):
    from greenmeter import hostinfo

    probes: list[str] = []
    real_git = hostinfo._probe_git

    def counting_git(cwd):
        probes.append(str(cwd))
        return real_git(cwd)

    monkeypatch.setattr(hostinfo, "_probe_git", counting_git)
    path = tmp_path / "run.json"
    meter = _meter(path, checkpoint_interval_s=0.03).start()
    time.sleep(0.3)
    meter.report()
    meter.stop()
    assert len(probes) == 1


def test_stop_in_another_process_state_leaves_no_thread(tmp_path):
    before = {t.name for t in threading.enumerate()}
    meter = _meter(tmp_path / "run.json", checkpoint_interval_s=0.05).start()
    time.sleep(0.1)
    meter.stop()
    time.sleep(0.1)
    left = {t.name for t in threading.enumerate()} - before
    assert not {n for n in left if n.startswith("greenmeter")}, left


def test_a_report_path_in_the_environment_of_a_fork_is_not_written_by_the_child(tmp_path):
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    path = tmp_path / "run.json"
    meter = _meter(path).start()
    pid = os.fork()
    if pid == 0:
        try:
            meter.stop()
        except Exception:
            os._exit(0)  # the parent's meter is not the child's to stop
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not path.exists()
    meter.stop()
    assert Report.load(path).status == "complete"


def test_a_checkpoint_due_as_the_meter_stops_is_skipped_without_a_warning(tmp_path, capsys):
    # the periodic checkpoint may come due between the meter's stop and the final
    # report; the final report follows, so it is skipped, not reported as a failure
    path = tmp_path / "run.json"
    meter = _meter(path, checkpoint_interval_s=3600.0).start()
    with meter.phase("train"):
        pass
    writer = meter.run.writer
    ((_interval, make, _path, _due),) = [tuple(item) for item in writer._periodic.values()]
    snapshot = meter.core.stop()  # measuring is over; no final report written yet
    writer._checkpoint(1, make, path)
    assert not path.exists()
    meter.run.finish(snapshot)  # what EnergyMeter.stop() does next
    assert _status(path) == "complete"
    assert "warning" not in capsys.readouterr().err
