"""Markdown: summary, per-phase table, methods with sources, warnings.

Every report string goes through :func:`~greenmeter.render.escape.escape_md`. The
sources that were not used here and how to enable them are for ``greenmeter doctor``,
not for this report.
"""

from __future__ import annotations

from collections.abc import Sequence

from greenmeter.render.escape import escape_md
from greenmeter.render.methods import Cite, Sentence, methods
from greenmeter.render.numbers import sig
from greenmeter.render.sources import cited_sources
from greenmeter.render.summary import facts
from greenmeter.render.table import PhaseRow, phase_rows, report_label
from greenmeter.report.models import Report

__all__ = ["escape_md", "markdown", "markdown_sentence", "markdown_table", "render_markdown"]

_DASH = "-"


def _cell(value: str) -> str:
    return value if value else _DASH


HEADER = (
    "Phase",
    "Kind",
    "Duration (s)",
    "Energy (J)",
    "Energy (kWh)",
    "Mean power (W)",
    "J/sample",
    "CO2e (g)",
)


def _row_cells(row: PhaseRow) -> list[str]:
    name = escape_md(row.path)
    if row.is_total:
        name = f"**{name}**"
    return [
        name,
        escape_md(row.kind) if not row.is_total else "",
        sig(row.duration_s),
        sig(row.energy_j),
        sig(row.energy_kwh),
        sig(row.mean_power_w),
        sig(row.energy_per_sample_j),
        sig(row.co2e_g),
    ]


def markdown_table(report: Report) -> str:
    """The per-phase table (IT energy; CO2e from facility energy)."""
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---", "---", *["---:"] * (len(HEADER) - 2)]) + "|",
    ]
    for row in phase_rows(report):
        lines.append("| " + " | ".join(_cell(c) for c in _row_cells(row)) + " |")
    return "\n".join(lines)


def markdown_sentence(sentence: Sentence, numbers: dict[str, int]) -> str:
    """A methods sentence as Markdown; citations become ``[n]`` from ``numbers`` (key -> n)."""
    out = []
    pending: list[str] = []
    for part in [*sentence, ""]:
        if isinstance(part, Cite):
            if part.key in numbers:
                pending.append(str(numbers[part.key]))
            continue
        if pending:
            out.append(" [" + ", ".join(pending) + "]")
            pending = []
        out.append(escape_md(part))
    return "".join(out)


def render_markdown(report: Report, *, heading_level: int = 1) -> str:
    """One report as a Markdown document (or section, with ``heading_level`` > 1)."""
    h = "#" * heading_level
    sources = cited_sources(report)
    numbers = {s.key: n for n, s in enumerate(sources, 1)}
    parts = [f"{h} Energy report: {escape_md(report_label(report))}", ""]
    parts += [f"- **{label}:** {escape_md(value)}" for label, value in facts(report)]
    parts += ["", f"{h}# Phases", "", markdown_table(report), ""]
    parts += [
        "Energy is IT energy (the measured components); CO2e is location-based, from "
        "facility energy (IT energy × PUE).",
        "",
        f"{h}# Methods",
        "",
        " ".join(markdown_sentence(s, numbers) for s in methods(report)),
        "",
        f"{h}# Sources",
        "",
    ]
    parts += [f"{n}. {escape_md(s.label)}: <{s.url}>" for n, s in enumerate(sources, 1)]
    if report.warnings:
        parts += ["", f"{h}# Warnings", ""]
        for w in report.warnings:
            where = f" ({escape_md(w.component)})" if w.component else ""
            parts.append(f"- {escape_md(w.code)}{where}: {escape_md(w.message)}")
    return "\n".join(parts).rstrip() + "\n"


def markdown(reports: Sequence[Report]) -> str:
    """One or several reports; several get one section each."""
    if len(reports) == 1:
        return render_markdown(reports[0])
    return "\n".join(render_markdown(r, heading_level=2) for r in reports)
