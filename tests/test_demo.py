"""``greenmeter demo --quick`` end to end in a subprocess: every promised file exists, is
valid, and agrees with the reports it was rendered from."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from greenmeter.render import compare
from greenmeter.render.codecarbon import CODECARBON_COLUMNS
from greenmeter.report import Report

pytest.importorskip("lightning.pytorch")
pytest.importorskip("torch")

FILES = (
    "teacher.json",
    "student.json",
    "comparison.md",
    "comparison.tex",
    "report.html",
    "student.tex",
    "student-model-card.md",
    "emissions.csv",
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "out"
    env = {**os.environ, "GREENMETER_POWERCAP_ROOT": str(out.parent / "no-powercap")}
    env.pop("GREENMETER_LOCATION", None)
    res = subprocess.run(
        [sys.executable, "-m", "greenmeter", "demo", "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=180, env=env, cwd=out.parent,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out, res.stdout


def test_every_promised_file_exists_and_is_valid(demo: tuple[Path, str]) -> None:
    out, stdout = demo
    for name in FILES:
        path = out / name
        assert path.is_file() and path.stat().st_size > 0, name
        assert str(path) in stdout, f"{name} is not listed in the output"
    teacher, student = Report.load(out / "teacher.json"), Report.load(out / "student.json")
    for report, name in ((teacher, "teacher"), (student, "student")):
        assert report.run_name == name and report.status == "complete"
        paths = {p.path_str for p in report.iter_phases()}
        assert {"fit", "fit/train", "fit/validate", "inference/bs-1", "inference/bs-256"} <= paths
        assert report.phase("fit/train").items.samples == 2048  # one epoch, quick mode
        assert report.phase("inference/bs-256").efficiency.latency_count > 0
        assert report.models[0].name == name
    assert teacher.models[0].parameters_total > 10 * student.models[0].parameters_total
    for report, name in ((teacher, "teacher"), (student, "student")):
        assert report.tags == {"project": "greenmeter-demo", "experiment": "distillation",
                               "model": name}  # fmt: skip


def test_the_demo_ends_with_the_footprint_of_its_runs(demo: tuple[Path, str]) -> None:
    from greenmeter.render.numbers import sig

    out, stdout = demo
    tail = stdout[stdout.index("greenmeter footprint: 2 run(s) from 2 report file(s)") :]
    teacher, student = Report.load(out / "teacher.json"), Report.load(out / "student.json")
    lines = tail.splitlines()
    for report, name in ((teacher, "teacher"), (student, "student")):
        row = next(ln for ln in lines if ln.startswith(f"model={name} ") and "kWh" not in ln
                   and sig(report.totals.it_energy_kwh) in ln)  # fmt: skip
        assert row
    total_kwh = teacher.totals.it_energy_kwh + student.totals.it_energy_kwh
    assert any(ln.startswith("Total") and sig(total_kwh) in ln for ln in lines)


def test_comparison_files_match_the_reports(demo: tuple[Path, str]) -> None:
    out, _ = demo
    reports = [Report.load(out / "teacher.json"), Report.load(out / "student.json")]
    assert (out / "comparison.md").read_text() == compare(reports, "md")
    assert (out / "comparison.tex").read_text() == compare(reports, "latex")
    html = (out / "report.html").read_text()
    assert html.count("<svg") >= 2 and "gm-compare" in html and "<script" not in html
    for row in (out / "comparison.md").read_text().splitlines():
        if row.startswith("| inference"):  # fixed-time windows: per sample, no total
            cells = [c.strip() for c in row.strip("|").split("|")]
            assert cells[2] == "-" and cells[-1] == "-" and cells[3] != "-", row
    assert "| inference |" not in (out / "comparison.md").read_text()
    tex = (out / "student.tex").read_text()
    assert r"\begin{document}" in tex and r"\bottomrule" in tex and "@misc{greenmeter," in tex


def test_csv_and_model_card(demo: tuple[Path, str]) -> None:
    out, _ = demo
    rows = list(csv.DictReader(io.StringIO((out / "emissions.csv").read_text())))
    assert [r["project_name"] for r in rows] == ["teacher", "student"]
    assert list(rows[0]) == list(CODECARBON_COLUMNS)
    student = Report.load(out / "student.json")
    assert float(rows[1]["energy_consumed"]) == pytest.approx(student.totals.facility_energy_kwh)
    card = (out / "student-model-card.md").read_text()
    meta = yaml.safe_load(card.strip().strip("-"))["co2_eq_emissions"]
    assert meta["emissions"] == pytest.approx(student.phase("fit").co2e.operational_g, abs=1e-6)


def test_output_says_plainly_when_figures_are_estimates(demo: tuple[Path, str]) -> None:
    out, stdout = demo
    student = Report.load(out / "student.json")
    if all(c.method == "estimated" for c in student.components):
        assert "ESTIMATES" in stdout
        for u in student.unavailable:
            if "not requested" in u.reason or u.reason.startswith("not needed"):
                continue  # nobody asked for it, or another source measures the same
            assert u.reason in stdout
            if u.fix:
                assert u.fix in stdout
    assert "not requested" not in stdout and "not needed" not in stdout
    if student.carbon is not None and student.carbon.intensity.is_fallback:
        assert "WORLD-AVERAGE" in stdout and "GREENMETER_LOCATION" in stdout


def test_each_run_closes_with_its_line_and_the_caveats_of_estimates(
    demo: tuple[Path, str],
) -> None:
    from greenmeter.render.closing import caveats, summary_line

    out, stdout = demo
    for name in ("teacher", "student"):
        report = Report.load(out / f"{name}.json")
        line = summary_line(report, out / f"{name}.json", lead=f"{name}:")
        assert line in stdout.splitlines()
        notes = caveats(report)
        if any(c.method == "estimated" for c in report.components):  # no counters here
            assert any(n.startswith("estimate") or "% estimated" in n for n in notes)
        if report.carbon is not None and report.carbon.intensity.is_fallback:
            assert "world-average intensity: set GREENMETER_LOCATION" in notes
        for note in notes:
            assert note in line
