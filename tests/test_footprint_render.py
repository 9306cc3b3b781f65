"""The footprint's outputs: every format from one summary, with the summary's figures;
the LaTeX appendix compiles; text from reports is escaped or neutralised; the committed
JSON Schema matches the models and describes real summaries."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from fixtures.reports import HOSTILE, HOSTILE_HTML, HOSTILE_LATEX
from footprint_support import CPU, make_report, save
from greenmeter.footprint import FootprintSummary, footprint
from greenmeter.footprint.schema import FOOTPRINT_SCHEMA_PATH, json_schema, schema_text
from greenmeter.render.footprint import FOOTPRINT_FORMATS, render_footprint
from greenmeter.render.footprint.methods import footprint_methods
from greenmeter.render.methods import plain
from greenmeter.render.numbers import sig
from test_render_formats import _compile

REGENERATE = "python -m greenmeter.footprint.schema"


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> FootprintSummary:
    """Runs in three groups, one with hostile tag values; France, Germany and a stub."""
    root = tmp_path_factory.mktemp("runs")
    runs = [
        make_report(1, tags={"experiment": "distill", "model": "teacher"}, carbon="fr"),
        make_report(2, tags={"experiment": "distill", "model": "student"}, carbon="de", day=1),
        make_report(3, tags={"experiment": "distill", "model": "student"}, status="failed",
                    day=2),
        make_report(4, tags={"experiment": f"=cmd|{HOSTILE}", "model": HOSTILE_HTML},
                    ids=CPU, day=3),
        make_report(5, tags={"experiment": HOSTILE_LATEX}, status="running", day=4),
    ]  # fmt: skip
    for r in runs:
        save(r, root / f"{r.run_id}.json")
    (root / "broken.json").write_text("{")
    return footprint([str(root)], group_by=["experiment", "model"], index=None, include_runs=True)


def test_every_format_renders(summary: FootprintSummary) -> None:
    for fmt in FOOTPRINT_FORMATS:
        assert render_footprint(summary, fmt).strip(), fmt
    with pytest.raises(ValueError, match="table, md, latex, html, csv, json"):
        render_footprint(summary, "docx")


def test_table_and_markdown_show_the_totals(summary: FootprintSummary) -> None:
    t = summary.total
    for fmt in ("table", "md"):
        text = render_footprint(summary, fmt)
        total_lines = [ln for ln in text.splitlines() if "Total" in ln]
        assert any(sig(t.it_energy_kwh) in ln for ln in total_lines), fmt
        assert any(sig(t.facility_energy_kwh) in ln for ln in total_lines), fmt
        assert any(sig(t.gpu_hours) in ln for ln in total_lines), fmt
        assert "broken.json" in text and "(none)" in text
        assert "cannot be counted" in text
    md = render_footprint(summary, "md")
    assert HOSTILE_HTML not in md and "&lt;img src=x onerror=alert(1)&gt;" in md


def test_market_and_embodied_have_their_own_columns(summary: FootprintSummary) -> None:
    # the stub runs carry embodied emissions: a column of its own, never added in
    assert summary.total.co2e_embodied_g is not None
    text = render_footprint(summary, "table")
    assert "CO2e embodied (g)" in text and "CO2e location-based (g)" in text
    assert "CO2e market-based" not in text  # no run had one


def test_methods_state_what_is_included_excluded_and_cite_sources(
    summary: FootprintSummary,
) -> None:
    sentences = footprint_methods(summary)
    text = " ".join(plain(s) for s in sentences)
    assert "They include every run that left a report" in text
    assert "They exclude runs that ended before writing their first report" in text
    assert "1 file(s) that are not valid greenmeter reports were skipped" in text
    assert "5 run(s) (3 completed, 1 failed, 0 interrupted, 1 still running or killed)" in text
    assert "never added to the location-based figure" in text
    keys = {p.key for s in sentences for p in s if not isinstance(p, str)}
    assert {"greenmeter", "ember_yearly", "uptime_2024"} <= keys


def test_latex_escapes_and_has_booktabs_and_bibtex(summary: FootprintSummary) -> None:
    tex = render_footprint(summary, "latex")
    assert "\\toprule" in tex and "\\bottomrule" in tex and "\\section{Compute and carbon" in tex
    assert "@misc{ember_yearly," in tex and "@misc{uptime_2024," in tex
    assert "\\cite{greenmeter}" in tex
    assert HOSTILE_LATEX not in tex and "\\input{/etc/passwd}" not in tex
    assert "50\\%\\_\\&\\$\\#\\{\\}" in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not on PATH")
def test_latex_appendix_compiles(summary: FootprintSummary, tmp_path: Path) -> None:
    log = _compile(render_footprint(summary, "latex"), tmp_path, "footprint")
    assert "! " not in log
    if shutil.which("bibtex"):
        bbl = (tmp_path / "footprint.bbl").read_text()
        for text in ("Ember", "Uptime Institute", "greenmeter"):
            assert text in bbl


def test_html_is_self_contained_with_a_chart_per_group(summary: FootprintSummary) -> None:
    page = render_footprint(summary, "html")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page.lower()
    assert "default-src 'none'" in page
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!#)""", page), "external reference"
    assert page.count('class="gm-chart"') == len(summary.groups) == 4
    bars = page.count('class="gm-bar"')
    assert bars == sum(len(g.by_period) for g in summary.groups)
    assert HOSTILE_HTML not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_csv_numbers_are_numbers_and_text_cannot_be_a_formula(summary: FootprintSummary) -> None:
    rows = list(csv.DictReader(io.StringIO(render_footprint(summary, "csv"))))
    total = next(r for r in rows if r["level"] == "total")
    assert float(total["it_energy_j"]) == summary.total.it_energy_j
    assert float(total["co2e_embodied_g"]) == summary.total.co2e_embodied_g
    assert int(total["runs"]) == 5
    groups = [r for r in rows if r["level"] == "group"]
    assert len(groups) == len(summary.groups)
    assert sum(float(g["facility_energy_j"]) for g in groups) == pytest.approx(
        summary.total.facility_energy_j
    )
    runs = [r for r in rows if r["level"] == "run"]
    assert len(runs) == 5
    hostile = next(g for g in groups if g["tag:experiment"].startswith("'"))
    assert hostile["tag:experiment"] == f"'=cmd|{HOSTILE}"
    for row in rows:
        for key, value in row.items():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (key, value)
    assert all(r["tag:experiment"] != f"=cmd|{HOSTILE}" for r in rows)


def test_json_validates_against_the_committed_schema(summary: FootprintSummary) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(FOOTPRINT_SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = json.loads(render_footprint(summary, "json"))
    jsonschema.Draft202012Validator(schema).validate(doc)
    doc["total"]["it_energy_j"] = -1
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    assert FootprintSummary.model_validate_json(render_footprint(summary, "json")) == summary


def test_committed_footprint_schema_has_not_drifted() -> None:
    assert FOOTPRINT_SCHEMA_PATH.exists(), f"create it with: {REGENERATE}"
    assert FOOTPRINT_SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        f"docs/schema/footprint.schema.json differs from the models; regenerate: {REGENERATE}"
    )
    schema = json_schema()
    assert schema["properties"]["schema_version"]["const"] == "1"
    for name, sub in schema["$defs"].items():
        if sub.get("type") == "object" and "properties" in sub:
            assert sub.get("additionalProperties") is False, name


def test_an_empty_footprint_renders(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("[]")
    empty = footprint([str(tmp_path)], index=None, group_by=["model"])
    assert empty.total.runs.total == 0
    for fmt in FOOTPRINT_FORMATS:
        assert render_footprint(empty, fmt)
    assert "No run carried carbon accounting" in render_footprint(empty, "md")
