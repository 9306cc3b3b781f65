"""A self-contained HTML report: no scripts, no external assets, no network.

Summary, power-over-time plot per component with the phases shaded (inline SVG from
:mod:`greenmeter.render.svg`), the per-phase table, the methods paragraph with its
sources and the warnings; for several reports, the comparison table first. A
Content-Security-Policy forbids every fetch, so opening the file never touches the
network. All text from a report is escaped (:func:`~greenmeter.render.escape.escape_html`).
"""

from __future__ import annotations

from collections.abc import Sequence

from greenmeter.render.comparison import METRICS, cell_text, compare_rows, groups, window_note
from greenmeter.render.escape import escape_html, html_number
from greenmeter.render.methods import Cite, Sentence, methods
from greenmeter.render.numbers import sig
from greenmeter.render.sources import cited_sources
from greenmeter.render.summary import facts
from greenmeter.render.svg import legend_only_svg, panels, phase_colors, report_svg
from greenmeter.render.table import phase_rows, report_label, run_labels
from greenmeter.report.models import Report

__all__ = [
    "compare_html_table",
    "html_document",
    "html_number",
    "html_page",
    "html_section",
    "html_sentence",
]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d1d1f;
 margin:0;background:#f6f7f9;line-height:1.45}
main{max-width:1040px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:1.6rem;margin:.2em 0 .6em}h2{font-size:1.25rem;margin:1.6em 0 .5em;
 border-bottom:1px solid #e3e3e3;padding-bottom:.2em}h3{font-size:1.05rem;margin:1.2em 0 .4em}
dl.gm-summary{display:grid;grid-template-columns:max-content 1fr;gap:.25em 1.2em;margin:0}
dl.gm-summary dt{font-weight:600;color:#444}dl.gm-summary dd{margin:0}
table{border-collapse:collapse;font-size:.9rem;margin:.5em 0;width:100%}
th,td{padding:.35em .6em;border-bottom:1px solid #e6e6e6;vertical-align:top}
th{background:#f1f3f6;text-align:left;font-weight:600}td.n{text-align:right;
 font-variant-numeric:tabular-nums;white-space:nowrap}tr.gm-total td{font-weight:700;
 border-top:2px solid #999}tr.gm-group td{border-top:2px solid #ccc}
.gm-better{color:#1a7f37}.gm-worse{color:#b42318}.gm-note{color:#555;font-size:.88rem}
.gm-warn{background:#fff8e6;border-left:4px solid #e0a800;padding:.5em .8em;margin:.4em 0}
.gm-fallback{background:#fdecea;border-left:4px solid #b42318;padding:.5em .8em}
.gm-plots svg{display:block;max-width:100%;height:auto;margin:.4em 0}
.gm-scroll{overflow-x:auto}
code{background:#f1f3f6;padding:0 .25em;border-radius:3px}
footer{margin-top:2.5em;color:#777;font-size:.82rem}
""".strip()

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def html_sentence(sentence: Sentence, numbers: dict[str, int]) -> str:
    """A methods sentence as HTML; citations link to ``#src-n`` from ``numbers`` (key -> n)."""
    out = []
    pending: list[str] = []
    for part in [*sentence, ""]:
        if isinstance(part, Cite):
            if part.key in numbers:
                n = numbers[part.key]
                pending.append(f'<a href="#src-{n}">{n}</a>')
            continue
        if pending:
            out.append(" [" + ", ".join(pending) + "]")
            pending = []
        out.append(escape_html(part))
    return "".join(out)


def _table(report: Report) -> str:
    head = ("Phase", "Kind", "Count", "Duration (s)", "Energy (J)", "Energy (kWh)",
            "Mean power (W)", "J/sample", "Samples/s", "Latency p50 (ms)", "CO2e (g)",
            "Confidence")  # fmt: skip
    out = ['<table class="gm-phases">', "<thead><tr>"]
    out += [f"<th>{escape_html(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row in phase_rows(report):
        cls = ' class="gm-total"' if row.is_total else ""
        indent = f' style="padding-left:{0.6 + 1.2 * row.depth:.1f}em"' if row.depth else ""
        p50 = row.latency_p50_s * 1000 if row.latency_p50_s is not None else None
        numbers = (row.duration_s, row.energy_j, row.energy_kwh, row.mean_power_w,
                   row.energy_per_sample_j, row.samples_per_s, p50, row.co2e_g)  # fmt: skip
        out.append(f"<tr{cls}><td{indent}>{escape_html(row.path)}</td>")
        out.append(f"<td>{escape_html(row.kind if not row.is_total else '')}</td>")
        out.append(f'<td class="n">{row.count if not row.is_total else ""}</td>')
        out += [f'<td class="n">{html_number(sig(v))}</td>' for v in numbers]
        out.append(f"<td>{escape_html(row.confidence)}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _plots(report: Report) -> str:
    if not report.power_timeline or not panels(report):
        return '<p class="gm-note">This report has no power timeline to plot.</p>'
    shaded = ", ".join(p.path_str for p, _ in phase_colors(report))
    note = (
        '<p class="gm-note">Mean power between timeline points, per component; '
        f"shaded: {escape_html(shaded) or 'no phases'}.</p>"
    )
    svgs = [legend_only_svg(report)]
    svgs += [
        report_svg(report, standalone=True, key=p.key, panel_height=170, legend=False)
        for p in {p.key: p for p in panels(report)}.values()
    ]
    return note + '\n<div class="gm-plots">\n' + "\n".join(svgs) + "\n</div>"


def _estimate_banner(report: Report) -> str:
    """The banner for estimated energy: "all" when all of it is, "part" when part."""
    t = report.totals
    if t.estimated_energy_j <= 0:
        return ""
    share = "all" if t.estimated_energy_j >= t.it_energy_j * (1 - 1e-9) else "part"
    return (
        f'<p class="gm-warn"><strong>Estimates:</strong> {share} of the energy comes from a '
        "model, not from a hardware counter (see Methods; <code>greenmeter doctor</code> on "
        "the machine shows how to read its counters).</p>"
    )


def html_section(report: Report, *, level: int = 1, index: int | None = None) -> str:
    """One report as an HTML ``section`` (headings start at ``<h{level}>``)."""
    h1, h2 = f"h{level}", f"h{level + 1}"
    sources = cited_sources(report)
    numbers = {s.key: n for n, s in enumerate(sources, 1)}
    out = [
        f'<section class="gm-report" id="run-{escape_html(report.run_id)}">',
        f"<{h1}>Energy report: {escape_html(report_label(report, index))}</{h1}>",
    ]
    if report.carbon is not None and report.carbon.intensity.is_fallback:
        out.append(
            '<p class="gm-fallback"><strong>No grid location was given:</strong> CO2e uses '
            "a world-average intensity. Set a location for a meaningful figure.</p>"
        )
    estimate = _estimate_banner(report)
    if estimate:
        out.append(estimate)
    out.append('<dl class="gm-summary">')
    for label, value in facts(report):
        out.append(f"<dt>{escape_html(label)}</dt><dd>{escape_html(value)}</dd>")
    out.append("</dl>")
    out += [f"<{h2}>Power over time</{h2}>", _plots(report)]
    out += [f"<{h2}>Phases</{h2}>", '<div class="gm-scroll">' + _table(report) + "</div>"]
    out.append(
        '<p class="gm-note">Energy is IT energy (the measured components); CO2e is '
        "location-based, from facility energy (IT energy &times; PUE).</p>"
    )
    out += [
        f"<{h2}>Methods</{h2}>",
        "<p>" + " ".join(html_sentence(s, numbers) for s in methods(report)) + "</p>",
        f"<{h2}>Sources</{h2}>",
        "<ol>",
    ]
    out += [
        f'<li id="src-{n}">{escape_html(s.label)}: <code>{escape_html(s.url)}</code></li>'
        for n, s in enumerate(sources, 1)
    ]
    out.append("</ol>")
    if report.warnings:
        out.append(f"<{h2}>Warnings</{h2}>")
        for w in report.warnings:
            where = f" ({escape_html(w.component)})" if w.component else ""
            code, message = escape_html(w.code), escape_html(w.message)
            out.append(f'<p class="gm-warn"><code>{code}</code>{where}: {message}</p>')
    out.append("</section>")
    return "\n".join(out)


def compare_html_table(reports: Sequence[Report]) -> str:
    """The comparison as an HTML table (no surrounding page)."""
    rows = compare_rows(reports)
    head = ["Phase", "Run", *[m.title for m in METRICS]]
    out = ['<table class="gm-compare">', "<thead><tr>"]
    out += [f"<th>{escape_html(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row, first in groups(rows, len(reports)):
        cls = ' class="gm-group"' if first else ""
        out.append(f"<tr{cls}><td>{escape_html(row.phase) if first else ''}</td>")
        out.append(f"<td>{escape_html(row.run)}</td>")
        for m in METRICS:
            text = cell_text(row, m, first, html_number)
            change = row.changes_pct[m.name]
            klass = ""
            if change is not None and not first and abs(change) >= 0.05:
                better = (change > 0) == m.higher_is_better
                klass = ' class="gm-better"' if better else ' class="gm-worse"'
            out.append(f'<td{klass} style="text-align:right">{text or "&ndash;"}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def html_page(reports: Sequence[Report], *, comparison_only: bool = False) -> str:
    """A complete HTML page: one report, or a comparison followed by each report."""
    reports = list(reports)
    if len(reports) == 1 and not comparison_only:
        title = f"Energy report: {report_label(reports[0])}"
        body = html_section(reports[0])
    else:
        labels = run_labels(reports)
        title = "Energy comparison: " + " vs ".join(labels)
        body_parts = [
            f"<h1>{escape_html(title)}</h1>",
            '<p class="gm-note">Per phase; changes in parentheses are against '
            f"{escape_html(labels[0])}. Green: better than the first run (less energy, time, "
            f"size or CO2e; more throughput); red: worse.{escape_html(window_note(reports))}</p>",
            '<div class="gm-scroll">' + compare_html_table(reports) + "</div>",
        ]
        if not comparison_only:
            body_parts += [html_section(r, level=2, index=n) for n, r in enumerate(reports)]
        body = "\n".join(body_parts)
    version = reports[0].software.greenmeter
    return html_document(
        title,
        body,
        f"Written by greenmeter {version} from the validated JSON report. No external "
        "assets; nothing here touches the network.",
    )


def html_document(title: str, body: str, footer: str) -> str:
    """A complete page: the shared style, a CSP that forbids every fetch, ``body`` (HTML).

    Args:
        title: Page title (plain text; escaped here).
        body: The page's content, already HTML.
        footer: Footer text (plain text; escaped here).
    """
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape_html(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            "<main>",
            body,
            f"<footer>{escape_html(footer)}</footer>",
            "</main>",
            "</body>",
            "</html>",
            "",
        ]
    )
