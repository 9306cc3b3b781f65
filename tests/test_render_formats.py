"""Every render format from fixed reports with known figures (see tests/fixtures/reports.py)."""

from __future__ import annotations

import ast
import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from fixtures.reports import (
    DRAM,
    GPU,
    GPU_NAME,
    HOSTILE,
    HOSTILE_HTML,
    PHASES,
    PKG,
    Truth,
    make_report,
    student,
    teacher,
)
from greenmeter.carbon import CarbonConfig
from greenmeter.render import FORMATS, RenderError, render
from greenmeter.render.codecarbon import CODECARBON_COLUMNS
from greenmeter.render.latex import escape_latex
from greenmeter.render.numbers import fmt_change, sig
from greenmeter.report import Report

J_PER_KWH = 3.6e6
TRUTH = Truth(1.0)
TRAIN = ("fit", "train")
LATEX_HOSTILE = r"50\%\_\&\$\#\{\}"


@pytest.fixture(scope="module")
def t_report() -> Report:
    return teacher()


@pytest.fixture(scope="module")
def s_report() -> Report:
    return student()


def _co2e_g(report: Report, energy_j: float) -> float:
    """The truth for location-based CO2e: IT energy x PUE x intensity."""
    assert report.carbon is not None
    return energy_j * report.totals.pue / J_PER_KWH * report.carbon.intensity.value_g_per_kwh


# -- numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (22200.0, "22,200"),
        (3.7, "3.7"),
        (0.0061666666, "0.006167"),
        (7.5e-4, "7.5e-04"),
        (123456.7, "123,457"),
        (0.0, "0"),
        (None, ""),
        (1234.5678, "1,235"),
    ],
)
def test_sig_formats_with_four_significant_digits(value: float | None, text: str) -> None:
    assert sig(value) == text


def test_change_is_relative_to_the_baseline() -> None:
    assert fmt_change(37.7, 100.0) == "-62.3%"
    assert fmt_change(104.0, 100.0) == "+4.0%"
    assert fmt_change(5.0, 0.0) == ""


# -- Markdown ------------------------------------------------------------------------


def test_markdown_table_has_the_true_energies_units_and_co2e(t_report: Report) -> None:
    md = render(t_report, "md")
    assert "| Phase | Kind | Duration (s) | Energy (J) | Energy (kWh) | Mean power (W) |" in md
    train_j = TRUTH.phase_energy_j(TRAIN)
    assert train_j == 22200.0
    row = next(line for line in md.splitlines() if line.startswith("| fit/train |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == sig(60.0)  # duration (s)
    assert cells[3] == sig(train_j) == "22,200"
    assert cells[4] == sig(train_j / J_PER_KWH)
    assert cells[5] == sig(train_j / 60.0)  # mean power (W)
    assert cells[6] == sig(train_j / PHASES[TRAIN][2])  # J/sample
    assert cells[7] == sig(_co2e_g(t_report, train_j))
    total = next(line for line in md.splitlines() if "**Run total**" in line)
    assert sig(TRUTH.total_energy_j()) in total
    assert sig(_co2e_g(t_report, TRUTH.total_energy_j())) in total


def test_markdown_states_methods_sources_and_years(t_report: Report, s_report: Report) -> None:
    md = render(t_report, "md")
    assert "Ember" in md and "Our World in Data" not in md
    assert f"g per kWh for {t_report.carbon.intensity.year}" in md
    assert "PUE 1.2" in md
    assert "hardware energy counter (nvml)" in md
    assert "polled every 0.083 s" in md
    md_s = render(s_report, "md")
    assert "Uptime Institute Global Data Center Survey 2024" in md_s
    assert "by sampling power every 0.1 s (nvml, instant\\_field)" in md_s


def test_markdown_escapes_report_strings(t_report: Report) -> None:
    md = render(t_report, "md")
    assert "50%\\_&amp;\\$\\#\\{\\}" in md
    assert HOSTILE_HTML not in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md


# -- LaTeX ---------------------------------------------------------------------------


def test_escape_latex_neutralises_every_special_character() -> None:
    assert escape_latex(HOSTILE) == LATEX_HOSTILE
    assert escape_latex("\\input{x} ~^") == r"$\backslash$input\{x\} \~{}\^{}"
    assert escape_latex("a\nb\x00") == "a b "
    assert escape_latex("Zürich 雪") == "Zürich ?"


def test_latex_has_booktabs_table_methods_and_bibtex(t_report: Report) -> None:
    tex = render(t_report, "latex")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in tex
    assert "siunitx" not in tex
    train_j = TRUTH.phase_energy_j(TRAIN)
    assert f"fit/train & {sig(60.0)} & {sig(train_j)} & {sig(train_j / J_PER_KWH)} &" in tex
    # a small value is written as a power of ten
    assert r"$7.5\times10^{-4}$" in tex  # inference: 2700 J = 7.5e-4 kWh
    assert r"\cite{greenmeter}" in tex
    assert r"\cite{ember_yearly}" in tex
    for key in ("@misc{greenmeter,", "@misc{ember_yearly,"):
        assert key in tex
    year = t_report.carbon.intensity.year
    assert f"year = {{{year}}}" in tex and f"g per kWh for {year}" in tex
    assert "AMD EPYC 7763 64-Core Processor (1 socket, 64 physical cores" in tex
    assert f"1 {GPU_NAME}" in tex
    assert "PUE 1.2" in tex


def test_latex_escapes_every_report_string(t_report: Report) -> None:
    tex = render(t_report, "latex")
    assert LATEX_HOSTILE in tex
    body = tex.split(r"\begin{document}", 1)[1]
    assert HOSTILE not in body
    assert "\\input{/etc/passwd}" not in body
    assert r"$\backslash$input\{/etc/passwd\}" in body


def test_latex_cites_egrid_and_uptime_where_used() -> None:
    us = make_report(carbon=CarbonConfig(location="US-CA", pue="uptime-2024"))
    tex = render(us, "latex")
    assert "@misc{epa_egrid2023," in tex and r"\cite{epa_egrid2023}" in tex
    assert "@misc{uptime_2024," in tex and r"\cite{uptime_2024}" in tex
    assert "eGRID2023" in tex
    assert "@misc{ember_yearly," not in tex


def _compile(tex: str, tmp_path: Path, name: str = "doc") -> str:
    (tmp_path / f"{name}.tex").write_text(tex, encoding="utf-8")
    cmd = ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"]
    first = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stdout[-3000:]
    if shutil.which("bibtex") and "\\bibliography" in tex:
        bib = subprocess.run(["bibtex", name], cwd=tmp_path, capture_output=True, text=True)
        assert bib.returncode == 0, bib.stdout[-2000:]
        second = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stdout[-3000:]
    assert (tmp_path / f"{name}.pdf").stat().st_size > 1000
    return (tmp_path / f"{name}.log").read_text(errors="replace")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not on PATH")
def test_latex_compiles_with_pdflatex(t_report: Report, s_report: Report, tmp_path: Path) -> None:
    us = make_report(carbon=CarbonConfig(location="US-CA", pue="uptime-2024"), run_id="3" * 32)
    log = _compile(render([t_report, s_report, us], "latex"), tmp_path)
    assert "! " not in log
    if shutil.which("bibtex"):
        bbl = (tmp_path / "doc.bbl").read_text()
        for text in ("Ember", "eGRID2023", "Uptime Institute", "greenmeter"):
            assert text in bbl


def test_latex_titles_name_the_run_or_nothing() -> None:
    """No ``#1 run 27c1340c``: the run's name, the model's, or no name at all."""
    unnamed = make_report(run_name=None, model_name=None, run_id="27c1340c" + "0" * 24)
    tex = render(unnamed, "latex")
    assert "\\section*{Energy and carbon}" in tex
    assert "\\caption{Energy per phase. Energy is IT energy" in tex
    assert "27c1340c" not in tex.split("\\label{", 1)[0] and "\\#1" not in tex
    named = render([teacher(), student()], "latex")
    assert "\\section*{Energy and carbon: teacher 50\\%" in named
    assert "\\section*{Energy and carbon: student}" in named
    model_only = make_report(run_name=None, model_name="ResNet-50")
    assert "\\section*{Energy and carbon: ResNet-50}" in render(model_only, "latex")


# -- HTML (content; the browser test opens it) --------------------------------------


def test_html_is_self_contained_and_escaped(t_report: Report) -> None:
    page = render(t_report, "html")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert HOSTILE_HTML not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "50%_&amp;$#{}" in page
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!#)""", page), "external reference"
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="gm-plot"') == 3
    assert f">{sig(TRUTH.phase_energy_j(TRAIN))}<" in page
    assert "Ember" in page and "Methods" in page and "Warnings" in page


def _estimated(report: Report, share: float) -> Report:
    totals = report.totals.model_copy(
        update={"estimated_energy_j": report.totals.it_energy_j * share}
    )
    return report.model_copy(update={"totals": totals})


def test_html_banner_says_all_when_all_the_energy_is_estimated(t_report: Report) -> None:
    banner = re.compile(r"<strong>Estimates:</strong> (\w+) of the energy comes from a model")
    assert banner.findall(render(_estimated(t_report, 1.0), "html")) == ["all"]
    assert banner.findall(render(_estimated(t_report, 0.4), "html")) == ["part"]
    assert banner.findall(render(t_report, "html")) == []


def test_sources_not_used_are_for_doctor_not_for_reports(t_report: Report) -> None:
    assert t_report.unavailable  # the fixture has one: pyRAPL not installed
    for fmt in ("md", "html"):
        text = render(t_report, fmt)
        assert "Sources not used" not in text, fmt
        assert "pip install pyRAPL" not in text and "pyRAPL is not installed" not in text
    md = render(_estimated(t_report, 1.0), "md")
    assert "100% of the energy is a model estimate (greenmeter doctor" in md


# -- CSV and JSON --------------------------------------------------------------------


def test_csv_has_one_row_per_phase_with_exact_figures(t_report: Report) -> None:
    rows = list(csv.DictReader(io.StringIO(render(t_report, "csv"))))
    phases = [r for r in rows if r["kind"] != "total"]
    assert [tuple(r["phase"].split("/")) for r in phases] == list(PHASES)
    for row in phases:
        path = tuple(row["phase"].split("/"))
        energy = TRUTH.phase_energy_j(path)
        assert float(row["it_energy_j"]) == pytest.approx(energy, rel=1e-9)
        assert float(row["it_energy_kwh"]) == pytest.approx(energy / J_PER_KWH, rel=1e-9)
        assert float(row["facility_energy_j"]) == pytest.approx(energy * 1.2, rel=1e-9)
        assert float(row["co2e_g"]) == pytest.approx(_co2e_g(t_report, energy), rel=1e-6)
    total = rows[-1]
    assert total["kind"] == "total"
    assert float(total["it_energy_j"]) == pytest.approx(TRUTH.total_energy_j())
    assert {r["run_name"] for r in rows} == {f"teacher {HOSTILE}"}


def test_json_round_trips(t_report: Report, s_report: Report) -> None:
    assert Report.model_validate_json(render(t_report, "json")) == t_report
    both = json.loads(render([t_report, s_report], "json"))
    assert [Report.model_validate(x) for x in both] == [t_report, s_report]


# -- Hugging Face model card ---------------------------------------------------------


def test_hf_card_follows_the_hub_spec(t_report: Report) -> None:
    text = render(t_report, "hf-card")
    assert text.startswith("---\n") and text.rstrip().endswith("---")
    meta = yaml.safe_load(text.strip().strip("-"))["co2_eq_emissions"]
    fit_j = TRUTH.phase_energy_j(("fit",))
    assert meta["emissions"] == pytest.approx(_co2e_g(t_report, fit_j), abs=1e-6)  # grams
    assert meta["geographical_location"] == "France"
    assert meta["hardware_used"].startswith(f"1 x {GPU_NAME}")
    assert "greenmeter" in meta["source"] and "2024" in meta["source"]
    assert set(meta) == {"emissions", "source", "geographical_location", "hardware_used"}


def test_hf_card_training_type_cannot_inject_yaml() -> None:
    hostile = 'fine-tuning"\nemissions: 0\nx: "'
    report = make_report(carbon=CarbonConfig(location="FR"))
    report = report.model_copy(update={"extra": {"training_type": hostile}})
    meta = yaml.safe_load(render(report, "hf-card").strip().strip("-"))["co2_eq_emissions"]
    assert meta["training_type"] == hostile
    assert meta["emissions"] > 0 and "x" not in meta


# -- CodeCarbon ----------------------------------------------------------------------

_CODECARBON = Path("/root/peers/lib/python3.11/site-packages/codecarbon/output_methods")


def _codecarbon_fields() -> list[str] | None:
    path = _CODECARBON / "emissions_data.py"
    if not path.exists():
        return None
    tree = ast.parse(path.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "EmissionsData")
    return [s.target.id for s in cls.body if isinstance(s, ast.AnnAssign)]


def test_codecarbon_columns_match_codecarbon() -> None:
    fields = _codecarbon_fields()
    if fields is None:
        pytest.skip("the codecarbon package source is not available to compare with")
    assert list(CODECARBON_COLUMNS) == fields


def test_codecarbon_row_has_codecarbon_units(t_report: Report, s_report: Report) -> None:
    rows = list(csv.DictReader(io.StringIO(render([t_report, s_report], "codecarbon-csv"))))
    assert len(rows) == 2
    row = rows[0]
    assert list(row) == list(CODECARBON_COLUMNS)
    total = TRUTH.energy_j(0.0, 100.0)
    pue = 1.2
    assert float(row["duration"]) == 100.0
    assert float(row["gpu_energy"]) == pytest.approx(total[GPU] * pue / J_PER_KWH)  # kWh
    assert float(row["cpu_energy"]) == pytest.approx(total[PKG] * pue / J_PER_KWH)
    assert float(row["ram_energy"]) == pytest.approx(total[DRAM] * pue / J_PER_KWH)
    assert float(row["gpu_power"]) == pytest.approx(total[GPU] * pue / 100.0)  # W
    assert float(row["energy_consumed"]) == pytest.approx(sum(total.values()) * pue / J_PER_KWH)
    kg = _co2e_g(t_report, sum(total.values())) / 1000.0
    assert float(row["emissions"]) == pytest.approx(kg)
    assert float(row["emissions_rate"]) == pytest.approx(kg / 100.0)
    assert row["country_iso_code"] == "FRA" and row["country_name"] == "France"
    assert row["gpu_count"] == "1" and GPU_NAME in row["gpu_model"]
    assert row["run_id"] == "00000000-0000-0000-0000-000000000001"
    assert float(row["pue"]) == 1.2 and row["on_cloud"] == "N"


# -- dispatch ------------------------------------------------------------------------


def test_every_format_renders_several_reports(t_report: Report, s_report: Report) -> None:
    for fmt in FORMATS:
        out = render([t_report, s_report], fmt)
        assert out.strip(), fmt


def test_unknown_format_names_the_known_ones(t_report: Report) -> None:
    with pytest.raises(RenderError, match="use one of md, latex, html"):
        render(t_report, "docx")
    with pytest.raises(RenderError, match="no report"):
        render([], "md")


def test_public_functions_are_not_shadowed_by_submodules() -> None:
    """The CLI looks up render/compare/plot on the package after any submodule import."""
    import importlib
    import pkgutil

    import greenmeter.render as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"greenmeter.render.{info.name}")
    for name in ("render", "compare", "plot"):
        assert callable(getattr(pkg, name)) and not isinstance(getattr(pkg, name), type(pkg))
    assert issubclass(pkg.PlotError, ValueError)
