"""``greenmeter run`` options (estimate scope, tags) and how it ends (survivors)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from greenmeter.cli import main
from greenmeter.cli.run.runner import TESTING_TRACES_ENV

GM = [sys.executable, "-m", "greenmeter", "run"]


@pytest.fixture
def traces(tmp_path, monkeypatch):
    """The parent measures one constant emulated component."""
    spec = {"trace:cpu": {"steps": [[1.0, 50.0]], "t0": 0.0, "kind": "cpu"}}
    path = tmp_path / "traces.json"
    path.write_text(json.dumps(spec))
    monkeypatch.setenv(TESTING_TRACES_ENV, str(path))
    monkeypatch.delenv("GREENMETER_TAGS", raising=False)
    return path


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


# -- --estimate-scope -------------------------------------------------------------------


def _estimated_j(tmp_path: Path, scope: str) -> dict:
    out = tmp_path / f"{scope}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENMETER_")}
    env["GREENMETER_POWERCAP_ROOT"] = str(tmp_path / "no-powercap")  # no counters: estimate
    cmd = [*GM, "-q", "--gpus", "none", "--estimate-scope", scope, "-o", str(out), "--"]
    cmd += [sys.executable, "-c", "import time; time.sleep(2)"]
    subprocess.run(cmd, env=env, check=True, timeout=60)
    return _report(out)


@pytest.mark.slow
def test_process_scope_leaves_out_a_busy_neighbour_that_machine_scope_counts(tmp_path):
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # the neighbour is at full speed
        process = _estimated_j(tmp_path, "process")
        machine = _estimated_j(tmp_path, "machine")
    finally:
        busy.kill()
        busy.wait()
    for report, scope in ((process, "process"), (machine, "machine")):
        assert report["extra"]["estimate_scope"] == scope
        assert {c["scope"] for c in report["components"] if c["method"] == "estimated"} == {scope}
    assert machine["totals"]["it_energy_j"] > 0
    assert process["totals"]["it_energy_j"] < 0.05 * machine["totals"]["it_energy_j"]


def test_a_bad_estimate_scope_is_a_usage_error(tmp_path, traces, capsys):
    assert main(["run", "--estimate-scope", "galaxy", "--", "true"]) == 2
    assert "--estimate-scope" in capsys.readouterr().err


# -- --tag --------------------------------------------------------------------------------


def test_tags_from_the_command_line_join_those_of_the_environment(tmp_path, traces, monkeypatch):
    monkeypatch.setenv("GREENMETER_TAGS", "team=vision,seed=1")
    out = tmp_path / "run.json"
    code = main(["run", "-q", "--tag", "seed=3", "--tag", "model=vit-b", "-o", str(out), "--"])
    assert code == 2  # no command: a usage error, nothing written
    assert not out.exists()
    code = main(["run", "-q", "--tag", "seed=3", "--tag", "model=vit-b", "-o", str(out), "true"])
    assert code == 0
    assert _report(out)["tags"] == {"team": "vision", "seed": "3", "model": "vit-b"}


def test_a_malformed_tag_stops_before_the_command_runs(tmp_path, traces, capsys):
    marker = tmp_path / "ran"
    code = main(["run", "--tag", "novalue", "--", "touch", str(marker)])
    assert code == 2 and not marker.exists()
    assert "--tag" in capsys.readouterr().err


# -- descendants that outlive the command -------------------------------------------------


def _run_leaving(tmp_path: Path, script: str) -> tuple[int, str, dict, list[int], float]:
    """Run ``sh -c script`` (which writes its background pid to $PIDS) under greenmeter."""
    out, pids, log = tmp_path / "run.json", tmp_path / "pids", tmp_path / "stderr"
    env = {**os.environ, "PIDS": str(pids)}
    t0 = time.monotonic()
    with open(log, "wb") as err:  # a file, not a pipe: the survivor keeps its copy open
        code = subprocess.call(
            [*GM, "--no-live", "-o", str(out), "--", "sh", "-c", script],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            timeout=25,
        )
    elapsed = time.monotonic() - t0
    survivors = [int(p) for p in pids.read_text().split()] if pids.exists() else []
    return code, log.read_text(), _report(out), survivors, elapsed


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize(
    ("tail", "exit_code"),
    [("exit 0", 0), ("exit 5", 5), ("kill -TERM $$", 128 + signal.SIGTERM)],
)
def test_survivors_are_named_in_one_line_and_in_the_report(tmp_path, traces, tail, exit_code):
    script = f'sleep 30 & echo $! > "$PIDS"; sleep 30 & echo $! >> "$PIDS"; {tail}'
    code, err, report, pids, elapsed = _run_leaving(tmp_path, script)
    try:
        assert code == exit_code
        assert elapsed < 15  # greenmeter does not wait for them
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        lines = [ln for ln in err.splitlines() if "still running" in ln]
        assert len(lines) == 1
        assert "2 process(es)" in lines[0] and all(str(p) in lines[0] for p in pids)
        assert report["extra"]["surviving_processes"] == 2
        assert report["extra"]["surviving_pids"] == ",".join(str(p) for p in sorted(pids))
        assert report["extra"]["exit_code"] == exit_code
        assert any(w["code"] == "command.processes_survived" for w in report["warnings"])
    finally:
        _kill(pids)


def test_a_command_that_waits_for_its_children_leaves_no_survivors(tmp_path, traces):
    code, err, report, _pids, _ = _run_leaving(tmp_path, 'sleep 0.2 & echo $! > "$PIDS"; wait')
    assert code == 0 and "still running" not in err
    assert report["extra"]["surviving_processes"] == 0
    assert not any(w["code"] == "command.processes_survived" for w in report["warnings"])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
