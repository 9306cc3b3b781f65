"""A group's chart: facility energy of the runs that started in each period, as inline SVG.

No plotting library is needed. All text is XML-escaped. Bars sit at their period's
place on a time axis (empty periods leave a gap), so groups can be compared by eye.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

from greenmeter.footprint.models import FootprintTotals
from greenmeter.render.numbers import sig
from greenmeter.render.svg import PHASE_COLORS, nice_ticks

__all__ = ["period_chart"]

_FONT = "font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"


def _x(text: object) -> str:
    return escape(str(text), quote=True)


def _label(start: datetime, days: int) -> str:
    if days == 1:
        return start.strftime("%Y-%m-%d")
    end = start + timedelta(days=days - 1)
    return f"{start.strftime('%Y-%m-%d')} to {end.strftime('%Y-%m-%d')}"


def period_chart(
    totals: FootprintTotals,
    label: str,
    *,
    origin: datetime,
    periods: int,
    period_days: int,
    color_index: int = 0,
    width: int = 760,
    height: int = 200,
) -> str:
    """Facility energy (kWh) per period of run start of a group's runs, as an SVG element.

    Args:
        totals: The group's sums (their ``by_period``).
        label: The group's name.
        origin: Start of the first period (shared by every group's chart).
        periods: Number of periods on the axis.
        period_days: Length of a period in days.
        color_index: Which colour of the palette the bars take.
        width: Width in pixels.
        height: Height in pixels.
    """
    left, right, top, bottom = 62.0, 16.0, 24.0, 40.0
    pw, ph = width - left - right, height - top - bottom
    peak = max([0.0, *(p.facility_energy_kwh for p in totals.by_period)]) or 1.0
    ticks = nice_ticks(0.0, peak * 1.05)
    y_top = max(ticks[-1], peak) if ticks else peak
    slot = pw / max(1, periods)
    color = PHASE_COLORS[color_index % len(PHASE_COLORS)]
    title = f"Facility energy per {period_days}-day period: {label}"
    if period_days == 1:
        title = f"Facility energy per day: {label}"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gm-chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{_x(title)}">',
        f"<title>{_x(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left:.1f}" y="15" font-size="12" style="{_FONT}" fill="#222">'
        f"{_x(title)}</text>",
    ]
    for v in ticks:
        y = top + ph * (1.0 - v / y_top)
        out.append(
            f'<line x1="{left:.1f}" x2="{left + pw:.1f}" y1="{y:.2f}" y2="{y:.2f}" '
            'stroke="#e3e3e3" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{left - 6:.1f}" y="{y + 4:.2f}" font-size="11" text-anchor="end" '
            f'style="{_FONT}" fill="#444">{_x(sig(v, 3))}</text>'
        )
    for p in totals.by_period:
        k = round((p.start_utc - origin).total_seconds() / 86400.0 / period_days)
        h = ph * p.facility_energy_kwh / y_top
        x = left + k * slot + slot * 0.1
        out.append(
            f'<rect class="gm-bar" x="{x:.2f}" y="{top + ph - h:.2f}" '
            f'width="{max(1.0, slot * 0.8):.2f}" height="{h:.2f}" fill="{color}">'
            f"<title>{_x(_label(p.start_utc, p.days))}: {p.runs} run(s), "
            f"{_x(sig(p.facility_energy_kwh))} kWh</title></rect>"
        )
    end = origin + timedelta(days=periods * period_days)
    out += [
        f'<line x1="{left:.1f}" x2="{left + pw:.1f}" y1="{top + ph:.1f}" y2="{top + ph:.1f}" '
        'stroke="#666" stroke-width="1"/>',
        f'<text x="{left:.1f}" y="{top + ph + 16:.1f}" font-size="11" style="{_FONT}" '
        f'fill="#444">{_x(origin.strftime("%Y-%m-%d"))}</text>',
        f'<text x="{left + pw:.1f}" y="{top + ph + 16:.1f}" font-size="11" text-anchor="end" '
        f'style="{_FONT}" fill="#444">{_x(end.strftime("%Y-%m-%d"))}</text>',
        f'<text x="{left + pw / 2:.1f}" y="{height - 4:.1f}" font-size="11" '
        f'text-anchor="middle" style="{_FONT}" fill="#444">run start (UTC)</text>',
        f'<text x="14" y="{top + ph / 2:.1f}" font-size="11" text-anchor="middle" '
        f'style="{_FONT}" fill="#444" transform="rotate(-90 14 {top + ph / 2:.1f})">'
        "kWh</text>",
        "</svg>",
    ]
    return "\n".join(out)
