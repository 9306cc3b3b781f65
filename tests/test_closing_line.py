"""The line that closes a run: figures, report path and the caveats that travel with them."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from fixtures.reports import make_report
from greenmeter.carbon import CarbonConfig
from greenmeter.render.closing import caveats, emit_summary, summary_line


def test_counter_figures_at_a_stated_location_carry_no_caveat() -> None:
    report = make_report()
    line = summary_line(report, "run.json")
    assert line.startswith("greenmeter: energy ")
    assert "g CO2e" in line and line.endswith("; report: run.json")
    assert caveats(report) == []


def test_world_average_fallback_says_how_to_set_a_location() -> None:
    report = make_report(carbon=CarbonConfig())
    assert report.carbon is not None and report.carbon.intensity.is_fallback
    line = summary_line(report, None)
    assert "world-average intensity: set GREENMETER_LOCATION" in line
    assert "report:" not in line


def test_estimated_share_and_scope_are_named() -> None:
    base = make_report()
    totals = base.totals.model_copy(update={"estimated_energy_j": base.totals.it_energy_j})
    whole = base.model_copy(update={"totals": totals})
    assert caveats(whole) == ["estimate"]
    part = base.model_copy(
        update={
            "totals": base.totals.model_copy(
                update={"estimated_energy_j": base.totals.it_energy_j / 4}
            )
        }
    )
    assert caveats(part) == ["25 % estimated"]


def test_unfinished_run_is_named_and_a_broken_stream_is_ignored() -> None:
    report = make_report().model_copy(update={"status": "interrupted"})
    out = io.StringIO()
    emit_summary(report, "r.json", stream=out)
    assert out.getvalue().count("\n") == 1 and "run interrupted" in out.getvalue()
    closed = io.StringIO()
    closed.close()
    emit_summary(report, "r.json", stream=closed)  # must not raise


def test_greenmeter_run_estimate_line_carries_both_caveats(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENMETER_")}
    env["GREENMETER_POWERCAP_ROOT"] = str(tmp_path / "no-powercap")
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenmeter",
            "run",
            "-o",
            str(out),
            "--",
            sys.executable,
            "-c",
            "pass",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert f"report: {out}" in last
    assert "estimate (process scope)" in last
    assert "world-average intensity: set GREENMETER_LOCATION" in last
