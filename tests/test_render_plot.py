"""The built-in SVG plotter and plot(): shapes follow the known power profile."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fixtures.reports import GPU, HOSTILE, PROFILE, teacher
from greenmeter.render import plot
from greenmeter.render.plotting import PlotError
from greenmeter.render.svg import nice_ticks, panels, report_svg, shaded_phases
from greenmeter.report import Report

NS = {"s": "http://www.w3.org/2000/svg"}


@pytest.fixture(scope="module")
def report() -> Report:
    return teacher()


def test_nice_ticks() -> None:
    assert nice_ticks(0, 100, 5) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0, 262.5, 5) == [0, 50, 100, 150, 200, 250]
    assert nice_ticks(0, 0.9, 4) == [0, 0.25, 0.5, 0.75]


def test_panels_follow_the_true_power(report: Report) -> None:
    by_key = {p.key: p for p in panels(report)}
    gpu = by_key[f"{GPU}@node-1"]
    for t, watts in zip(gpu.t_s, gpu.power_w, strict=True):
        mid = t - 0.25  # each point is the mean over the preceding half second
        expected = next(w[GPU] for a, b, w, _ in PROFILE if a <= mid < b)
        assert watts == pytest.approx(expected, rel=1e-6)


def test_svg_has_one_panel_per_component_and_shaded_phases(report: Report) -> None:
    root = ET.fromstring(report_svg(report))  # parses: every text is escaped
    groups = root.findall("s:g[@class='gm-panel']", NS)
    assert len(groups) == len(report.components) == 3
    shaded = shaded_phases(report)
    assert [p.path_str for p in shaded] == [
        "fit/train", "fit/validate", "inference/bs-1", "inference/bs-64", HOSTILE,
    ]  # fmt: skip
    rects = groups[0].findall("s:rect[@class='gm-phase']", NS)
    assert len(rects) == len(shaded)
    # x positions are proportional to the phase start times on a 0-100 s axis
    frame = groups[0].findall("s:rect", NS)[0]
    left, width = float(frame.get("x")), float(frame.get("width"))
    starts = [float(r.get("x")) for r in rects]
    assert starts == pytest.approx([left + width * a / 100 for a in (5, 65, 85, 90, 95)])
    titles = [r.find("s:title", NS).text for r in rects]
    assert titles[-1].startswith(HOSTILE)
    line = groups[0].find("s:polyline", NS)
    assert len(line.get("points").split()) == 2 * len(panels(report)[0].t_s)


def test_plot_svg_and_png(report: Report, tmp_path: Path) -> None:
    svg = plot(report, tmp_path / "power.svg")
    assert ET.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    png = plot(report, tmp_path / "power.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot(report, tmp_path / "power.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(PlotError, match=r"\.svg \(built in\), \.png or \.pdf"):
        plot(report, tmp_path / "power.gif")


def test_png_without_matplotlib_names_the_extra(
    report: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(PlotError, match=r'pip install "greenmeter\[plot\]"'):
        plot(report, tmp_path / "power.png")
    assert not (tmp_path / "power.png").exists()
