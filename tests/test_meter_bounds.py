"""Nothing the user does stops the final report: names, codes, nesting and phase counts the
report schema rejects are bounded where they arrive, each with one warning, and the
written report is one ``greenmeter validate`` accepts."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import pytest

from greenmeter import EnergyMeter
from greenmeter.cli import main
from greenmeter.core.limits import MAX_NAME_CHARS, MAX_PHASE_DEPTH, MAX_PHASES, OVERFLOW_PHASE
from greenmeter.core.meter import GreenMeterWarning, shorten_name
from greenmeter.report import Report
from greenmeter.testing import PowerTrace
from greenmeter.testing.sensors import TraceSensor


def _meter(path: Path) -> EnergyMeter:
    return EnergyMeter(
        [TraceSensor({"trace:cpu": PowerTrace.constant(40.0)})],
        report_path=path,
        sample_interval_s=0.05,
        carbon=False,
    )


def _validates(path: Path, capsys: pytest.CaptureFixture[str]) -> Report:
    assert main(["validate", str(path)]) == 0, capsys.readouterr()
    return Report.load(path)


def _codes(report: Report) -> list[str]:
    return [w.code for w in report.warnings]


def test_long_names_are_shortened_and_stay_distinct(tmp_path, capsys):
    path = tmp_path / "run.json"
    a, b = "x" * 600 + "a", "x" * 600 + "b"
    with _meter(path) as meter:
        for name in (a, b, a):
            with meter.phase(name):
                pass
    report = _validates(path, capsys)
    names = sorted(p.name for p in report.iter_phases())
    assert names == sorted({shorten_name(a), shorten_name(b)})
    assert all(len(n) == MAX_NAME_CHARS for n in names)
    assert report.phase(shorten_name(a)).count == 2
    assert _codes(report).count("meter.name_too_long") == 1


def test_bad_warning_codes_and_huge_messages_are_fixed(tmp_path, capsys):
    path = tmp_path / "run.json"
    with _meter(path) as meter:
        meter.add_warning("", "an empty code")
        meter.add_warning("c" * 700, "a long code")
        meter.add_warning("ok.code", "m" * 100_000)
    report = _validates(path, capsys)
    by_code = {w.code: w for w in report.warnings}
    assert by_code["user.warning"].message == "an empty code"
    assert shorten_name("c" * 700) in by_code
    assert len(by_code["ok.code"].message) <= 4096


def test_recursion_300_deep_under_measure_is_flattened(tmp_path, capsys):
    path = tmp_path / "run.json"
    trace = PowerTrace.constant(40.0)
    meter = EnergyMeter(
        [TraceSensor({"trace:cpu": trace})], report_path=path, sample_interval_s=0.05, carbon=False
    )
    meter.start()

    @meter.measure()
    def walk(n: int) -> int:
        return 0 if n == 0 else 1 + walk(n - 1)

    t0 = time.monotonic()
    assert walk(300) == 300
    t1 = time.monotonic()
    meter.stop()
    report = _validates(path, capsys)
    deepest = max(len(p.path) for p in report.iter_phases())
    assert deepest == MAX_PHASE_DEPTH
    assert _codes(report).count("meter.phase_too_deep") == 1
    top = report.phase("walk")
    assert top.count == 1
    # levels beyond the bound share one path, counted once over the union of its time
    bottom = report.phase("/".join(["walk"] * MAX_PHASE_DEPTH))
    calls = 301  # walk(300) down to walk(0)
    assert bottom.count == calls - (MAX_PHASE_DEPTH - 1)
    assert bottom.it_energy_j <= trace.energy_j(t0, t1) + 1e-9


@pytest.mark.slow
def test_forty_thousand_distinct_names_are_folded(tmp_path, capsys):
    path = tmp_path / "run.json"
    with _meter(path) as meter:
        with meter.phase("sweep"):
            for i in range(40_000):
                with meter.phase(f"trial-{i}"):
                    pass
    report = _validates(path, capsys)
    phases = list(report.iter_phases())
    assert len(phases) <= MAX_PHASES
    overflow = report.phase(f"sweep/{OVERFLOW_PHASE}")
    named = sum(1 for p in phases if p.name.startswith("trial-"))
    assert overflow.count + named == 40_000
    assert _codes(report).count("meter.too_many_phases") == 1
    assert path.stat().st_size < 64 * 1024 * 1024


def test_measure_records_latency_and_count(tmp_path):
    with _meter(tmp_path / "run.json") as meter:

        @meter.measure("predict", kind="inference")
        def predict(x: float) -> float:
            time.sleep(x)
            return x

        durations = [0.002, 0.004, 0.006]
        for d in durations:
            t0 = time.perf_counter()
            predict(d)
            assert time.perf_counter() - t0 >= d
    (rec,) = meter.snapshot().phases
    assert rec.count == 3
    assert len(rec.latencies_s) == 3
    for got, slept in zip(rec.latencies_s, durations, strict=True):
        assert got >= slept
    eff = meter.report(include_git=False).phase("predict").efficiency
    assert eff.latency_count == 3 and eff.latency_p50_s is not None


def test_measure_after_stop_runs_unmeasured_with_one_warning(tmp_path):
    meter = _meter(tmp_path / "run.json").start()

    @meter.measure()
    def add(a: int, b: int) -> int:
        return a + b

    assert add(1, 2) == 3
    meter.stop()
    with pytest.warns(GreenMeterWarning, match="ran unmeasured because the meter was stopped"):
        assert add(2, 3) == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert add(3, 4) == 7  # one warning only
    assert meter.snapshot().phases[0].count == 1


def test_measure_before_start_runs_unmeasured_too():
    meter = EnergyMeter([TraceSensor({"trace:cpu": PowerTrace.constant(1.0)})], carbon=False)

    @meter.measure()
    def f() -> str:
        return "ran"

    with pytest.warns(GreenMeterWarning, match="is not started"):
        assert f() == "ran"


def test_measure_keeps_exceptions_and_the_phase_closes(tmp_path):
    with _meter(tmp_path / "run.json") as meter:

        @meter.measure()
        def boom() -> None:
            raise KeyError("k")

        with pytest.raises(KeyError):
            boom()
        assert not meter.snapshot().phases[0].open
        assert len(meter.snapshot().phases[0].latencies_s) == 1


def test_recursion_limit_is_not_reached_by_the_report(tmp_path, capsys):
    """A recursion near Python's own limit still gives a report."""
    path = tmp_path / "run.json"
    meter = _meter(path).start()

    @meter.measure()
    def down(n: int) -> None:
        if n:
            down(n - 1)

    depth = sys.getrecursionlimit() // 8  # each call adds a few frames of the meter's
    down(depth)
    meter.stop()
    _validates(path, capsys)
