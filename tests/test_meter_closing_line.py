"""An :class:`EnergyMeter` with a report path closes with one line, unless told quiet."""

from __future__ import annotations

from greenmeter import EnergyMeter
from greenmeter.carbon import CarbonConfig
from greenmeter.render.closing import caveats, summary_line
from greenmeter.report import Report
from greenmeter.testing import PowerTrace
from greenmeter.testing.sensors import TraceSensor


def _meter(path, **kwargs) -> EnergyMeter:
    sensors = [TraceSensor({"t:cpu": PowerTrace.constant(20.0)})]
    return EnergyMeter(sensors, report_path=path, handle_signals=False, **kwargs)


def test_verbose_meter_prints_the_closing_line_once_when_the_final_report_is_written(
    tmp_path, capfd
):
    path = tmp_path / "run.json"
    meter = _meter(path, verbose=True, carbon=CarbonConfig(intensity_g_per_kwh=300.0))
    with meter, meter.phase("work"):
        pass
    meter.stop()  # a second stop writes nothing more
    err = capfd.readouterr().err
    report = Report.load(path)
    assert err == summary_line(report, path) + "\n"
    assert f"report: {path}" in err and " J" in err and "CO2e" in err


def test_the_closing_line_carries_the_caveats_of_the_figures(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("GREENMETER_LOCATION", raising=False)
    path = tmp_path / "run.json"
    monkeypatch.setenv("GREENMETER_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    with EnergyMeter(gpu=False, report_path=path, handle_signals=False):
        pass  # no counters here: the figures are an estimate at the world intensity
    err = capfd.readouterr().err
    report = Report.load(path)
    notes = caveats(report)
    assert any(n.startswith("estimate") for n in notes)
    assert err.strip().splitlines()[-1] == summary_line(report, path)
    for note in notes:
        assert note in err


def test_quiet_meter_prints_nothing(tmp_path, capfd):
    path = tmp_path / "run.json"
    with _meter(path, verbose=False, carbon=False):
        pass
    assert path.exists()
    assert capfd.readouterr() == ("", "")
