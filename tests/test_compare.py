"""compare(): per-phase side by side, with the change against the first report."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.reports import HOSTILE, PHASES, Truth, make_report, student, teacher
from greenmeter.render import RenderError, compare, render
from greenmeter.render.comparison import METRICS, compare_rows
from greenmeter.render.numbers import sig
from greenmeter.report import Report

SCALE = 0.377  # the student's power relative to the teacher's, in every measured phase


@pytest.fixture(scope="module")
def pair() -> list[Report]:
    return [teacher(), student()]


def test_rows_carry_true_changes(pair: list[Report]) -> None:
    rows = compare_rows(pair)
    by = {(r.phase, r.run): r for r in rows}
    t, s = Truth(1.0), Truth(SCALE)
    for path in PHASES:
        name = "/".join(path)
        base, other = by[(name, pair[0].run_name)], by[(name, "student")]
        assert base.values["energy_j"] == pytest.approx(t.phase_energy_j(path))
        assert other.values["energy_j"] == pytest.approx(s.phase_energy_j(path))
        assert other.changes_pct["energy_j"] == pytest.approx((SCALE - 1) * 100)
        assert base.changes_pct["energy_j"] is None
    assert by[("fit/train", "student")].changes_pct["parameters"] == pytest.approx(-90.0)
    bs1 = by[("inference/bs-1", "student")]
    assert bs1.changes_pct["latency_p50_s"] == pytest.approx((SCALE - 1) * 100)
    total = by[("Run total", "student")]
    truth_total = (s.total_energy_j() - t.total_energy_j()) / t.total_energy_j() * 100
    assert total.changes_pct["energy_j"] == pytest.approx(truth_total)


def test_markdown_shows_values_and_changes(pair: list[Report]) -> None:
    md = compare(pair, "md")
    head = md.splitlines()[0]
    for m in METRICS:
        assert m.title in head
    train = Truth(SCALE).phase_energy_j(("fit", "train"))
    assert f"| student | {sig(train)} (-62.3%) |" in md
    assert "100,000 (-90.0%)" in md
    assert "50%\\_&amp;\\$\\#\\{\\}" in md  # the hostile phase and run names are escaped
    assert "Changes in parentheses are against teacher" in md


def test_csv_has_numeric_values_and_changes(pair: list[Report]) -> None:
    rows = list(csv.DictReader(io.StringIO(compare(pair, "csv"))))
    assert len(rows) == 2 * (len(PHASES) + 1)
    row = next(r for r in rows if r["phase"] == "fit/validate" and r["run"] == "student")
    assert float(row["energy_j"]) == pytest.approx(Truth(SCALE).phase_energy_j(("fit", "validate")))
    assert float(row["energy_j_change_pct"]) == pytest.approx((SCALE - 1) * 100)
    assert float(row["parameters"]) == 100_000
    base = next(r for r in rows if r["phase"] == "fit/validate" and r["run"] != "student")
    assert base["energy_j_change_pct"] == ""


def test_json_groups_by_phase(pair: list[Report]) -> None:
    doc = json.loads(compare(pair, "json"))
    assert doc["baseline"] == f"teacher {HOSTILE}"
    assert doc["units"]["energy_j"] == "J"
    phase = next(p for p in doc["phases"] if p["phase"] == "inference/bs-64")
    assert [r["run"] for r in phase["runs"]] == [f"teacher {HOSTILE}", "student"]
    assert phase["runs"][1]["change_pct"]["energy_per_sample_j"] == pytest.approx(-62.3)


def test_html_marks_savings_and_escapes(pair: list[Report]) -> None:
    page = compare(pair, "html")
    assert '<table class="gm-compare">' in page
    assert 'class="gm-better"' in page and 'class="gm-worse"' not in page
    assert "7.952&times;10<sup>-2</sup>" not in page  # 0.07952 needs no exponent
    faster = compare([student(), teacher()], "html")  # teacher vs student: all worse
    assert 'class="gm-worse"' in faster and 'class="gm-better"' not in faster
    assert "50%_&amp;$#{}" in page and "<script" not in page
    full = render(pair, "html")  # several reports: the comparison, then each report
    assert full.count('<section class="gm-report"') == 2 and "gm-compare" in full


def test_latex_table(pair: list[Report], tmp_path: Path) -> None:
    tex = compare(pair, "latex")
    assert r"\toprule" in tex and r"\bottomrule" in tex
    assert r"(-62.3\%)" in tex
    assert r"teacher 50\%\_\&\$\#\{\}" in tex
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not on PATH")
    doc = "\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n"
    (tmp_path / "c.tex").write_text(doc + tex + "\\end{document}\n")
    out = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "c.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:]


def test_a_phase_missing_from_one_run_has_no_change() -> None:
    other = make_report(0.5, run_name="pruned", run_id="4" * 32)
    trimmed = other.model_copy(update={"phases": [p for p in other.phases if p.name != "fit"]})
    rows = {(r.phase, r.run): r for r in compare_rows([teacher(), trimmed])}
    assert rows[("fit/train", "pruned")].values["energy_j"] is None
    assert rows[("fit/train", "pruned")].changes_pct["energy_j"] is None
    assert rows[("inference", "pruned")].changes_pct["energy_j"] == pytest.approx(-50.0)


def test_same_labels_are_numbered_and_bad_formats_rejected(pair: list[Report]) -> None:
    twins = [student(), student()]
    md = compare(twins, "md")
    assert "student (\\#1)" in md and "student (\\#2)" in md
    with pytest.raises(RenderError, match="md, latex, html, csv, json"):
        compare(pair, "hf-card")


def _windows(report: Report) -> Report:
    """``report`` with its ``inference/bs-*`` phases marked as ``measure_inference`` marks
    the windows it runs for a set time (a ``repeats`` attribute)."""
    data = report.model_dump(mode="json")
    for phase in data["phases"]:
        if phase["name"] == "inference":
            for child in phase["children"]:
                child["attrs"] = {"batch_size": child["name"][3:], "repeats": "100"}
    return Report.model_validate(data)


def test_fixed_time_windows_are_compared_per_item_not_by_total() -> None:
    pair = [_windows(teacher()), _windows(student())]
    rows = {(r.phase, r.run): r for r in compare_rows(pair)}
    for path in ("inference/bs-1", "inference/bs-64"):
        base, other = rows[(path, pair[0].run_name)], rows[(path, "student")]
        assert base.values["energy_j"] is None and other.values["co2e_g"] is None
        assert other.changes_pct["energy_j"] is None
        samples = PHASES[tuple(path.split("/"))][2]
        truth = Truth(SCALE).phase_energy_j(tuple(path.split("/"))) / samples
        assert other.values["energy_per_sample_j"] == pytest.approx(truth)
        assert other.changes_pct["energy_per_sample_j"] == pytest.approx((SCALE - 1) * 100)
        assert other.values["latency_p50_s"] is not None
    assert not any(phase == "inference" for phase, _ in rows)  # a group of windows only
    assert rows[("fit/train", "student")].values["energy_j"] is not None  # not a window
    md = compare(pair, "md")
    bs1 = next(line for line in md.splitlines() if line.startswith("| inference/bs-1 |"))
    assert bs1.split("|")[3].strip() == "-"  # no total energy
    assert sig(Truth(1.0).phase_energy_j(("inference", "bs-1"))) not in bs1
    assert "compared per sample" in md
    assert "compared per sample" in compare(pair, "latex")
    csv_rows = list(csv.DictReader(io.StringIO(compare(pair, "csv"))))
    assert {r["energy_j"] for r in csv_rows if r["phase"].startswith("inference/")} == {""}
    plain = compare([teacher(), student()], "md")  # without the attribute: totals shown
    assert "compared per sample" not in plain and "| inference |" in plain


def test_a_slash_in_a_phase_name_is_matched_by_path() -> None:
    """``a/b`` as one name is not the phase ``b`` under ``a``."""
    data = teacher().model_dump(mode="json")
    data["phases"][-1]["name"] = "a/b"
    data["phases"][-1]["path"] = ["a/b"]
    report = Report.model_validate(data)
    rows = {(r.phase, r.run): r for r in compare_rows([report, report])}
    hostile = rows[("a/b", report.run_name + " (#2)")]
    assert hostile.values["energy_j"] == pytest.approx(Truth(1.0).phase_energy_j((HOSTILE,)))
    assert hostile.changes_pct["energy_j"] == 0.0
