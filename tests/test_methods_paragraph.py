"""The methods paragraph states exactly what was used, and compiles with pdflatex + bibtex.

Four reports: hardware counters; an estimate only; a time-varying intensity; the world
fallback. Each paragraph is checked for the facts it must state and the claims it must
not make, then compiled in a document with its BibTeX entries.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from greenmeter.carbon import CarbonConfig, resolve
from greenmeter.render.latex import latex, latex_methods
from greenmeter.render.methods import methods, plain
from greenmeter.render.sources import bibtex
from greenmeter.report import Report, build_report
from greenmeter.sensors.base import ComponentKind, Method, Scope
from test_report_support import GPU_ID, HOST_INFO, START_UTC, make_snapshot


def _build(snap, carbon) -> Report:  # type: ignore[no-untyped-def]
    return build_report(snap, carbon=carbon, host_info=HOST_INFO, include_git=False)


def _series_file(tmp_path: Path) -> Path:
    lines = ["Datetime (UTC),Zone id,Carbon Intensity gCO2eq/kWh (LCA)"]
    for h in range(-2, 4):
        t = (START_UTC + timedelta(hours=h)).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{t},FR,{30 + 10 * h}")
    path = tmp_path / "fr.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def reports(tmp_path: Path) -> dict[str, Report]:
    counters = _build(
        make_snapshot(ids=["rapl:package-0", GPU_ID]),
        resolve(
            CarbonConfig(location="FR", pue=1.2, pue_source="site audit"), env={}, cwd=tmp_path
        ),
    )
    est = make_snapshot(ids=["estimate:ram"])
    cpu = dataclasses.replace(
        est.components[0],
        kind=ComponentKind.CPU,
        scope=Scope.MACHINE,
        method=Method.ESTIMATED,
        label="CPU (estimate)",
        detail={
            "model": "rated power x CPU busy fraction",
            "constants": "rated 65 W (TDP)",
            "source": "vendor TDP table",
        },
    )
    estimate = _build(
        dataclasses.replace(est, components=[cpu]),
        resolve(CarbonConfig(location="DE"), env={}, cwd=tmp_path),
    )
    series = _build(
        make_snapshot(ids=["rapl:package-0"]),
        resolve(
            CarbonConfig(location="FR", intensity_series=str(_series_file(tmp_path))),
            env={},
            cwd=tmp_path,
        ),
    )
    fallback = _build(make_snapshot(ids=["rapl:package-0"]), resolve(None, env={}, cwd=tmp_path))
    return {"counters": counters, "estimate": estimate, "series": series, "fallback": fallback}


def _text(report: Report) -> str:
    return " ".join(plain(s) for s in methods(report))


def test_counters_paragraph(reports: dict[str, Report]) -> None:
    text = _text(reports["counters"])
    assert "hardware energy counter" in text and "estimated" not in text
    assert "44.18 g per kWh for 2024 (lifecycle basis, CO2e)" in text
    assert "PUE) of 1.2 (site audit)" in text and "[ember_yearly]" in text


def test_estimate_paragraph_says_what_the_estimate_models(reports: dict[str, Report]) -> None:
    text = _text(reports["estimate"])
    assert "Whole-machine CPU power (CPU (estimate)) was estimated, not measured" in text
    assert "rated power x CPU busy fraction (rated 65 W (TDP))" in text
    assert "100% of this energy is a model estimate" in text
    assert "hardware energy counter" not in text


def test_series_paragraph_does_not_state_the_unused_static_value(
    reports: dict[str, Report],
) -> None:
    report = reports["series"]
    text = _text(report)
    assert "time-varying grid carbon intensity for zone FR" in text
    assert "lifecycle basis" in text and "weighted by the energy" in text
    assert "44.18" not in text  # France's static figure was not used
    assert "ember_yearly" not in bibtex(report)  # so its source is not cited either
    ts = report.carbon.time_series  # type: ignore[union-attr]
    assert ts is not None and ts.basis == "lifecycle" and ts.zone == "FR"


def test_fallback_paragraph_names_the_fallback_and_its_year(reports: dict[str, Report]) -> None:
    text = _text(reports["fallback"])
    assert "a fallback was used: the world average" in text
    assert "472.9 g CO2e per kWh for 2024" in text
    assert "No data-centre overhead was counted" in text


@pytest.mark.parametrize("name", ["counters", "estimate", "series", "fallback"])
def test_paragraph_has_no_overstatement(reports: dict[str, Report], name: str) -> None:
    report = reports[name]
    tex = latex_methods(report)
    text = _text(report)
    assert "unverified" not in tex.lower() and "not re-verified" not in tex.lower()
    assert "http" not in tex  # URLs live in the BibTeX entries, inside \url{}
    assert not re.search(r"range ([\d.e+-]+) to \1 g", text)  # no equal-ended ranges
    assert "×" not in text and "*" not in text  # prose, no formulas
    used = set(report.software.frameworks_imported or ())  # what this process imported
    assert ("PyTorch " in text) is ("torch" in used)
    assert ("Transformers " in text) is ("transformers" in used)
    bib = bibtex(report)
    for keys in re.findall(r"\\cite\{([^}]*)\}", tex):
        for key in keys.split(","):
            assert f"{{{key}," in bib, key
    assert all("\\url{" in e or "url = {" in e for e in bib.split("\n\n"))


@pytest.mark.skipif(
    shutil.which("pdflatex") is None or shutil.which("bibtex") is None,
    reason="pdflatex or bibtex is not installed (a basic TeX installation provides both)",
)
def test_four_paragraphs_compile_with_pdflatex_and_bibtex(
    reports: dict[str, Report], tmp_path: Path
) -> None:
    doc = latex(list(reports.values()))
    (tmp_path / "doc.tex").write_text(doc, encoding="utf-8")
    cmd = ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"]
    for step in (cmd, ["bibtex", "doc"], cmd, cmd):
        done = subprocess.run(step, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:]
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert "Citation" not in log or "undefined" not in log
    bbl = (tmp_path / "doc.bbl").read_text()
    for text in ("Ember", "greenmeter"):
        assert text in bbl


def test_only_frameworks_the_process_imported_are_named(tmp_path: Path) -> None:
    import sys

    pytest.importorskip("torch")
    report = _build(
        make_snapshot(ids=["rapl:package-0"]),
        resolve(CarbonConfig(location="FR"), env={}, cwd=tmp_path),
    )
    assert report.software.frameworks_imported is not None
    assert "torch" in report.software.frameworks_imported
    text = _text(report)
    assert f"PyTorch {report.software.torch}" in text
    if "transformers" not in sys.modules and report.software.transformers:
        assert "Transformers" not in text  # installed, not used
