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
    with pytest.raises(PlotError, match=r"the suffix \.docx; use one of .*\.pdf, .*\.png, .*\.svg"):
        plot(report, tmp_path / "power.docx")


def test_png_without_matplotlib_names_the_extra(
    report: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(PlotError, match=r'pip install "greenmeter\[plot\]"'):
        plot(report, tmp_path / "power.png")
    assert not (tmp_path / "power.png").exists()


def _constant(report: Report, watts: float) -> Report:
    """``report`` with every component drawing ``watts`` all the time."""
    data = report.model_dump(mode="json")
    for series in data["power_timeline"]:
        for key in series["power_w"]:
            series["power_w"][key] = [watts] * len(series["t_s"])
    return Report.model_validate(data)


@pytest.mark.parametrize("watts", [0.0, 3.0, 5.0, 100.0, 250.0, 0.9])
def test_a_constant_power_line_is_drawn_inside_the_frame(report: Report, watts: float) -> None:
    """A flat line (a RAM estimate) never lies on the top or bottom edge of its panel."""
    flat = _constant(report, watts)
    root = ET.fromstring(report_svg(flat))
    for group in root.findall("s:g[@class='gm-panel']", NS):
        frame = group.findall("s:rect", NS)[0]
        top, height = float(frame.get("y")), float(frame.get("height"))
        ys = {float(p.split(",")[1]) for p in group.find("s:polyline", NS).get("points").split()}
        assert len(ys) == 1
        (y,) = ys
        assert top + 0.03 * height <= y <= top + 0.97 * height, (watts, y, top, height)
    pytest.importorskip("matplotlib")
    from greenmeter.render.plotting import figure

    fig = figure(flat)
    for ax in fig.axes:
        if not ax.lines:
            continue
        bottom, top_w = ax.get_ylim()
        span = top_w - bottom
        assert bottom + 0.03 * span <= watts <= top_w - 0.03 * span, (watts, bottom, top_w)


@pytest.mark.parametrize(
    ("suffix", "magic"),
    [(".jpg", b"\xff\xd8\xff"), (".jpeg", b"\xff\xd8\xff"), (".tif", b"II*\x00"),
     (".eps", b"%!PS"), (".webp", b"RIFF")],
)  # fmt: skip
def test_every_format_matplotlib_writes_is_accepted(
    report: Report, tmp_path: Path, suffix: str, magic: bytes
) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from greenmeter.render.plotting import plot_formats

    if suffix.lstrip(".") not in FigureCanvasAgg.get_supported_filetypes():
        pytest.skip(f"this matplotlib does not write {suffix}")
    assert suffix.lstrip(".") in plot_formats()
    assert plot(report, tmp_path / f"power{suffix}").read_bytes().startswith(magic)


def test_plot_errors_name_the_users_path_only(report: Report, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    target = blocker / "p.png"
    with pytest.raises(OSError) as caught:
        plot(report, target)
    message = str(caught.value)
    assert str(target) in message and ".tmp" not in message
    assert "/" not in message.replace(str(target), ""), message  # no other path
    assert list(tmp_path.iterdir()) == [blocker]
    with pytest.raises(PlotError) as bad:
        plot(report, tmp_path / "p.nosuchformat")
    assert str(tmp_path / "p.nosuchformat") in str(bad.value) and "\n" not in str(bad.value)


@pytest.mark.parametrize("name", ["$\\undefinedcmd$", "price $5 and $10", "$x^2$ _y_"])
def test_plot_labels_are_drawn_as_text_never_as_math(
    report: Report, tmp_path: Path, name: str
) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    from greenmeter.render.plotting import figure

    data = report.model_dump(mode="json")
    data["phases"][-1].update(name=name, path=[name])
    data["components"][0]["label"] = name
    hostile = Report.model_validate(data)
    with matplotlib.rc_context({"text.usetex": True}):  # a user's setting must not matter
        fig = figure(hostile)
        path = plot(hostile, tmp_path / "m.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    texts = [t for t in fig.findobj(matplotlib.text.Text) if name in t.get_text()]
    assert len(texts) >= 2  # the legend entry and a panel title
    for text in texts:
        assert text.get_parse_math() is False and text.get_usetex() is False
    assert any(t.get_text() == name for t in texts)  # the legend shows the name as it is
