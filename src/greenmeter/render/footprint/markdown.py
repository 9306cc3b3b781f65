"""The footprint as Markdown: the two tables, GPU models, methods with numbered sources,
skipped files and notes. Every string from the reports is escaped."""

from __future__ import annotations

from collections.abc import Sequence

from greenmeter.footprint.models import FootprintSummary
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
from greenmeter.render.markdown import escape_md, markdown_sentence
from greenmeter.render.numbers import sig

__all__ = ["footprint_markdown"]


def _table(summary: FootprintSummary, columns: Sequence[Column]) -> str:
    lines = [
        "| Group | " + " | ".join(c.title for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row in rows(summary):
        name = escape_md(row.label)
        if row.is_total:
            name = f"**{name}**"
        cells = [cell(c, row.totals) or "-" for c in columns]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def footprint_markdown(summary: FootprintSummary, *, heading_level: int = 1) -> str:
    """The footprint as a Markdown document (or a section, with ``heading_level`` > 1)."""
    h = "#" * heading_level
    sources = cited_sources(summary)
    numbers = {s.key: n for n, s in enumerate(sources, 1)}
    parts = [f"{h} Compute and carbon footprint", "", escape_md(headline(summary)) + ".", ""]
    parts += [f"{h}# Runs and compute", "", _table(summary, compute_columns()), ""]
    parts += [f"{h}# Energy and CO2e", "", _table(summary, energy_columns(summary)), ""]
    parts += [
        "Energy is IT energy (the measured components) and facility energy (IT energy × "
        "PUE). CO2e location-based is facility energy × grid intensity; market-based and "
        "embodied CO2e are separate figures, never added to it. A dash: no run of the group "
        "has the figure.",
        "",
    ]
    models = gpu_model_rows(summary)
    if models:
        parts += [f"{h}# GPU-hours by GPU model", "", "| GPU model | GPU-hours | Share (%) |"]
        parts.append("|---|---:|---:|")
        parts += [f"| {escape_md(n)} | {sig(hr)} | {sig(p, 3)} |" for n, hr, p in models]
        parts.append("")
    parts += [f"{h}# Methods", ""]
    parts.append(" ".join(markdown_sentence(s, numbers) for s in footprint_methods(summary)))
    if summary.sources:
        parts += ["", f"{h}# Carbon intensity sources", ""]
        parts += [
            f"- **{src.id}** ({src.runs} run(s), {sig(src.facility_energy_kwh)} kWh at the "
            f"facility): {escape_md(source_text(src))}"
            for src in summary.sources
        ]
    parts += ["", f"{h}# References", ""]
    parts += [f"{n}. {escape_md(s.label)}: <{s.url}>" for n, s in enumerate(sources, 1)]
    if summary.skipped:
        parts += ["", f"{h}# Skipped files", ""]
        parts += [
            f"- {escape_md(item.path)}: {escape_md(item.problem)}"
            for item in summary.skipped[:MAX_LISTED]
        ]
        if len(summary.skipped) > MAX_LISTED:
            parts.append(f"- ... and {len(summary.skipped) - MAX_LISTED} more")
    parts += ["", f"{h}# Notes", ""]
    parts += [f"- {escape_md(note)}" for note in summary.notes]
    return "\n".join(parts).rstrip() + "\n"
