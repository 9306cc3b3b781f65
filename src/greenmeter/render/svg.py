"""A small SVG plotter: power over time per component, phases shaded.

No plotting library is needed, so plots work in the core install. All text is escaped
(:func:`~greenmeter.render.escape.escape_html`). Each panel is one component of one rank;
the time axis is seconds since the report's start, the power axis watts. ``power_w[i]``
of a series is the mean power between ``t_s[i-1]`` and ``t_s[i]``, so it is drawn as a
step line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from greenmeter.render.escape import escape_html
from greenmeter.render.numbers import sig
from greenmeter.render.table import shaded_phases
from greenmeter.report.models import Phase, PowerSeries, Report

__all__ = [
    "PHASE_COLORS",
    "Panel",
    "legend_only_svg",
    "nice_ticks",
    "panels",
    "phase_colors",
    "power_axis",
    "report_svg",
]

#: Fill colours of shaded phases, in order.
PHASE_COLORS = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#b07aa1",
    "#76b7b2",
    "#edc948",
    "#9c755f",
)
LINE_COLOR = "#1b1f3b"
_FONT = "font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (about ``target`` of them)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, target)
    mag = 10 ** math.floor(math.log10(raw))
    steps = [m * mag for m in (1, 2, 2.5, 5, 10)]
    step = min(steps, key=lambda st: (abs((hi - lo) / st - target), -st))
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    k = 0
    while first + k * step <= hi + step * 1e-9 and k < 100:
        ticks.append(round(first + k * step, 12))
        k += 1
    return ticks


def power_axis(p_max: float) -> tuple[float, float, list[float]]:
    """(bottom, top, ticks) of a power axis for values from 0 to ``p_max`` watts.

    The top is a round value at least 8 % above ``p_max`` and the bottom a little below
    zero, so a constant line (zero included) never lies on the frame.
    """
    p_max = min(max(p_max, 1e-9), 1e300) if math.isfinite(p_max) and p_max > 0 else 1.0
    ticks = nice_ticks(0.0, p_max * 1.08)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else p_max * 1.08
    n = math.ceil(p_max * 1.08 / step - 1e-9)
    while n * step < p_max * 1.08:
        n += 1
    top = n * step
    ticks = [round(k * step, 12) for k in range(n + 1)]
    return -0.04 * top, top, ticks


@dataclass(frozen=True)
class Panel:
    """One plotted component of one rank."""

    key: str
    title: str
    t_s: list[float]
    power_w: list[float]


def panels(report: Report) -> list[Panel]:
    """Every (rank, component) with a power series, in component order."""
    labels = {c.key: c.label for c in report.components}
    order = {c.key: n for n, c in enumerate(report.components)}
    out: list[Panel] = []
    multi = len(report.power_timeline) > 1
    for series in report.power_timeline:
        for key in sorted(series.power_w, key=lambda k: order.get(k, len(order))):
            title = f"{labels.get(key, key)} [{key}]"
            if multi:
                title += f", rank {series.rank}"
            out.append(Panel(key, title, list(series.t_s), list(series.power_w[key])))
    return out


def phase_colors(report: Report) -> list[tuple[Phase, str]]:
    """The shaded phases with their colours."""
    return [(p, PHASE_COLORS[n % len(PHASE_COLORS)]) for n, p in enumerate(shaded_phases(report))]


def _step_points(series_t: list[float], power: list[float]) -> list[tuple[float, float]]:
    pts: list[tuple[float, float]] = []
    prev = 0.0
    for t, p in zip(series_t, power, strict=False):
        pts.append((prev, p))
        pts.append((t, p))
        prev = t
    return pts


def panel_svg(
    panel: Panel,
    shading: list[tuple[Phase, str]],
    *,
    t_max_s: float,
    width: int = 760,
    height: int = 180,
    x0: float = 0.0,
    y0: float = 0.0,
) -> str:
    """One panel as an SVG group at (x0, y0)."""
    left, right, top, bottom = 62.0, 16.0, 24.0, 34.0
    pw, ph = width - left - right, height - top - bottom
    y_bottom, y_top, y_ticks = power_axis(max([0.0, *panel.power_w]))
    t_top = t_max_s if t_max_s > 0 else 1.0
    x_ticks = nice_ticks(0.0, t_top, 8)

    def sx(t: float) -> float:
        return left + pw * min(max(t, 0.0), t_top) / t_top

    def sy(p: float) -> float:
        return top + ph * (y_top - min(max(p, 0.0), y_top)) / (y_top - y_bottom)

    out = [f'<g class="gm-panel" transform="translate({x0:.1f},{y0:.1f})">']
    out.append(
        f'<text x="{left:.1f}" y="15" font-size="12" style="{_FONT}" fill="#222">'
        f"{escape_html(panel.title)}</text>"
    )
    out.append(
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{pw:.1f}" height="{ph:.1f}" '
        'fill="#ffffff" stroke="#999" stroke-width="1"/>'
    )
    for phase, color in shading:
        for a, b in phase.intervals_s:
            if b <= a:
                continue
            out.append(
                f'<rect class="gm-phase" x="{sx(a):.2f}" y="{top:.1f}" '
                f'width="{max(0.5, sx(b) - sx(a)):.2f}" height="{ph:.1f}" fill="{color}" '
                f'fill-opacity="0.18"><title>{escape_html(phase.path_str)}: {sig(a)}-{sig(b)} s'
                "</title></rect>"
            )
    for v in y_ticks:
        y = sy(v)
        out.append(
            f'<line x1="{left:.1f}" x2="{left + pw:.1f}" y1="{y:.2f}" y2="{y:.2f}" '
            'stroke="#e3e3e3" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{left - 6:.1f}" y="{y + 4:.2f}" font-size="11" text-anchor="end" '
            f'style="{_FONT}" fill="#444">{escape_html(sig(v, 3))}</text>'
        )
    for v in x_ticks:
        x = sx(v)
        out.append(
            f'<line x1="{x:.2f}" x2="{x:.2f}" y1="{top + ph:.1f}" y2="{top + ph + 4:.1f}" '
            'stroke="#666" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{x:.2f}" y="{top + ph + 16:.1f}" font-size="11" text-anchor="middle" '
            f'style="{_FONT}" fill="#444">{escape_html(sig(v, 3))}</text>'
        )
    out.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 4:.1f}" font-size="11" '
        f'text-anchor="middle" style="{_FONT}" fill="#444">time since start (s)</text>'
    )
    out.append(
        f'<text x="14" y="{top + ph / 2:.1f}" font-size="11" text-anchor="middle" '
        f'style="{_FONT}" fill="#444" transform="rotate(-90 14 {top + ph / 2:.1f})">'
        "power (W)</text>"
    )
    pts = _step_points(panel.t_s, panel.power_w)
    if pts:
        path = " ".join(f"{sx(t):.2f},{sy(p):.2f}" for t, p in pts)
        out.append(
            f'<polyline class="gm-line" points="{path}" fill="none" stroke="{LINE_COLOR}" '
            'stroke-width="1.6" stroke-linejoin="round"/>'
        )
    else:
        out.append(
            f'<text x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" font-size="12" '
            f'text-anchor="middle" style="{_FONT}" fill="#888">no power samples</text>'
        )
    out.append("</g>")
    return "\n".join(out)


def legend_svg(
    shading: list[tuple[Phase, str]], *, width: int = 760, y0: float = 0.0
) -> tuple[str, float]:
    """The phase legend as an SVG group; returns (svg, height used)."""
    out = [f'<g class="gm-legend" transform="translate(0,{y0:.1f})">']
    x, y, row_h = 62.0, 4.0, 18.0
    for phase, color in shading:
        label = phase.path_str
        w = 22 + 7.0 * len(label)
        if x + w > width - 10 and x > 62.0:
            x, y = 62.0, y + row_h
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="14" height="12" fill="{color}" '
            'fill-opacity="0.35" stroke="#777" stroke-width="0.5"/>'
        )
        out.append(
            f'<text x="{x + 18:.1f}" y="{y + 10:.1f}" font-size="11" style="{_FONT}" '
            f'fill="#222">{escape_html(label)}</text>'
        )
        x += w + 12
    out.append("</g>")
    return "\n".join(out), (y + row_h + 4 if shading else 0.0)


def legend_only_svg(report: Report, *, width: int = 760) -> str:
    """The phase legend alone, as an SVG element (empty string when nothing is shaded)."""
    shading = phase_colors(report)
    if not shading:
        return ""
    text, height = legend_svg(shading, width=width)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gm-legend" width="{width}" '
        f'height="{height:.0f}" viewBox="0 0 {width} {height:.0f}" role="img" '
        f'aria-label="phases">\n{text}\n</svg>'
    )


def _t_max(report: Report, series: list[PowerSeries]) -> float:
    ends = [s.t_s[-1] for s in series if s.t_s]
    return max([report.duration_s, *ends])


def report_svg(
    report: Report,
    *,
    width: int = 760,
    panel_height: int = 180,
    standalone: bool = True,
    key: str | None = None,
    legend: bool = True,
) -> str:
    """Power over time of every component (or only ``key``), phases shaded, as SVG.

    Args:
        report: The report.
        width: Width in pixels.
        panel_height: Height of each component's panel in pixels.
        standalone: Include the XML namespace (for an .svg file; harmless inline).
        key: Only this component key.
        legend: Draw the phase legend above the panels.
    """
    shading = phase_colors(report)
    chosen = [p for p in panels(report) if key is None or p.key == key]
    legend_text, legend_h = legend_svg(shading, width=width) if legend else ("", 0.0)
    t_max = _t_max(report, report.power_timeline)
    body = [
        panel_svg(p, shading, t_max_s=t_max, width=width, height=panel_height,
                  y0=legend_h + n * panel_height)
        for n, p in enumerate(chosen)
    ]  # fmt: skip
    if not chosen:
        body.append(
            f'<text x="{width / 2:.0f}" y="{legend_h + 30:.0f}" font-size="13" '
            f'text-anchor="middle" style="{_FONT}" fill="#888">no power timeline in this '
            "report</text>"
        )
    height = int(legend_h + max(1, len(chosen)) * panel_height)
    ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    title = f"Power over time: {report.run_name or report.run_id}"
    return "\n".join(
        [
            f'<svg{ns} class="gm-plot" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape_html(title)}">',
            f"<title>{escape_html(title)}</title>",
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
            legend_text,
            *body,
            "</svg>",
        ]
    )
