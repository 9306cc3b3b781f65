"""The HTML report opened in headless Chromium: it renders, its SVG plots are in the DOM,
the console stays clean, and the screenshot is not blank."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from fixtures.reports import student, teacher
from greenmeter.render import render

CHROMIUM = next(
    (p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)
WIDTH, HEIGHT = 1100, 1400


def _chromium(tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
        "--enable-logging=stderr", "--v=0", *extra, page.as_uri(),
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def _console_problems(stderr: str) -> list[str]:
    """Console messages, blocked loads and network errors that Chromium logged.

    The page has no scripts, so any console message at all (Chromium logs them as
    ``INFO:CONSOLE`` whatever their level, CSP violations included) is a problem.
    """
    keys = (":CONSOLE", "Refused to", "net::ERR", "Uncaught")
    return [line for line in stderr.splitlines() if any(k in line for k in keys)]


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG with the standard library: (width, height, rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows if channels == 3 else _drop_alpha(rows)


def _drop_alpha(rows: list[bytes]) -> list[bytes]:
    return [bytes(b for i, b in enumerate(r) if i % 4 != 3) for r in rows]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render([teacher(), student()], "html"), encoding="utf-8")
    return path


def test_page_renders_with_plots_and_a_clean_console(page: Path, tmp_path: Path) -> None:
    dom = _chromium(tmp_path, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "<svg" in html and 'class="gm-plot"' in html
    assert html.count('class="gm-line"') == 6  # 3 components x 2 reports
    assert 'class="gm-compare"' in html and "Energy report: student" in html
    assert "<img" not in html  # the hostile <img> stayed text
    assert _console_problems(dom.stderr) == []

    shot = tmp_path / "shot.png"
    res = _chromium(tmp_path, page, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}")
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    assert _console_problems(res.stderr) == []
    width, height, rows = _png_pixels(shot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    non_white = sum(1 for row in rows for x in range(0, len(row), 3) if min(row[x : x + 3]) < 235)
    assert non_white / (width * height) > 0.03, "the screenshot is (nearly) blank"


def test_console_check_catches_errors(tmp_path: Path) -> None:
    """Control: a page the content policy blocks is reported by the same check."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'\"></head><body><script>console.log(1)</script>"
        "</body></html>"
    )
    res = _chromium(tmp_path, bad, "--dump-dom")
    assert _console_problems(res.stderr), res.stderr[-2000:]
