"""The footprint as plain text for a terminal: two aligned tables, GPU models, sources,
skipped files and notes."""

from __future__ import annotations

from collections.abc import Sequence

from greenmeter.footprint.models import FootprintSummary
from greenmeter.render.footprint.methods import source_text
from greenmeter.render.footprint.rows import (
    Column,
    cell,
    compute_columns,
    energy_columns,
    gpu_model_rows,
    rows,
)
from greenmeter.render.numbers import sig

__all__ = ["MAX_LISTED", "footprint_text", "headline", "text_table"]

#: Skipped files listed by name before the rest are counted.
MAX_LISTED = 20


def _clean(text: str) -> str:
    """One line of printable text (control characters from file names become '?')."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def text_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """Columns aligned with spaces: the first left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in body)])


def _table(summary: FootprintSummary, columns: Sequence[Column]) -> str:
    body = [
        [_clean(row.label), *(cell(c, row.totals) or "-" for c in columns)] for row in rows(summary)
    ]
    return text_table(["Group", *(c.title for c in columns)], body)


def headline(summary: FootprintSummary) -> str:
    """One line: how many runs, from how many files, grouped how."""
    f = summary.files
    text = f"{summary.total.runs.total} run(s) from {f.reports} report file(s)"
    if f.skipped:
        text += f", {f.skipped} file(s) skipped"
    if summary.group_by:
        text += f"; grouped by {', '.join(summary.group_by)}"
    return text


def footprint_text(summary: FootprintSummary) -> str:
    """The whole footprint as text."""
    out = [
        f"greenmeter footprint: {_clean(headline(summary))}",
        "",
        "Runs and compute",
        _table(summary, compute_columns()),
        "",
        "Energy and CO2e (market-based and embodied are never added to location-based)",
        _table(summary, energy_columns(summary)),
    ]
    models = gpu_model_rows(summary)
    if models:
        out += ["", "GPU-hours by GPU model"]
        out.append(
            text_table(
                ["GPU model", "GPU-hours", "Share (%)"],
                [[_clean(n), sig(h), sig(p, 3)] for n, h, p in models],
            )
        )
    if summary.sources:
        out += ["", "Carbon intensity sources"]
        for src in summary.sources:
            out.append(
                f"  {src.id} ({src.runs} run(s), {sig(src.facility_energy_kwh)} kWh at the "
                f"facility): {_clean(source_text(src))}"
            )
    if summary.skipped:
        out += ["", f"Skipped files ({len(summary.skipped)}): not readable greenmeter reports"]
        for item in summary.skipped[:MAX_LISTED]:
            out.append(f"  {_clean(item.path)}: {_clean(item.problem)}")
        if len(summary.skipped) > MAX_LISTED:
            out.append(f"  ... and {len(summary.skipped) - MAX_LISTED} more")
    out += ["", "Notes"]
    out += [f"  - {_clean(note)}" for note in summary.notes]
    f = summary.files
    out.append(
        f"  - Files: {f.found} found, {f.read} read, {f.from_index} unchanged (from the index); "
        f"{f.checkpoints_dropped} older checkpoint copies left out, {f.parts_merged} "
        f"per-rank or per-node reports merged, {f.filtered_out} run(s) filtered out."
    )
    return "\n".join(out) + "\n"
