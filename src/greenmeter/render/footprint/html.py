"""The footprint as a self-contained HTML page: no scripts, no external assets.

Summary line, the two tables, a chart per group (facility energy by period of run
start, inline SVG from :mod:`greenmeter.render.footprint.chart`), GPU models, methods
with numbered sources, skipped files and notes. All text from the reports is
HTML-escaped; the page's Content-Security-Policy forbids every fetch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timezone
from html import escape

from greenmeter.footprint.models import FootprintSummary
from greenmeter.render.footprint.chart import period_chart
from greenmeter.render.footprint.methods import cited_sources, footprint_methods, source_text
from greenmeter.render.footprint.rows import (
    Column,
    cell,
    compute_columns,
    energy_columns,
    gpu_model_rows,
    rows,
)
from greenmeter.render.footprint.text import MAX_LISTED, headline
from greenmeter.render.html import html_document, html_number, html_sentence
from greenmeter.render.numbers import sig

__all__ = ["footprint_html"]


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _table(summary: FootprintSummary, columns: Sequence[Column]) -> str:
    out = ['<table class="gm-footprint">', "<thead><tr><th>Group</th>"]
    out += [f"<th>{_e(c.title)}</th>" for c in columns]
    out.append("</tr></thead><tbody>")
    for row in rows(summary):
        cls = ' class="gm-total"' if row.is_total else ""
        out.append(f"<tr{cls}><td>{_e(row.label)}</td>")
        out += [f'<td class="n">{html_number(cell(c, row.totals))}</td>' for c in columns]
        out.append("</tr>")
    out.append("</tbody></table>")
    return '<div class="gm-scroll">' + "\n".join(out) + "</div>"


def _charts(summary: FootprintSummary) -> str:
    first = summary.total.first_start_utc
    if first is None:
        return '<p class="gm-note">No runs: nothing to chart.</p>'
    origin = datetime.combine(first.date(), time(), tzinfo=timezone.utc)
    days = summary.period_days
    last = max(p.start_utc for p in summary.total.by_period)
    periods = round((last - origin).total_seconds() / 86400.0 / days) + 1
    charted = [(g.label, g) for g in summary.groups] or [("all runs", summary.total)]
    svgs = [
        period_chart(totals, label, origin=origin, periods=periods, period_days=days,
                     color_index=n)
        for n, (label, totals) in enumerate(charted)
    ]  # fmt: skip
    per = "day" if days == 1 else f"{days}-day period"
    note = (
        f'<p class="gm-note">Facility energy of the runs that started in each {per} (UTC); '
        "the same time axis for every group.</p>"
    )
    return note + '\n<div class="gm-plots">\n' + "\n".join(svgs) + "\n</div>"


def footprint_html(summary: FootprintSummary) -> str:
    """A complete HTML page."""
    sources = cited_sources(summary)
    numbers = {s.key: n for n, s in enumerate(sources, 1)}
    out = [
        '<section class="gm-footprint">',
        "<h1>Compute and carbon footprint</h1>",
        f"<p>{_e(headline(summary))}.</p>",
    ]
    if any(s.is_fallback for s in summary.sources):
        out.append(
            '<p class="gm-fallback"><strong>World-average intensity:</strong> some runs had '
            "no grid location; their CO2e may be off several-fold (see Notes).</p>"
        )
    out += ["<h2>Runs and compute</h2>", _table(summary, compute_columns())]
    out += ["<h2>Energy and CO2e</h2>", _table(summary, energy_columns(summary))]
    out.append(
        '<p class="gm-note">Energy is IT energy (the measured components) and facility energy '
        "(IT energy &times; PUE). CO2e location-based is facility energy &times; grid "
        "intensity; market-based and embodied CO2e are separate figures, never added to it. "
        "A dash: no run of the group has the figure.</p>"
    )
    out += ["<h2>Energy over time</h2>", _charts(summary)]
    models = gpu_model_rows(summary)
    if models:
        out += ["<h2>GPU-hours by GPU model</h2>", "<table>",
                "<thead><tr><th>GPU model</th><th>GPU-hours</th><th>Share (%)</th></tr></thead>",
                "<tbody>"]  # fmt: skip
        out += [
            f'<tr><td>{_e(n)}</td><td class="n">{html_number(sig(h))}</td>'
            f'<td class="n">{html_number(sig(p, 3))}</td></tr>'
            for n, h, p in models
        ]
        out.append("</tbody></table>")
    out += [
        "<h2>Methods</h2>",
        "<p>" + " ".join(html_sentence(s, numbers) for s in footprint_methods(summary)) + "</p>",
    ]
    if summary.sources:
        out += ["<h2>Carbon intensity sources</h2>", "<ul>"]
        out += [
            f"<li><strong>{_e(src.id)}</strong> ({src.runs} run(s), "
            f"{html_number(sig(src.facility_energy_kwh))} kWh at the facility): "
            f"{_e(source_text(src))}</li>"
            for src in summary.sources
        ]
        out.append("</ul>")
    out += ["<h2>References</h2>", "<ol>"]
    out += [
        f'<li id="src-{n}">{_e(s.label)}: <code>{_e(s.url)}</code></li>'
        for n, s in enumerate(sources, 1)
    ]
    out.append("</ol>")
    if summary.skipped:
        out += [f"<h2>Skipped files ({len(summary.skipped)})</h2>", "<ul>"]
        out += [
            f"<li><code>{_e(item.path)}</code>: {_e(item.problem)}</li>"
            for item in summary.skipped[:MAX_LISTED]
        ]
        if len(summary.skipped) > MAX_LISTED:
            out.append(
                f"<li>... and {len(summary.skipped) - MAX_LISTED} more (the JSON output lists "
                "them all)</li>"
            )
        out.append("</ul>")
    out += ["<h2>Notes</h2>", "<ul>", *(f"<li>{_e(n)}</li>" for n in summary.notes), "</ul>"]
    out.append("</section>")
    return html_document(
        "Compute and carbon footprint",
        "\n".join(out),
        f"Written by greenmeter {summary.greenmeter} from the runs' validated JSON reports. "
        "No external assets; nothing here touches the network.",
    )
