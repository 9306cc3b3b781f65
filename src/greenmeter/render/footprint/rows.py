"""The tables every footprint format shows, taken from the summary in one place.

Two tables, so each fits a page: *runs and compute* (runs by status, wall time,
GPU-hours) and *energy and CO2e* (IT and facility energy, estimated share, CO2e
location-based, and market-based and embodied in their own columns when any run has
them). One row per group, then the total. Cells are numbers (or None); each format
formats and escapes them its own way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from greenmeter.footprint.models import FootprintSummary, FootprintTotals
from greenmeter.render.numbers import sig

__all__ = [
    "Column",
    "Row",
    "cell",
    "co2e_unit",
    "compute_columns",
    "energy_columns",
    "gpu_model_rows",
    "rows",
]


@dataclass(frozen=True)
class Row:
    """One line of a table: a group (or the total) and its sums."""

    label: str
    totals: FootprintTotals
    is_total: bool = False


@dataclass(frozen=True)
class Column:
    """A column: its title (plain text), how to get its value, whether it is a count."""

    title: str
    value: Callable[[FootprintTotals], float | int | None]
    count: bool = False


def cell(column: Column, totals: FootprintTotals) -> str:
    """A cell as plain text: a count as a whole number, a figure with :func:`sig`, ``""``
    when there is no value."""
    value = column.value(totals)
    if value is None:
        return ""
    return str(int(value)) if column.count else sig(value)


def rows(summary: FootprintSummary) -> list[Row]:
    """The groups (when grouped), then the total."""
    out = [Row(g.label, g) for g in summary.groups]
    out.append(Row("Total", summary.total, is_total=True))
    return out


def co2e_unit(summary: FootprintSummary) -> tuple[str, float]:
    """The unit CO2e is shown in (g, kg or t, by the size of the total) and its grams."""
    biggest = max(
        summary.total.co2e_location_g,
        summary.total.co2e_market_g or 0.0,
        summary.total.co2e_embodied_g or 0.0,
    )
    if biggest >= 1e6:
        return "t", 1e6
    if biggest >= 1e3:
        return "kg", 1e3
    return "g", 1.0


def compute_columns() -> list[Column]:
    """Runs by status, wall time (hours) and GPU-hours."""
    return [
        Column("Runs", lambda t: t.runs.total, count=True),
        Column("Completed", lambda t: t.runs.complete, count=True),
        Column("Failed", lambda t: t.runs.failed, count=True),
        Column("Interrupted", lambda t: t.runs.interrupted, count=True),
        Column("Running", lambda t: t.runs.running, count=True),
        Column("Wall time (h)", lambda t: t.wall_time_s / 3600.0),
        Column("GPU-hours", lambda t: t.gpu_hours),
    ]


def energy_columns(summary: FootprintSummary) -> list[Column]:
    """Energy (kWh), the estimated share (%) and CO2e, each basis in its own column."""
    unit, grams = co2e_unit(summary)
    out = [
        Column("IT energy (kWh)", lambda t: t.it_energy_kwh),
        Column("Facility energy (kWh)", lambda t: t.facility_energy_kwh),
        Column(
            "Estimated (%)",
            lambda t: t.estimated_share * 100.0 if t.estimated_share is not None else None,
        ),
        Column(
            f"CO2e location-based ({unit})",
            lambda t: t.co2e_location_g / grams if t.runs_with_co2e else None,
        ),
    ]
    if summary.total.co2e_market_g is not None:
        out.append(
            Column(
                f"CO2e market-based ({unit})",
                lambda t: t.co2e_market_g / grams if t.co2e_market_g is not None else None,
            )
        )
    if summary.total.co2e_embodied_g is not None:
        out.append(
            Column(
                f"CO2e embodied ({unit})",
                lambda t: t.co2e_embodied_g / grams if t.co2e_embodied_g is not None else None,
            )
        )
    return out


def gpu_model_rows(summary: FootprintSummary) -> list[tuple[str, float, float]]:
    """(GPU model, GPU-hours, share of all GPU-hours in %), most hours first."""
    total = summary.total.gpu_hours
    items = sorted(summary.total.gpu_hours_by_model.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(name, hours, hours / total * 100.0 if total > 0 else 0.0) for name, hours in items]
