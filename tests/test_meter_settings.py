"""Settings a user gives the meter: tags and the estimate scope, from the constructor,
the environment and the config file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings

import pytest

import greenmeter.options as options_mod
from greenmeter import EnergyMeter
from greenmeter.core.meter import GreenMeterWarning
from greenmeter.report import Report
from greenmeter.report.tags import TagError
from greenmeter.testing import PowerTrace
from greenmeter.testing.sensors import TraceSensor


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(options_mod, "_warned_env", set())
    for var in ("GREENMETER_TAGS", "GREENMETER_ESTIMATE_SCOPE", "GREENMETER_CONFIG"):
        monkeypatch.delenv(var, raising=False)


def _traced(**kwargs: object) -> EnergyMeter:
    return EnergyMeter(
        [TraceSensor({"trace:cpu": PowerTrace.constant(5.0)})], carbon=False, **kwargs
    )


def test_tags_from_the_constructor_and_the_environment_reach_the_report(monkeypatch):
    monkeypatch.setenv("GREENMETER_TAGS", "project=gm, seed=1")
    with _traced(tags={"seed": 7, "final": True}) as meter:
        pass
    report = meter.report(include_git=False)
    assert report.tags == {"project": "gm", "seed": "7", "final": "True"}


def test_bad_constructor_tags_raise_a_clear_error():
    with pytest.raises(TagError, match="tag name 'not ok' is not allowed"):
        _traced(tags={"not ok": 1})
    with pytest.raises(ValueError, match="tags must be a mapping"):
        _traced(tags=["a=1"])


def test_a_bad_tags_variable_warns_once_and_is_ignored(monkeypatch):
    monkeypatch.setenv("GREENMETER_TAGS", "project=gm,oops")
    with pytest.warns(GreenMeterWarning, match="GREENMETER_TAGS: tag 'oops' has no '='"):
        first = _traced(tags={"seed": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _traced()
    assert first.tags == {"seed": "1"}


def test_estimate_scope_order_argument_environment_config_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()  # the project root
    assert _traced().estimate_scope == "process"  # the default
    (tmp_path / "greenmeter.toml").write_text('estimate_scope = "machine"\n')
    meter = _traced()
    assert (meter.estimate_scope, meter.estimate_scope_source) == (
        "machine",
        str(tmp_path / "greenmeter.toml"),
    )
    monkeypatch.setenv("GREENMETER_ESTIMATE_SCOPE", "process")
    assert _traced().estimate_scope_source == "GREENMETER_ESTIMATE_SCOPE"
    assert _traced(estimate_scope="machine").estimate_scope == "machine"
    with pytest.raises(ValueError, match="estimate_scope must be 'process' or 'machine'"):
        _traced(estimate_scope="host")


def test_pyproject_tool_table_sets_the_scope(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.greenmeter]\nestimate_scope = "machine"\n')
    assert _traced().estimate_scope == "machine"


def test_bad_scope_in_the_environment_or_file_warns_and_uses_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()
    monkeypatch.setenv("GREENMETER_ESTIMATE_SCOPE", "everything")
    with pytest.warns(GreenMeterWarning, match="GREENMETER_ESTIMATE_SCOPE='everything'"):
        assert _traced().estimate_scope == "process"
    monkeypatch.delenv("GREENMETER_ESTIMATE_SCOPE")
    (tmp_path / "greenmeter.toml").write_text("estimate_scope = 3\n")
    with pytest.warns(GreenMeterWarning, match="estimate_scope = '3'"):
        assert _traced().estimate_scope == "process"


def _orphan_busy_loop() -> int:
    """A busy process that is not a descendant of this one (its parent shell exits)."""
    out = subprocess.run(
        ["sh", "-c", f"{sys.executable} -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


@pytest.mark.slow
def test_process_scope_leaves_out_a_busy_neighbour(tmp_path, monkeypatch):
    """A 2 s sleep: scope "process" reports under 5 % of "machine" while a core is busy."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()
    empty = tmp_path / "powercap"  # no counters: the estimate is what is measured
    empty.mkdir()
    pid = _orphan_busy_loop()
    try:
        time.sleep(0.3)  # the neighbour is spinning
        meters = {
            scope: EnergyMeter(powercap_root=empty, gpu=False, carbon=False, estimate_scope=scope)
            for scope in ("process", "machine")
        }
        for meter in meters.values():
            meter.start()
        time.sleep(2.0)
        for meter in meters.values():
            meter.stop()
    finally:
        os.kill(pid, signal.SIGKILL)
    reports = {s: m.report(include_git=False) for s, m in meters.items()}
    for scope, report in reports.items():
        assert report.components, scope
        assert {c.scope for c in report.components} == {scope}
        assert {c.method for c in report.components} == {"estimated"}
        assert report.extra["estimate_scope"] == scope
    process = reports["process"].totals.it_energy_j
    machine = reports["machine"].totals.it_energy_j
    assert machine > 0
    assert process < 0.05 * machine, (process, machine)


def test_greenmeter_run_passes_the_scope_through(tmp_path, monkeypatch):
    from greenmeter.cli.run.runner import TESTING_TRACES_ENV, RunOptions, run

    monkeypatch.delenv(TESTING_TRACES_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()
    empty = tmp_path / "powercap"
    empty.mkdir()
    out = tmp_path / "run.json"
    for scope in ("machine", "process"):
        options = RunOptions(
            command=[sys.executable, "-c", "pass"],
            output=out,
            powercap_root=str(empty),
            gpu=False,
            carbon=False,
            quiet=True,
            include_git=False,
            estimate_scope=scope,
        )
        assert run(options) == 0
        report = Report.load(out)
        assert {c.scope for c in report.components} == {scope}
        assert report.extra["estimate_scope"] == scope
