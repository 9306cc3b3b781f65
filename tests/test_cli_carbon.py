"""Carbon on the command line: doctor shows the newest figures, report/compare re-derive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.reports import make_report
from greenmeter.carbon.dataset import lookup
from greenmeter.cli import main
from greenmeter.report import Report


def _doctor(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> dict:
    code = main(["doctor", "--json", "--gpus", "none", "--powercap-root", str(tmp_path)])
    assert code == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in ("GREENMETER_LOCATION", "GREENMETER_CLOUD_REGION", "GREENMETER_PUE",
                "GREENMETER_INTENSITY_G_PER_KWH", "GREENMETER_CONFIG"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_doctor_shows_googles_newest_figure_for_a_gcp_region(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GREENMETER_CLOUD_REGION", "gcp:us-east1")
    intensity = _doctor(capsys, clean_env)["carbon"]["intensity"]
    assert intensity["value_g_per_kwh"] == 575.77 and intensity["year"] == 2024
    assert intensity["provider_figure"] is True
    assert intensity["source_id"] == "google-region-carbon-2024"


def test_doctor_shows_embers_newest_figure_for_france(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GREENMETER_LOCATION", "FR")
    diag = _doctor(capsys, clean_env)
    intensity = diag["carbon"]["intensity"]
    assert (intensity["value_g_per_kwh"], intensity["year"]) == (44.18, 2024)
    assert intensity["source_id"] == "ember-yearly" and intensity["basis"] == "lifecycle"
    assert intensity["gas"] == "CO2e"
    assert diag["carbon"]["dataset_version"] and diag["carbon"]["dataset_date"]


@pytest.fixture
def report_file(tmp_path: Path) -> Path:
    return make_report().save(tmp_path / "run.json")


def test_report_rederives_carbon_and_keeps_energy(
    report_file: Path, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = Report.load(report_file)
    code = main(["report", str(report_file), "--format", "json", "--location", "DE",
                 "--pue", "1.5"])  # fmt: skip
    assert code == 0
    after = Report.model_validate_json(capsys.readouterr().out)
    assert after.totals.it_energy_j == before.totals.it_energy_j
    assert after.totals.energy_j == before.totals.energy_j
    assert after.totals.facility_energy_j == pytest.approx(before.totals.it_energy_j * 1.5)
    de = lookup("DE").g_per_kwh
    assert after.totals.co2e is not None
    assert after.totals.co2e.operational_g == pytest.approx(
        before.totals.it_energy_j * 1.5 / 3.6e6 * de
    )
    fit_before, fit_after = before.phase("fit"), after.phase("fit")
    assert fit_after.it_energy_j == fit_before.it_energy_j
    assert fit_after.co2e is not None
    assert fit_after.co2e.operational_g == pytest.approx(fit_before.it_energy_j * 1.5 / 3.6e6 * de)
    notes = after.carbon.resolution  # type: ignore[union-attr]
    assert any("re-derived" in n and "--location DE --pue 1.5" in n for n in notes)
    assert any("before: 44.18 gCO2e/kWh (FRA), PUE 1.2" in n for n in notes)


def test_report_rederive_keeps_the_reports_pue_when_not_given(
    report_file: Path, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["report", str(report_file), "--format", "json", "--cloud-region", "gcp:us-east1"])
    after = Report.model_validate_json(capsys.readouterr().out)
    assert after.totals.pue == 1.2
    assert after.carbon is not None and after.carbon.intensity.value_g_per_kwh == 575.77


def test_compare_rederives_every_report(
    report_file: Path, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = make_report(0.5, run_id="0" * 31 + "2").save(report_file.parent / "b.json")
    code = main(["compare", str(report_file), str(other), "--format", "json",
                 "--intensity", "100"])  # fmt: skip
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    totals = [r for p in doc["phases"] if p["phase"] == "Run total" for r in p["runs"]]
    energy = [Report.load(f).totals.it_energy_j for f in (report_file, other)]
    for row, e in zip(totals, energy, strict=True):
        assert row["co2e_g"] == pytest.approx(e * 1.2 / 3.6e6 * 100)


def test_bad_carbon_option_is_one_line(
    report_file: Path, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(report_file), "--location", "Atlantis"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown location 'Atlantis'" in err
