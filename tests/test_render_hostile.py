"""No string in a report can break an output: every renderer, fed random Unicode, every
ASCII punctuation character and known-bad strings (fixtures/hostile.py) in every free-text
field of a report, keeps its structure and shows the text as text.

The known truth of each structure is the same report with plain names: the Markdown
parses into the same blocks and inline elements (CommonMark and Python-Markdown), the
HTML into the same elements and attributes, the CSV into the same rows and columns,
the YAML into the same keys, the SVG into the same XML elements; the LaTeX compiles
with pdflatex (all the cases of a run in one document). Each test prints how many cases
it ran.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import markdown as python_markdown
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from fixtures.hostile import NASTY, PUNCTUATION, hostile_report
from fixtures.reports import make_report, teacher
from greenmeter.render import compare, render
from greenmeter.render.codecarbon import CODECARBON_COLUMNS
from greenmeter.render.escape import escape_latex, escape_md
from greenmeter.render.svg import report_svg
from greenmeter.render.table import run_labels
from greenmeter.render.tabular import CSV_COLUMNS
from greenmeter.report import Report

CASES: Counter[str] = Counter()

PROPS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: Any text: random Unicode (no surrogates), ASCII punctuation, or a known-bad string.
TEXT = st.one_of(
    st.text(min_size=1, max_size=24),
    st.text(alphabet=PUNCTUATION + " \t\n\r", min_size=1, max_size=16),
    st.sampled_from(NASTY),
)
TEXTS = st.lists(TEXT, min_size=1, max_size=24)


@pytest.fixture(scope="module", autouse=True)
def _print_counts() -> Any:
    yield
    print(f"\nhostile cases run: {dict(sorted(CASES.items()))}")


def _plain(run_id: str = "0" * 31 + "9") -> Report:
    """The structure's truth: the same report with plain names."""
    return hostile_report([f"name{n}" for n in range(40)], run_id=run_id)


def _edges(text: str) -> str:
    """What a renderer may do to a string's edges and control characters: spaces."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", text).strip()


# -- Markdown ------------------------------------------------------------------------


_COMMONMARK = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _md_shape(text: str) -> list[tuple[str, str]]:
    """Block tokens and, inside them, every inline element that is not plain text."""
    shape: list[tuple[str, str]] = []
    for token in _COMMONMARK.parse(text):
        shape.append((token.type, token.tag))
        for child in token.children or ():
            if child.type not in ("text", "text_special"):
                shape.append((child.type, child.tag))
    return shape


def _md_phase_cells(text: str) -> list[str]:
    """The text of the first cell of each body row of the phase table."""
    tokens = _COMMONMARK.parse(text)
    cells, in_body, first = [], False, False
    for token in tokens:
        if token.type == "tbody_open":
            in_body = True
        elif token.type == "tbody_close":
            break
        elif token.type == "tr_open":
            first = True
        elif in_body and first and token.type == "inline":
            cells.append("".join(c.content for c in token.children or ()))
            first = False
    return cells


def _html_shape(text: str) -> Counter[tuple[str, tuple[str, ...]]]:
    """Every element of an HTML text with its attribute names."""
    found: Counter[tuple[str, tuple[str, ...]]] = Counter()

    class Shape(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found[(tag, tuple(sorted(a for a, _ in attrs)))] += 1

    parser = Shape()
    parser.feed(text)
    parser.close()
    return found


@PROPS
@given(TEXTS)
@example(list(NASTY))
@example(["code\n# <script>alert(1)</script>"])
def test_markdown_keeps_its_structure(texts: list[str]) -> None:
    CASES["markdown"] += 1
    report, plain = hostile_report(texts), _plain()
    md, truth = render(report, "md"), render(plain, "md")
    assert _md_shape(md) == _md_shape(truth)
    for path, cell in zip(
        [p.path_str for p in report.iter_phases()], _md_phase_cells(md), strict=False
    ):
        assert cell.strip() == _edges(path).strip()
    assert len(_md_phase_cells(md)) == len(list(report.iter_phases())) + 1  # and the total
    extensions = ["tables", "attr_list"]
    assert _html_shape(python_markdown.markdown(md, extensions=extensions)) == _html_shape(
        python_markdown.markdown(truth, extensions=extensions)
    )
    other, plain2 = hostile_report(texts, run_id="8" * 32), _plain(run_id="8" * 32)
    assert _md_shape(compare([report, other], "md")) == _md_shape(compare([plain, plain2], "md"))


def test_a_warning_code_cannot_open_a_heading_or_a_script() -> None:
    """The report of a hostile code: no heading and no HTML element appear."""
    report = hostile_report(["ok"])
    bad = report.warnings[0].model_copy(update={"code": "x\n# <script>alert(1)</script>"})
    md = render(report.model_copy(update={"warnings": [bad]}), "md")
    tokens = _COMMONMARK.parse(md)
    headings = [t for t in tokens if t.type == "heading_open"]
    assert len(headings) == len(
        [t for t in _COMMONMARK.parse(render(report, "md")) if t.type == "heading_open"]
    )
    assert not [t for t in tokens if t.type.startswith("html")]
    assert not any(c.type.startswith("html") for t in tokens for c in t.children or ())
    assert "<script>" not in python_markdown.markdown(md)


# -- HTML and SVG --------------------------------------------------------------------


def _html_text(text: str) -> str:
    out: list[str] = []

    class Text(HTMLParser):
        def handle_data(self, data: str) -> None:
            out.append(data)

    parser = Text()
    parser.feed(text)
    parser.close()
    return "".join(out)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@PROPS
@given(TEXTS)
@example(list(NASTY))
def test_html_and_svg_keep_their_structure(texts: list[str]) -> None:
    CASES["html"] += 1
    report, plain = hostile_report(texts), _plain()
    page = render(report, "html")
    assert _html_shape(page) == _html_shape(render(plain, "html"))
    shown = _html_text(page)
    for phase in report.iter_phases():
        assert _NOT_XML.sub("\ufffd", phase.path_str) in shown
    other, plain2 = hostile_report(texts, run_id="8" * 32), _plain(run_id="8" * 32)
    both = render([report, other], "html")
    assert _html_shape(both) == _html_shape(render([plain, plain2], "html"))
    svg = ET.fromstring(report_svg(report))  # an .svg file must be well-formed XML
    truth = ET.fromstring(report_svg(plain))
    assert [e.tag for e in svg.iter()] == [e.tag for e in truth.iter()]
    ns = {"s": "http://www.w3.org/2000/svg"}
    panel = svg.find("s:g[@class='gm-panel']", ns)
    titles = [t.text for t in panel.findall("s:rect[@class='gm-phase']/s:title", ns)]
    shaded = [p for p in report.iter_phases() if not p.children]
    # XML turns a carriage return into a line feed on reading
    want = [
        _NOT_XML.sub("\ufffd", p.path_str).replace("\r\n", "\n").replace("\r", "\n") for p in shaded
    ]
    assert [t.rsplit(": ", 1)[0] for t in titles] == want


# -- CSV -----------------------------------------------------------------------------


def _spreadsheet_safe(text: str) -> str:
    """The truth of a CSV text cell: OWASP's leading quote before a formula start, unless
    the cell is a number as a spreadsheet reads one (``-62.3``)."""
    text = text.replace("\x00", "\ufffd")
    number = re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and number is None:
        return "'" + text
    return text


@PROPS
@given(TEXTS)
@example(list(NASTY))
@example(['=HYPERLINK("http:x","y")'])
def test_csv_rows_and_columns_round_trip_and_run_no_formula(texts: list[str]) -> None:
    CASES["csv"] += 1
    report = hostile_report(texts)
    phases = list(report.iter_phases())
    rows = list(csv.reader(io.StringIO(render(report, "csv"), newline="")))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 1 + len(phases) + 1 and {len(r) for r in rows} == {len(CSV_COLUMNS)}
    col = {name: n for n, name in enumerate(CSV_COLUMNS)}
    for row, phase in zip(rows[1:], phases, strict=False):
        assert row[col["phase"]] == _spreadsheet_safe(phase.path_str)
        assert row[col["run_name"]] == _spreadsheet_safe(report.run_name or "")
        assert float(row[col["it_energy_j"]]) == phase.it_energy_j  # numbers stay numbers
    cc = list(csv.reader(io.StringIO(render([report, report], "codecarbon-csv"), newline="")))
    assert len(cc) == 3 and {len(r) for r in cc} == {len(CODECARBON_COLUMNS)}
    cc_col = {name: n for n, name in enumerate(CODECARBON_COLUMNS)}
    assert cc[1][cc_col["project_name"]] == _spreadsheet_safe(report.run_name or "")
    assert cc[1][cc_col["cpu_model"]] == _spreadsheet_safe(report.hosts[0].cpu_model or "")
    pair = [report, hostile_report(texts, run_id="8" * 32)]
    table = list(csv.reader(io.StringIO(compare(pair, "csv"), newline="")))
    truth = list(csv.reader(io.StringIO(compare([_plain(), _plain("8" * 32)], "csv"))))
    assert len(table) == len(truth) and {len(r) for r in table} == {len(truth[0])}
    assert [r[0] for r in table[1:-2:2]] == [_spreadsheet_safe(p.path_str) for p in phases]
    assert table[-1][1] == _spreadsheet_safe(run_labels(pair)[1])


def test_csv_neutralises_formulas_and_keeps_numbers() -> None:
    formula = '=HYPERLINK("http:x","y")'
    report = hostile_report([formula])
    for fmt in ("csv", "codecarbon-csv"):
        text = render(report, fmt)
        cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
        assert "'" + formula in cells and formula not in cells
    rows = list(csv.DictReader(io.StringIO(compare([_plain(), report], "csv"))))
    runs, phases = {r["run"] for r in rows}, {r["phase"] for r in rows}
    assert "'" + formula in runs and "'" + formula in phases
    assert formula not in runs and formula not in phases
    half = make_report(0.5, run_name=formula, run_id="8" * 32)
    rows = list(csv.DictReader(io.StringIO(compare([teacher(), half], "csv"))))
    train = next(r for r in rows if r["phase"] == "fit/train" and r["energy_j_change_pct"])
    assert train["energy_j_change_pct"] == "-50.0"  # a negative number stays a number
    assert train["run"] == "'" + formula


# -- YAML (model card) -----------------------------------------------------------------


@PROPS
@given(TEXTS)
@example(list(NASTY))
def test_model_card_yaml_loads_back_every_string(texts: list[str]) -> None:
    CASES["yaml"] += 1
    report = hostile_report(texts)
    card = render(report, "hf-card")
    front = card.split("\n---\n")[0].removeprefix("---\n")
    meta = yaml.safe_load(front)
    assert set(meta) == {"co2_eq_emissions"}
    fields = meta["co2_eq_emissions"]
    assert set(fields) == {
        "emissions", "source", "training_type", "geographical_location", "hardware_used",
    }  # fmt: skip
    assert fields["training_type"] == report.extra["training_type"]
    assert fields["geographical_location"] == ", ".join(
        p
        for p in (report.carbon.intensity.location_name, report.carbon.intensity.cloud_region)
        if p
    )
    assert isinstance(fields["emissions"], float)
    assert card.count("\n---\n") == 1 and card.endswith("---\n")


# -- LaTeX ---------------------------------------------------------------------------

_TABULAR = re.compile(r"\\begin\{tabular\}\{([lr]+)\}(.*?)\\end\{tabular\}", re.S)


def _cells_per_row(tex: str) -> None:
    """Each tabular row has exactly one ``&`` fewer than its columns (no escaped & counts)."""
    tables = _TABULAR.findall(tex)
    assert tables
    for spec, body in tables:
        for line in body.splitlines():
            if line.rstrip().endswith(r"\\"):
                assert line.replace(r"\&", "").count("&") == len(spec) - 1, line


@PROPS
@given(TEXTS)
@example(list(NASTY))
def test_latex_tables_keep_their_columns(texts: list[str]) -> None:
    CASES["latex structure"] += 1
    report = hostile_report(texts)
    _cells_per_row(render(report, "latex"))
    _cells_per_row(compare([report, _plain()], "latex"))


def _pdflatex(tex: str, where: Path, name: str) -> subprocess.CompletedProcess[str]:
    (where / f"{name}.tex").write_text(tex, encoding="utf-8")
    cmd = ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"]
    try:
        return subprocess.run(cmd, cwd=where, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:  # a hang is a failure too
        return subprocess.CompletedProcess(cmd, 124, str(exc.stdout or ""), "")


def _document(reports: list[Report]) -> str:
    """One document: every report's section, then their comparison table."""
    text = render(reports, "latex")
    table = compare(reports[:2] if len(reports) > 1 else reports, "latex")
    return text.replace("\\bibliographystyle{plain}", table + "\n\\bibliographystyle{plain}")


def _first_bad(reports: list[Report], where: Path) -> list[Report]:
    """The smallest run of reports whose document does not compile (halving)."""
    while len(reports) > 1:
        half = reports[: len(reports) // 2]
        rest = reports[len(reports) // 2 :]
        reports = half if _pdflatex(_document(half), where, "half").returncode else rest
    return reports


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not on PATH")
def test_latex_compiles_whatever_the_names(tmp_path: Path) -> None:
    reports: list[Report] = [hostile_report(list(NASTY)), hostile_report(["[ablation] lr=1e-3"])]
    reports += [hostile_report([f"{ch}{ch}name"], run_id=f"{n:032x}") for n, ch in
                enumerate(PUNCTUATION)]  # fmt: skip

    @settings(PROPS, max_examples=40)
    @given(TEXTS)
    def collect(texts: list[str]) -> None:
        CASES["latex compiled"] += 1
        reports.append(hostile_report(texts, run_id=f"{len(reports) + 1000:032x}"))

    collect()
    tex = _document(reports)
    for run in range(2):  # the second run reads back what the first wrote (.aux)
        done = _pdflatex(tex, tmp_path, "hostile")
        if done.returncode != 0:
            bad = _first_bad(reports, tmp_path)
            pytest.fail(
                f"pdflatex failed (run {run + 1}) on names {bad[0].run_name!r}, "
                f"{[p.name for p in bad[0].iter_phases()]}: {done.stdout[-1500:]}"
            )
    assert "! " not in (tmp_path / "hostile.log").read_text(errors="replace")
    assert (tmp_path / "hostile.pdf").stat().st_size > 10_000


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not on PATH")
def test_a_bracket_after_a_row_end_or_rule_compiles(tmp_path: Path) -> None:
    """``[ablation]`` first in a cell, after ``\\\\`` and after ``\\midrule``."""
    report = hostile_report(["[ablation] lr=1e-3", "[b]", "*c"])
    done = _pdflatex(render(report, "latex"), tmp_path, "bracket")
    assert done.returncode == 0, done.stdout[-2000:]
    assert escape_latex("[x]") == "{[}x{]}" and escape_latex("*x") == "{}*x"


# -- escapers one by one -------------------------------------------------------------


@settings(PROPS, max_examples=300)
@given(TEXT)
def test_escape_md_renders_the_text_itself(text: str) -> None:
    """In a paragraph, a list item or a table cell, the text comes out as it went in."""
    CASES["escape_md"] += 1
    want = " ".join(_edges(text).split())
    for source in (escape_md(text), f"- {escape_md(text)}", f"| a |\n|---|\n| {escape_md(text)} |"):
        tokens = _COMMONMARK.parse(source)
        inline = [t for t in tokens if t.type == "inline"]
        blocks = [t.type for t in tokens if t.type != "inline"]
        if not want:
            continue
        got = "".join(c.content for c in inline[-1].children or ())
        assert " ".join(got.split()) == want
        assert not any(c.type != "text" for c in inline[-1].children or ())
        assert "heading_open" not in blocks and "code_block" not in blocks
        assert blocks.count("bullet_list_open") == (1 if source.startswith("- ") else 0)
        assert "ordered_list_open" not in blocks and "hr" not in blocks
